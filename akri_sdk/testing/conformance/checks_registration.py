"""The first registration: that it comes, its :authority and its fields (spec §2).

Without an accepted registration, Discover is still judged through the
handler's socket when the directory holds exactly one.
"""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from akri_sdk.testing.conformance.context import POLL, PresentRun
from akri_sdk.testing.conformance.process import HandlerProcess, sockets_in
from akri_sdk.testing.conformance.report import CheckResult, not_run
from akri_sdk.testing.conformance.text import ms
from akri_sdk.testing.fake_agent import (
    REGISTRATION_SOCKET_NAME,
    UDS,
    FakeAgent,
    Registration,
    RejectedCall,
)

__all__ = ["await_registration", "registration_checks", "rejection_reasons"]

_ENDPOINT_TYPES = {0: "UDS", 1: "NETWORK"}
# After a rejected registration, how long a good one may still take to come.
_REJECTION_GRACE = 1.0


async def await_registration(
    agent: FakeAgent,
    process: HandlerProcess,
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Until a registration, a rejected one plus a short grace, the handler's exit or timeout."""
    rejected_before = len(agent.rejected)
    deadline = time.monotonic() + timeout
    grace_started = False
    while not agent.registrations and process.returncode is None:
        now = time.monotonic()
        if not grace_started and len(agent.rejected) > rejected_before:
            grace_started = True
            deadline = min(deadline, now + _REJECTION_GRACE)
        if now >= deadline:
            return
        await asyncio.sleep(POLL)


def rejection_reasons(rejected: Sequence[RejectedCall], limit: int) -> str:
    """The first `limit` distinct reasons the Agent gave, in order, joined by `; `."""
    return "; ".join(sorted({call.reason for call in rejected})[:limit])


async def registration_checks(run: PresentRun) -> None:
    """Record `registration`, `registration authority` and `registration fields`."""
    agent = run.agent
    rejected_before = len(agent.rejected)
    await await_registration(agent, run.process, run.options.timeout)
    rejected = agent.rejected[rejected_before:]
    if agent.registrations:
        registration = agent.registrations[0]
        run.registration = registration
        run.endpoint = registration
        latency = registration.at - run.process.started_at
        run.first_run.latency = latency
        run.record(
            CheckResult(
                "registration",
                True,
                "the Agent was up before the handler started",
                ms(latency),
            )
        )
    else:
        run.record(CheckResult("registration", False, _no_registration(run, rejected)))
    run.record(_authority_result(run.registration, rejected))
    if run.registration is not None:
        run.record(_fields_result(run, run.registration))
        if run.registration.endpoint_type == UDS:
            run.socket_path = Path(run.registration.endpoint)
    else:
        run.record(_fields_or_rejection(rejected))
        _fall_back_to_socket(run)


def _no_registration(run: PresentRun, rejected: Sequence[RejectedCall]) -> str:
    if rejected:
        shown = rejection_reasons(rejected, 3)
        return f"the Agent rejected all {len(rejected)} registration attempt(s): {shown}"
    process = run.process
    if process.returncode is not None:
        run.exit_reported = True
        tail = process.output_tail()
        how = f"the handler {process.how_it_ended()} before registering"
        return how + (f"; its last output: {tail}" if tail else "")
    return (
        f"no RegisterDiscoveryHandler call within {run.options.timeout:g} s; register on "
        f"$DISCOVERY_HANDLERS_DIRECTORY/{REGISTRATION_SOCKET_NAME} once serving"
    )


def _authority_result(
    registration: Registration | None, rejected: Sequence[RejectedCall]
) -> CheckResult:
    name = "registration authority"
    bad = [call for call in rejected if call.reason.startswith("malformed :authority")]
    if bad:
        call = bad[0]
        error = call.reason.removeprefix("malformed :authority").strip(" ()")
        return CheckResult(
            name,
            False,
            f"the Agent resets registrations whose :authority is {call.authority!r} "
            f"({error} in the Rust http crate); grpcio >= 1.57 sends the percent-encoded "
            "socket path for unix: targets: create the registration channel with "
            '("grpc.default_authority", "localhost")',
        )
    if registration is None:
        return not_run(name, "no registration call reached the Agent")
    return CheckResult(name, True, f":authority {registration.authority!r}")


def _fields_or_rejection(rejected: Sequence[RejectedCall]) -> CheckResult:
    for call in rejected:
        if call.reason.startswith("endpoint_type"):
            return CheckResult(
                "registration fields",
                False,
                f"{call.reason}: the Agent's handler task panics on it; send 0 (UDS) or 1",
            )
    return not_run("registration fields", "no accepted registration")


def _fields_result(run: PresentRun, registration: Registration) -> CheckResult:
    problems: list[str] = []
    expected = run.options.name
    if not registration.name:
        problems.append("name is empty: it must equal Configurations' discoveryHandler.name")
    elif expected is not None and registration.name != expected:
        problems.append(f"name is {registration.name!r}, expected {expected!r}")
    note = ""
    if registration.endpoint_type == UDS:
        problem, note = _check_uds_endpoint(run.directory, registration.endpoint)
    else:
        problem = _check_network_endpoint(registration.endpoint)
    if problem:
        problems.append(problem)
    if problems:
        return CheckResult("registration fields", False, "; ".join(problems))
    endpoint = registration.endpoint
    if registration.endpoint_type == UDS:
        endpoint = Path(endpoint).name
    detail = (
        f"name={registration.name}, endpoint={endpoint}, "
        f"endpoint_type={_ENDPOINT_TYPES[registration.endpoint_type]}, "
        f"shared={str(registration.shared).lower()}"
    )
    return CheckResult("registration fields", True, detail + note)


def _check_uds_endpoint(directory: Path, endpoint: str) -> tuple[str, str]:
    """(problem, note) for a UDS endpoint: a socket inside the shared directory."""
    path = Path(endpoint)
    if not path.is_absolute():
        return f"UDS endpoint {endpoint!r} is not an absolute path", ""
    if path.parent.resolve() != directory.resolve():
        return (
            f"UDS endpoint {endpoint!r} is not in $DISCOVERY_HANDLERS_DIRECTORY "
            f"({directory}), the directory the Agent shares with handlers",
            "",
        )
    try:
        info = path.stat()
    except OSError:
        return f"UDS endpoint {endpoint!r} does not exist", ""
    if not stat.S_ISSOCK(info.st_mode):
        return f"UDS endpoint {endpoint!r} is not a socket", ""
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o666 != 0o666:
        return "", (
            f"; note: socket mode {mode:o}: an Agent without CAP_DAC_OVERRIDE under another "
            "uid cannot connect; chmod 0666 after binding"
        )
    return "", ""


def _check_network_endpoint(endpoint: str) -> str:
    url = urlsplit(endpoint)
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme != "http" or not url.hostname or port is None:
        return f"NETWORK endpoint {endpoint!r} is not an http://host:port URL"
    return ""


def _fall_back_to_socket(run: PresentRun) -> None:
    """Judge Discover anyway through the handler's socket, if it has exactly one."""
    sockets = sockets_in(run.directory)
    if run.options.name is not None:
        named = run.directory / f"{run.options.name}.sock"
        sockets = [named] if named in sockets else sockets
    if len(sockets) == 1:
        run.socket_path = sockets[0]
        run.endpoint = str(sockets[0])
        run.via = f"; called through {sockets[0].name}, found in the directory"
