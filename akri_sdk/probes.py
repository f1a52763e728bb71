"""The optional HTTP port: /livez, /readyz, /metrics, /status.

A few GET routes do not justify a web framework in a sidecar; this is a
bounded HTTP/1.1 responder on the event loop. That the loop answers at all is
what liveness means: a blocked loop times the probe out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from akri_sdk.health import readiness
from akri_sdk.status import status_report

if TYPE_CHECKING:
    from akri_sdk.runtime import HandlerRuntime

__all__ = ["ProbeServer"]

log = logging.getLogger("akri_sdk.probes")

MAX_REQUEST_HEAD = 8192
READ_TIMEOUT = 5.0

Response = tuple[int, str, bytes]


class ProbeServer:
    def __init__(
        self, runtimes: Sequence[HandlerRuntime], host: str, port: int, *, metrics: bool = True
    ) -> None:
        self.runtimes = runtimes
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._render_metrics: Callable[[], bytes] | None = None
        self._metrics_error: str | None = None
        if metrics:
            try:
                from akri_sdk.metrics import MetricsExporter
            except ImportError as error:
                self._metrics_error = (
                    f"metrics need prometheus-client (pip install 'akri-sdk[metrics]'): {error}"
                )
                log.warning("%s", self._metrics_error)
            else:
                self._render_metrics = MetricsExporter(runtimes).render

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def route(self, path: str) -> Response:
        path = path.split("?", 1)[0]
        if path == "/livez":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            states = {r.handler.name: readiness(r) for r in self.runtimes}
            text = "".join(f"{name}: {state.reason}\n" for name, state in states.items())
            return (200 if all(states.values()) else 503), "text/plain", text.encode()
        if path == "/metrics":
            if self._render_metrics is None:
                message = self._metrics_error or "metrics are disabled"
                return 501, "text/plain", message.encode()
            return 200, "text/plain; version=0.0.4; charset=utf-8", self._render_metrics()
        if path == "/status":
            body = json.dumps(status_report(self.runtimes), indent=2).encode()
            return 200, "application/json", body
        return 404, "text/plain", b"not found; try /livez /readyz /metrics /status\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_REQUEST_HEAD:
                raise ValueError("request head too large")
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"only GET\n"
            else:
                status, ctype, body = self.route(target)
            reason = {
                200: "OK",
                404: "Not Found",
                405: "Method Not Allowed",
                501: "Not Implemented",
                503: "Service Unavailable",
            }.get(status, "")
            header = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            writer.write(header if method == "HEAD" else header + body)
            await writer.drain()
        except (
            TimeoutError,
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            pass  # a bad or slow client gets no answer; the probe loop is unaffected
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
