"""Per-handler counters, kept as plain numbers on the hot path.

Metrics exporters and the status view read these at scrape time, so the core
never imports a metrics library and costs nothing when metrics are off.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["DURATION_BUCKETS", "HandlerStats"]

# Seconds; the Agent's own discovery histogram uses similar bounds (spec §3.8).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class HandlerStats:
    """Counters for one handler, across all its streams and discovery tasks."""

    snapshots_sent: int = 0
    details_rejected: int = 0
    discovery_errors: Counter[str] = field(default_factory=Counter)
    scan_count: int = 0
    scan_seconds: float = 0.0
    # Cumulative counts per DURATION_BUCKETS bound, plus +Inf as the last entry.
    scan_buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))

    def observe_scan(self, seconds: float) -> None:
        self.scan_count += 1
        self.scan_seconds += seconds
        for index, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.scan_buckets[index] += 1
        self.scan_buckets[-1] += 1
