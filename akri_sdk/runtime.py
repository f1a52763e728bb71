"""Process wiring: endpoints, servers, registration, signals.

Each handler gets its own gRPC server and endpoint (the Discover RPC carries no
handler name, so one endpoint serves one handler) and its own registration.
Serve first, then register (DESIGN rule 1). SIGTERM and SIGINT stop cleanly:
streams cancelled, sockets removed, exit status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from akri_sdk.handler import DiscoveryHandler
from akri_sdk.health import HealthService, readiness, socket_accepts
from akri_sdk.registration import EndpointType, Registrar
from akri_sdk.server import MAX_REQUEST_BYTES, DiscoverService

if TYPE_CHECKING:
    from akri_sdk.probes import ProbeServer

__all__ = ["HandlerRuntime", "RuntimeConfig", "run", "serve", "stop_on_signals"]

log = logging.getLogger("akri_sdk.runtime")

DEFAULT_DIRECTORY = "/var/lib/akri"
DEFAULT_PORT = 10000  # the port Akri's Rust helper uses in network mode
MAX_UNIX_PATH_BYTES = 107  # sun_path is 108 bytes on Linux, including the NUL


@dataclass(frozen=True)
class RuntimeConfig:
    """Where to serve and register, normally read from the environment."""

    directory: Path
    pod_ip: str | None = None
    port: int = DEFAULT_PORT
    poll_interval: float = 0.25
    stop_grace: float = 1.0
    # Close connections with no stream for this long: a client that abandons
    # connections (grpcio clients do) must not pile up descriptors in a sidecar.
    idle_connection_timeout: float = 30.0
    # The optional HTTP port for /livez, /readyz, /metrics and /status.
    health_port: int | None = None
    health_host: str = "0.0.0.0"
    metrics: bool = True

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> RuntimeConfig:
        env = os.environ if environ is None else environ
        directory = env.get("DISCOVERY_HANDLERS_DIRECTORY") or DEFAULT_DIRECTORY
        port_text = env.get("AKRI_DISCOVERY_PORT") or str(DEFAULT_PORT)
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(
                f"AKRI_DISCOVERY_PORT must be a port number, got {port_text!r}"
            ) from None
        if not 0 <= port <= 65535:
            raise ValueError(f"AKRI_DISCOVERY_PORT must be 0-65535, got {port}")
        idle_text = env.get("AKRI_IDLE_CONNECTION_SECONDS") or "30"
        try:
            idle = float(idle_text)
        except ValueError:
            idle = -1.0
        if not idle > 0:
            raise ValueError(
                f"AKRI_IDLE_CONNECTION_SECONDS must be a positive number, got {idle_text!r}"
            )
        health_text = (env.get("AKRI_HEALTH_PORT") or "").strip()
        health_port: int | None = None
        if health_text:
            if not health_text.isdigit() or not 0 <= int(health_text) <= 65535:
                raise ValueError(f"AKRI_HEALTH_PORT must be a port number, got {health_text!r}")
            health_port = int(health_text)
        metrics_text = (env.get("AKRI_METRICS") or "true").strip().lower()
        if metrics_text not in ("true", "false", "1", "0"):
            raise ValueError(f"AKRI_METRICS must be true or false, got {metrics_text!r}")
        pod_ip = (env.get("POD_IP") or "").strip() or None
        if pod_ip is not None:
            try:
                ipaddress.ip_address(pod_ip)
            except ValueError:
                raise ValueError(f"POD_IP must be an IP address, got {pod_ip!r}") from None
        return cls(
            directory=Path(directory),
            pod_ip=pod_ip,
            port=port,
            idle_connection_timeout=idle,
            health_port=health_port,
            health_host=env.get("AKRI_HEALTH_ADDRESS") or "0.0.0.0",
            metrics=metrics_text in ("true", "1"),
        )


def _host_port(ip: str, port: int) -> str:
    # IPv6 literals need brackets in both the bind address and the URL (spec §2.3).
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class HandlerRuntime:
    """One handler's server, endpoint and registration."""

    def __init__(self, handler: DiscoveryHandler, config: RuntimeConfig, port: int) -> None:
        self.handler = handler
        self.config = config
        self.port = port
        self.service = DiscoverService(handler, on_stream_closed=self._stream_closed)
        self.server: grpc.aio.Server | None = None
        self.registrar: Registrar | None = None
        self.socket_path: Path | None = None
        self.endpoint: str | None = None
        self._registration_task: asyncio.Task[None] | None = None

    def _stream_closed(self) -> None:
        # The Agent drops all streams when it restarts: look at its socket now
        # instead of at the next poll (but register only if it really changed).
        if self.registrar is not None:
            self.registrar.check_now()

    async def start(self) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                # Two handlers on one port must fail loudly, not share it.
                ("grpc.so_reuseport", 0),
                ("grpc.max_connection_idle_ms", int(self.config.idle_connection_timeout * 1000)),
            ]
        )
        health = HealthService(self.handler.name, lambda: bool(readiness(self)))
        server.add_generic_rpc_handlers((self.service.rpc_handler(), health.rpc_handler()))
        name = self.handler.name
        if self.config.pod_ip is None:
            self.config.directory.mkdir(parents=True, exist_ok=True)
            path = self.config.directory / f"{name}.sock"
            if len(os.fsencode(path)) > MAX_UNIX_PATH_BYTES:
                raise RuntimeError(
                    f"socket path {path} is {len(os.fsencode(path))} bytes; unix sockets allow "
                    f"{MAX_UNIX_PATH_BYTES}: use a shorter handler name or directory"
                )
            if socket_accepts(path):
                raise RuntimeError(
                    f"another process is serving {path}; two handlers named {name!r} "
                    "cannot share a node directory"
                )
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale, from a process that did not stop cleanly
            server.add_insecure_port(f"unix:{path}")
            self.socket_path = path
            self.endpoint = str(path)
            endpoint_type = EndpointType.UDS
        else:
            bound = server.add_insecure_port(_host_port(self.config.pod_ip, self.port))
            if bound == 0:
                raise RuntimeError(f"cannot listen on {_host_port(self.config.pod_ip, self.port)}")
            self.port = bound
            self.endpoint = "http://" + _host_port(self.config.pod_ip, bound)
            endpoint_type = EndpointType.NETWORK
        await server.start()
        self.server = server
        if self.socket_path is not None:
            # The Agent runs without CAP_DAC_OVERRIDE; let it connect whatever our uid (§2.7).
            os.chmod(self.socket_path, 0o666)
        log.info("%s serving Discover at %s", name, self.endpoint, extra={"handler": name})
        self.registrar = Registrar(
            self.config.directory,
            name=name,
            endpoint=self.endpoint,
            endpoint_type=endpoint_type,
            shared=bool(self.handler.shared),
            poll_interval=self.config.poll_interval,
        )
        self._registration_task = asyncio.create_task(
            self.registrar.run(), name=f"registration {name}"
        )

    async def stop(self) -> None:
        task, self._registration_task = self._registration_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self.server = self.server, None
        if server is not None:
            await server.stop(self.config.stop_grace)
        await self.service.close()
        if self.socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()


async def serve(
    handlers: Sequence[DiscoveryHandler],
    config: RuntimeConfig | None = None,
    *,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
    runtimes: list[HandlerRuntime] | None = None,
    probe_servers: list[ProbeServer] | None = None,
) -> None:
    """Serve and register `handlers` until `stop` is set (or the task is cancelled).

    `runtimes` and `probe_servers`, when given, are filled with what was started,
    for callers (tests, the local agent) that want to look inside.
    """
    if not handlers:
        raise ValueError("no handlers to serve")
    names = [h.name for h in handlers]
    if len(set(names)) != len(names):
        raise ValueError(f"handler names must be unique in one process, got {names}")
    config = config or RuntimeConfig.from_env()
    stop = stop or asyncio.Event()
    started_runtimes: list[HandlerRuntime] = [] if runtimes is None else runtimes
    probes: ProbeServer | None = None
    try:
        for index, handler in enumerate(handlers):
            port = config.port + index if config.port else 0
            runtime = HandlerRuntime(handler, config, port)
            await runtime.start()
            started_runtimes.append(runtime)
        if config.health_port is not None:
            from akri_sdk.probes import ProbeServer

            probes = ProbeServer(
                started_runtimes, config.health_host, config.health_port, metrics=config.metrics
            )
            await probes.start()
            if probe_servers is not None:
                probe_servers.append(probes)
        if started is not None:
            started.set()
        await stop.wait()
    finally:
        if probes is not None:
            await probes.stop()
        for runtime in reversed(started_runtimes):
            await runtime.stop()
        log.info("stopped")


def stop_on_signals(seconds: float | None = None) -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (or after `seconds`), for a clean stop.

    Call it from the running event loop of the process's main command.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if seconds is not None:
        loop.call_later(seconds, stop.set)
    return stop


def run(*handlers: DiscoveryHandler, config: RuntimeConfig | None = None) -> None:
    """Run handlers until SIGTERM or SIGINT; the entry point of a handler process."""

    async def main() -> None:
        await serve(handlers, config, stop=stop_on_signals())

    asyncio.run(main())
