"""SIGTERM: exit 0 promptly and take the socket along (Kubernetes stops pods with it)."""

from __future__ import annotations

from akri_sdk.testing.conformance.context import PresentRun
from akri_sdk.testing.conformance.process import exists
from akri_sdk.testing.conformance.report import CheckResult
from akri_sdk.testing.conformance.text import ms

__all__ = ["check_sigterm"]


async def check_sigterm(run: PresentRun) -> CheckResult:
    name = "SIGTERM"
    process = run.process
    if process.returncode is not None:
        return CheckResult(
            name, False, f"the handler had already {process.how_it_ended()} before SIGTERM"
        )
    code, elapsed = await process.terminate(run.options.timeout)
    figure = ms(elapsed)
    if code is None:
        return CheckResult(
            name,
            False,
            f"still running {run.options.timeout:g} s after SIGTERM (killed): stop "
            "serving, remove the socket and exit 0 promptly",
            figure,
        )
    problems = []
    if code != 0:
        how = f"died of signal {-code}" if code < 0 else f"exited with status {code}"
        problems.append(
            f"{how} on SIGTERM: handle SIGTERM and exit 0 (Kubernetes stops pods with it)"
        )
    if run.socket_path is not None and exists(run.socket_path):
        problems.append(
            f"left its socket {run.socket_path.name} behind: remove it on exit so a "
            "restarted handler does not meet a stale socket"
        )
    if problems:
        return CheckResult(name, False, "; ".join(problems), figure)
    removed = ", socket removed" if run.socket_path is not None else ""
    return CheckResult(name, True, f"exit 0{removed}", figure)
