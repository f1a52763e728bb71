"""Statistics over samples and the figures a benchmark reports."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Figure", "Report", "ms", "percentile", "summary"]


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated linearly between ranks (numpy's default)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    """Milliseconds with three significant digits or so."""
    value = seconds * 1000
    if value >= 100:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def summary(samples: Sequence[float], points: Sequence[str] = ("p50", "p90", "min")) -> str:
    """`p50 12.3 ms  p90 15.0 ms ...` for samples in seconds; names: pNN, min, max, median."""
    parts = []
    for point in points:
        if point == "min":
            value = min(samples)
        elif point == "max":
            value = max(samples)
        elif point == "median":
            value = statistics.median(samples)
        else:
            value = percentile(samples, float(point[1:]))
        parts.append(f"{point} {ms(value)}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Figure:
    """One measured figure: what, the value as text, the target, whether it was met.

    `met` is None for baselines and figures without a target.
    """

    label: str
    measured: str
    target: str = ""
    met: bool | None = None
    detail: str = ""

    def line(self) -> str:
        verdict = {True: "MET", False: "MISSED", None: ""}[self.met]
        text = f"{self.label}: {self.measured}"
        if self.target:
            text += f"  | target {self.target}: {verdict}"
        if self.detail:
            text += f"  ({self.detail})"
        return text


class Report:
    """Collects figures, printing each as it comes, and renders the closing table."""

    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.failures: list[str] = []

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        print("  " + figure.line(), flush=True)

    def note(self, text: str) -> None:
        print("  · " + text, flush=True)

    def table(self) -> str:
        rows = ["| figure | measured | target | met |", "|---|---|---|---|"]
        for figure in self.figures:
            met = {True: "yes", False: "**no**", None: "-"}[figure.met]
            target = figure.target or "-"
            rows.append(f"| {figure.label} | {figure.measured} | {target} | {met} |")
        return "\n".join(rows)
