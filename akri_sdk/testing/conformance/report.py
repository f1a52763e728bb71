"""Check results: one `CheckResult` a check, printed as one line, gathered in a report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CheckResult", "ConformanceReport", "Recorder", "not_run"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, verdict, what was seen (or what to fix) and a figure."""

    name: str
    passed: bool
    detail: str = ""
    figure: str = ""

    def line(self) -> str:
        """The printed form: `PASS name (detail) figure` or `FAIL name: detail figure`."""
        if self.passed:
            text = f"PASS {self.name}" + (f" ({self.detail})" if self.detail else "")
        else:
            text = f"FAIL {self.name}: {self.detail or 'failed'}"
        return f"{text} {self.figure}" if self.figure else text


@dataclass(slots=True)
class ConformanceReport:
    """Every check of one suite run, in the order they were printed."""

    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed_count(self) -> int:
        return sum(1 for check in self.checks if check.passed)

    @property
    def failed_count(self) -> int:
        return len(self.checks) - self.passed_count

    @property
    def ok(self) -> bool:
        """True when there were checks and all of them passed."""
        return bool(self.checks) and self.failed_count == 0

    def summary(self) -> str:
        return f"{self.passed_count} passed, {self.failed_count} failed"

    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def get(self, name: str) -> CheckResult:
        """The check called `name` (KeyError lists the names there are)."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check {name!r}; checks: {[c.name for c in self.checks]}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "checks": [asdict(check) for check in self.checks],
            "passed": self.passed_count,
            "failed": self.failed_count,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


def not_run(name: str, reason: str) -> CheckResult:
    """A check that needed something an earlier one could not provide."""
    return CheckResult(name, False, f"not run: {reason}")


class Recorder:
    """Appends results to the report and prints each as it is decided."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.report = ConformanceReport()
        self.out = out

    def add(self, result: CheckResult) -> None:
        self.report.checks.append(result)
        self.out(result.line())
