"""One running discovery: drives a handler's scan/watch and publishes snapshots.

Identical requests share one `DiscoveryTask`; each stream subscribes to its
`SnapshotFeed`. The task never ends on its own: handler errors are retried with
capped backoff while the last-known devices are kept for the grace period
(DESIGN runtime rules 5, 7, 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from akri_sdk.device import Device, Snapshot, encode_snapshot, is_env_name, normalise_snapshot
from akri_sdk.handler import DiscoveryContext, DiscoveryHandler
from akri_sdk.stats import HandlerStats

__all__ = ["DiscoveryTask", "SnapshotFeed"]

log = logging.getLogger("akri_sdk.discovery")


class SnapshotFeed:
    """A latest-value cell: subscribers always send the newest snapshot.

    A subscriber that is busy writing skips intermediate versions, which is how
    bursts are coalesced without adding any delay to a lone change.
    """

    def __init__(self) -> None:
        self.version = 0
        self.snapshot: Snapshot | None = None
        self.payload: bytes | None = None
        self.published_at = 0.0
        self._changed = asyncio.Event()

    def publish(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.payload = encode_snapshot(snapshot)
        self.version += 1
        self.published_at = time.monotonic()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def updates(self) -> AsyncIterator[bytes]:
        """Yield the current payload (if any), then each newer one. Never ends."""
        sent = 0
        while True:
            changed = self._changed
            if self.version != sent and self.payload is not None:
                sent = self.version
                yield self.payload
                continue
            await changed.wait()


class DiscoveryTask:
    """Runs one handler for one (details, properties) pair and feeds its streams."""

    def __init__(
        self,
        handler: DiscoveryHandler,
        ctx: DiscoveryContext[Any],
        stats: HandlerStats | None = None,
    ) -> None:
        self.handler = handler
        self.ctx = ctx
        self.stats = stats if stats is not None else HandlerStats()
        ctx.problem_sink = self
        self.feed = SnapshotFeed()
        self.subscribers = 0
        self.failures = 0
        self.last_error: str | None = None
        self._failing_since: float | None = None
        self._checked_names: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"discovery {self.ctx.key}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def publish(self, devices: Iterable[Device]) -> bool:
        """Normalise and publish `devices` if they differ from the last snapshot."""
        fresh = normalise_snapshot(devices, source=self.ctx.handler_name)
        previous = self.feed.snapshot
        before = {d.id: d for d in previous or ()}
        # A scan builds new Device objects every time; keep the previous object
        # where nothing changed so its cached encoding is reused.
        snapshot = tuple(
            kept if (kept := before.get(d.id)) is not None and (kept is d or kept == d) else d
            for d in fresh
        )
        unchanged = (
            previous is not None
            and len(snapshot) == len(previous)
            and all(a is b for a, b in zip(snapshot, previous, strict=True))
        )
        if unchanged:
            return False
        self._check_names(snapshot)
        self._log_change(before, snapshot)
        self.feed.publish(snapshot)
        return True

    def _log_change(self, before: dict[str, Device], snapshot: Snapshot) -> None:
        """One info line per change (never one per scan), with the ids involved."""
        if not self.ctx.log.isEnabledFor(logging.INFO):
            return
        after = {d.id for d in snapshot}
        added = [d.id for d in snapshot if d.id not in before]
        removed = [i for i in before if i not in after]
        updated = [d.id for d in snapshot if d.id in before and before[d.id] is not d]
        self.ctx.log.info(
            "devices now %d (+%d -%d ~%d)",
            len(snapshot),
            len(added),
            len(removed),
            len(updated),
            extra={"added": added[:20], "removed": removed[:20], "updated": updated[:20]},
        )

    def _check_names(self, snapshot: Snapshot) -> None:
        checked = self._checked_names
        for device in snapshot:
            for key in device.properties:
                if key in checked:
                    continue
                checked.add(key)
                if not is_env_name(key):
                    self.ctx.log.warning(
                        "property name %r is not a valid environment variable name; broker "
                        "pods may not see it (use akri_sdk.env_name)",
                        key,
                    )

    async def _run(self) -> None:
        if self.handler.is_event_driven():
            await self._run_watch()
        else:
            await self._run_scan()

    async def _run_scan(self) -> None:
        while True:
            started = time.monotonic()
            try:
                devices = await self.handler.scan(self.ctx)
                snapshot = list(devices)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a handler failure must never end the stream
                self.stats.observe_scan(time.monotonic() - started)
                await self._recover(error)
                continue
            self.stats.observe_scan(time.monotonic() - started)
            self._recovered()
            self.publish(snapshot)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self.handler.interval(self.ctx) - elapsed))

    async def _run_watch(self) -> None:
        while True:
            generator = self.handler.watch(self.ctx)
            try:
                async for devices in generator:
                    self._recovered()
                    self.publish(list(devices))
                error: BaseException = RuntimeError("watch() returned; restarting it")
            except asyncio.CancelledError:
                raise
            except Exception as failure:
                error = failure
            finally:
                aclose = getattr(generator, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
            await self._recover(error)

    def note_problem(self, problem: BaseException | str, kind: str | None) -> None:
        """A problem the handler reports without raising (see DiscoveryContext)."""
        if isinstance(problem, str):
            message, kind = problem, kind or "Problem"
        else:
            message, kind = f"{type(problem).__name__}: {problem}", kind or type(problem).__name__
        self.stats.discovery_errors[kind] += 1
        self.last_error = message

    def note_resolved(self) -> None:
        self.last_error = None

    def _recovered(self) -> None:
        if self.failures:
            self.ctx.log.info("discovery recovered after %d failure(s)", self.failures)
        self.failures = 0
        self.last_error = None
        self._failing_since = None

    async def _recover(self, error: BaseException) -> None:
        """Back off after a failure; drop the devices once the grace period is over."""
        now = time.monotonic()
        if self.failures == 0:
            self._failing_since = now
        self.failures += 1
        self.stats.discovery_errors[type(error).__name__] += 1
        message = f"{type(error).__name__}: {error}"
        if message != self.last_error:
            # One line per distinct error, not one per retry.
            self.ctx.log.warning(
                "discovery failed (attempt %d), retrying with backoff: %s",
                self.failures,
                message,
                exc_info=self.ctx.log.isEnabledFor(logging.DEBUG),
            )
        self.last_error = message
        delay = min(
            self.handler.retry_max, self.handler.retry_initial * 2 ** min(self.failures - 1, 30)
        )
        failing_since = self._failing_since if self._failing_since is not None else now
        drop_at = failing_since + self.handler.grace_period
        retry_at = now + delay
        if self.feed.snapshot and drop_at < retry_at:
            await asyncio.sleep(max(0.0, drop_at - now))
            self.ctx.log.warning(
                "discovery failing for %.0fs (grace period); reporting no devices",
                self.handler.grace_period,
            )
            self.publish(())
        elif self.feed.snapshot is None:
            # Streams wait for a first answer; "nothing found yet" is the honest one.
            self.publish(())
        await asyncio.sleep(max(0.0, retry_at - time.monotonic()))
