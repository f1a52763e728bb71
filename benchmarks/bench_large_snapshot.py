"""Figure 4: time to send a 10,000-device snapshot (in process).

A `watch` handler yields a prepared list of 10,000 fresh devices when the
benchmark puts it in a queue; the time runs from that put to the complete
message at a client stream in the same event loop. Each run uses new ids (the
run number is in them) and new Device objects, so no cached encoding helps.
Separately: normalise_snapshot + encode_snapshot alone, the whole
DiscoveryTask.publish (which also diffs for the log line), building the
devices, and, as the floor, building and serialising the same DiscoverResponse
with protobuf directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from akri_sdk import Device, DiscoveryContext, DiscoveryHandler
from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.credentials import DiscoveryProperties
from akri_sdk.device import encode_snapshot, normalise_snapshot
from akri_sdk.discovery import DiscoveryTask
from akri_sdk.runtime import HandlerRuntime, RuntimeConfig, serve
from benchmarks.client import RawStream
from benchmarks.measure import Figure, Report, ms, summary
from benchmarks.procs import scratch_dir

__all__ = ["run"]

DEVICES = 10_000
TARGET = 0.050
HANDLER_NAME = "benchLarge"

Raw = list[tuple[str, dict[str, str]]]
T = TypeVar("T")


def _raw_devices(run: int) -> Raw:
    return [
        (
            f"run{run}-device-{i:05d}",
            {
                "DEVICE_ID": f"run{run}-device-{i:05d}",
                "DEVICE_ADDRESS": f"10.{run}.{i >> 8}.{i & 255}",
            },
        )
        for i in range(DEVICES)
    ]


def _devices(raw: Raw) -> list[Device]:
    return [Device(id=device_id, properties=props) for device_id, props in raw]


class LargeHandler(DiscoveryHandler):
    name = HANDLER_NAME

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[Device]] = asyncio.Queue()

    async def watch(self, ctx: DiscoveryContext[Any]) -> AsyncIterator[list[Device]]:
        yield []
        while True:
            yield await self.queue.get()


def _timed(samples: list[float], action: Callable[..., T], *args: Any) -> T:
    started = time.perf_counter()
    result = action(*args)
    samples.append(time.perf_counter() - started)
    return result


async def _end_to_end(scratch: Path, runs: int) -> tuple[list[float], list[float]]:
    """Trigger → received times, and the part of each after the feed published it."""
    handler = LargeHandler()
    stop = asyncio.Event()
    started = asyncio.Event()
    runtimes: list[HandlerRuntime] = []
    server = asyncio.create_task(
        serve(
            [handler],
            RuntimeConfig(directory=scratch),
            stop=stop,
            started=started,
            runtimes=runtimes,
        )
    )
    times: list[float] = []
    transport: list[float] = []
    try:
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, server}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            server.result()  # raises what serve() raised
            raise RuntimeError("serve() did not start within 10 s")
        stream = RawStream(scratch / f"{HANDLER_NAME}.sock", keep=False)
        try:
            await stream.wait_count(1)
            for run in range(runs + 1):  # run 0 warms up
                devices = _devices(_raw_devices(run))
                begun = time.monotonic()
                handler.queue.put_nowait(devices)
                await stream.wait_count(run + 2, timeout=30)
                assert stream.last is not None
                at, payload = stream.last
                if run:
                    times.append(at - begun)
                    [task] = runtimes[0].service.tasks.values()
                    transport.append(at - task.feed.published_at)
                response = pb.DiscoverResponse.FromString(payload)
                first = response.devices[0]
                if len(response.devices) != DEVICES or not first.id.startswith(f"run{run}-"):
                    raise RuntimeError(f"run {run}: got {len(response.devices)} devices, {first}")
        finally:
            await stream.close()
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    return times, transport


def _publish_task() -> DiscoveryTask:
    log = logging.LoggerAdapter(logging.getLogger("benchmarks.publish"), {})
    ctx: DiscoveryContext[Any] = DiscoveryContext(
        handler_name=HANDLER_NAME,
        details=None,
        properties=DiscoveryProperties.from_proto({}),
        raw_details="",
        key="bench",
        log=log,
    )
    return DiscoveryTask(LargeHandler(), ctx)


def _protobuf(raw: Raw) -> bytes:
    devices = [pb.Device(id=device_id, properties=props) for device_id, props in raw]
    return pb.DiscoverResponse(devices=devices).SerializeToString()


def _pieces(runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "build": [],
        "normalise": [],
        "encode": [],
        "publish": [],
        "reencode": [],
        "protobuf": [],
    }
    task = _publish_task()
    base = 1000
    for run in range(base, base + runs + 1):
        raw = _raw_devices(run)
        devices = _timed(times["build"], _devices, raw)
        snapshot = _timed(times["normalise"], normalise_snapshot, devices)
        payload = _timed(times["encode"], encode_snapshot, snapshot)
        # The whole publish path a watch/scan result takes, on another fresh set.
        _timed(times["publish"], task.publish, _devices(_raw_devices(run + 500)))
        # A scan's next result: the same devices built anew, one of them replaced.
        rescan = _publish_task()
        rescan.publish(_devices(raw))
        rebuilt = _devices(raw[1:]) + _devices(_raw_devices(run + 700)[:1])
        _timed(times["reencode"], rescan.publish, rebuilt)
        message = _timed(times["protobuf"], _protobuf, raw)
        if pb.DiscoverResponse.FromString(payload) != pb.DiscoverResponse.FromString(message):
            raise RuntimeError("encode_snapshot and protobuf disagree")
    return {key: values[1:] for key, values in times.items()}  # first run warms up


def _median_line(samples: Iterable[float]) -> str:
    values = list(samples)
    return f"{summary(values, ('median', 'min', 'max'))} (n={len(values)})"


async def run(report: Report, *, quick: bool) -> None:
    runs = 3 if quick else 10
    print(f"4. Sending a {DEVICES:,}-device snapshot (2 properties each, in process)")
    with scratch_dir() as scratch:
        times, transport = await _end_to_end(scratch, runs)
    median = statistics.median(times)
    report.add(
        Figure(
            "4. 10k-device snapshot, trigger → received at client",
            _median_line(times),
            "< 50 ms",
            median < TARGET,
            f"of which published → received (gRPC write and read): "
            f"{ms(statistics.median(transport))}",
        )
    )
    pieces = _pieces(runs)
    both = [a + b for a, b in zip(pieces["normalise"], pieces["encode"], strict=True)]
    report.add(
        Figure(
            "4. normalise_snapshot + encode_snapshot (fresh devices)",
            _median_line(both),
            "< 50 ms",
            statistics.median(both) < TARGET,
            f"normalise {ms(statistics.median(pieces['normalise']))}, "
            f"encode {ms(statistics.median(pieces['encode']))}",
        )
    )
    report.add(
        Figure(
            "4. DiscoveryTask.publish (normalise, compare, log diff, encode)",
            _median_line(pieces["publish"]),
        )
    )
    report.add(
        Figure("4. building 10k Device objects (handler side)", _median_line(pieces["build"]))
    )
    report.add(
        Figure(
            "4. DiscoveryTask.publish, rescan: same 10k rebuilt, 1 replaced",
            _median_line(pieces["reencode"]),
        )
    )
    report.add(
        Figure(
            "4. baseline protobuf DiscoverResponse build + serialise",
            _median_line(pieces["protobuf"]),
        )
    )
