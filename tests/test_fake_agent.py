"""The fake Agent must be as strict as the real one, over real Unix sockets."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import string
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.device import Device, instance_name
from akri_sdk.testing.authority import authority_error, authority_is_valid
from akri_sdk.testing.fake_agent import (
    DISCOVER_PATH,
    REGISTER_PATH,
    FakeAgent,
    InstanceInfo,
    Registration,
    StreamEndedError,
)

UDS = pb.RegisterDiscoveryHandlerRequest.UDS
NETWORK = pb.RegisterDiscoveryHandlerRequest.NETWORK


# ---- authority rules (hyperium/http src/uri/authority.rs, v1.4.2) ----------


@pytest.mark.parametrize(
    "value",
    [
        "localhost",
        "[::1]:50051",
        "[::]:50051",
        "example.com:80",
        "user@host",
        "a%2f:b%2f@example.com",  # % is allowed in userinfo
        "[fe80::1%25eth0]:80",  # ...and inside brackets (zone id)
        "host:port",  # the port is not checked to be numeric
        ":80",  # nor the host to be non-empty
        "@host",
        "[]",
        "1.2.3.4:5",
    ],
)
def test_authority_accepted_like_the_http_crate(value: str) -> None:
    assert authority_is_valid(value), authority_error(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", "Empty"),
        ("%2Ftmp%2Fx.sock", "InvalidPercent"),  # what grpcio >= 1.57 sends for unix:
        ("example%2f.com", "InvalidPercent"),
        ("[fe80::1]%20", "InvalidPercent"),
        ("1234%20[fe80::1]", "InvalidBracketUsage"),
        ("a b", "InvalidUriChar"),
        ("host/path", "InvalidUriChar"),
        ("host?q", "InvalidUriChar"),
        ("/tmp/x.sock", "InvalidUriChar"),
        ("h\u00e9", "InvalidUriChar"),
        ("a|b", "InvalidUriChar"),
        ("host:port:x", "InvalidAuthority"),
        ("::1", "InvalidAuthority"),
        ("[::1", "MismatchedBrackets"),
        ("]o[", "InvalidBracketUsage"),
        ("[a][b]", "InvalidBracketUsage"),
        ("user@", "EmptyAfterAt"),
        ("[0:1:2:3:4:5:6:7:8:9]", "TooManyColons"),
    ],
)
def test_authority_rejected_like_the_http_crate(value: str, error: str) -> None:
    assert authority_error(value) == error
    assert not authority_is_valid(value)


_HOST_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;="


@given(
    host=st.text(alphabet=_HOST_CHARS, min_size=1, max_size=30),
    port=st.none() | st.integers(0, 65535),
)
def test_reg_name_with_port_is_valid(host: str, port: int | None) -> None:
    assert authority_is_valid(host if port is None else f"{host}:{port}")


@given(address=st.ip_addresses(v=6), port=st.integers(0, 65535))
def test_bracketed_ipv6_with_port_is_valid(address: ipaddress.IPv6Address, port: int) -> None:
    assert authority_is_valid(f"[{address}]:{port}")


@given(
    text=st.text(max_size=20),
    bad=st.characters(exclude_characters=_HOST_CHARS + ":@[]/?#%"),
    at=st.integers(0, 20),
)
def test_a_character_outside_the_uri_set_is_rejected(text: str, bad: str, at: int) -> None:
    assert not authority_is_valid(text[:at] + bad + text[at:])


# ---- fixtures and helpers ----------------------------------------------------


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose socket paths fit in sun_path (107 bytes)."""
    if len(str(tmp_path)) < 60:
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="fa-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def agent(short_dir: Path) -> AsyncIterator[FakeAgent]:
    async with FakeAgent(short_dir / "agent", node_name="my_node") as running:
        yield running


async def register(
    agent: FakeAgent,
    name: str,
    endpoint: str,
    *,
    shared: bool = False,
    endpoint_type: int = UDS,
    authority: str | None = "localhost",
    path: str = REGISTER_PATH,
) -> None:
    """Register the way a grpcio handler does, with or without an explicit authority.

    A local subchannel pool gives each call a new connection; from the global
    pool grpcio may reuse a connection the fake Agent closed on restart.
    """
    options: list[tuple[str, Any]] = [("grpc.use_local_subchannel_pool", 1)]
    if authority is not None:
        options.append(("grpc.default_authority", authority))
    request = pb.RegisterDiscoveryHandlerRequest(
        name=name, endpoint=endpoint, endpoint_type=cast(Any, endpoint_type), shared=shared
    )
    async with grpc.aio.insecure_channel(f"unix:{agent.socket_path}", options=options) as channel:
        call = channel.unary_unary(
            path,
            request_serializer=pb.RegisterDiscoveryHandlerRequest.SerializeToString,
            response_deserializer=pb.Empty.FromString,
        )
        await call(request, timeout=5)


class Waitable:
    """Condition-based waiting for the test's own servers."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def changed(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(
        self,
        ready: Callable[[], bool],
        timeout: float = 5.0,
    ) -> None:
        async with asyncio.timeout(timeout):
            while not ready():
                await self._event.wait()


class DiscoverServer(Waitable):
    """A tiny grpcio Discover server: every stream sends the published set on each change.

    `behaviour` can replace that for one test (end the stream, abort, ...).
    """

    def __init__(self, behaviour: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self.behaviour = behaviour or self._publishing
        self.requests: list[pb.DiscoverRequest] = []
        self.metadata: list[dict[str, Any]] = []
        self.cancelled = 0
        self.devices: list[pb.Device] = []
        self._published = Waitable()
        self.server: Any = None

    def publish(self, *ids: str) -> None:
        self.devices = [pb.Device(id=i, properties={"ID": i}) for i in ids]
        self._published.changed()

    async def _publishing(self, request: pb.DiscoverRequest, context: Any) -> AsyncIterator[Any]:
        await context.send_initial_metadata(())  # headers at once (spec §3.3)
        while True:
            sent = self.devices
            yield pb.DiscoverResponse(devices=sent)
            await self._published.wait_for(partial(self._changed_since, sent), timeout=60)

    def _changed_since(self, sent: list[pb.Device]) -> bool:
        return self.devices is not sent

    async def _discover(self, request: pb.DiscoverRequest, context: Any) -> AsyncIterator[Any]:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        self.changed()
        try:
            async for response in self.behaviour(request, context):
                yield response
        except asyncio.CancelledError:
            self.cancelled += 1
            self.changed()
            raise

    async def start(self, address: str, *, max_receive_bytes: int | None = None) -> int:
        options = []
        if max_receive_bytes is not None:
            options.append(("grpc.max_receive_message_length", max_receive_bytes))
        self.server = grpc.aio.server(options=options)
        handler = grpc.unary_stream_rpc_method_handler(
            self._discover,
            request_deserializer=pb.DiscoverRequest.FromString,
            response_serializer=pb.DiscoverResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("v0.DiscoveryHandler", {"Discover": handler})]
        )
        port: int = self.server.add_insecure_port(address)
        await self.server.start()
        return port

    async def stop(self) -> None:
        await self.server.stop(None)


@pytest.fixture
async def handler(short_dir: Path) -> AsyncIterator[tuple[DiscoverServer, str]]:
    server = DiscoverServer()
    path = str(short_dir / "h.sock")
    await server.start(f"unix:{path}")
    yield server, path
    await server.stop()


# ---- registration ------------------------------------------------------------


async def test_grpcio_default_authority_is_rejected_like_tonic(agent: FakeAgent) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await register(agent, "debugEcho", "/x.sock", authority=None)
    # h2 resets the stream with PROTOCOL_ERROR; grpcio reports that as INTERNAL.
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert agent.registrations == []
    (rejected,) = agent.rejected
    assert rejected.authority is not None
    assert "%" in rejected.authority
    assert "InvalidPercent" in rejected.reason


async def test_registration_with_explicit_authority_is_recorded(agent: FakeAgent) -> None:
    await register(agent, "debugEcho", "/var/lib/akri/debugEcho.sock", shared=True)
    await register(agent, "onvif", "http://[::1]:10000", endpoint_type=NETWORK)
    first, second = await agent.wait_registrations(2, timeout=1)
    assert (first.name, first.endpoint, first.endpoint_type, first.shared) == (
        "debugEcho",
        "/var/lib/akri/debugEcho.sock",
        UDS,
        True,
    )
    assert first.authority == "localhost"
    assert first.uid == "debugEcho@/var/lib/akri/debugEcho.sock"
    assert (second.endpoint_type, second.shared) == (NETWORK, False)
    assert first.at <= second.at
    assert agent.rejected == []


async def test_unknown_method_is_unimplemented(agent: FakeAgent) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await register(agent, "x", "/x.sock", path="/v0.Registration/Nope")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert agent.registrations == []


async def test_undecodable_request_gets_a_grpc_error(agent: FakeAgent) -> None:
    async with grpc.aio.insecure_channel(
        f"unix:{agent.socket_path}", options=[("grpc.default_authority", "localhost")]
    ) as channel:
        call = channel.unary_unary(REGISTER_PATH, request_serializer=lambda _: b"\xff\xff")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(None, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "failed to decode Protobuf message" in raised.value.details()
    assert agent.registrations == []
    assert "failed to decode" in agent.rejected[-1].reason


async def test_invalid_endpoint_type_resets_the_stream_and_agent_survives(
    agent: FakeAgent,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await register(agent, "x", "/x.sock", endpoint_type=5)
    assert "endpoint_type 5" in agent.rejected[-1].reason
    await register(agent, "x", "/x.sock")
    assert len(agent.registrations) == 1


async def test_malformed_connections_do_not_crash_or_leak(agent: FakeAgent) -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    for payload in (b"garbage, not HTTP/2\r\n", preface + b"\x00\x00\x10\x01", preface):
        _reader, writer = await asyncio.open_unix_connection(str(agent.socket_path))
        writer.write(payload)
        await writer.drain()
        writer.close()  # hang up mid-frame
        await writer.wait_closed()
    await register(agent, "x", "/x.sock")
    assert len(agent.registrations) == 1


async def test_restart_binds_a_new_socket_and_forgets_registrations(agent: FakeAgent) -> None:
    await register(agent, "x", "/x.sock")
    before = agent.socket_path.stat()
    await agent.restart()
    after = agent.socket_path.stat()
    assert (before.st_ino, before.st_ctime_ns) != (after.st_ino, after.st_ctime_ns)
    assert agent.registrations == []
    await register(agent, "x", "/x.sock")
    assert len(agent.registrations) == 1


async def test_start_removes_a_stale_file(short_dir: Path) -> None:
    directory = short_dir / "stale"
    directory.mkdir()
    (directory / "agent-registration.sock").write_text("left over")
    async with FakeAgent(directory) as agent:
        await register(agent, "x", "/x.sock")
    assert not (directory / "agent-registration.sock").exists()


async def test_stop_cancels_every_task_and_removes_the_socket(
    short_dir: Path, handler: tuple[DiscoverServer, str]
) -> None:
    server, path = handler
    before = asyncio.all_tasks()
    agent = FakeAgent(short_dir / "agent")
    await agent.start()
    reader, writer = await asyncio.open_unix_connection(str(agent.socket_path))  # left open
    await register(agent, "h", path)
    agent.add_configuration("c", "h")
    adhoc = agent.discover(path)
    await agent.until(lambda a: bool(adhoc.snapshots and a.streams("c")[0].snapshots))
    assert any(t.get_name().startswith("fake-agent") for t in asyncio.all_tasks() - before)
    await agent.stop()
    # What remains belongs to the test's grpcio server, finishing its cancelled calls.
    leftover = [t for t in asyncio.all_tasks() - before if t.get_name().startswith("fake-agent")]
    assert leftover == []
    assert not agent.socket_path.exists()
    await server.wait_for(lambda: server.cancelled == 2)
    await asyncio.wait_for(reader.read(), 5)  # stop() hung up on the idle connection
    assert reader.at_eof()
    writer.close()


# ---- Discover ----------------------------------------------------------------


async def test_discover_sends_the_agents_authority(agent: FakeAgent) -> None:
    # Aim the Discover client at the fake Agent's own h2 server, which sees :authority.
    stream = agent.discover(str(agent.socket_path))
    assert await stream.wait_ended() == grpc.StatusCode.UNIMPLEMENTED
    (seen,) = agent.rejected
    assert (seen.authority, seen.path) == ("[::1]:50051", DISCOVER_PATH)


async def test_discover_stream_records_headers_and_snapshots_in_order(
    agent: FakeAgent, handler: tuple[DiscoverServer, str]
) -> None:
    server, path = handler
    server.publish("a")
    stream = agent.discover(path, details="x: 1", properties={"USER": b"me", "EMPTY": None})
    assert [d.id for d in await stream.next_snapshot()] == ["a"]
    server.publish("a", "b")
    server.publish("b")  # may coalesce with the previous one; both are full sets
    await stream.until(lambda s: s.latest is not None and [d.id for d in s.latest] == ["b"])
    assert stream.headers_at is not None
    assert stream.opened_at <= stream.headers_at
    assert stream.headers_at <= stream.snapshots[0].at
    times = [s.at for s in stream.snapshots]
    assert times == sorted(times)
    assert stream.snapshots[0].devices == (Device("a", {"ID": "a"}),)
    assert not stream.ended
    assert stream.code is None

    (request,) = server.requests
    assert request.discovery_details == "x: 1"
    assert request.discovery_properties["USER"].vec == b"me"
    assert not request.discovery_properties["EMPTY"].HasField("vec")
    assert "user-agent" in server.metadata[0]

    await stream.cancel()
    assert stream.ended
    assert stream.code == grpc.StatusCode.CANCELLED
    await server.wait_for(lambda: server.cancelled == 1)


async def test_network_endpoint(agent: FakeAgent) -> None:
    server = DiscoverServer()
    port = await server.start("127.0.0.1:0")
    try:
        server.publish("net")
        await register(agent, "n", f"http://127.0.0.1:{port}", endpoint_type=NETWORK)
        stream = agent.discover(agent.registrations[0])
        assert [d.id for d in await stream.next_snapshot()] == ["net"]
    finally:
        await server.stop()
    bad = agent.discover(Registration("n", "127.0.0.1:1", NETWORK, False, "x", 0.0))
    assert await bad.wait_ended() == grpc.StatusCode.UNAVAILABLE
    assert bad.message is not None
    assert "http://" in bad.message


async def test_instances_replace_per_stream_with_agent_names(
    agent: FakeAgent, short_dir: Path
) -> None:
    local, shared = DiscoverServer(), DiscoverServer()
    await local.start(f"unix:{short_dir / 'l.sock'}")
    await shared.start(f"unix:{short_dir / 's.sock'}")
    try:
        local.publish("my_local_device", "gone_soon")
        shared.publish("my_shared_device")
        await register(agent, "h", str(short_dir / "l.sock"), shared=False)
        await register(agent, "h", str(short_dir / "s.sock"), shared=True)
        agent.add_configuration("cfg", "h")
        assert len(agent.streams("cfg")) == 2
        await agent.until(lambda a: len(a.instances("cfg")) == 3)
        assert {"cfg-e77db4", "cfg-4294ea"} <= set(agent.instances("cfg"))
        assert agent.instances("cfg")["cfg-4294ea"].id == "my_shared_device"

        local.publish("my_local_device")  # a new snapshot replaces the old one
        await agent.until(lambda a: set(a.instances("cfg")) == {"cfg-e77db4", "cfg-4294ea"})
        shared.publish()  # an empty set means no devices
        await agent.until(lambda a: set(a.instances("cfg")) == {"cfg-e77db4"})
    finally:
        await local.stop()
        await shared.stop()
    # The handler's server went away: its streams ended and contribute nothing.
    await agent.until(lambda a: all(s.ended for s in a.streams("cfg")))
    assert agent.instances("cfg") == {}


async def test_duplicate_registrations_open_duplicate_streams(
    agent: FakeAgent, handler: tuple[DiscoverServer, str]
) -> None:
    server, path = handler
    server.publish("d")
    await register(agent, "h", path)
    agent.add_configuration("cfg", "h", details="one")
    agent.add_configuration("other", "h", details="two")
    await register(agent, "h", path)  # an identical registration adds streams (spec §2.2)
    await server.wait_for(lambda: len(server.requests) == 4)
    assert len(agent.streams("cfg")) == len(agent.streams("other")) == 2
    assert sorted(r.discovery_details for r in server.requests) == ["one", "one", "two", "two"]
    # The registry keeps one endpoint per uid: a Configuration added now gets one stream.
    assert len(agent.endpoints("h")) == 1
    assert len(agent.add_configuration("later", "h")) == 1
    await agent.until(lambda a: all(s.latest for s in a.streams("cfg")))
    assert list(agent.instances("cfg")) == [instance_name("cfg", "d", "my_node", False)]

    await agent.remove_configuration("cfg")
    await server.wait_for(lambda: server.cancelled == 2)
    assert all(not s.ended for s in agent.streams("other"))
    with pytest.raises(KeyError, match="cfg"):
        agent.instances("cfg")


async def test_a_failed_connect_stops_the_endpoint_and_its_streams(
    agent: FakeAgent, handler: tuple[DiscoverServer, str]
) -> None:
    server, path = handler
    server.publish("d")
    await register(agent, "h", path)
    (first,) = agent.add_configuration("a", "h")
    await first.next_snapshot()
    os.unlink(path)  # existing connections live on, new connects fail
    (second,) = agent.add_configuration("b", "h")
    await second.wait_ended()
    assert second.connect_failed
    assert agent.endpoints("h") == []
    # NetworkEndpoint's Stopper is shared: the healthy stream is dropped too.
    assert await first.wait_ended() == grpc.StatusCode.CANCELLED
    await server.wait_for(lambda: server.cancelled == 1)


async def test_registration_after_configuration_opens_a_stream(
    agent: FakeAgent, handler: tuple[DiscoverServer, str]
) -> None:
    server, path = handler
    server.publish("late")
    assert agent.add_configuration("cfg", "h") == []
    await register(agent, "other", path)
    await register(agent, "h", path)
    await agent.until(lambda a: bool(a.instances("cfg")))
    assert len(agent.streams("cfg")) == 1


async def test_a_handler_that_ends_its_stream_is_visible(agent: FakeAgent, short_dir: Path) -> None:
    async def end_after_one(request: pb.DiscoverRequest, context: Any) -> AsyncIterator[Any]:
        yield pb.DiscoverResponse(devices=[pb.Device(id="a")])

    server = DiscoverServer(end_after_one)
    await server.start(f"unix:{short_dir / 'e.sock'}")
    try:
        stream = agent.discover(str(short_dir / "e.sock"))
        assert await stream.wait_ended() == grpc.StatusCode.OK
        assert stream.ended
        assert len(stream.snapshots) == 1
        assert await stream.next_snapshot() == (Device("a"),)
        with pytest.raises(StreamEndedError, match="OK"):
            await stream.next_snapshot()
    finally:
        await server.stop()


async def test_invalid_argument_before_headers_is_trailers_only(
    agent: FakeAgent, short_dir: Path
) -> None:
    async def reject(request: pb.DiscoverRequest, context: Any) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "discoveryDetails: bad key 'x'")
        yield  # pragma: no cover - makes this an async generator

    server = DiscoverServer(reject)
    await server.start(f"unix:{short_dir / 'r.sock'}")
    try:
        stream = agent.discover(str(short_dir / "r.sock"))
        assert await stream.wait_ended() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop()
    assert stream.message == "discoveryDetails: bad key 'x'"
    assert stream.snapshots == []
    # grpcio resolves initial_metadata() (empty) for a trailers-only reply too;
    # the fake Agent sees the call already done then and records no headers.
    assert stream.headers_at is None
    assert not stream.connect_failed


async def test_until_times_out_with_the_agents_state(agent: FakeAgent) -> None:
    await register(agent, "h", "/nowhere.sock")
    agent.add_configuration("cfg", "h")
    with pytest.raises(TimeoutError, match=r"h@/nowhere.sock[\s\S]*configuration 'cfg'"):
        await agent.until(lambda a: bool(a.instances("cfg")), timeout=0.2)
    (stream,) = agent.streams("cfg")
    assert await stream.wait_ended() == grpc.StatusCode.UNAVAILABLE
    # The Agent drops an endpoint it cannot connect to; the handler must register again.
    assert stream.connect_failed
    assert agent.endpoints("h") == []
    assert agent.add_configuration("again", "h") == []


def test_socket_path_length_is_checked() -> None:
    with pytest.raises(ValueError, match="too long"):
        FakeAgent(Path("/tmp") / ("d" * 120))


# ---- response headers: proven, never guessed ----------------------------------


async def test_a_refused_large_request_never_records_headers(
    agent: FakeAgent, short_dir: Path
) -> None:
    """grpcio resolves initial_metadata() (empty) for a trailers-only reply, and for a
    5 MB request often before the status: call.done() is still False then."""

    async def refuse(request: pb.DiscoverRequest, context: Any) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "discoveryDetails: too large")
        yield  # pragma: no cover - makes this an async generator

    server = DiscoverServer(refuse)
    path = str(short_dir / "big.sock")
    await server.start(f"unix:{path}", max_receive_bytes=16 * 1024 * 1024)
    big = "x" * (5 * 1024 * 1024)
    try:
        for _ in range(20):
            stream = agent.discover(path, details=big)
            assert await stream.wait_ended() == grpc.StatusCode.INVALID_ARGUMENT
            assert stream.message == "discoveryDetails: too large"
            assert stream.headers_at is None
            assert stream.initial_metadata is None
            assert not stream.connect_failed
    finally:
        await server.stop()
    assert len(server.requests) == 20
    assert all(len(r.discovery_details) == len(big) for r in server.requests)


async def test_headers_then_an_abort_records_the_headers(agent: FakeAgent, short_dir: Path) -> None:
    seen: list[Any] = []

    async def open_then_fail(request: pb.DiscoverRequest, context: Any) -> AsyncIterator[Any]:
        await context.send_initial_metadata((("x-handler", "yes"),))
        # Abort only once the fake Agent took those as headers: an abort that
        # follows headers at once cannot be told from a trailers-only reply.
        await seen[0].until(lambda s: s.headers_at is not None)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "failed after headers")
        yield  # pragma: no cover - makes this an async generator

    server = DiscoverServer(open_then_fail)
    path = str(short_dir / "late.sock")
    await server.start(f"unix:{path}")
    try:
        stream = agent.discover(path)
        seen.append(stream)
        assert await stream.wait_ended() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop()
    assert stream.headers_at is not None
    assert stream.ended_at is not None
    assert stream.opened_at <= stream.headers_at <= stream.ended_at
    assert stream.initial_metadata == (("x-handler", "yes"),)
    assert stream.snapshots == []
    assert not stream.connect_failed


# ---- removing a Configuration -------------------------------------------------


async def test_remove_configuration_is_atomic_for_observers(
    agent: FakeAgent, handler: tuple[DiscoverServer, str]
) -> None:
    server, path = handler
    server.publish("d")
    agent.add_configuration("cfg", "h")
    await register(agent, "h", path)
    await register(agent, "h", path)  # two streams to cancel (spec §2.2)
    await agent.until(
        lambda a: len(a.streams("cfg")) == 2 and all(s.latest for s in a.streams("cfg"))
    )
    assert len(agent.instances("cfg")) == 1

    removal = asyncio.create_task(agent.remove_configuration("cfg"))
    await asyncio.sleep(0)  # the removal has begun; its streams take turns to end
    observed = 0
    while not removal.done():
        # Listed, without Instances, its name still taken, until every stream ended.
        assert len(agent.streams("cfg")) == 2
        assert agent.instances("cfg") == {}
        assert agent.instance_details("cfg") == {}
        assert "removing" in agent.describe()
        with pytest.raises(ValueError, match="being removed"):
            agent.add_configuration("cfg", "h")
        observed += 1
        await asyncio.sleep(0)
    await removal
    assert observed > 0
    with pytest.raises(KeyError, match="cfg"):
        agent.streams("cfg")
    with pytest.raises(KeyError, match="cfg"):
        agent.instances("cfg")
    await server.wait_for(lambda: server.cancelled == 2)
    # The name is free again.
    assert len(agent.add_configuration("cfg", "h")) == 1
    with pytest.raises(KeyError, match="nope"):
        await agent.remove_configuration("nope")


async def test_concurrent_removals_both_wait_for_the_end(
    agent: FakeAgent, handler: tuple[DiscoverServer, str]
) -> None:
    server, path = handler
    server.publish("d")
    await register(agent, "h", path)
    (stream,) = agent.add_configuration("cfg", "h")
    await stream.next_snapshot()
    await asyncio.gather(agent.remove_configuration("cfg"), agent.remove_configuration("cfg"))
    assert stream.ended
    with pytest.raises(KeyError):
        agent.streams("cfg")


# ---- instance details -----------------------------------------------------------


async def test_instance_details_tell_shared_instances(agent: FakeAgent, short_dir: Path) -> None:
    local, shared = DiscoverServer(), DiscoverServer()
    local_path, shared_path = str(short_dir / "l.sock"), str(short_dir / "s.sock")
    await local.start(f"unix:{local_path}")
    await shared.start(f"unix:{shared_path}")
    try:
        local.publish("my_local_device")
        shared.publish("my_shared_device")
        await register(agent, "h", local_path, shared=False)
        await register(agent, "h", shared_path, shared=True)
        agent.add_configuration("cfg", "h")
        await agent.until(lambda a: len(a.instances("cfg")) == 2)
        details = agent.instance_details("cfg")
        assert details == {
            "cfg-e77db4": InstanceInfo(
                Device("my_local_device", {"ID": "my_local_device"}), False, local_path
            ),
            "cfg-4294ea": InstanceInfo(
                Device("my_shared_device", {"ID": "my_shared_device"}), True, shared_path
            ),
        }
        # instances() is unchanged: the same names, the devices only.
        assert agent.instances("cfg") == {name: info.device for name, info in details.items()}
    finally:
        await local.stop()
        await shared.stop()


# ---- properties resolved per Discover ---------------------------------------------


async def test_callable_properties_are_resolved_for_every_discover(
    agent: FakeAgent, handler: tuple[DiscoverServer, str]
) -> None:
    server, path = handler
    server.publish("d")
    calls = 0

    def resolve() -> dict[str, bytes | None]:
        nonlocal calls
        calls += 1
        return {"CALL": str(calls).encode(), "FLAG": None}

    assert agent.add_configuration("cfg", "h", properties=resolve) == []
    assert calls == 0  # no endpoint, no Discover
    await register(agent, "h", path)
    await server.wait_for(lambda: len(server.requests) == 1)
    await register(agent, "h", path)  # one more stream (spec §2.2), resolved again
    await server.wait_for(lambda: len(server.requests) == 2)
    assert calls == 2
    assert sorted(r.discovery_properties["CALL"].vec for r in server.requests) == [b"1", b"2"]
    assert all(not r.discovery_properties["FLAG"].HasField("vec") for r in server.requests)
    # A Configuration added now resolves once per endpoint it calls.
    assert len(agent.add_configuration("later", "h", properties=resolve)) == 1
    assert calls == 3


async def test_mapping_properties_are_taken_once(
    agent: FakeAgent, handler: tuple[DiscoverServer, str]
) -> None:
    server, path = handler
    server.publish("d")
    properties: dict[str, bytes | None] = {"USER": b"me"}
    agent.add_configuration("cfg", "h", properties=properties)
    properties["USER"] = b"changed later"
    await register(agent, "h", path)
    await register(agent, "h", path)
    await server.wait_for(lambda: len(server.requests) == 2)
    assert [r.discovery_properties["USER"].vec for r in server.requests] == [b"me", b"me"]


async def test_properties_that_cannot_be_resolved(
    agent: FakeAgent, handler: tuple[DiscoverServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, path = handler
    server.publish("d")
    await register(agent, "h", path)

    def missing() -> dict[str, bytes | None]:
        raise LookupError("Secret default/creds has no key 'password'")

    # Now: the request fails and nothing is added.
    with pytest.raises(LookupError, match="password"):
        agent.add_configuration("cfg", "h", properties=missing)
    with pytest.raises(KeyError):
        agent.streams("cfg")

    # For a later registration: that endpoint is left out, the rest carries on.
    broken = True

    def flaky() -> dict[str, bytes | None]:
        if broken:
            raise LookupError("not yet")
        return {}

    broken = False
    assert len(agent.add_configuration("cfg", "h", properties=flaky)) == 1
    broken = True
    await register(agent, "h", path)
    assert len(agent.streams("cfg")) == 1
    assert "could not resolve the properties of Configuration 'cfg'" in caplog.text
