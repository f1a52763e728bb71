"""The runtime over real Unix sockets against the fake Agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import grpc
import msgspec
import pytest

from akri_sdk import DetailsError, Device, DiscoveryContext, DiscoveryHandler, instance_name
from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.handlers.debug_echo import DebugEcho
from akri_sdk.registration import socket_identity
from akri_sdk.testing.fake_agent import FakeAgent
from akri_sdk.testing.harness import eventually
from akri_sdk.testing.raw_discover import raw_discover
from tests.conftest import Served

ECHO_DETAILS = "descriptions: [foo0, foo1]"


@pytest.fixture
def availability(akri_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = akri_dir / "availability.txt"
    monkeypatch.setenv("DEBUG_ECHO_AVAILABILITY_FILE", str(path))
    monkeypatch.delenv("DEBUG_ECHO_INSTANCES_SHARED", raising=False)
    return path


async def test_registers_after_serving_with_all_fields(
    agent: FakeAgent, served: Served, akri_dir: Path, availability: Path
) -> None:
    [_runtime] = await served.start(DebugEcho())
    await agent.wait_registrations(1)
    [registration] = agent.registrations
    assert registration.name == "debugEcho"
    assert registration.endpoint == str(akri_dir / "debugEcho.sock")
    assert registration.endpoint_type == 0
    assert registration.shared is True  # DEBUG_ECHO_INSTANCES_SHARED unset: the chart default
    # The fix of spec §2.7: the Rust Agent would reset a percent-encoded authority.
    assert registration.authority == "localhost"
    assert "%" not in registration.authority
    assert not agent.rejected
    assert (akri_dir / "debugEcho.sock").stat().st_mode & 0o777 == 0o666


async def test_shared_flag_from_env(
    agent: FakeAgent, served: Served, availability: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEBUG_ECHO_INSTANCES_SHARED", "false")
    await served.start(DebugEcho())
    await agent.wait_registrations(1)
    assert agent.registrations[0].shared is False


async def test_debug_echo_snapshots_and_availability(
    agent: FakeAgent, served: Served, availability: Path
) -> None:
    await served.start(DebugEcho())
    await agent.wait_registrations(1)
    agent.add_configuration("akri-debug-echo", "debugEcho", ECHO_DETAILS)
    expected = {
        instance_name("akri-debug-echo", d, agent.node_name, True): d for d in ("foo0", "foo1")
    }
    await agent.until(
        lambda a: {n: d.id for n, d in a.instances("akri-debug-echo").items()} == expected
    )
    devices = agent.instances("akri-debug-echo")
    assert {d.properties["DEBUG_ECHO_DESCRIPTION"] for d in devices.values()} == {"foo0", "foo1"}

    availability.write_text("OFFLINE")
    await agent.until(lambda a: a.instances("akri-debug-echo") == {}, timeout=3)
    availability.write_text("ONLINE")
    await agent.until(lambda a: len(a.instances("akri-debug-echo")) == 2, timeout=3)
    [stream] = agent.streams("akri-debug-echo")
    # Complete snapshots, sent only on change: online, offline, online.
    assert [len(s.devices) for s in stream.snapshots] == [2, 0, 2]
    assert not stream.ended


BAD_DETAILS = {
    "not yaml": "descriptions: [unclosed",
    "wrong type": "descriptions: foo",
    "wrong item type": "descriptions: [[1]]",
    "missing key": "other: 1",
    "empty string": "",
    "not a mapping": "- a\n- b",
    "five megabytes": "descriptions: [" + "x" * (5 * 1024 * 1024) + "]",
    "alias bomb": "\n".join(
        ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
        + [
            f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]"
            for i in range(8)
        ]
        + ["descriptions: *i"]
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DETAILS))
async def test_bad_details_get_invalid_argument_before_headers(
    agent: FakeAgent, served: Served, availability: Path, akri_dir: Path, case: str
) -> None:
    [runtime] = await served.start(DebugEcho())
    await agent.wait_registrations(1)
    stream = agent.discover(agent.registrations[0], BAD_DETAILS[case])
    await stream.wait_ended(timeout=5)
    assert stream.code == grpc.StatusCode.INVALID_ARGUMENT, (stream.code, stream.message)
    assert stream.message and stream.message.startswith("discoveryDetails"), stream.message
    assert stream.snapshots == []
    assert runtime.service.stats.details_rejected == 1
    # On the wire: one HEADERS frame with the status, before any response headers,
    # which is the only form the Agent reads as a failed call (spec §3.3).
    raw = await raw_discover(
        akri_dir / "debugEcho.sock", pb.DiscoverRequest(discovery_details=BAD_DETAILS[case])
    )
    assert raw.trailers_only, raw
    assert raw.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert raw.status_message == stream.message
    # Still serving afterwards.
    good = agent.discover(agent.registrations[0], ECHO_DETAILS)
    assert len(await good.next_snapshot()) == 2
    await good.cancel()


async def test_twenty_identical_streams_share_one_task(
    agent: FakeAgent, served: Served, availability: Path
) -> None:
    [runtime] = await served.start(DebugEcho())
    await agent.wait_registrations(1)
    streams = [agent.discover(agent.registrations[0], ECHO_DETAILS) for _ in range(20)]
    other = agent.discover(agent.registrations[0], "descriptions: [bar]")
    for stream in streams:
        assert {d.id for d in await stream.next_snapshot()} == {"foo0", "foo1"}
    assert [d.id for d in await other.next_snapshot()] == ["bar"]
    assert len(runtime.service.tasks) == 2
    assert len(runtime.service.streams) == 21
    availability.write_text("OFFLINE")
    for stream in [*streams, other]:
        assert await stream.next_snapshot() == ()
    for stream in streams:
        await stream.cancel()
    await eventually(lambda: len(runtime.service.tasks) == 1, what="shared task to stop")
    await other.cancel()
    await eventually(lambda: not runtime.service.tasks and not runtime.service.streams)


async def test_agent_absent_at_start(akri_dir: Path, served: Served, availability: Path) -> None:
    [runtime] = await served.start(DebugEcho())
    assert runtime.registrar is not None
    await asyncio.sleep(0.2)  # several polls with no Agent: nothing to register with yet
    assert runtime.registrar.registrations == 0
    async with FakeAgent(akri_dir) as agent:
        await agent.wait_registrations(1)
        await eventually(lambda: runtime.registrar.registrations == 1)


async def test_agent_restart_without_streams_reregisters_once(
    agent: FakeAgent, served: Served, availability: Path
) -> None:
    [runtime] = await served.start(DebugEcho())
    registrar = runtime.registrar
    assert registrar is not None
    await eventually(lambda: registrar.registered, what="first registration")
    before = socket_identity(agent.socket_path)
    await agent.restart()
    assert socket_identity(agent.socket_path) != before
    # No stream was open (akri#558): only the socket watch can notice the restart.
    await agent.wait_registrations(1)
    await eventually(lambda: registrar.registrations == 2 and registrar.registered)
    # Never on a timer: 20 more polls change nothing.
    await asyncio.sleep(20 * 0.05)
    assert len(agent.registrations) == 1
    assert registrar.registrations == 2


async def test_agent_restart_with_open_streams(
    agent: FakeAgent, served: Served, availability: Path
) -> None:
    [runtime] = await served.start(DebugEcho())
    await agent.wait_registrations(1)
    agent.add_configuration("cfg", "debugEcho", ECHO_DETAILS)
    await agent.until(lambda a: len(a.instances("cfg")) == 2)
    [old_stream] = agent.streams("cfg")
    [old_server_stream] = runtime.service.streams
    await agent.restart()
    assert old_stream.ended
    await eventually(
        lambda: old_server_stream not in runtime.service.streams, what="old stream to close"
    )
    await agent.wait_registrations(1)
    # The Configuration outlives the Agent; the new registration reopens its stream.
    await agent.until(lambda a: len(a.instances("cfg")) == 2)
    await asyncio.sleep(10 * 0.05)
    assert len(agent.registrations) == 1
    assert len(runtime.service.streams) == 1


async def test_stream_cancellation_frees_task_without_reregistering(
    agent: FakeAgent, served: Served, availability: Path
) -> None:
    [runtime] = await served.start(DebugEcho())
    await agent.wait_registrations(1)
    agent.add_configuration("cfg", "debugEcho", ECHO_DETAILS)
    await agent.until(lambda a: len(a.instances("cfg")) == 2)
    await agent.remove_configuration("cfg")
    await eventually(lambda: not runtime.service.streams and not runtime.service.tasks)
    await asyncio.sleep(5 * 0.05)
    assert len(agent.registrations) == 1  # a Configuration deletion is not an Agent restart


class Counter(DiscoveryHandler):
    """A polled handler whose devices a test scripts."""

    name = "counter"
    scan_interval = 0.02
    grace_period = 0.3
    retry_initial = 0.02
    retry_max = 0.05

    def __init__(self) -> None:
        self.devices: list[Device] = [Device("a")]
        self.fail = False
        self.scans = 0

    async def scan(self, ctx: DiscoveryContext[Any]) -> Iterable[Device]:
        self.scans += 1
        if self.fail:
            raise ConnectionError("broker unreachable")
        return list(self.devices)


async def test_scan_sends_only_changes_and_survives_failures(
    agent: FakeAgent, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Counter()
    await served.start(handler)
    await agent.wait_registrations(1)
    stream = agent.discover(agent.registrations[0], "")
    assert [d.id for d in await stream.next_snapshot()] == ["a"]
    await eventually(lambda: handler.scans > 5)
    assert len(stream.snapshots) == 1  # unchanged scans send nothing
    handler.devices = [Device("b"), Device("a")]
    assert [d.id for d in await stream.next_snapshot()] == ["a", "b"]
    handler.fail = True
    scans = handler.scans
    await eventually(lambda: handler.scans > scans + 3)
    assert [d.id for d in stream.latest or ()] == ["a", "b"]  # kept during the grace period
    assert await stream.next_snapshot(timeout=3) == ()  # dropped after it
    handler.fail = False
    assert [d.id for d in await stream.next_snapshot()] == ["a", "b"]
    assert not stream.ended
    assert caplog.text.count("ConnectionError: broker unreachable") == 1  # once, not per retry


class Events(DiscoveryHandler):
    """An event-driven handler fed from a queue by the test."""

    name = "events"
    retry_initial = 0.01
    retry_max = 0.02

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[Device] | Exception] = asyncio.Queue()

    async def watch(self, ctx: DiscoveryContext[Any]) -> AsyncIterator[list[Device]]:
        while True:
            item = await self.queue.get()
            if isinstance(item, Exception):
                raise item
            yield item


async def test_watch_sends_changes_and_restarts_after_errors(
    agent: FakeAgent, served: Served
) -> None:
    handler = Events()
    await served.start(handler)
    await agent.wait_registrations(1)
    stream = agent.discover(agent.registrations[0], "")
    # Headers at once, before the handler has found anything (spec §3.3).
    await stream.until(lambda s: s.headers_at is not None)
    assert stream.snapshots == []
    handler.queue.put_nowait([Device("x")])
    assert [d.id for d in await stream.next_snapshot()] == ["x"]
    handler.queue.put_nowait([Device("x")])  # unchanged: not sent
    handler.queue.put_nowait(RuntimeError("lost connection"))
    handler.queue.put_nowait([Device("x"), Device("y")])
    assert [d.id for d in await stream.next_snapshot()] == ["x", "y"]
    assert len(stream.snapshots) == 2
    assert not stream.ended


class Strict(DiscoveryHandler):
    name = "strict"

    class Details(msgspec.Struct, rename="camel"):
        broker_uri: str

    details = Details

    def validate(self, ctx: DiscoveryContext[Any]) -> None:
        if not ctx.details.broker_uri.startswith("mqtt://"):
            uri = ctx.details.broker_uri
            raise DetailsError(f"discoveryDetails: brokerUri must start with mqtt://, got {uri!r}")
        if ctx.properties.get("token") is None:
            raise DetailsError("discoveryProperties: `token` is required")

    async def scan(self, ctx: DiscoveryContext[Any]) -> Iterable[Device]:
        return [Device(ctx.details.broker_uri)]


async def test_validate_hook_and_secrets_never_logged(
    agent: FakeAgent, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-Value-9f8e7d"
    await served.start(Strict())
    await agent.wait_registrations(1)
    endpoint = agent.registrations[0]
    bad = agent.discover(endpoint, "brokerUri: http://x", {"token": secret.encode()})
    await bad.wait_ended()
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "must start with mqtt://" in (bad.message or "")
    missing = agent.discover(endpoint, "brokerUri: mqtt://x", {})
    await missing.wait_ended()
    assert missing.code == grpc.StatusCode.INVALID_ARGUMENT
    good = agent.discover(
        endpoint, "brokerUri: mqtt://x", {"token": secret.encode(), "empty": None}
    )
    assert [d.id for d in await good.next_snapshot()] == ["mqtt://x"]
    await good.cancel()
    assert secret not in caplog.text
    assert "brokerUri" in caplog.text or "refused" in caplog.text


async def test_network_mode_ipv4_and_ipv6(
    agent: FakeAgent, served: Served, availability: Path
) -> None:
    runtimes = await served.start(DebugEcho(), Counter(), pod_ip="127.0.0.1", port=0)
    await agent.wait_registrations(2)
    by_name = {r.name: r for r in agent.registrations}
    for runtime in runtimes:
        registration = by_name[runtime.handler.name]
        assert registration.endpoint_type == 1
        assert registration.endpoint == f"http://127.0.0.1:{runtime.port}"
    stream = agent.discover(by_name["debugEcho"], ECHO_DETAILS)
    assert len(await stream.next_snapshot()) == 2
    await stream.cancel()


async def test_network_mode_ipv6_is_bracketed(
    agent: FakeAgent, served: Served, availability: Path
) -> None:
    [runtime] = await served.start(DebugEcho(), pod_ip="::1", port=0)
    await agent.wait_registrations(1)
    assert agent.registrations[0].endpoint == f"http://[::1]:{runtime.port}"
    stream = agent.discover(agent.registrations[0], ECHO_DETAILS)
    assert len(await stream.next_snapshot()) == 2
    await stream.cancel()


async def test_several_handlers_in_one_process(
    agent: FakeAgent, served: Served, akri_dir: Path, availability: Path
) -> None:
    await served.start(DebugEcho(), Counter())
    await agent.wait_registrations(2)
    assert {(r.name, r.endpoint) for r in agent.registrations} == {
        ("debugEcho", str(akri_dir / "debugEcho.sock")),
        ("counter", str(akri_dir / "counter.sock")),
    }
    await served.stop()
    assert not (akri_dir / "debugEcho.sock").exists()
    assert not (akri_dir / "counter.sock").exists()


async def test_stale_socket_replaced_and_live_one_refused(
    akri_dir: Path, served: Served, availability: Path
) -> None:
    stale = akri_dir / "debugEcho.sock"
    import socket

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.listen()
    with pytest.raises(RuntimeError, match="another process is serving"):
        await served.start(DebugEcho())
    listener.close()  # now the file is stale: nobody listens
    assert stale.exists()
    await served.start(DebugEcho())
    assert socket_identity(stale) is not None


async def test_good_request_gets_headers_then_complete_snapshot_on_the_wire(
    agent: FakeAgent, served: Served, availability: Path, akri_dir: Path
) -> None:
    await served.start(DebugEcho())
    await agent.wait_registrations(1)
    raw = await raw_discover(
        akri_dir / "debugEcho.sock", pb.DiscoverRequest(discovery_details=ECHO_DETAILS)
    )
    assert not raw.ended
    [headers] = raw.header_blocks
    assert headers[":status"] == "200"
    assert "grpc-status" not in headers
    [message] = raw.messages
    response = pb.DiscoverResponse.FromString(message)
    assert sorted(d.id for d in response.devices) == ["foo0", "foo1"]


async def test_socket_path_too_long_is_a_clear_error(served: Served, akri_dir: Path) -> None:
    class LongName(DiscoveryHandler):
        name = "n" * 100

        async def scan(self, ctx: DiscoveryContext[Any]) -> Iterable[Device]:
            return []

    with pytest.raises(RuntimeError, match=r"unix sockets allow 107: use a shorter handler name"):
        await served.start(LongName())
