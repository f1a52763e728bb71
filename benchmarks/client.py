"""A lean Discover client that timestamps each message the moment grpcio hands it over.

It connects the way the Agent does (one connection per call, `:authority [::1]:50051`
on a Unix socket) but leaves responses as bytes, so the timestamp holds no protobuf
decoding and 100 streams cost the benchmark process little. Decode afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import grpc

from akri_sdk._proto import discovery_pb2 as pb

__all__ = ["RawStream", "TriggerSender"]

DISCOVER_PATH = "/v0.DiscoveryHandler/Discover"
AGENT_AUTHORITY = "[::1]:50051"


class RawStream:
    """One Discover call; records (time.monotonic(), payload) per message."""

    def __init__(self, socket_path: Path, details: str = "", *, keep: bool = True) -> None:
        self.socket_path = socket_path
        self.keep = keep
        self.messages: list[tuple[float, bytes]] = []
        self.count = 0
        self.last: tuple[float, bytes] | None = None
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self._channel = grpc.aio.insecure_channel(
            f"unix:{socket_path}",
            options=[
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.default_authority", AGENT_AUTHORITY),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ],
        )
        self._call = self._channel.unary_stream(
            DISCOVER_PATH, request_serializer=pb.DiscoverRequest.SerializeToString
        )(pb.DiscoverRequest(discovery_details=details), wait_for_ready=True)
        self._task = asyncio.create_task(self._read(), name=f"bench stream {socket_path}")

    async def _read(self) -> None:
        try:
            async for payload in self._call:
                at = time.monotonic()
                self.count += 1
                self.last = (at, payload)
                if self.keep:
                    self.messages.append((at, payload))
                changed, self._changed = self._changed, asyncio.Event()
                changed.set()
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error
        finally:
            self._changed.set()

    async def wait_count(self, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` messages have arrived in all."""
        async with asyncio.timeout(timeout):
            while self.count < count:
                if self._task.done():
                    raise RuntimeError(
                        f"stream to {self.socket_path} ended after {self.count} message(s): "
                        f"{self.error!r}"
                    )
                await self._changed.wait()

    async def close(self) -> None:
        self._call.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await self._task
        await self._channel.close(grace=None)


class TriggerSender:
    """Sends datagrams to a handler's trigger socket without ever blocking the loop."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.dropped = 0

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendto(data, self.path)
        except BlockingIOError:
            self.dropped += 1  # the handler's queue is full: it is far behind
            return False
        return True

    def close(self) -> None:
        self.sock.close()
