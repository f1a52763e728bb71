"""Figure 5: handler CPU with 100 identical streams against one, and scans per second.

Identical requests must share one discovery task (DESIGN rule 8): 100 streams
should cost 100 writes per change, not 100 scans. The handler process
(`benchmarks/scan_handler.py`) scans every 50 ms; its CPU comes from
/proc/<pid>/stat, its scan count from the SCAN property it reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.testing.fake_agent import FakeAgent
from benchmarks.client import RawStream
from benchmarks.measure import Figure, Report
from benchmarks.procs import BENCH_DIR, PYTHON, Child, cpu_seconds, scratch_dir
from benchmarks.scan_handler import COUNTER_ID, INTERVAL, SCAN_PROPERTY

__all__ = ["run"]

STREAMS = 100
SETTLE = 0.5
DETAILS = "fanout: identical"
SHARED_TOLERANCE = 0.2  # scans/s with 100 streams within 20% of one stream's


@dataclass
class Period:
    streams: int
    seconds: float
    cpu: float
    scans: int
    messages: int
    client_cpu: float

    @property
    def cpu_per_second(self) -> float:
        return self.cpu / self.seconds

    @property
    def scans_per_second(self) -> float:
        return self.scans / self.seconds

    def describe(self) -> str:
        return (
            f"CPU {self.cpu_per_second:.3f} s/s, {self.scans_per_second:.1f} scans/s, "
            f"{self.messages / self.seconds:.0f} msg/s received"
        )


def _scan_number(stream: RawStream) -> int:
    assert stream.last is not None
    for device in pb.DiscoverResponse.FromString(stream.last[1]).devices:
        if device.id == COUNTER_ID:
            return int(device.properties[SCAN_PROPERTY])
    raise RuntimeError("snapshot without the scan counter")


async def _measure(streams: list[RawStream], pid: int, seconds: float) -> Period:
    await asyncio.gather(*(stream.wait_count(1, timeout=15) for stream in streams))
    await asyncio.sleep(SETTLE)
    scans = max(_scan_number(s) for s in streams)
    messages = sum(s.count for s in streams)
    cpu = cpu_seconds(pid)
    client = time.process_time()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    return Period(
        streams=len(streams),
        seconds=elapsed,
        cpu=cpu_seconds(pid) - cpu,
        scans=max(_scan_number(s) for s in streams) - scans,
        messages=sum(s.count for s in streams) - messages,
        client_cpu=time.process_time() - client,
    )


async def _periods(scratch: Path, seconds: float) -> tuple[Period, Period]:
    async with FakeAgent(scratch) as agent:
        child = Child(
            [PYTHON, str(BENCH_DIR / "scan_handler.py")],
            log_path=scratch / "scan.log",
            env={"DISCOVERY_HANDLERS_DIRECTORY": str(scratch)},
        )
        streams: list[RawStream] = []
        try:
            try:
                await agent.wait_registrations(1, timeout=15)
            except TimeoutError:
                raise RuntimeError(f"scan handler did not register:\n{child.log_tail()}") from None
            endpoint = Path(agent.registrations[0].endpoint)
            streams.append(RawStream(endpoint, DETAILS, keep=False))
            one = await _measure(streams, child.pid, seconds)
            streams.extend(RawStream(endpoint, DETAILS, keep=False) for _ in range(STREAMS - 1))
            many = await _measure(streams, child.pid, seconds)
            errors = [s.error for s in streams if s.error is not None]
            if errors:
                raise RuntimeError(f"{len(errors)} stream(s) failed: {errors[0]!r}")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.gather(*(stream.close() for stream in streams))
            await child.astop()
    return one, many


async def run(report: Report, *, quick: bool) -> None:
    seconds = 2.0 if quick else 5.0
    print(
        f"5. CPU of {STREAMS} identical streams vs one (scan every {INTERVAL * 1000:g} ms, "
        f"50 devices, set changes every scan; {seconds:g} s per period)"
    )
    with scratch_dir() as scratch:
        one, many = await _periods(scratch, seconds)
    report.add(Figure("5. scan handler, 1 stream", one.describe()))
    shared = abs(many.scans_per_second - one.scans_per_second) <= (
        SHARED_TOLERANCE * one.scans_per_second
    )
    report.add(
        Figure(
            f"5. scan handler, {STREAMS} identical streams",
            many.describe(),
            "one shared scan: scans/s as with 1 stream",
            shared,
        )
    )
    ratio = many.cpu_per_second / one.cpu_per_second if one.cpu else float("inf")
    report.add(Figure(f"5. handler CPU ratio, {STREAMS} streams / 1", f"{ratio:.1f} x"))
    report.note(
        f"benchmark (client) process CPU: {one.client_cpu / one.seconds:.2f} s/s with 1 stream, "
        f"{many.client_cpu / many.seconds:.2f} s/s with {STREAMS}"
    )
