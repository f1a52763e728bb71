"""An in-process Akri Agent for tests, as strict as the real (>= 0.13) one.

Registration is served by a small HTTP/2 server on `h2` rather than grpcio,
because grpcio servers never show the `:authority` a client sent, and the real
Agent (tonic on hyper and h2) resets any stream whose `:authority` the Rust
`http` crate rejects: the failure grpcio >= 1.57 clients hit on `unix:` targets
(spec §2.7). Discover calls go out through grpcio the way the Agent makes them:
one connection per call, `:authority [::1]:50051` on UDS, every response a full
snapshot that replaces the previous one (spec §3.4), instance names hashed as
in spec §3.6, and one more stream per registration, duplicates included (§2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self, TypeAlias
from urllib.parse import urlsplit

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.device import Device, instance_name
from akri_sdk.testing.authority import authority_error

__all__ = [
    "DiscoverStream",
    "FakeAgent",
    "InstanceInfo",
    "Properties",
    "Registration",
    "RejectedCall",
    "StreamEndedError",
    "TimedSnapshot",
    "discover_request",
]

log = logging.getLogger("akri_sdk.testing.fake_agent")

REGISTRATION_SOCKET_NAME = "agent-registration.sock"
REGISTER_PATH = "/v0.Registration/RegisterDiscoveryHandler"
DISCOVER_PATH = "/v0.DiscoveryHandler/Discover"
UDS, NETWORK = 0, 1
# How long a call must stay open after its initial metadata, with no message,
# before those are taken as response headers (see DiscoverStream.headers_at).
HEADERS_SETTLE = 0.1
# tonic's default max_decoding_message_size; larger requests get OUT_OF_RANGE.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_UNIX_PATH_BYTES = 107

Properties: TypeAlias = Mapping[str, bytes | None] | Callable[[], Mapping[str, bytes | None]]
"""A Configuration's discoveryProperties: resolved values (None: declared without a
value), or a function that resolves them, called for every Discover (spec §3.2)."""

_NO_PROPERTIES: Mapping[str, bytes | None] = MappingProxyType({})
_CONNECT_FAILED = "failed to connect"
_INTERNAL, _UNIMPLEMENTED, _OUT_OF_RANGE = 13, 12, 11  # gRPC status codes


@dataclass(frozen=True, slots=True)
class Registration:
    """One accepted RegisterDiscoveryHandler call, as the Agent keeps it in memory."""

    name: str
    endpoint: str
    endpoint_type: int
    shared: bool
    authority: str
    at: float

    @property
    def uid(self) -> str:
        """The key the Agent files the endpoint under (spec §2.2)."""
        return f"{self.name}@{self.endpoint}"


@dataclass(frozen=True, slots=True)
class RejectedCall:
    """A registration-socket call the Agent refused, and why (`reason`)."""

    authority: str | None
    at: float
    reason: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class TimedSnapshot:
    """One DiscoverResponse as the Agent received it: the complete device set."""

    at: float
    devices: tuple[Device, ...]


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """One Instance of a Configuration: its device and where it came from.

    `shared` is the `shared` flag of the registration whose stream reported the
    device; it decides the Instance name (spec §2.4, §3.6). `endpoint` is that
    registration's endpoint.
    """

    device: Device
    shared: bool
    endpoint: str


class StreamEndedError(RuntimeError):
    """The Discover stream ended while a test was waiting for another snapshot."""


class _Signal:
    """Wakes every waiter on each change; each waiter re-checks its own condition.

    `notify` is synchronous so gRPC and h2 callbacks can call it without a lock.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(
        self,
        ready: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109 - the TimeoutError must describe the state
        describe: Callable[[], str],
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not ready():
                    await self._event.wait()
        except TimeoutError:
            raise TimeoutError(f"not reached within {timeout:g}s; {describe()}") from None


def discover_request(details: str, properties: Mapping[str, bytes | None]) -> pb.DiscoverRequest:
    """Build the request; a None value is a property declared without a value (spec §3.2)."""
    return pb.DiscoverRequest(
        discovery_details=details,
        discovery_properties={
            key: pb.ByteData() if value is None else pb.ByteData(vec=value)
            for key, value in properties.items()
        },
    )


def _requests(details: str, properties: Properties) -> Callable[[], pb.DiscoverRequest]:
    """What a Configuration sends in each Discover call: a mapping is resolved once, now."""
    if callable(properties):
        resolve = properties
        return lambda: discover_request(details, resolve())
    request = discover_request(details, properties)
    return lambda: request


def _channel_target(endpoint: str, endpoint_type: int, authority: str) -> tuple[str, list[Any]]:
    """The grpcio target and options for an endpoint, matching the Agent's client (§2.3, §2.7).

    The Agent connects anew for every Discover call; grpcio would share one
    connection between channels unless each has its own subchannel pool.
    """
    options: list[Any] = [("grpc.use_local_subchannel_pool", 1)]
    if endpoint_type == UDS:
        return f"unix:{endpoint}", [*options, ("grpc.default_authority", authority)]
    url = urlsplit(endpoint)
    if url.scheme != "http" or not url.netloc:
        # tonic's DiscoveryHandlerClient::connect needs an http:// URI (no TLS in the Agent).
        raise ValueError(f"network endpoint {endpoint!r} is not an http://host:port URL")
    return url.netloc, options


class DiscoverStream:
    """One Discover call, read until it ends, with every snapshot and when it came.

    Create through `FakeAgent.discover` or `FakeAgent.add_configuration`.

    `headers_at` is when the handler's response headers arrived, or None while
    none are known to have come; the Agent reads a call that fails before
    them (a trailers-only reply) as refused, and one that fails after them as
    a stream that ended (spec §3.3, §3.5). grpcio cannot tell the two apart:
    it resolves `initial_metadata()` (empty) for a trailers-only reply too,
    sometimes milliseconds before the status, so `call.done()` at that moment
    decides nothing. The metadata's arrival time is therefore taken as
    `headers_at` only once it is proven to have been headers: when the first
    DiscoverResponse arrives (headers always precede messages), or when the
    call is still open `HEADERS_SETTLE` seconds later. A call that ends before
    either, without a message, keeps `headers_at` None: it is reported as
    refused even if the handler did send headers and then failed within that
    time, and a stream cancelled by the fake Agent within that time without a
    message keeps None too. Headers are thus published up to `HEADERS_SETTLE`
    late on a stream that sends no message, but `headers_at` keeps the time
    they arrived.
    """

    def __init__(
        self,
        endpoint: str,
        endpoint_type: int,
        request: pb.DiscoverRequest,
        *,
        authority: str,
        registration: Registration | None = None,
        configuration: str | None = None,
        on_change: Callable[[DiscoverStream], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.endpoint_type = endpoint_type
        self.request = request
        self.registration = registration
        self.configuration = configuration
        self.opened_at = time.monotonic()
        self.headers_at: float | None = None
        self.initial_metadata: tuple[tuple[str, str | bytes], ...] | None = None
        self.connect_failed = False
        self.snapshots: list[TimedSnapshot] = []
        self.code: grpc.StatusCode | None = None
        self.message: str | None = None
        self.ended = False
        self.ended_at: float | None = None
        self._consumed = 0
        self._signal = _Signal()
        self._on_change = on_change
        self._call: Any = None
        # (arrival time, metadata) of initial metadata not yet proven to be headers.
        self._unproven: tuple[float, tuple[tuple[str, str | bytes], ...]] | None = None
        self._settle: asyncio.TimerHandle | None = None
        self._task = asyncio.create_task(
            self._run(authority), name=f"fake-agent discover {endpoint}"
        )
        # A task cancelled before it first ran never reaches _run's handlers.
        self._task.add_done_callback(
            lambda _: self._finish(grpc.StatusCode.CANCELLED, "cancelled by the fake Agent")
        )

    def __repr__(self) -> str:
        state = f"ended {self.code}" if self.ended else "open"
        return (
            f"<DiscoverStream {self.endpoint} config={self.configuration!r} {state} "
            f"snapshots={len(self.snapshots)} latest={self.latest!r}>"
        )

    @property
    def latest(self) -> tuple[Device, ...] | None:
        """The devices in the last snapshot, or None before the first one."""
        return self.snapshots[-1].devices if self.snapshots else None

    def _changed(self) -> None:
        self._signal.notify()
        if self._on_change is not None:
            self._on_change(self)

    def _stop_settling(self) -> None:
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None

    def _prove_headers(self) -> bool:
        """Take the initial metadata as response headers; whether that changed anything."""
        self._stop_settling()
        if self._unproven is None:
            return False
        self.headers_at, self.initial_metadata = self._unproven
        self._unproven = None
        return True

    def _settled(self, call: Any) -> None:
        """HEADERS_SETTLE after the initial metadata: still open, so they were headers."""
        self._settle = None
        if not self.ended and not call.done() and self._prove_headers():
            self._changed()

    def _finish(self, code: grpc.StatusCode, message: str | None) -> None:
        if self.ended:
            return
        self._stop_settling()
        self._unproven = None  # ended without proof: no headers (see the class docstring)
        self.code, self.message = code, message
        self.ended, self.ended_at = True, time.monotonic()
        # grpcio cannot say "connect failed" other than in its message; the
        # Agent drops an endpoint it cannot connect to (spec §3.3).
        self.connect_failed = (
            code == grpc.StatusCode.UNAVAILABLE
            and self.headers_at is None
            and (message or "").startswith(_CONNECT_FAILED)
        )
        self._changed()

    async def _run(self, authority: str) -> None:
        try:
            target, options = _channel_target(self.endpoint, self.endpoint_type, authority)
        except ValueError as error:
            self._finish(grpc.StatusCode.UNAVAILABLE, f"{_CONNECT_FAILED}: {error}")
            return
        channel = grpc.aio.insecure_channel(target, options=options)
        try:
            call = channel.unary_stream(
                DISCOVER_PATH,
                request_serializer=pb.DiscoverRequest.SerializeToString,
                response_deserializer=pb.DiscoverResponse.FromString,
            )(self.request)
            self._call = call
            metadata = await call.initial_metadata()
            # grpcio also resolves initial_metadata() (empty) for a call that
            # failed without response headers (a trailers-only reply, a failed
            # connect), not always after the status: headers only once proven.
            self._unproven = (time.monotonic(), tuple(metadata) if metadata is not None else ())
            if not call.done():
                self._settle = asyncio.get_running_loop().call_later(
                    HEADERS_SETTLE, self._settled, call
                )
            async for response in call:
                self._prove_headers()  # a message comes only after headers
                devices = tuple(Device.from_proto(d) for d in response.devices)
                self.snapshots.append(TimedSnapshot(time.monotonic(), devices))
                self._changed()
            self._finish(await call.code(), await call.details())
        except grpc.aio.AioRpcError as error:
            self._finish(error.code(), error.details())
        except asyncio.CancelledError:
            self._finish(grpc.StatusCode.CANCELLED, "cancelled by the fake Agent")
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        except Exception as error:  # a bad message must not kill the test's event loop
            log.debug("Discover stream to %s failed", self.endpoint, exc_info=True)
            self._finish(grpc.StatusCode.INTERNAL, f"fake Agent: {error!r}")
        finally:
            await channel.close(grace=None)

    def _drop(self) -> None:
        if not self._task.done():
            if self._call is not None:
                self._call.cancel()
            self._task.cancel()

    async def cancel(self) -> None:
        """Drop the call as the Agent does when its Configuration goes (spec §3.5)."""
        self._drop()
        await asyncio.wait([self._task])

    async def until(
        self,
        predicate: Callable[[DiscoverStream], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - see _Signal.wait_until
    ) -> None:
        """Wait until `predicate(self)` holds; TimeoutError says where the stream stands."""
        await self._signal.wait_until(lambda: predicate(self), timeout, lambda: repr(self))

    async def next_snapshot(self, timeout: float = 5.0) -> tuple[Device, ...]:  # noqa: ASYNC109
        """The oldest snapshot this method has not returned yet."""
        await self.until(lambda s: len(s.snapshots) > s._consumed or s.ended, timeout)
        if len(self.snapshots) <= self._consumed:
            raise StreamEndedError(
                f"Discover stream to {self.endpoint} ended with {self.code}: {self.message!r} "
                f"after {len(self.snapshots)} snapshot(s)"
            )
        self._consumed += 1
        return self.snapshots[self._consumed - 1].devices

    async def wait_ended(self, timeout: float = 5.0) -> grpc.StatusCode:  # noqa: ASYNC109
        """Wait for the stream to end and return its status code."""
        await self.until(lambda s: s.ended, timeout)
        assert self.code is not None
        return self.code


@dataclass(slots=True)
class _Configuration:
    name: str
    handler: str
    # The DiscoverRequest for one more Discover call (spec §3.2).
    request: Callable[[], pb.DiscoverRequest]
    streams: list[DiscoverStream] = field(default_factory=list)
    # remove_configuration is cancelling its streams; it is gone when they ended.
    removing: bool = False


@dataclass(slots=True)
class _PendingCall:
    path: str
    authority: str
    body: bytearray = field(default_factory=bytearray)


class _CallError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _grpc_message(text: str) -> bytes:
    """Percent-encode a grpc-message value as the gRPC HTTP/2 spec asks."""
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in text.encode()
    ).encode("ascii")


def _decode_unary(body: bytes) -> pb.RegisterDiscoveryHandlerRequest:
    """Unframe one length-prefixed gRPC message, refusing what tonic refuses."""
    if len(body) < 5:
        raise _CallError(_INTERNAL, "Missing request message.")
    if body[0] != 0:
        raise _CallError(
            _INTERNAL,
            "protocol error: received message with compressed-flag but no grpc-encoding "
            "was specified",
        )
    length = int.from_bytes(body[1:5], "big")
    if length > MAX_MESSAGE_BYTES:
        raise _CallError(
            _OUT_OF_RANGE,
            f"Error, decoded message length too large: found {length} bytes, "
            f"the limit is: {MAX_MESSAGE_BYTES} bytes",
        )
    if len(body) != 5 + length:
        raise _CallError(_INTERNAL, f"expected one message of {length} bytes, got {len(body) - 5}")
    try:
        return pb.RegisterDiscoveryHandlerRequest.FromString(body[5:])
    except Exception as error:  # protobuf raises DecodeError, a plain Exception subclass
        raise _CallError(_INTERNAL, f"failed to decode Protobuf message: {error}") from None


class FakeAgent:
    """The Agent side of the Discovery Handler protocol, in this process.

    Registrations live in memory only, so `restart()` forgets them and binds a
    new socket, as a restarted Agent pod does (spec §2.2, §2.6). Configurations
    stand for cluster objects and survive restarts; their streams do not.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        node_name: str = "fake-node",
        authority: str = "[::1]:50051",
    ) -> None:
        self.directory = Path(directory)
        self.node_name = node_name
        self.authority = authority
        self.socket_path = self.directory / REGISTRATION_SOCKET_NAME
        if len(os.fsencode(self.socket_path)) > MAX_UNIX_PATH_BYTES:
            raise ValueError(
                f"{self.socket_path} is longer than {MAX_UNIX_PATH_BYTES} bytes, "
                "too long for a Unix socket; use a shorter directory"
            )
        self.registrations: list[Registration] = []
        self.rejected: list[RejectedCall] = []
        # The Agent's registry: handler name -> uid -> latest live registration.
        self._registry: dict[str, dict[str, Registration]] = {}
        self._configurations: dict[str, _Configuration] = {}
        self._streams: list[DiscoverStream] = []
        self._server: asyncio.Server | None = None
        self._socket_identity: tuple[int, int] | None = None
        self._previous_identity: tuple[int, int] | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._signal = _Signal()

    # ---- lifecycle -------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Delete whatever is at the socket path, bind, serve (spec §2.2)."""
        if self._server is not None:
            raise RuntimeError("FakeAgent is already running")
        self.registrations = []
        self._registry = {}
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve_connection, path=os.fspath(self.socket_path)
        )
        self._socket_identity = await self._new_identity()
        log.debug("fake Agent listening on %s", self.socket_path)
        self._signal.notify()

    async def _new_identity(self) -> tuple[int, int]:
        """The socket's (inode, ctime), made to differ from the previous socket's.

        The inode number is usually reused at once; a real Agent restart takes
        seconds, so its ctime differs, but ours can land in the same clock tick.
        Touch the socket until the ctime moves so watchdogs see every restart.
        """
        while True:
            info = self.socket_path.stat()
            identity = (info.st_ino, info.st_ctime_ns)
            if identity != self._previous_identity:
                self._previous_identity = identity
                return identity
            await asyncio.sleep(0.001)  # less than one clock tick
            os.utime(self.socket_path)

    async def stop(self) -> None:
        """Close the server, every connection and every Discover stream; remove the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        streams, self._streams = self._streams, []
        await asyncio.gather(*(stream.cancel() for stream in streams))
        for configuration in self._configurations.values():
            configuration.streams.clear()
        if self._socket_identity is not None:
            with contextlib.suppress(FileNotFoundError):
                info = self.socket_path.stat()
                if (info.st_ino, info.st_ctime_ns) == self._socket_identity:
                    self.socket_path.unlink()
            self._socket_identity = None
        self._signal.notify()

    async def restart(self) -> None:
        """Stop and start again: a new socket, and no registrations remembered."""
        await self.stop()
        await self.start()

    # ---- Discover ----------------------------------------------------------

    def discover(
        self,
        endpoint: str | Registration,
        details: str = "",
        properties: Mapping[str, bytes | None] = _NO_PROPERTIES,
    ) -> DiscoverStream:
        """Call Discover on an endpoint now, outside any Configuration.

        A string containing `://` is a NETWORK endpoint, anything else a socket path.
        """
        request = discover_request(details, properties)
        if isinstance(endpoint, Registration):
            return self._open(endpoint.endpoint, endpoint.endpoint_type, request, endpoint, None)
        endpoint_type = NETWORK if "://" in endpoint else UDS
        return self._open(endpoint, endpoint_type, request, None, None)

    def _open(
        self,
        endpoint: str,
        endpoint_type: int,
        request: pb.DiscoverRequest,
        registration: Registration | None,
        configuration: str | None,
    ) -> DiscoverStream:
        stream = DiscoverStream(
            endpoint,
            endpoint_type,
            request,
            authority=self.authority,
            registration=registration,
            configuration=configuration,
            on_change=self._stream_changed,
        )
        self._streams.append(stream)
        return stream

    # ---- Configurations ----------------------------------------------------

    def add_configuration(
        self,
        name: str,
        handler: str,
        details: str = "",
        properties: Properties = _NO_PROPERTIES,
    ) -> list[DiscoverStream]:
        """Start discovery for a Configuration: one stream per matching registration.

        Registrations that arrive later open more streams (spec §3.1). Returns
        the streams opened now. `properties` is either a mapping, copied now
        and sent in every Discover call for this Configuration, or a function
        called without arguments for every such call (now, once per matching
        registration, and on every later registration), as the Agent resolves
        discoveryProperties each time (spec §3.2). If it raises now, the
        Configuration is not added and the error propagates (the Agent fails
        the request); if it raises for a later registration, that one gets no
        stream (the Agent ignores failures to add an endpoint).
        """
        existing = self._configurations.get(name)
        if existing is not None and existing.removing:
            raise ValueError(f"Configuration {name!r} is being removed; await its removal first")
        if existing is not None:
            raise ValueError(f"Configuration {name!r} exists; the Agent keys requests by name")
        configuration = _Configuration(name, handler, _requests(details, properties))
        # Resolve every request first: a failure adds nothing.
        requests = [(r, configuration.request()) for r in self.endpoints(handler)]
        self._configurations[name] = configuration
        opened = [self._open_for(configuration, r, request) for r, request in requests]
        self._signal.notify()
        return opened

    def _open_for(
        self,
        configuration: _Configuration,
        registration: Registration,
        request: pb.DiscoverRequest,
    ) -> DiscoverStream:
        stream = self._open(
            registration.endpoint,
            registration.endpoint_type,
            request,
            registration,
            configuration.name,
        )
        configuration.streams.append(stream)
        return stream

    async def remove_configuration(self, name: str) -> None:
        """Delete a Configuration: its streams are dropped (the handler sees CANCELLED).

        Atomic for observers: from the call on, the Configuration has no
        Instances (the Agent deletes them with it), every stream of it is
        being cancelled and no registration opens another; yet it stays
        listed while its streams end, so `streams(name)` and `instances(name)`
        (empty) answer and `add_configuration(name, ...)` refuses the name.
        When every stream has ended it is gone at once, and those calls raise
        KeyError. KeyError if there is no such Configuration; a second call
        during the removal waits for the same end.
        """
        configuration = self._configuration(name)
        configuration.removing = True
        for stream in configuration.streams:
            stream._drop()
        self._signal.notify()
        await asyncio.gather(*(stream.cancel() for stream in configuration.streams))
        if self._configurations.get(name) is configuration:
            del self._configurations[name]
            self._streams = [s for s in self._streams if s.configuration != name]
            self._signal.notify()

    def endpoints(self, handler: str) -> list[Registration]:
        """The registrations a Configuration added now would call: one per endpoint uid,
        the latest, minus those the Agent failed to connect to (spec §2.2, §3.3)."""
        return list(self._registry.get(handler, {}).values())

    def streams(self, configuration: str) -> list[DiscoverStream]:
        """Every stream opened for a Configuration since it was added (or the last stop)."""
        return list(self._configuration(configuration).streams)

    def instances(self, configuration: str) -> dict[str, Device]:
        """Instance name -> device, from the latest snapshot of each live stream (spec §3.4).

        Streams that ended contribute nothing; the first device with a name wins.
        `instance_details` says more about each Instance.
        """
        return {name: info.device for name, info in self.instance_details(configuration).items()}

    def instance_details(self, configuration: str) -> dict[str, InstanceInfo]:
        """Instance name -> device, shared flag and endpoint; the same Instances as `instances`."""
        entry = self._configuration(configuration)
        found: dict[str, InstanceInfo] = {}
        if entry.removing:
            return found
        for stream in entry.streams:
            if stream.ended or not stream.snapshots:
                continue
            shared = stream.registration.shared if stream.registration is not None else False
            for device in stream.snapshots[-1].devices:
                key = instance_name(configuration, device.id, self.node_name, shared)
                if key not in found:
                    found[key] = InstanceInfo(device, shared, stream.endpoint)
        return found

    def _configuration(self, name: str) -> _Configuration:
        try:
            return self._configurations[name]
        except KeyError:
            raise KeyError(
                f"no Configuration {name!r}; known: {sorted(self._configurations)}"
            ) from None

    # ---- waiting -----------------------------------------------------------

    async def until(
        self,
        predicate: Callable[[FakeAgent], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - see _Signal.wait_until
    ) -> None:
        """Wait until `predicate(self)` holds, re-checked on every registration,
        snapshot and stream end; TimeoutError describes the Agent's state."""
        await self._signal.wait_until(lambda: predicate(self), timeout, self.describe)

    async def wait_registrations(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - see _Signal.wait_until
    ) -> list[Registration]:
        """Wait until at least `count` registrations were accepted since start."""
        await self.until(lambda agent: len(agent.registrations) >= count, timeout)
        return list(self.registrations)

    def describe(self) -> str:
        """The Agent's state in a few lines, for failure messages."""
        lines = [f"registrations={[r.uid for r in self.registrations]}"]
        if self.rejected:
            lines.append(f"rejected={[(r.authority, r.reason) for r in self.rejected]}")
        for name, configuration in self._configurations.items():
            states = [
                f"{'ended ' + str(s.code) if s.ended else 'open'}/{len(s.snapshots)} snapshots"
                for s in configuration.streams
            ]
            removing = " removing" if configuration.removing else ""
            lines.append(
                f"configuration {name!r} (handler {configuration.handler!r}){removing}: "
                f"streams={states} instances={sorted(self.instances(name))}"
            )
        return "\n".join(lines)

    # ---- registration server -----------------------------------------------

    def _reject(self, authority: str | None, path: str, reason: str) -> None:
        log.debug("fake Agent rejected %s (authority %r): %s", path, authority, reason)
        self.rejected.append(RejectedCall(authority, time.monotonic(), reason, path))
        self._signal.notify()

    def _register(self, request: pb.RegisterDiscoveryHandlerRequest, authority: str) -> None:
        registration = Registration(
            name=request.name,
            endpoint=request.endpoint,
            endpoint_type=int(request.endpoint_type),
            shared=request.shared,
            authority=authority,
            at=time.monotonic(),
        )
        self.registrations.append(registration)
        log.debug("fake Agent accepted registration %s", registration)
        # Live requests each open one more stream, duplicates included; the
        # registry keeps one endpoint per uid for requests made later (§2.2).
        for configuration in self._configurations.values():
            if configuration.handler != registration.name or configuration.removing:
                continue
            try:
                discover = configuration.request()
            except Exception:
                log.warning(
                    "fake Agent could not resolve the properties of Configuration %r for %s; "
                    "no stream for it",
                    configuration.name,
                    registration.uid,
                    exc_info=True,
                )
                continue
            self._open_for(configuration, registration, discover)
        self._registry.setdefault(registration.name, {})[registration.uid] = registration
        self._signal.notify()

    def _stream_changed(self, stream: DiscoverStream) -> None:
        registration = stream.registration
        if stream.connect_failed and registration is not None:
            # The endpoint is stopped: out of the registry, and every stream it
            # still has is dropped with it (NetworkEndpoint's shared Stopper).
            log.debug("fake Agent cannot connect to %s; dropping it", registration.uid)
            handlers = self._registry.get(registration.name, {})
            if handlers.get(registration.uid) is registration:
                del handlers[registration.uid]
            for other in self._streams:
                if other.registration is registration and other is not stream:
                    other._drop()
        self._signal.notify()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.set_name("fake-agent registration connection")
        self._connections.add(task)
        connection = _RegistrationConnection(self)
        try:
            writer.write(connection.start())
            while not connection.closed:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(connection.receive(data))
                await writer.drain()
        except asyncio.CancelledError:
            # Only stop() cancels this task. It belongs to asyncio's stream
            # protocol, whose done-callback would report a cancelled task as
            # an error, so end quietly instead of re-raising.
            pass
        except OSError as error:
            log.debug("registration connection dropped: %r", error)
        except Exception:  # a fake Agent bug; keep serving other connections
            log.warning("registration connection failed", exc_info=True)
        finally:
            self._connections.discard(task)
            writer.close()


class _RegistrationConnection:
    """The HTTP/2 side of one registration connection: events in, bytes out."""

    def __init__(self, agent: FakeAgent) -> None:
        self._agent = agent
        self._h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self._pending: dict[int, _PendingCall] = {}
        self.closed = False

    def start(self) -> bytes:
        self._h2.initiate_connection()
        return bytes(self._h2.data_to_send())

    def receive(self, data: bytes) -> bytes:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            # h2 has queued a GOAWAY; send it and hang up.
            log.debug("registration connection protocol error: %r", error)
            self.closed = True
            return bytes(self._h2.data_to_send())
        for event in events:
            try:
                self._handle(event)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as error:
                log.debug("registration stream went away while answering: %r", error)
        return bytes(self._h2.data_to_send())

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event.stream_id, event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            pending = self._pending.get(event.stream_id)
            if pending is not None:
                pending.body += event.data
                if len(pending.body) > MAX_MESSAGE_BYTES + 5:
                    del self._pending[event.stream_id]
                    self._fail(event.stream_id, pending, _OUT_OF_RANGE, "message too large")
        elif isinstance(event, h2.events.StreamEnded):
            pending = self._pending.pop(event.stream_id, None)
            if pending is not None:
                self._complete(event.stream_id, pending)
        elif isinstance(event, h2.events.StreamReset):
            self._pending.pop(event.stream_id, None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True

    def _request(self, stream_id: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        fields = dict(headers)
        path = fields.get(b":path", b"").decode("latin-1")
        raw_authority = fields.get(b":authority")
        # latin-1 keeps one character per byte, so non-ASCII bytes stay invalid.
        authority = raw_authority.decode("latin-1") if raw_authority is not None else None
        if authority is not None:
            error = authority_error(authority)
            if error is not None:
                # h2 (Rust) answers a malformed request with RST_STREAM PROTOCOL_ERROR.
                self._h2.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
                self._agent._reject(authority, path, f"malformed :authority ({error})")
                return
        # Rust h2 accepts a request without :authority; python-h2 already
        # insisted on :authority or Host, so "" means it came as Host only.
        host = fields.get(b"host", b"").decode("latin-1")
        # The call is answered on StreamEnded, which h2 reports even when the
        # HEADERS frame itself ended the stream.
        self._pending[stream_id] = _PendingCall(path, authority or host)

    def _complete(self, stream_id: int, pending: _PendingCall) -> None:
        if pending.path != REGISTER_PATH:
            self._fail(stream_id, pending, _UNIMPLEMENTED, "")
            return
        try:
            request = _decode_unary(bytes(pending.body))
        except _CallError as error:
            self._fail(stream_id, pending, error.code, error.message)
            return
        if request.endpoint_type not in (UDS, NETWORK):
            # The Agent's EndpointType::try_from(..).unwrap() panics the call's
            # task; hyper drops the stream, and h2 resets it with CANCEL.
            self._h2.reset_stream(stream_id, ErrorCodes.CANCEL)
            self._agent._reject(
                pending.authority,
                pending.path,
                f"endpoint_type {request.endpoint_type} is neither UDS (0) nor NETWORK (1)",
            )
            return
        self._h2.send_headers(
            stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")]
        )
        self._h2.send_data(stream_id, b"\x00\x00\x00\x00\x00")  # v0.Empty, uncompressed
        self._h2.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)
        self._agent._register(request, pending.authority)

    def _fail(self, stream_id: int, pending: _PendingCall, code: int, message: str) -> None:
        """Answer trailers-only with a gRPC status, as tonic does for errors."""
        headers = [
            (b":status", b"200"),
            (b"content-type", b"application/grpc"),
            (b"grpc-status", str(code).encode()),
        ]
        if message:
            headers.append((b"grpc-message", _grpc_message(message)))
        self._h2.send_headers(stream_id, headers, end_stream=True)
        self._agent._reject(pending.authority, pending.path, f"grpc-status {code}: {message}")
