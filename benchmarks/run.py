"""Run every benchmark and print its figures next to their targets.

    .venv/bin/python -m benchmarks.run [--quick] [--only 1,3]

Targets are informational: the exit status is 0 whatever the figures, and
non-zero only when a benchmark crashed. The closing Markdown table can be
pasted into a README as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

import grpc

from benchmarks import (
    bench_fanout,
    bench_large_snapshot,
    bench_latency,
    bench_metrics,
    bench_startup,
)
from benchmarks.measure import Report

__all__ = ["main"]

Bench = Callable[..., Awaitable[None]]
BENCHMARKS: dict[str, Bench] = {
    "1": bench_startup.run,  # also figure 2
    "3": bench_latency.run,
    "4": bench_large_snapshot.run,
    "5": bench_fanout.run,
    "6": bench_metrics.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated figure numbers to run (1 covers figures 1 and 2)",
    )
    args = parser.parse_args(argv)
    selected = [key for key in BENCHMARKS if not args.only or key in args.only.split(",")]
    # The fake Agent and the SDK log through `logging`; keep the report readable.
    logging.basicConfig(level=logging.WARNING)

    print(
        f"akri-sdk benchmarks{' (--quick)' if args.quick else ''}: Python "
        f"{platform.python_version()}, grpcio {grpc.__version__}, {os.cpu_count()} CPU(s), "
        f"{platform.machine()} {platform.system()} {platform.release()}",
        flush=True,
    )
    report = Report()
    started = time.monotonic()
    for key in selected:
        try:
            asyncio.run(BENCHMARKS[key](report, quick=args.quick))
        except Exception:
            report.failures.append(key)
            print(f"benchmark {key} crashed:", file=sys.stderr)
            traceback.print_exc()
    print(f"\nfinished in {time.monotonic() - started:.0f} s\n")
    print(report.table())
    if report.failures:
        print(f"\ncrashed: benchmark(s) {', '.join(report.failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
