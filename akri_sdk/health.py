"""Readiness of a handler, and the standard gRPC health service on its socket.

Ready means: serving, registered with the Agent whose socket is there now, and
that socket accepting connections (a crashed Agent leaves its socket file).

The `grpc.health.v1.Health` service is implemented here rather than with
grpcio-health-checking: that package costs ~2.5 MiB of RSS in a sidecar whose
budget is 45 MiB, and the protocol is two one-field messages. Its own client
stubs are what our tests talk to this with.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    from akri_sdk.runtime import HandlerRuntime

__all__ = ["HealthService", "Readiness", "readiness", "socket_accepts"]

HEALTH_SERVICE = "grpc.health.v1.Health"
UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN = 0, 1, 2, 3
WATCH_INTERVAL = 0.5


def socket_accepts(path: Path) -> bool:
    """True if something listens on the unix socket at `path` (connect is instant on UDS)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


class Readiness:
    """A handler's readiness with the reason, for probes and the status view."""

    def __init__(self, ready: bool, reason: str) -> None:
        self.ready = ready
        self.reason = reason

    def __bool__(self) -> bool:
        return self.ready


def readiness(runtime: HandlerRuntime) -> Readiness:
    if runtime.server is None:
        return Readiness(False, "not serving")
    registrar = runtime.registrar
    if registrar is None:
        return Readiness(False, "not registering")
    if not registrar.registered:
        why = f" (last error: {registrar.last_error})" if registrar.last_error else ""
        return Readiness(False, f"not registered with the Agent{why}")
    if not socket_accepts(registrar.socket_path):
        return Readiness(False, "the Agent's registration socket does not accept connections")
    return Readiness(True, "serving and registered")


def _read_varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, index


def decode_service_name(request: bytes) -> str:
    """HealthCheckRequest.service (field 1, string); other fields are skipped."""
    index, service = 0, ""
    while index < len(request):
        tag, index = _read_varint(request, index)
        field_number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, index = _read_varint(request, index)
        elif wire_type == 2:
            length, index = _read_varint(request, index)
            value = request[index : index + length]
            index += length
            if field_number == 1:
                service = value.decode()
        elif wire_type in (1, 5):
            index += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    return service


def encode_status(status: int) -> bytes:
    """HealthCheckResponse{status}; proto3 leaves UNKNOWN (0) off the wire."""
    return bytes((0x08, status)) if status else b""


async def _service_of(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    try:
        return decode_service_name(request)
    except (ValueError, UnicodeDecodeError) as error:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad HealthCheckRequest: {error}")
        raise  # abort() raises; this keeps the type checker informed


class HealthService:
    """`grpc.health.v1.Health` for one handler: "" and the handler's name are known."""

    def __init__(self, name: str, is_ready: Callable[[], bool]) -> None:
        self.name = name
        self.is_ready = is_ready

    def _status(self, service: str) -> int | None:
        if service not in ("", self.name):
            return None
        return SERVING if self.is_ready() else NOT_SERVING

    async def check(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        service = await _service_of(request, context)
        status = self._status(service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
        return encode_status(status or UNKNOWN)

    async def watch(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        service = await _service_of(request, context)
        last: int | None = -1
        while True:
            status = self._status(service)
            current = SERVICE_UNKNOWN if status is None else status
            if current != last:
                last = current
                yield encode_status(current)
            await asyncio.sleep(WATCH_INTERVAL)

    def rpc_handler(self) -> grpc.GenericRpcHandler:
        def identity(payload: bytes) -> bytes:
            return payload

        return grpc.method_handlers_generic_handler(
            HEALTH_SERVICE,
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    self.check, request_deserializer=identity, response_serializer=identity
                ),
                "Watch": grpc.unary_stream_rpc_method_handler(
                    self.watch, request_deserializer=identity, response_serializer=identity
                ),
            },
        )
