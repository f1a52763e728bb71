"""Figure 6: what the health port with Prometheus metrics costs at start and at rest.

`akri-dh run debugEcho` with `AKRI_HEALTH_PORT` set (probes + metrics, so
prometheus-client is imported) against unset, alternating runs in the same process.
"""

from __future__ import annotations

import statistics

from benchmarks.bench_startup import start_once
from benchmarks.measure import Figure, Report, summary
from benchmarks.procs import scratch_dir

__all__ = ["run"]


async def run(report: Report, *, quick: bool) -> None:
    runs = 3 if quick else 8
    print("6. Health port with metrics enabled vs disabled (akri-dh run debugEcho)")
    modes = {
        "disabled": {},
        # Port 0: any free loopback port; the figures are about the imports and the server.
        "enabled": {"AKRI_HEALTH_PORT": "0", "AKRI_HEALTH_ADDRESS": "127.0.0.1"},
    }
    starts: dict[str, list[float]] = {mode: [] for mode in modes}
    rss: dict[str, list[float]] = {mode: [] for mode in modes}
    with scratch_dir() as scratch:
        await start_once(scratch / "warm", report, measure_rss=False, extra_env=modes["enabled"])
        for index in range(runs):
            for mode, env in modes.items():
                elapsed, memory = await start_once(
                    scratch / f"{mode}{index}", report, measure_rss=True, extra_env=env
                )
                starts[mode].append(elapsed)
                assert memory is not None
                rss[mode].append(memory["VmRSS"] / 1024)
    for mode in modes:
        report.add(
            Figure(
                f"6. metrics {mode}: start → registration",
                f"{summary(starts[mode], ('median', 'p90'))} (n={runs})",
            )
        )
        report.add(
            Figure(
                f"6. metrics {mode}: idle RSS",
                f"median {statistics.median(rss[mode]):.1f} MiB (n={runs})",
            )
        )
    extra_ms = 1000 * (statistics.median(starts["enabled"]) - statistics.median(starts["disabled"]))
    extra_mib = statistics.median(rss["enabled"]) - statistics.median(rss["disabled"])
    report.add(
        Figure(
            "6. cost of metrics", f"+{extra_ms:.0f} ms to registration, +{extra_mib:.1f} MiB RSS"
        )
    )
