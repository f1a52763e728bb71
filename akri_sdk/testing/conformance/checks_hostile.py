"""INVALID_ARGUMENT for hostile details: a trailers-only refusal, nothing else (spec §3.3).

Over a unix socket the reply is read frame by frame (`raw_discover`), so a
refusal sent after response headers is told apart from a trailers-only one;
over TCP only the status is seen.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from akri_sdk.testing.conformance.context import PresentRun
from akri_sdk.testing.conformance.hostile import HostileCase, hostile_cases
from akri_sdk.testing.conformance.report import CheckResult
from akri_sdk.testing.conformance.text import excerpt, ms
from akri_sdk.testing.fake_agent import discover_request
from akri_sdk.testing.raw_discover import RawReply, raw_discover

__all__ = ["Reply", "hostile_checks", "judge_refusal"]

_INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
_STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
_SIZE_LIMIT_ADVICE = (
    "that is gRPC's message size limit: raise the server's maximum receive message size above "
    "5 MB and refuse oversized details with INVALID_ARGUMENT yourself"
)
_ADVICE = {
    "UNKNOWN": "an exception escaped the Discover method; catch bad details and abort "
    "with INVALID_ARGUMENT",
    "INTERNAL": "bad details are the caller's error: abort with INVALID_ARGUMENT",
    "RESOURCE_EXHAUSTED": _SIZE_LIMIT_ADVICE,
    "OUT_OF_RANGE": _SIZE_LIMIT_ADVICE,
    "OK": "ending the call with OK tells the Agent nothing; abort with INVALID_ARGUMENT",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """How a handler answered one Discover call, as far as the wire shows it."""

    status: int | None = None
    message: str | None = None
    headers_first: bool = False  # response headers came before any status
    snapshots: int = 0
    frames_seen: bool = True  # False over TCP, where grpcio hides the frames
    reset: int | None = None
    timed_out: bool = False


def _raw_reply(raw: RawReply) -> Reply:
    return Reply(
        status=raw.status,
        message=raw.status_message,
        headers_first=bool(raw.header_blocks) and not raw.trailers_only,
        snapshots=len(raw.messages),
        reset=raw.reset_code,
    )


def _status_advice(status: int) -> str:
    name = _STATUS_NAMES.get(status, str(status))
    advice = _ADVICE.get(name, "abort with INVALID_ARGUMENT")
    return (
        f"answered {name} instead of INVALID_ARGUMENT: {advice} (the Agent treats any other "
        "status as a temporary handler failure)"
    )


def judge_refusal(reply: Reply, waited: float) -> tuple[bool, str]:
    """INVALID_ARGUMENT as the call's first and only reply, or what to fix."""
    if reply.timed_out:
        return False, (
            f"no answer within {waited:g} s (a stream left open without devices, or the handler "
            "hangs on this input): refuse it with INVALID_ARGUMENT at once"
        )
    if reply.reset is not None:
        return False, f"reset the HTTP/2 stream (error code {reply.reset}) instead of answering"
    if reply.status is None:
        if reply.snapshots:
            return False, (
                "accepted the details, opened a stream and sent devices: refuse them with "
                "INVALID_ARGUMENT before sending response headers"
            )
        return False, "closed the call without a gRPC status"
    if reply.status != _INVALID_ARGUMENT:
        return False, _status_advice(reply.status)
    if reply.headers_first:
        return False, (
            "answered INVALID_ARGUMENT after response headers: the Agent reads that as a stream "
            "that ended, not a refused call; fail before sending headers (a trailers-only reply)"
        )
    form = "trailers-only" if reply.frames_seen else "status only: frames not visible over TCP"
    message = excerpt(reply.message, 80)
    return True, f"{form}, {message!r}" if message else f"{form}, no message"


async def _hostile_reply(run: PresentRun, details: str) -> Reply:
    timeout = run.options.timeout
    if run.socket_path is not None:
        request = discover_request(details, run.options.properties)
        try:
            raw = await raw_discover(run.socket_path, request, timeout=timeout)
        except TimeoutError:
            return Reply(timed_out=True)
        return _raw_reply(raw)
    # A network endpoint: raw_discover speaks only over a unix socket, and
    # grpcio cannot tell a trailers-only reply from headers then trailers.
    stream = run.discover(details)
    await run.wait(lambda: bool(stream.snapshots) or stream.ended, timeout)
    ended, snapshots, code = stream.ended, len(stream.snapshots), stream.code
    reply = Reply(
        status=None if code is None else code.value[0],
        message=stream.message,
        headers_first=bool(snapshots),
        snapshots=snapshots,
        timed_out=not ended and not snapshots,
        frames_seen=False,
    )
    await stream.cancel()
    return reply


def _hostile_check(run: PresentRun, case: HostileCase) -> Callable[[], Awaitable[CheckResult]]:
    async def check() -> CheckResult:
        started = time.monotonic()
        reply = await _hostile_reply(run, case.details)
        figure = ms(time.monotonic() - started)
        passed, detail = judge_refusal(reply, run.options.timeout)
        detail = detail if passed else run.with_exit(detail)
        return CheckResult(f"INVALID_ARGUMENT for {case.label}", passed, detail, figure)

    return check


async def hostile_checks(run: PresentRun) -> None:
    """Record `INVALID_ARGUMENT for ...`, one check per hostile case."""
    for case in hostile_cases(run.options.details):
        await run.guarded(f"INVALID_ARGUMENT for {case.label}", _hostile_check(run, case))
