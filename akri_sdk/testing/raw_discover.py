"""A raw HTTP/2 Discover call, to see exactly which frames a handler answers with.

grpcio clients hide whether a failure came as a trailers-only reply (one
HEADERS frame carrying `grpc-status`, the form the Agent reads as a failed
call) or as headers followed by trailers (a stream that opened, then ended:
spec §3.3, §3.4). This client sends one request and records the frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes

from akri_sdk._proto import discovery_pb2 as pb

__all__ = ["RawReply", "raw_discover"]

DISCOVER_PATH = "/v0.DiscoveryHandler/Discover"


@dataclass
class RawReply:
    """What came back, in order."""

    header_blocks: list[dict[str, str]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    ended: bool = False
    reset_code: int | None = None

    @property
    def trailers_only(self) -> bool:
        """True when the first and only header block ended the stream with a status."""
        blocks = self.header_blocks
        return self.ended and len(blocks) == 1 and "grpc-status" in blocks[0]

    @property
    def status(self) -> int | None:
        if self.header_blocks and "grpc-status" in self.header_blocks[-1]:
            return int(self.header_blocks[-1]["grpc-status"])
        return None

    @property
    def status_message(self) -> str | None:
        if not self.header_blocks:
            return None
        raw = self.header_blocks[-1].get("grpc-message")
        return None if raw is None else unquote(raw)


def _frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


async def raw_discover(
    socket_path: Path | str,
    request: pb.DiscoverRequest,
    *,
    authority: str = "[::1]:50051",
    max_messages: int = 1,
    timeout: float = 5.0,  # noqa: ASYNC109 - a plain bound on the whole exchange
) -> RawReply:
    """Call Discover over a unix socket; stop after `max_messages` or the stream's end."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.increment_flow_control_window(16 * 1024 * 1024)
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(
        stream_id,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", DISCOVER_PATH),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
    )
    body = _frame(request.SerializeToString())
    reply = RawReply()
    buffer = b""

    async def pump() -> None:
        nonlocal body, buffer
        while True:
            # Send as much of the request as flow control allows.
            while body and not reply.ended and reply.reset_code is None:
                window = min(
                    conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size
                )
                if window <= 0:
                    break
                chunk, body = body[:window], body[window:]
                conn.send_data(stream_id, chunk, end_stream=not body)
            writer.write(conn.data_to_send())
            await writer.drain()
            if reply.ended or reply.reset_code is not None or len(reply.messages) >= max_messages:
                return
            data = await reader.read(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    reply.header_blocks.append({k.decode(): v.decode() for k, v in event.headers})
                    if event.stream_ended is not None:
                        reply.ended = True
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                    buffer += event.data
                    while len(buffer) >= 5:
                        (length,) = struct.unpack(">I", buffer[1:5])
                        if len(buffer) < 5 + length:
                            break
                        reply.messages.append(buffer[5 : 5 + length])
                        buffer = buffer[5 + length :]
                elif isinstance(event, h2.events.StreamEnded):
                    reply.ended = True
                elif isinstance(event, h2.events.StreamReset):
                    reply.reset_code = int(event.error_code)

    try:
        async with asyncio.timeout(timeout):
            await pump()
    finally:
        if not reply.ended and reply.reset_code is None:
            with contextlib.suppress(Exception):
                conn.reset_stream(stream_id, ErrorCodes.CANCEL)
                writer.write(conn.data_to_send())
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return reply
