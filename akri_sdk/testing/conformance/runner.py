"""run_conformance: the two runs side by side, every check in order, then the summary."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import MappingProxyType

from akri_sdk.testing.conformance.absent import absent_agent_check, absent_result
from akri_sdk.testing.conformance.checks_registration import registration_checks
from akri_sdk.testing.conformance.checks_restarts import (
    check_restart_with_streams,
    check_restart_without_streams,
    check_timer,
)
from akri_sdk.testing.conformance.checks_sigterm import check_sigterm
from akri_sdk.testing.conformance.checks_streams import check_cancellation, stream_checks
from akri_sdk.testing.conformance.context import FirstRun, Options, PresentRun
from akri_sdk.testing.conformance.process import CannotStart, handler_process, short_directory
from akri_sdk.testing.conformance.report import CheckResult, ConformanceReport, Recorder
from akri_sdk.testing.fake_agent import FakeAgent

__all__ = ["run_conformance"]

_NO_PROPERTIES: Mapping[str, bytes | None] = MappingProxyType({})


async def _present_checks(run: PresentRun) -> None:
    """The main run's checks, in the order they are printed."""
    try:
        await registration_checks(run)
    finally:
        run.first_run.socket_name = run.socket_path.name if run.socket_path else None
        run.first_run.registered.set()
    await stream_checks(run)
    await run.guarded("no registration on a timer", partial(check_timer, run))
    await run.guarded("cancellation", partial(check_cancellation, run))
    await run.guarded(
        "re-registration after an Agent restart with open streams",
        partial(check_restart_with_streams, run),
    )
    await run.guarded(
        "re-registration after an Agent restart without open streams",
        partial(check_restart_without_streams, run),
    )
    await run.guarded("SIGTERM", partial(check_sigterm, run))


async def _run_present(options: Options, recorder: Recorder, first_run: FirstRun) -> None:
    try:
        with short_directory() as directory:
            async with (
                FakeAgent(directory) as agent,
                handler_process(
                    options.command, directory, options.env, options.show_output
                ) as process,
            ):
                run = PresentRun(options, recorder, directory, agent, process, first_run)
                await _present_checks(run)
    finally:
        # Never leave the other run waiting.
        first_run.registered.set()
        first_run.finished.set()


async def run_conformance(
    command: Sequence[str],
    *,
    details: str,
    properties: Mapping[str, bytes | None] = _NO_PROPERTIES,
    name: str | None = None,
    observe: float = 2.0,
    timeout: float = 10.0,  # noqa: ASYNC109 - a bound for each wait, not for the whole run
    headers_within: float = 1.0,
    streams: int = 20,
    env: Mapping[str, str] | None = None,
    show_output: bool = False,
    out: Callable[[str], None] = print,
) -> ConformanceReport:
    """Run the suite against `command` and return every check's result.

    `details` and `properties` are what the Agent sends in good requests; `name`
    is the expected handler name; `observe` is the length of each window in
    which nothing may happen; `timeout` bounds each wait for something that
    must happen; `headers_within` bounds the response headers; `streams` is
    how many concurrent streams to open; `env` is added to the handler's
    environment; `show_output` sends the handler's output to stderr (otherwise
    its tail is quoted when it dies). Each check's line goes to `out` as it is
    decided, then the `N passed, N failed` summary. Every process, directory
    and socket the run made is gone when this returns, also on error or
    cancellation. Raises ValueError for unusable arguments.
    """
    options = Options(
        command=tuple(command),
        details=details,
        properties=dict(properties),
        name=name,
        observe=observe,
        timeout=timeout,
        headers_within=headers_within,
        streams=streams,
        env=dict(env or {}),
        show_output=show_output,
    )
    recorder = Recorder(out)
    first_run = FirstRun()
    present = asyncio.create_task(_run_present(options, recorder, first_run))
    # The Agent-absent run goes alongside; it starts its Agent after the main
    # run registered, so both handler processes start up at the same time.
    absent = asyncio.create_task(absent_agent_check(options, first_run))
    try:
        try:
            await present
        except CannotStart as error:
            absent.cancel()
            recorder.add(CheckResult("handler starts", False, str(error)))
        else:
            recorder.add(await absent_result(absent))
    finally:
        # On error or cancellation: each run's own cleanup stops its process and Agent.
        present.cancel()
        absent.cancel()
        await asyncio.gather(present, absent, return_exceptions=True)
    out(recorder.report.summary())
    return recorder.report
