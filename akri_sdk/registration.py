"""Registering with the Agent, and registering again when the Agent restarts.

The Agent keeps registrations in memory only and recreates its registration
socket at every start (spec §2.2, §2.6). We therefore register once per socket
identity: wait for the socket, register, then watch the socket until its
identity changes. Never on a timer: the current Agent opens one more Discover
stream per registration (§2.2). The identity is (device, inode, ctime) because a
recreated socket often gets the same inode number back.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from akri_sdk._proto import discovery_pb2 as pb

__all__ = [
    "AGENT_REGISTRATION_SOCKET",
    "EndpointType",
    "Registrar",
    "SocketIdentity",
    "socket_identity",
]

log = logging.getLogger("akri_sdk.registration")

AGENT_REGISTRATION_SOCKET = "agent-registration.sock"
REGISTER_METHOD = "/v0.Registration/RegisterDiscoveryHandler"

# grpcio >= 1.57 otherwise sends the percent-encoded socket path as :authority,
# which the Rust Agent (hyper/h2 + the http crate) rejects (spec §2.7).
REGISTRATION_CHANNEL_OPTIONS = (
    ("grpc.default_authority", "localhost"),
    ("grpc.enable_retries", 0),
    # grpcio shares subchannels between channels to the same target; after an
    # Agent restart a shared one is a dead connection ("Broken pipe").
    ("grpc.use_local_subchannel_pool", 1),
)


class EndpointType(enum.IntEnum):
    UDS = pb.RegisterDiscoveryHandlerRequest.UDS
    NETWORK = pb.RegisterDiscoveryHandlerRequest.NETWORK


@dataclass(frozen=True, slots=True)
class SocketIdentity:
    device: int
    inode: int
    ctime_ns: int


def socket_identity(path: Path) -> SocketIdentity | None:
    """The identity of the socket at `path`, or None if there is no socket."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISSOCK(info.st_mode):
        return None
    return SocketIdentity(info.st_dev, info.st_ino, info.st_ctime_ns)


class Registrar:
    """Keeps one handler endpoint registered with the Agent of `directory`."""

    def __init__(
        self,
        directory: Path,
        *,
        name: str,
        endpoint: str,
        endpoint_type: EndpointType,
        shared: bool,
        poll_interval: float = 0.25,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
        call_timeout: float = 5.0,
    ) -> None:
        self.socket_path = Path(directory) / AGENT_REGISTRATION_SOCKET
        self.request = pb.RegisterDiscoveryHandlerRequest(
            name=name, endpoint=endpoint, endpoint_type=endpoint_type.value, shared=shared
        )
        self.poll_interval = poll_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.call_timeout = call_timeout
        self.registrations = 0
        self.registered_identity: SocketIdentity | None = None
        self.registered_at: float | None = None
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._registered = asyncio.Event()
        self._log = logging.LoggerAdapter(log, {"handler": name})

    @property
    def registered(self) -> bool:
        """Registered with the Agent whose socket is there now."""
        return (
            self.registered_identity is not None
            and socket_identity(self.socket_path) == self.registered_identity
        )

    def check_now(self) -> None:
        """Look at the socket at once (a stream closing may mean the Agent restarted)."""
        self._wake.set()

    async def wait_registered(self) -> None:
        await self._registered.wait()

    async def run(self) -> None:
        """Register, and re-register after every Agent restart, until cancelled."""
        failures = 0
        waiting_logged = False
        while True:
            identity = socket_identity(self.socket_path)
            if identity is None:
                if not waiting_logged:
                    self._log.info("waiting for the Agent at %s", self.socket_path)
                    waiting_logged = True
                await self._sleep(self.poll_interval)
                continue
            waiting_logged = False
            if identity == self.registered_identity:
                await self._sleep(self.poll_interval)
                continue
            if self.registered_identity is not None:
                self._log.info("the Agent's registration socket changed; registering again")
                self.registered_identity = None
                self._registered.clear()
            try:
                await self._register_once()
            except (TimeoutError, grpc.RpcError, OSError) as error:
                failures += 1
                self.last_error = _describe(error)
                delay = min(self.retry_max, self.retry_initial * 2 ** min(failures - 1, 20))
                self._log.warning(
                    "registration failed (attempt %d), retrying in %.1fs: %s",
                    failures,
                    delay,
                    self.last_error,
                )
                await asyncio.sleep(delay)
                continue
            # If the socket was replaced while we called, we talked to one of the
            # two Agents; register again with the new one to be sure.
            if socket_identity(self.socket_path) != identity:
                continue
            failures = 0
            self.last_error = None
            self.registered_identity = identity
            self.registered_at = time.monotonic()
            self.registrations += 1
            self._registered.set()
            self._log.info(
                "registered with the Agent as %r at %s (shared=%s)",
                self.request.name,
                self.request.endpoint,
                self.request.shared,
            )

    async def _register_once(self) -> None:
        async with grpc.aio.insecure_channel(
            f"unix:{self.socket_path}", options=REGISTRATION_CHANNEL_OPTIONS
        ) as channel:
            call = channel.unary_unary(
                REGISTER_METHOD,
                request_serializer=pb.RegisterDiscoveryHandlerRequest.SerializeToString,
                response_deserializer=pb.Empty.FromString,
            )
            await call(self.request, timeout=self.call_timeout)

    async def _sleep(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
        # that arrives as the inner wait finishes, and then stop() hangs.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}"
