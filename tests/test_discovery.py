"""DiscoveryTask publishing and SnapshotFeed coalescing, without sockets."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from akri_sdk.credentials import DiscoveryProperties
from akri_sdk.device import Device, decode_snapshot
from akri_sdk.discovery import DiscoveryTask, SnapshotFeed
from akri_sdk.handler import DiscoveryContext, DiscoveryHandler


class Noop(DiscoveryHandler):
    name = "noop"

    async def scan(self, ctx: DiscoveryContext[Any]) -> list[Device]:
        return []


def make_task() -> DiscoveryTask:
    ctx: DiscoveryContext[Any] = DiscoveryContext(
        handler_name="noop",
        details=None,
        properties=DiscoveryProperties({}),
        raw_details="",
        key="k",
        log=logging.LoggerAdapter(logging.getLogger("test"), {}),
    )
    return DiscoveryTask(Noop(), ctx)


async def test_publish_sends_only_changes_and_keeps_unchanged_objects() -> None:
    task = make_task()
    first = [Device("a", {"V": "1"}), Device("b")]
    assert task.publish(first)
    assert not task.publish([Device("b"), Device("a", {"V": "1"})])  # rebuilt, same set
    assert task.feed.version == 1
    assert task.publish([Device("a", {"V": "2"}), Device("b")])
    snapshot = task.feed.snapshot
    assert snapshot is not None
    assert snapshot[1] is first[1]  # unchanged device: same object, cached encoding reused
    assert snapshot[0].properties["V"] == "2"
    assert task.feed.payload is not None
    assert decode_snapshot(task.feed.payload) == snapshot


async def test_invalid_property_name_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    task = make_task()
    task.publish([Device("a", {"bad-name": "1"})])
    task.publish([Device("a", {"bad-name": "2"})])
    assert caplog.text.count("'bad-name' is not a valid environment variable name") == 1


async def test_feed_coalesces_for_a_busy_subscriber() -> None:
    feed = SnapshotFeed()
    updates = feed.updates()
    feed.publish((Device("1"),))
    assert decode_snapshot(await anext(updates)) == (Device("1"),)
    # While the subscriber is busy (not awaiting), three versions arrive...
    for name in ("2", "3", "4"):
        feed.publish((Device(name),))
    # ...and it is handed only the newest one.
    assert decode_snapshot(await anext(updates)) == (Device("4"),)
    pending = asyncio.ensure_future(anext(updates))
    await asyncio.sleep(0)
    assert not pending.done()  # nothing newer: it waits
    feed.publish(())
    assert decode_snapshot(await pending) == ()
    await updates.aclose()


async def test_problems_reported_without_raising_are_counted_and_cleared() -> None:
    task = make_task()
    task.ctx.report_problem(ConnectionError("broker gone"))
    task.ctx.report_problem("still gone", kind="Broker")
    assert task.stats.discovery_errors == {"ConnectionError": 1, "Broker": 1}
    assert task.last_error == "still gone"
    task.ctx.problem_resolved()
    assert task.last_error is None
    assert "broker gone" not in repr(task.ctx)
