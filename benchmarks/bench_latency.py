"""Figure 3: change-to-snapshot latency at the client, for a `watch` handler in its own process.

The benchmark process holds the fake Agent (for registration) and the client
stream; the handler runs `benchmarks/latency_handler.py`. Each trigger datagram
carries time.monotonic_ns() (one clock for all processes); latency is the
client's receive time minus that stamp. The same client measures a plain
grpcio server (same proto, one message per trigger) as the floor.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.testing.fake_agent import FakeAgent
from benchmarks.client import RawStream, TriggerSender
from benchmarks.latency_handler import SENT_PROPERTY, TRIGGER
from benchmarks.measure import Figure, Report, percentile, summary
from benchmarks.procs import BENCH_DIR, PYTHON, Child, cpu_seconds, scratch_dir

__all__ = ["run"]

SPACING = 0.005
WARMUP = 20
P50_TARGET = 0.005
P99_TARGET = 0.020
POINTS = ("p50", "p90", "p99", "max")
SCRIPT = str(BENCH_DIR / "latency_handler.py")


@dataclass
class Run:
    latencies: list[float]
    sent: int
    received: int
    dropped: int
    server_cpu: float
    elapsed: float


def _decode(payload: bytes) -> pb.Device | None:
    response = pb.DiscoverResponse.FromString(payload)
    return response.devices[0] if response.devices else None


async def _drive(endpoint: Path, trigger: Path, count: int, server: Child) -> Run:
    stream = RawStream(endpoint)
    sender = TriggerSender(trigger)
    total = WARMUP + count
    try:
        await stream.wait_count(1, timeout=15)  # the empty snapshot: trigger socket is bound
        cpu_before = cpu_seconds(server.pid)
        started = time.monotonic()
        for counter in range(total):
            sender.send(TRIGGER.pack(counter, time.monotonic_ns()))
            await asyncio.sleep(SPACING)
        # Wait for the last trigger's snapshot (intermediate ones may be coalesced).
        async with asyncio.timeout(10):
            while True:
                last = _decode(stream.messages[-1][1])
                if last is not None and int(last.id) == total - 1:
                    break
                await stream.wait_count(stream.count + 1)
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        await stream.close()
        sender.close()
    latencies = []
    for at, payload in stream.messages[1:]:
        device = _decode(payload)
        if device is None or int(device.id) < WARMUP:
            continue
        latencies.append(at - int(device.properties[SENT_PROPERTY]) / 1e9)
    return Run(latencies, count, len(latencies), sender.dropped, server_cpu, elapsed)


async def _sdk(scratch: Path, count: int) -> Run:
    trigger = scratch / "trigger.sock"
    async with FakeAgent(scratch) as agent:
        child = Child(
            [PYTHON, SCRIPT, "sdk", str(trigger)],
            log_path=scratch / "sdk.log",
            env={"DISCOVERY_HANDLERS_DIRECTORY": str(scratch)},
        )
        try:
            try:
                await agent.wait_registrations(1, timeout=15)
            except TimeoutError:
                raise RuntimeError(
                    f"latency handler did not register:\n{child.log_tail()}"
                ) from None
            endpoint = Path(agent.registrations[0].endpoint)
            return await _drive(endpoint, trigger, count, child)
        finally:
            await child.astop()


async def _raw(scratch: Path, count: int) -> Run:
    trigger = scratch / "raw-trigger.sock"
    endpoint = scratch / "raw.sock"
    child = Child(
        [PYTHON, SCRIPT, "raw", str(trigger), str(endpoint)], log_path=scratch / "raw.log"
    )
    try:
        return await _drive(endpoint, trigger, count, child)
    finally:
        await child.astop()


def _figure(label: str, result: Run, target: bool) -> Figure:
    lat = result.latencies
    detail = (
        f"received {result.received}/{result.sent}, dropped {result.dropped}; "
        f"server CPU {result.server_cpu / result.elapsed * 100:.0f}% of a core"
    )
    measured = f"{summary(lat, POINTS)} (n={len(lat)})"
    if not target:
        return Figure(label, measured, detail=detail)
    met = percentile(lat, 50) < P50_TARGET and percentile(lat, 99) < P99_TARGET
    return Figure(label, measured, "p50 < 5 ms, p99 < 20 ms", met, detail)


async def run(report: Report, *, quick: bool) -> None:
    count = 200 if quick else 500
    print(
        f"3. Change → snapshot at the client (watch handler in its own process, "
        f"{count} triggers {SPACING * 1000:g} ms apart after {WARMUP} warm-up)"
    )
    with scratch_dir() as scratch:
        sdk = await _sdk(scratch, count)
        raw = await _raw(scratch, count)
    report.add(_figure("3. change → snapshot, SDK watch handler", sdk, True))
    report.add(_figure("3. baseline plain grpcio aio server", raw, False))
    overhead = percentile(sdk.latencies, 50) - percentile(raw.latencies, 50)
    report.note(f"SDK overhead over plain grpcio at p50: {overhead * 1000:.2f} ms")
