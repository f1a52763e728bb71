"""Presence tracking: which devices count as "here" right now.

Protocol plugins see devices intermittently (an MQTT message, a WS-Discovery reply, a
poll that happens to time out), but the Agent deletes an Instance as soon as a
device leaves the snapshot (spec §3.5). A PresenceTracker turns raw sightings into a
stable reported set: a silence TTL and/or a number of missed scans before a device
is dropped, optional flap damping before it appears, explicit removal, and the time
of the next expiry so an event-driven handler can sleep until exactly then.

Time model: `now` arguments default to the tracker's clock and never go backwards (an
earlier `now` than one already used is treated as the latest time used). An entry
last seen at `t` expires once `now >= t + ttl`: silence of exactly `ttl` seconds
drops it, so waking at `next_expiry()` and calling `expire()` always makes progress.

Not thread-safe; meant for one asyncio task (or one lock) per tracker.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["PresenceTracker"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Entry(Generic[V]):
    """One known key: reported, or a candidate still being damped."""

    __slots__ = ("last_seen", "misses", "reported", "scan", "sightings", "value")

    def __init__(self, value: V, now: float, scan: int) -> None:
        self.value = value
        self.last_seen = now
        self.sightings = 1
        self.misses = 0
        self.scan = scan
        self.reported = False


class PresenceTracker(Generic[K, V]):
    """Turns sightings of keyed devices into a damped set of present devices.

    Polled handlers call `seen()` once per device found in a scan (every call counts
    as one sighting for `appear_after`), then `end_scan()`. Event-driven handlers
    call `seen()` per message, `forget()` on an explicit "gone" (an MQTT last will),
    and `expire()` when `next_expiry()` comes round.

    - `ttl`: drop an entry once it has been silent for `ttl` seconds.
    - `missed_scans`: drop a reported entry after this many consecutive scans
      (`end_scan()` calls) without a sighting.
    - `appear_after`: report an entry only after this many sightings with no missed
      scan and no TTL expiry in between; a candidate that misses a scan starts over.

    Every mutating method returns True exactly when `present()` changed: an entry
    appeared or disappeared, or a reported entry's value changed.
    """

    def __init__(
        self,
        *,
        ttl: float | None = None,
        missed_scans: int | None = None,
        appear_after: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl)
        ):
            raise ValueError(f"ttl must be a finite number of seconds or None, got {ttl!r}")
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds (None disables it), got {ttl!r}")
        if missed_scans is not None and (_not_int(missed_scans) or missed_scans < 1):
            raise ValueError(f"missed_scans must be an int >= 1 or None, got {missed_scans!r}")
        if _not_int(appear_after) or appear_after < 1:
            raise ValueError(f"appear_after must be an int >= 1, got {appear_after!r}")
        self._ttl = None if ttl is None else float(ttl)
        self._missed_scans = missed_scans
        self._appear_after = appear_after
        self._clock = clock
        # Ordered by last sighting, oldest first: since time never goes backwards,
        # the first entry is the next to expire, which keeps seen() and
        # next_expiry() O(1) and expire() proportional to what it removes.
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._reported = 0
        self._scan = 0
        self._latest = -math.inf

    def _now(self, now: float | None) -> float:
        t = self._clock() if now is None else now
        if t > self._latest:
            self._latest = t
        return self._latest

    def _expired(self, entry: _Entry[V], now: float) -> bool:
        return self._ttl is not None and now >= entry.last_seen + self._ttl

    def _remove(self, key: K) -> bool:
        entry = self._entries.pop(key)
        if entry.reported:
            self._reported -= 1
        return entry.reported

    def seen(self, key: K, value: V, now: float | None = None) -> bool:
        """Record a sighting of `key` with its current `value`; True if present() changed."""
        t = self._now(now)
        entry = self._entries.get(key)
        # A sighting after the TTL ran out starts afresh, whether or not expire() ran
        # in between, so the outcome does not depend on timer jitter.
        was_reported = False
        old_value: V | None = None
        if entry is not None and self._expired(entry, t):
            was_reported = entry.reported
            old_value = entry.value
            self._remove(key)
            entry = None
        if entry is None:
            entry = _Entry(value, t, self._scan)
            self._entries[key] = entry
            if self._appear_after <= 1:
                entry.reported = True
                self._reported += 1
            if was_reported:
                return not entry.reported or old_value != value
            return entry.reported
        self._entries.move_to_end(key)
        entry.last_seen = t
        entry.misses = 0
        entry.scan = self._scan
        old_value, entry.value = entry.value, value
        if entry.reported:
            return old_value != value
        entry.sightings += 1
        if entry.sightings >= self._appear_after:
            entry.reported = True
            self._reported += 1
            return True
        return False

    def end_scan(self, seen: Iterable[K] | None = None, *, now: float | None = None) -> bool:
        """Close a polling round; True if present() changed.

        Keys not passed to `seen()` since the last `end_scan()` (nor listed in `seen`,
        which only spares known keys a miss) get a miss: a candidate starts over, a
        reported entry goes after `missed_scans` consecutive misses. The TTL is applied
        too, so a polled handler needs no separate `expire()` call.
        """
        scan = self._scan
        if seen is not None:
            for key in seen:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.scan = scan
                    entry.misses = 0
        self._scan = scan + 1
        changed = False
        for key in [k for k, e in self._entries.items() if e.scan != scan]:
            entry = self._entries[key]
            entry.misses += 1
            if not entry.reported:
                del self._entries[key]
            elif self._missed_scans is not None and entry.misses >= self._missed_scans:
                changed |= self._remove(key)
        return self.expire(now) or changed

    def forget(self, key: K) -> bool:
        """Remove `key` now (e.g. an explicit "offline"); True if it was reported."""
        if key not in self._entries:
            return False
        return self._remove(key)

    def expire(self, now: float | None = None) -> bool:
        """Drop entries silent for `ttl` seconds or more; True if present() changed."""
        t = self._now(now)
        if self._ttl is None:
            return False
        changed = False
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if not self._expired(entry, t):
                break
            changed |= self._remove(key)
        return changed

    def next_expiry(self) -> float | None:
        """Clock time at which the oldest entry (reported or candidate) expires.

        None without a TTL or with nothing tracked. Calling `expire()` at that time
        removes the entry; it may return False when the entry was only a candidate.
        """
        if self._ttl is None or not self._entries:
            return None
        oldest = next(iter(self._entries.values()))
        return oldest.last_seen + self._ttl

    def present(self) -> dict[K, V]:
        """The reported entries and their latest values."""
        return {k: e.value for k, e in self._entries.items() if e.reported}

    def __len__(self) -> int:
        return self._reported

    def __contains__(self, key: object) -> bool:
        # `in` accepts any object, as a dict's does.
        entry = self._entries.get(key)  # type: ignore[arg-type]
        return entry is not None and entry.reported

    def __repr__(self) -> str:
        candidates = len(self._entries) - self._reported
        return f"PresenceTracker(present={self._reported}, candidates={candidates})"


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)
