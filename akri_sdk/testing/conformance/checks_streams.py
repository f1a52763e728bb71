"""Discover streams: prompt headers, snapshots, concurrency, only-on-change, staying open,
serving after bad details and after cancellation (spec §3.3-§3.7)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

import grpc

from akri_sdk.device import Device, is_env_name
from akri_sdk.testing.conformance.checks_hostile import hostile_checks
from akri_sdk.testing.conformance.context import PresentRun
from akri_sdk.testing.conformance.report import CheckResult, not_run
from akri_sdk.testing.conformance.text import (
    describe_devices,
    excerpt,
    ms,
    seconds,
    status_name,
    stream_state,
)
from akri_sdk.testing.fake_agent import DiscoverStream

__all__ = ["check_cancellation", "stream_checks"]

# Recorded as not run when there is no endpoint to call.
_NEEDS_AN_ENDPOINT = (
    "response headers",
    "first snapshot",
    "INVALID_ARGUMENT for hostile details",
    "serves after bad details",
    "concurrent streams",
    "sends only on change",
    "stream stays open",
)


def _canonical(devices: Sequence[Device]) -> tuple[bytes, ...]:
    """A snapshot's identity, independent of device order."""
    return tuple(sorted(device.wire() for device in devices))


def _judge_devices(devices: Sequence[Device]) -> tuple[str, str]:
    """(problem, note) for one snapshot's devices, as the Agent will use them (§3.6, §3.7)."""
    ids = [device.id for device in devices]
    if not all(ids):
        return "a device has an empty id: ids name Instances and must be stable", ""
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        return (
            f"duplicate device ids {duplicates[:3]}: the Agent collapses them into one "
            "Instance; each message must list each device once",
            "",
        )
    bad_names = sorted({k for device in devices for k in device.properties if not is_env_name(k)})
    if bad_names:
        return "", (
            f"; note: property names {bad_names[:3]} are not valid environment variable names, "
            "which broker pods need"
        )
    return "", ""


async def stream_checks(run: PresentRun) -> None:
    """Record every Discover check but cancellation, in order (not run without an endpoint)."""
    if run.endpoint is None:
        reason = "no endpoint to call (the handler did not register)"
        for name in _NEEDS_AN_ENDPOINT:
            run.record(not_run(name, reason))
        return
    await run.guarded("response headers", lambda: _check_headers(run))
    if run.main is not None and not run.main_refused:
        await run.guarded("first snapshot", lambda: _check_first_snapshot(run))
    else:
        run.record(not_run("first snapshot", "the stream did not open"))
    await hostile_checks(run)
    await run.guarded("serves after bad details", lambda: _check_serves_after_bad_details(run))
    await run.guarded("concurrent streams", lambda: _check_concurrent(run))
    await _check_observation_window(run)


async def _check_headers(run: PresentRun) -> CheckResult:
    name = "response headers"
    options = run.options
    stream = run.main = run.discover()
    await run.wait(lambda: stream.headers_at is not None or stream.ended, options.timeout)
    if stream.headers_at is None:
        if stream.ended:
            run.main_refused = True
            return CheckResult(
                name,
                False,
                f"the handler refused the details under test with "
                f"{status_name(stream.code)}: {excerpt(stream.message)!r}; check --details",
            )
        return CheckResult(
            name,
            False,
            run.with_exit(
                f"no response headers within {options.timeout:g} s: the Agent awaits "
                "them inside its reconcile; return the stream at once and discover "
                "asynchronously"
            ),
        )
    latency = stream.headers_at - stream.opened_at
    figure = ms(latency)
    if latency > options.headers_within:
        return CheckResult(
            name,
            False,
            f"response headers took longer than {options.headers_within:g} s: the "
            "Agent awaits them inside its reconcile; send headers at once and discover "
            "asynchronously",
            figure,
        )
    bound = f"within the {options.headers_within:g} s bound"
    return CheckResult(name, True, bound + run.via, figure)


async def _check_first_snapshot(run: PresentRun) -> CheckResult:
    name = "first snapshot"
    stream = run.main
    assert stream is not None
    if not await run.first_snapshot(stream):
        if stream.ended:
            return CheckResult(
                name,
                False,
                f"the stream ended with {status_name(stream.code)} "
                f"({excerpt(stream.message)!r}) before any DiscoverResponse",
            )
        return CheckResult(
            name,
            False,
            run.with_exit(
                f"no DiscoverResponse within {run.options.timeout:g} s with the details "
                "under test: send the complete device set as soon as it is known"
            ),
        )
    first = stream.snapshots[0]
    figure = ms(first.at - stream.opened_at)
    problem, note = _judge_devices(first.devices)
    if problem:
        return CheckResult(name, False, problem, figure)
    return CheckResult(name, True, describe_devices(first.devices) + note, figure)


async def _new_stream_serves(
    run: PresentRun, name: str, passed: str, failed: str, advice: str
) -> CheckResult:
    """A new stream with the good details must get a snapshot.

    Passed: `<passed> got N devices`; failed: `<failed> got no snapshot within
    T s (<state>): <advice>`.
    """
    stream = run.discover()
    if await run.first_snapshot(stream):
        first = stream.snapshots[0]
        return CheckResult(
            name,
            True,
            f"{passed} got {describe_devices(first.devices)}",
            ms(first.at - stream.opened_at),
        )
    return CheckResult(
        name,
        False,
        run.with_exit(
            f"{failed} got no snapshot within {run.options.timeout:g} s "
            f"({stream_state(stream)}): {advice}"
        ),
    )


async def _check_serves_after_bad_details(run: PresentRun) -> CheckResult:
    return await _new_stream_serves(
        run,
        "serves after bad details",
        "a good request",
        "a good request after the hostile ones",
        "bad details must never harm the handler",
    )


async def check_cancellation(run: PresentRun) -> CheckResult:
    """Cancel every open stream; a new one must still be served."""
    name = "cancellation"
    if run.endpoint is None:
        return not_run(name, "no endpoint to call")
    streams = [s for s in run.opened if not s.ended]
    await asyncio.gather(*(s.cancel() for s in streams))
    return await _new_stream_serves(
        run,
        name,
        f"{len(streams)} open streams cancelled; a new stream",
        f"after {len(streams)} streams were cancelled a new stream",
        "free a cancelled stream's resources and keep serving",
    )


def _reference_snapshots(run: PresentRun) -> set[tuple[bytes, ...]]:
    return {
        _canonical(snapshot.devices)
        for stream in run.opened
        if stream.request.discovery_details == run.options.details
        for snapshot in stream.snapshots
    }


async def _check_concurrent(run: PresentRun) -> CheckResult:
    name = "concurrent streams"
    count = run.options.streams
    reference = _reference_snapshots(run)
    streams = [run.discover() for _ in range(count)]
    await run.wait(lambda: all(s.snapshots or s.ended for s in streams), run.options.timeout)
    missing = [s for s in streams if not s.snapshots]
    if missing:
        ended = sum(1 for s in missing if s.ended)
        return CheckResult(
            name,
            False,
            run.with_exit(
                f"{len(missing)} of {count} identical streams got no snapshot within "
                f"{run.options.timeout:g} s ({ended} ended): serve every stream; the Agent "
                "opens one per Configuration and registration"
            ),
        )
    slowest = max(s.snapshots[0].at - s.opened_at for s in streams)
    if reference:
        differing = [s for s in streams if _canonical(s.snapshots[0].devices) not in reference]
        if differing:
            return CheckResult(
                name,
                False,
                f"{len(differing)} of {count} streams started with a device set no other "
                f"stream had ({describe_devices(differing[0].snapshots[0].devices)}): "
                "every stream's first message must be the complete current set",
                ms(slowest),
            )
    devices = streams[0].snapshots[0].devices
    return CheckResult(
        name, True, f"{count} streams, each got {describe_devices(devices)}", ms(slowest)
    )


async def _check_observation_window(run: PresentRun) -> None:
    """Only on change and never ending, judged over the main stream's life so far."""
    stream = run.main
    if stream is None or run.main_refused or not stream.snapshots:
        reason = "the first stream got no snapshot"
        run.record(not_run("sends only on change", reason))
        run.record(not_run("stream stays open", reason))
        return
    start = stream.snapshots[0].at
    remaining = start + run.options.observe - time.monotonic()
    if remaining > 0 and not stream.ended:
        # Legitimately timed: the point is that nothing happens.
        await run.wait(lambda: stream.ended, remaining)
    end = stream.ended_at if stream.ended_at is not None else time.monotonic()
    window = end - start
    await run.guarded("sends only on change", lambda: _judge_changes(stream, window))
    await run.guarded("stream stays open", lambda: _judge_open(run, stream, window))


async def _judge_changes(stream: DiscoverStream, window: float) -> CheckResult:
    snapshots = list(stream.snapshots)
    repeats = [
        later
        for earlier, later in itertools.pairwise(snapshots)
        if _canonical(earlier.devices) == _canonical(later.devices)
    ]
    figure = f"{len(snapshots)} snapshot(s) in {seconds(window)}"
    if repeats:
        gap = (snapshots[-1].at - snapshots[0].at) / max(1, len(snapshots) - 1)
        return CheckResult(
            "sends only on change",
            False,
            f"sent an unchanged device set again {len(repeats)} time(s) (about every "
            f"{ms(gap)}): send only when the set changes; every message makes the Agent "
            "reconcile the Configuration",
            figure,
        )
    return CheckResult("sends only on change", True, "no repeated device set", figure)


async def _judge_open(run: PresentRun, stream: DiscoverStream, window: float) -> CheckResult:
    if stream.ended:
        after = (stream.ended_at or 0.0) - stream.opened_at
        how = (
            "ended its stream"
            if stream.code == grpc.StatusCode.OK
            else f"ended its stream with {status_name(stream.code)} ({excerpt(stream.message)!r})"
        )
        return CheckResult(
            "stream stays open",
            False,
            run.with_exit(
                f"{how} {ms(after)} after it opened, after {len(stream.snapshots)} "
                "snapshot(s), which makes the Agent delete the Configuration's Instances; "
                "keep every stream open until the Agent cancels it"
            ),
        )
    return CheckResult("stream stays open", True, f"open for {seconds(window)}")
