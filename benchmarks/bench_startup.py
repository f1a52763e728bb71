"""Figures 1 and 2: process start to registration, and idle RSS, of `akri-dh run debugEcho`."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from pathlib import Path

from akri_sdk.testing.fake_agent import FakeAgent
from benchmarks.measure import Figure, Report, summary
from benchmarks.procs import AKRI_DH, PYTHON, Child, memory_kib, scratch_dir, spawn_to_exit

__all__ = ["run"]

ECHO_DETAILS = "descriptions: [foo0, foo1]"
START_TARGET = 0.5
RSS_TARGET_MIB = 45.0
IDLE_SECONDS = 1.0


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


async def start_once(
    directory: Path,
    report: Report,
    *,
    measure_rss: bool,
    extra_env: dict[str, str] | None = None,
) -> tuple[float, dict[str, int] | None]:
    """Spawn the handler with a fake Agent listening; seconds to registration (and RSS)."""
    directory.mkdir()
    env = {
        "DISCOVERY_HANDLERS_DIRECTORY": str(directory),
        "DEBUG_ECHO_AVAILABILITY_FILE": str(directory / "availability.txt"),
        **(extra_env or {}),
    }
    async with FakeAgent(directory) as agent:
        child = Child([AKRI_DH, "run", "debugEcho"], log_path=directory / "handler.log", env=env)
        try:
            try:
                await agent.wait_registrations(1, timeout=15)
            except TimeoutError:
                raise RuntimeError(
                    f"akri-dh run debugEcho did not register:\n{child.log_tail()}"
                ) from None
            registration = agent.registrations[0]
            elapsed = registration.at - child.started_at
            memory = None
            if measure_rss:
                stream = agent.discover(registration, ECHO_DETAILS)
                devices = await stream.next_snapshot(timeout=5)
                if len(devices) != 2:
                    raise RuntimeError(f"debugEcho sent {devices}, expected foo0 and foo1")
                await asyncio.sleep(IDLE_SECONDS)
                memory = memory_kib(child.pid)
                await stream.cancel()
        finally:
            status = await child.astop()
        if status != 0:
            report.note(f"akri-dh run debugEcho exited with {status} on SIGTERM (expected 0)")
    return elapsed, memory


def _baseline_rss() -> dict[str, int]:
    """RSS of a bare interpreter that imported grpc, after it has settled."""
    with scratch_dir() as scratch:
        code = "import grpc, sys, time; print('ready', flush=True); time.sleep(5)"
        with Child(
            [PYTHON, "-c", code], log_path=scratch / "baseline.log", stdout=subprocess.PIPE
        ) as child:
            assert child.proc.stdout is not None
            if child.proc.stdout.readline().strip() != b"ready":
                raise RuntimeError("baseline interpreter did not start")
            time.sleep(IDLE_SECONDS)
            return memory_kib(child.pid)


async def run(report: Report, *, quick: bool) -> None:
    runs = 3 if quick else 10
    print("1. Process start to registration (akri-dh run debugEcho, fake Agent listening)")
    rss_runs = 1 if quick else 5
    starts: list[float] = []
    memories: list[dict[str, int]] = []
    with scratch_dir() as scratch:
        await start_once(scratch / "warm", report, measure_rss=False)  # page cache, pyc
        for index in range(runs):
            # RSS in the last few runs: it varies by a couple of MiB from run to run.
            measure = index >= runs - rss_runs
            elapsed, memory = await start_once(scratch / f"r{index}", report, measure_rss=measure)
            starts.append(elapsed)
            if memory is not None:
                memories.append(memory)
    median = statistics.median(starts)
    report.add(
        Figure(
            "1. start → registration",
            f"{summary(starts, ('median', 'p90', 'min'))} (n={runs})",
            "< 500 ms median",
            median < START_TARGET,
        )
    )
    baselines = {
        "python -c 'pass'": [PYTHON, "-c", "pass"],
        "python -c 'import grpc'": [PYTHON, "-c", "import grpc"],
        "python -c 'import akri_sdk' + cli, runtime, plugins, logs": [
            PYTHON,
            "-c",
            "import akri_sdk.cli, akri_sdk.runtime, akri_sdk.plugins, akri_sdk.logs",
        ],
    }
    for label, argv in baselines.items():
        spawn_to_exit(argv)  # warm-up
        times = [spawn_to_exit(argv) for _ in range(runs)]
        report.add(
            Figure(
                f"1. baseline {label}, spawn → exit",
                f"{summary(times, ('median', 'p90', 'min'))} (n={runs})",
            )
        )

    print(f"2. Idle RSS (debugEcho registered, one Discover stream, {IDLE_SECONDS:g} s idle)")
    memories.sort(key=lambda m: m["VmRSS"])
    middle = memories[len(memories) // 2]
    rss = [m["VmRSS"] for m in memories]
    report.add(
        Figure(
            "2. idle RSS",
            f"median {_mib(middle['VmRSS'])}, min {_mib(rss[0])}, max {_mib(rss[-1])} "
            f"(n={len(rss)})",
            f"< {RSS_TARGET_MIB:g} MiB",
            middle["VmRSS"] / 1024 < RSS_TARGET_MIB,
            f"median run: anon {_mib(middle['RssAnon'])}, file {_mib(middle['RssFile'])}, "
            f"{middle['Threads']} threads; threads per run {[m['Threads'] for m in memories]}",
        )
    )
    base = await asyncio.to_thread(_baseline_rss)
    report.add(
        Figure(
            "2. baseline RSS python -c 'import grpc'",
            _mib(base["VmRSS"]),
            detail=f"anon {_mib(base['RssAnon'])}, file {_mib(base['RssFile'])}, "
            f"{base['Threads']} threads",
        )
    )
