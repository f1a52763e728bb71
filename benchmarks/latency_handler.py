"""Figure 3's server process: a `watch` handler woken by datagrams, or plain grpcio.

Run as a script: `python latency_handler.py sdk|raw TRIGGER_SOCKET [ENDPOINT_SOCKET]`.

Each datagram holds a counter and the sender's time.monotonic_ns(); the server
answers it with a one-device snapshot whose id is the counter and whose
SENT_NS property is the stamp. Both modes first send an empty snapshot once the
trigger socket is bound, which tells the client it may start sending.

`sdk`: a DiscoveryHandler run with `akri_sdk.run` (DISCOVERY_HANDLERS_DIRECTORY
from the environment, logs as `akri-dh run` configures them). `raw`: the same
proto served by a bare grpcio aio server on ENDPOINT_SOCKET, the floor the SDK
is compared with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc

import akri_sdk
from akri_sdk import Device, DiscoveryContext, DiscoveryHandler
from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.logs import configure_logging

TRIGGER = struct.Struct("!QQ")  # counter, time.monotonic_ns() at send
HANDLER_NAME = "benchLatency"
SENT_PROPERTY = "SENT_NS"


@contextlib.contextmanager
def _trigger_socket(path: str) -> Any:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.bind(path)
        yield sock
    finally:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class LatencyHandler(DiscoveryHandler):
    name = HANDLER_NAME
    shared = True

    def __init__(self, trigger_path: str) -> None:
        self.trigger_path = trigger_path

    async def watch(self, ctx: DiscoveryContext[Any]) -> AsyncIterator[list[Device]]:
        loop = asyncio.get_running_loop()
        with _trigger_socket(self.trigger_path) as sock:
            yield []
            while True:
                data = await loop.sock_recv(sock, 64)
                counter, sent_ns = TRIGGER.unpack(data)
                yield [Device(id=str(counter), properties={SENT_PROPERTY: str(sent_ns)})]


async def _serve_raw(trigger_path: str, endpoint: str) -> None:
    async def discover(
        request: pb.DiscoverRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.DiscoverResponse]:
        loop = asyncio.get_running_loop()
        with _trigger_socket(trigger_path) as sock:
            yield pb.DiscoverResponse()
            while True:
                data = await loop.sock_recv(sock, 64)
                counter, sent_ns = TRIGGER.unpack(data)
                device = pb.Device(id=str(counter), properties={SENT_PROPERTY: str(sent_ns)})
                yield pb.DiscoverResponse(devices=[device])

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "v0.DiscoveryHandler",
                {
                    "Discover": grpc.unary_stream_rpc_method_handler(
                        discover,
                        request_deserializer=pb.DiscoverRequest.FromString,
                        response_serializer=pb.DiscoverResponse.SerializeToString,
                    )
                },
            ),
        )
    )
    server.add_insecure_port(f"unix:{endpoint}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop(0.2)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(endpoint)


def main(argv: list[str]) -> int:
    mode, trigger_path = argv[0], argv[1]
    if mode == "sdk":
        configure_logging()
        akri_sdk.run(LatencyHandler(trigger_path))
    elif mode == "raw":
        asyncio.run(_serve_raw(trigger_path, argv[2]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
