"""The `v0.DiscoveryHandler/Discover` service for one handler.

Per call: decode and validate the request, answering bad details with
INVALID_ARGUMENT before any response headers (trailers-only, spec §3.3);
otherwise send headers at once, attach the stream to the discovery task shared
by identical requests, and forward snapshots until the Agent cancels. The
stream never ends from this side (spec §3.4, §3.5).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.credentials import DiscoveryProperties, PropertyError, redact_url_passwords
from akri_sdk.details import (
    DEFAULT_MAX_DETAILS_BYTES,
    DetailsError,
    check_details_size,
    decode_details,
)
from akri_sdk.discovery import DiscoveryTask
from akri_sdk.handler import DiscoveryContext, DiscoveryHandler
from akri_sdk.stats import HandlerStats

__all__ = ["DiscoverService", "StreamInfo"]

log = logging.getLogger("akri_sdk.server")

SERVICE_NAME = "v0.DiscoveryHandler"

# Far above any real Configuration (etcd caps objects near 1.5 MB), so that
# oversized details reach our own check and get a readable INVALID_ARGUMENT
# instead of grpc's RESOURCE_EXHAUSTED.
MAX_REQUEST_BYTES = 16 * 1024 * 1024

# Details longer than this are decoded in a worker thread.
INLINE_DECODE_CHARS = 16 * 1024


def _identity(payload: bytes) -> bytes:
    return payload


@dataclass(eq=False)
class StreamInfo:
    """One open Discover stream, for logs, status and tests."""

    stream_id: int
    task_key: str
    peer: str
    opened_at: float


class DiscoverService:
    """Serves Discover for one handler, sharing discovery tasks between streams."""

    def __init__(
        self,
        handler: DiscoveryHandler,
        *,
        max_details_bytes: int = DEFAULT_MAX_DETAILS_BYTES,
        on_stream_closed: Callable[[], None] | None = None,
    ) -> None:
        self.handler = handler
        self.max_details_bytes = max_details_bytes
        self.on_stream_closed = on_stream_closed
        self.tasks: dict[tuple[str, str], DiscoveryTask] = {}
        self.streams: dict[int, StreamInfo] = {}
        self.stats = HandlerStats()
        self._stream_ids = itertools.count(1)
        self._log = logging.LoggerAdapter(log, {"handler": handler.name})

    def rpc_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Discover": grpc.unary_stream_rpc_method_handler(
                    self.discover,
                    request_deserializer=pb.DiscoverRequest.FromString,
                    # Snapshots are serialised once per change and shared by all streams.
                    response_serializer=_identity,
                )
            },
        )

    def _decode(self, raw: str) -> Any:
        model = self.handler.details
        if model is None:
            check_details_size(raw, self.max_details_bytes)  # bounded even when not parsed
            return raw
        return decode_details(raw, model, max_bytes=self.max_details_bytes)

    async def _build_context(self, request: pb.DiscoverRequest, key: str) -> DiscoveryContext[Any]:
        properties = DiscoveryProperties.from_proto(request.discovery_properties)
        raw = request.discovery_details
        if len(raw) > INLINE_DECODE_CHARS:
            # Pure-Python YAML takes a while on large input: keep other streams moving.
            details = await asyncio.to_thread(self._decode, raw)
        else:
            details = self._decode(raw)
        task_log = logging.LoggerAdapter(log, {"handler": self.handler.name, "task": key})
        ctx: DiscoveryContext[Any] = DiscoveryContext(
            handler_name=self.handler.name,
            details=details,
            properties=properties,
            raw_details=raw,
            key=key,
            log=task_log,
        )
        self.handler.validate(ctx)
        return ctx

    async def _task_for(self, request: pb.DiscoverRequest) -> DiscoveryTask:
        """The running task for this request, creating (and validating) it if new."""
        fingerprint = DiscoveryProperties.from_proto(request.discovery_properties).fingerprint()
        task_id = (request.discovery_details, fingerprint)
        task = self.tasks.get(task_id)
        if task is not None:
            return task
        key = _short_key(request.discovery_details, fingerprint)
        ctx = await self._build_context(request, key)
        task = self.tasks.get(task_id)
        if task is not None:
            return task  # an identical request created it while we decoded
        task = DiscoveryTask(self.handler, ctx, self.stats)
        self.tasks[task_id] = task
        task.start()
        self._log.info("discovery task %s started", key, extra={"task": key})
        return task

    async def discover(
        self, request: pb.DiscoverRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        try:
            task = await self._task_for(request)
        except (DetailsError, PropertyError) as error:
            self.stats.details_rejected += 1
            self._log.warning("refused a Discover request: %s", redact_url_passwords(str(error)))
            # Before any headers: the Agent sees a failed call and backs off.
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            return
        except Exception:
            self._log.exception("validating a Discover request failed unexpectedly")
            await context.abort(grpc.StatusCode.INTERNAL, "handler failed to validate the request")
            return

        await context.send_initial_metadata(())
        stream = StreamInfo(
            stream_id=next(self._stream_ids),
            task_key=task.ctx.key,
            peer=context.peer(),
            opened_at=time.monotonic(),
        )
        self.streams[stream.stream_id] = stream
        task.subscribers += 1
        self._log.debug(
            "stream %d opened on task %s (%d subscriber(s))",
            stream.stream_id,
            task.ctx.key,
            task.subscribers,
            extra={"stream": stream.stream_id, "task": task.ctx.key},
        )
        try:
            async for payload in task.feed.updates():
                await context.write(payload)
                self.stats.snapshots_sent += 1
        finally:
            await self._detach(task, stream)

    async def _detach(self, task: DiscoveryTask, stream: StreamInfo) -> None:
        del self.streams[stream.stream_id]
        task.subscribers -= 1
        self._log.debug("stream %d closed", stream.stream_id, extra={"stream": stream.stream_id})
        if task.subscribers == 0:
            for task_id, candidate in list(self.tasks.items()):
                if candidate is task:
                    del self.tasks[task_id]
            await task.stop()
            self._log.info("discovery task %s stopped (no streams)", task.ctx.key)
        if self.on_stream_closed is not None:
            self.on_stream_closed()

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        self.tasks.clear()
        for task in tasks:
            await task.stop()


def _short_key(details: str, fingerprint: str) -> str:
    digest = hashlib.blake2b(details.encode() + fingerprint.encode(), digest_size=4)
    return digest.hexdigest()
