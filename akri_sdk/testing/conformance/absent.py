"""The Agent-absent run: a second handler process starts before its Agent does and
must keep looking for it, then register."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from akri_sdk.testing.conformance.checks_registration import (
    await_registration,
    rejection_reasons,
)
from akri_sdk.testing.conformance.context import POLL, FirstRun, Options
from akri_sdk.testing.conformance.process import (
    HandlerProcess,
    exists,
    handler_process,
    short_directory,
)
from akri_sdk.testing.conformance.report import CheckResult
from akri_sdk.testing.conformance.text import ms, with_note
from akri_sdk.testing.fake_agent import FakeAgent

__all__ = ["NAME", "absent_agent_check", "absent_result"]

NAME = "registration when the Agent starts after the handler"
# After the handler's socket appears and before its Agent starts, so the
# handler has looked for the Agent at least once and found nothing.
_ABSENT_HEAD_START = 0.3


async def _head_start(
    options: Options, first_run: FirstRun, directory: Path, process: HandlerProcess
) -> None:
    """Let the handler come up and look for its Agent before the Agent starts.

    With a UDS endpoint, wait for the handler's socket (it is serving); without
    one, for as long as the main run took to register, plus a margin.
    """
    await first_run.registered.wait()
    if first_run.socket_name is None:
        await asyncio.sleep((first_run.latency or 0.0) + _ABSENT_HEAD_START)
        return
    wanted = directory / first_run.socket_name
    deadline = time.monotonic() + options.timeout
    while not exists(wanted) and process.returncode is None:
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL)
    await asyncio.sleep(_ABSENT_HEAD_START)  # legitimately timed: the Agent is absent


async def absent_agent_check(options: Options, first_run: FirstRun) -> CheckResult:
    """Start the handler before its Agent: it must keep trying and register."""
    if "POD_IP" in {**os.environ, **options.env}:
        # A network endpoint's port cannot be served twice at once.
        await first_run.finished.wait()
    with short_directory() as directory:
        agent = FakeAgent(directory)
        async with handler_process(
            options.command, directory, options.env, options.show_output
        ) as process:
            try:
                await _head_start(options, first_run, directory, process)
                if process.returncode is not None:
                    return CheckResult(
                        NAME,
                        False,
                        f"the handler {process.how_it_ended()} while no Agent was there: keep "
                        "retrying until the Agent appears",
                    )
                await agent.start()
                started = time.monotonic()
                await await_registration(agent, process, options.timeout)
                if agent.registrations:
                    delay = agent.registrations[0].at - started
                    return CheckResult(NAME, True, "kept looking for the Agent", ms(delay))
                if agent.rejected:
                    return CheckResult(
                        NAME,
                        False,
                        "the Agent rejected every attempt: " + rejection_reasons(agent.rejected, 2),
                    )
                detail = (
                    f"no registration within {options.timeout:g} s of the Agent starting: retry "
                    "with capped backoff until the Agent's socket appears"
                )
                return CheckResult(NAME, False, with_note(detail, process.exit_note()))
            finally:
                with contextlib.suppress(Exception):
                    await process.terminate(min(options.timeout, 5.0))
                await agent.stop()


async def absent_result(task: asyncio.Task[CheckResult]) -> CheckResult:
    """The absent-Agent check's result; an unexpected error fails it."""
    try:
        return await task
    except Exception as error:
        return CheckResult(NAME, False, f"the check broke: {type(error).__name__}: {error}")
