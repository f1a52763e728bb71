"""Registrations over time: once per Agent start, never on a timer, again after every
Agent restart, with or without open streams (spec §2.2, §2.6; akri#558)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from akri_sdk.testing.conformance.checks_registration import await_registration
from akri_sdk.testing.conformance.context import PresentRun
from akri_sdk.testing.conformance.report import CheckResult, not_run
from akri_sdk.testing.conformance.text import describe_devices, ms, seconds
from akri_sdk.testing.fake_agent import REGISTRATION_SOCKET_NAME, Registration

__all__ = ["check_restart_with_streams", "check_restart_without_streams", "check_timer"]

# Between dropping every stream and restarting the Agent: handlers that
# re-register when a stream closes (the Rust built-ins) do it in this time.
_SETTLE = 0.5
_CONFIGURATION = "conformance"


async def check_timer(run: PresentRun) -> CheckResult:
    name = "no registration on a timer"
    if run.registration is None:
        return not_run(name, "the handler never registered")
    registrations = list(run.agent.registrations)
    window = time.monotonic() - registrations[0].at
    figure = f"over {seconds(window)}"
    if len(registrations) > 1:
        interval = (registrations[-1].at - registrations[0].at) / (len(registrations) - 1)
        return CheckResult(
            name,
            False,
            f"registered {len(registrations)} times in {seconds(window)} without an Agent "
            f"restart (about every {ms(interval)}): register once per Agent start (when "
            f"{REGISTRATION_SOCKET_NAME} is recreated), never on a timer; the current Agent "
            "opens one more Discover stream per registration",
        )
    return CheckResult(name, True, "registered once", figure)


async def _restart_and_count(run: PresentRun) -> tuple[Registration | None, float, int]:
    """Restart the Agent; (first new registration, its delay, registrations seen)."""
    agent = run.agent
    restarted = time.monotonic()
    await agent.restart()
    await await_registration(agent, run.process, run.options.timeout)
    if not agent.registrations:
        return None, 0.0, 0
    first = agent.registrations[0]
    # Legitimately timed: no further registration may come.
    await asyncio.sleep(run.options.observe)
    return first, first.at - restarted, len(agent.registrations)


def _judge_reregistration(
    run: PresentRun, name: str, first: Registration | None, delay: float, count: int, how: str
) -> CheckResult | None:
    """The failure when there was not exactly one registration after the restart."""
    if first is None:
        return CheckResult(
            name,
            False,
            run.with_exit(
                f"did not register again within {run.options.timeout:g} s after the Agent "
                f"restarted {how}: the new Agent knows nothing of it; register again when "
                f"{REGISTRATION_SOCKET_NAME} is recreated (watch its inode and ctime)"
            ),
        )
    if count > 1:
        return CheckResult(
            name,
            False,
            f"registered {count} times within {seconds(delay + run.options.observe)} of "
            "one Agent restart: register exactly once per restart; the current Agent opens "
            "one more Discover stream per registration",
            ms(delay),
        )
    return None


async def check_restart_with_streams(run: PresentRun) -> CheckResult:
    name = "re-registration after an Agent restart with open streams"
    registration = run.registration
    if registration is None:
        return not_run(name, "the handler never registered")
    agent, options = run.agent, run.options
    opened = agent.add_configuration(
        _CONFIGURATION, registration.name, options.details, options.properties
    )
    await run.wait(lambda: all(s.snapshots or s.ended for s in opened), options.timeout)
    first, delay, count = await _restart_and_count(run)
    failed = _judge_reregistration(run, name, first, delay, count, "(streams were open)")
    if failed is not None:
        return failed
    # The registration reopens the Configuration's stream (spec §3.1).
    reopened = agent.streams(_CONFIGURATION)
    await run.wait(lambda: any(s.snapshots or s.ended for s in reopened), options.timeout)
    if not any(s.snapshots for s in reopened):
        return CheckResult(
            name,
            False,
            run.with_exit(
                "registered again, but the Configuration's new stream got no snapshot "
                f"within {options.timeout:g} s"
            ),
            ms(delay),
        )
    devices = next(s for s in reopened if s.snapshots).snapshots[0].devices
    return CheckResult(
        name,
        True,
        f"once; the Configuration's new stream got {describe_devices(devices)}",
        ms(delay),
    )


async def check_restart_without_streams(run: PresentRun) -> CheckResult:
    name = "re-registration after an Agent restart without open streams"
    if run.registration is None:
        return not_run(name, "the handler never registered")
    with contextlib.suppress(KeyError):
        await run.agent.remove_configuration(_CONFIGURATION)
    await asyncio.gather(*(s.cancel() for s in run.opened if not s.ended))
    # Legitimately timed: let stream-closed reactions finish before the restart.
    await asyncio.sleep(_SETTLE)
    first, delay, count = await _restart_and_count(run)
    failed = _judge_reregistration(
        run, name, first, delay, count, "while no stream was open (akri#558)"
    )
    if failed is not None:
        return failed
    return CheckResult(name, True, "once", ms(delay))
