"""PresenceTracker: TTL, missed scans, flap damping, explicit removal, next expiry."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from akri_sdk.presence import PresenceTracker


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def tracker(clock: FakeClock, **kw: object) -> PresenceTracker[str, str]:
    return PresenceTracker(clock=clock, **kw)  # type: ignore[arg-type]


# Constructor validation


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": -1.0}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"ttl": float("inf")}, "ttl"),
        ({"ttl": "5"}, "ttl"),
        ({"missed_scans": 0}, "missed_scans"),
        ({"missed_scans": 1.5}, "missed_scans"),
        ({"missed_scans": True}, "missed_scans"),
        ({"appear_after": 0}, "appear_after"),
        ({"appear_after": None}, "appear_after"),
    ],
)
def test_constructor_validates(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PresenceTracker(**kw)  # type: ignore[arg-type]


def test_defaults_keep_everything_until_forgotten(clock: FakeClock) -> None:
    t = tracker(clock)
    assert t.seen("a", "1") is True
    clock.advance(1e9)
    assert t.expire() is False
    assert t.end_scan() is False
    assert t.next_expiry() is None
    assert t.present() == {"a": "1"}
    assert t.forget("a") is True
    assert t.present() == {}


# seen / changed


def test_seen_reports_changes_only(clock: FakeClock) -> None:
    t = tracker(clock)
    assert t.seen("a", "1") is True  # new
    assert t.seen("a", "1") is False  # same value
    assert t.seen("a", "2") is True  # value changed
    assert t.seen("b", "1") is True
    assert t.present() == {"a": "2", "b": "1"}
    assert len(t) == 2
    assert "a" in t
    assert "z" not in t


def test_forget(clock: FakeClock) -> None:
    t = tracker(clock, appear_after=2)
    t.seen("a", "1")
    t.seen("a", "1")
    t.seen("b", "1")  # a candidate
    assert t.forget("b") is False  # not reported, so nothing changed
    assert t.forget("missing") is False
    assert t.forget("a") is True
    assert t.forget("a") is False
    assert t.present() == {}
    assert t.next_expiry() is None


# TTL


def test_ttl_drops_exactly_at_boundary(clock: FakeClock) -> None:
    t = tracker(clock, ttl=10)
    t.seen("a", "1")  # at 100
    assert t.next_expiry() == 110
    clock.t = 109.999
    assert t.expire() is False
    assert "a" in t
    clock.t = 110  # silent for exactly ttl: gone
    assert t.expire() is True
    assert t.present() == {}
    assert t.next_expiry() is None
    assert t.expire() is False


def test_sighting_refreshes_ttl(clock: FakeClock) -> None:
    t = tracker(clock, ttl=10)
    t.seen("a", "1")
    clock.advance(6)
    t.seen("b", "1")
    clock.advance(3)
    t.seen("a", "1")  # at 109
    assert t.next_expiry() == 116  # b, seen at 106
    clock.t = 116
    assert t.expire() is True
    assert t.present() == {"a": "1"}
    assert t.next_expiry() == 119
    t.forget("a")
    assert t.next_expiry() is None


def test_expire_with_explicit_now(clock: FakeClock) -> None:
    t = tracker(clock, ttl=5)
    t.seen("a", "1", now=10)
    t.seen("b", "1", now=12)
    assert t.next_expiry() == 15
    assert t.expire(now=16) is True
    assert t.present() == {"b": "1"}


def test_time_never_goes_backwards(clock: FakeClock) -> None:
    t = tracker(clock, ttl=5)
    t.seen("a", "1", now=20)
    t.seen("b", "1", now=10)  # earlier than already seen: treated as 20
    assert t.next_expiry() == 25
    assert t.expire(now=24) is False
    assert t.expire(now=25) is True
    assert t.present() == {}


def test_sighting_after_ttl_starts_afresh(clock: FakeClock) -> None:
    t = tracker(clock, ttl=10, appear_after=2)
    t.seen("a", "1")
    clock.advance(1)
    assert t.seen("a", "1") is True  # second sighting: reported
    clock.advance(10)
    # expire() has not run, but the entry had expired: this sighting is a first one.
    assert t.seen("a", "1") is True
    assert t.present() == {}
    clock.advance(1)
    assert t.seen("a", "1") is True
    assert t.present() == {"a": "1"}


def test_late_sighting_same_value_without_damping_is_no_change(clock: FakeClock) -> None:
    t = tracker(clock, ttl=10)
    t.seen("a", "1")
    clock.advance(50)
    assert t.seen("a", "1") is False
    assert t.seen("a", "2") is True
    assert t.next_expiry() == 160


def test_candidates_expire_silently(clock: FakeClock) -> None:
    t = tracker(clock, ttl=10, appear_after=2)
    t.seen("a", "1")
    assert t.next_expiry() == 110  # candidates count: they hold memory
    clock.advance(10)
    assert t.expire() is False
    assert t.next_expiry() is None


# Missed scans


def test_missed_scans_remove_after_n_consecutive_misses(clock: FakeClock) -> None:
    t = tracker(clock, missed_scans=3)
    t.seen("a", "1")
    t.seen("b", "1")
    assert t.end_scan() is False  # both seen
    t.seen("b", "1")
    assert t.end_scan() is False  # a: 1 miss
    assert t.end_scan() is False  # a: 2, b: 1
    t.seen("b", "1")  # b's misses reset
    assert t.end_scan() is True  # a: 3 -> gone
    assert t.present() == {"b": "1"}
    assert t.end_scan() is False  # b: 1
    assert t.end_scan() is False  # b: 2
    assert t.end_scan() is True  # b: 3 -> gone
    assert t.present() == {}


def test_missed_scans_one(clock: FakeClock) -> None:
    t = tracker(clock, missed_scans=1)
    t.seen("a", "1")
    assert t.end_scan() is False
    assert t.end_scan() is True
    assert t.present() == {}


def test_end_scan_seen_argument_spares_keys(clock: FakeClock) -> None:
    t = tracker(clock, missed_scans=1)
    t.seen("a", "1")
    t.seen("b", "1")
    t.end_scan()
    assert t.end_scan(seen=["a", "unknown"]) is True  # b missed
    assert t.present() == {"a": "1"}
    assert "unknown" not in t


def test_end_scan_applies_ttl(clock: FakeClock) -> None:
    t = tracker(clock, ttl=10)
    t.seen("a", "1")
    clock.advance(10)
    assert t.end_scan() is True
    assert t.present() == {}


def test_without_missed_scans_misses_do_not_remove(clock: FakeClock) -> None:
    t = tracker(clock, ttl=10)
    t.seen("a", "1")
    for _ in range(5):
        assert t.end_scan() is False
    assert "a" in t


# Flap damping


def test_appear_after_damps_new_devices(clock: FakeClock) -> None:
    t = tracker(clock, appear_after=3)
    assert t.seen("a", "1") is False
    assert t.end_scan() is False
    assert t.seen("a", "2") is False
    assert t.end_scan() is False
    assert "a" not in t
    assert len(t) == 0
    assert t.seen("a", "3") is True
    assert t.present() == {"a": "3"}  # the latest value
    assert t.seen("a", "3") is False


def test_candidate_missing_a_scan_starts_over(clock: FakeClock) -> None:
    t = tracker(clock, appear_after=2, missed_scans=5)
    t.seen("a", "1")
    t.end_scan()
    t.end_scan()  # missed: count reset
    assert t.seen("a", "1") is False
    t.end_scan()
    assert t.seen("a", "1") is True


def test_reported_device_is_not_damped_again(clock: FakeClock) -> None:
    t = tracker(clock, appear_after=2, missed_scans=2)
    t.seen("a", "1")
    t.seen("a", "1")
    t.end_scan()
    t.end_scan()  # one miss: still reported, count kept
    assert "a" in t
    assert t.seen("a", "2") is True
    assert t.present() == {"a": "2"}


def test_repr_shows_counts_only(clock: FakeClock) -> None:
    t = tracker(clock, appear_after=2)
    t.seen("a", "secretish")
    t.seen("a", "secretish")
    t.seen("b", "x")
    assert repr(t) == "PresenceTracker(present=1, candidates=1)"


# Model-based test


@dataclass
class ModelEntry:
    value: int
    last_seen: float
    sightings: int = 1
    misses: int = 0
    seen_this_scan: bool = True


@dataclass
class Model:
    """A deliberately naive restatement of the rules, recomputed from scratch."""

    ttl: float | None
    missed_scans: int | None
    appear_after: int
    entries: dict[str, ModelEntry] = field(default_factory=dict)

    def present(self) -> dict[str, int]:
        return {k: e.value for k, e in self.entries.items() if e.sightings >= self.appear_after}

    def stale(self, e: ModelEntry, now: float) -> bool:
        return self.ttl is not None and now - e.last_seen >= self.ttl

    def seen(self, key: str, value: int, now: float) -> None:
        e = self.entries.get(key)
        if e is not None and self.stale(e, now):
            e = None
        if e is None:
            self.entries[key] = ModelEntry(value, now)
        else:
            e.value, e.last_seen, e.misses, e.seen_this_scan = value, now, 0, True
            e.sightings += 1

    def expire(self, now: float) -> None:
        self.entries = {k: e for k, e in self.entries.items() if not self.stale(e, now)}

    def end_scan(self, extra: set[str], now: float) -> None:
        kept = {}
        for k, e in self.entries.items():
            if e.seen_this_scan or k in extra:
                if k in extra:
                    e.misses = 0
                e.seen_this_scan = False
                kept[k] = e
                continue
            e.misses += 1
            reported = e.sightings >= self.appear_after
            if not reported:
                continue
            if self.missed_scans is not None and e.misses >= self.missed_scans:
                continue
            kept[k] = e
        self.entries = kept
        self.expire(now)

    def next_expiry(self) -> float | None:
        if self.ttl is None or not self.entries:
            return None
        return min(e.last_seen for e in self.entries.values()) + self.ttl


KEYS = st.sampled_from(["a", "b", "c"])


class PresenceMachine(RuleBasedStateMachine):
    clock: FakeClock
    tracker: PresenceTracker[str, int]
    model: Model

    @initialize(
        ttl=st.sampled_from([None, 1.0, 2.5, 50.0]),
        missed_scans=st.sampled_from([None, 1, 2, 3]),
        appear_after=st.sampled_from([1, 2, 3]),
    )
    def setup(self, ttl: float | None, missed_scans: int | None, appear_after: int) -> None:
        self.clock = FakeClock(0.0)
        self.tracker = PresenceTracker(
            ttl=ttl, missed_scans=missed_scans, appear_after=appear_after, clock=self.clock
        )
        self.model = Model(ttl, missed_scans, appear_after)

    def check_change(self, before: dict[str, int], changed: bool) -> None:
        assert changed == (self.model.present() != before)

    @rule(key=KEYS, value=st.integers(0, 2), explicit_now=st.booleans())
    def seen(self, key: str, value: int, explicit_now: bool) -> None:
        before = self.model.present()
        now = self.clock.t if explicit_now else None
        changed = self.tracker.seen(key, value, now)
        self.model.seen(key, value, self.clock.t)
        self.check_change(before, changed)

    @rule(extra=st.none() | st.sets(KEYS, max_size=2))
    def end_scan(self, extra: set[str] | None) -> None:
        before = self.model.present()
        changed = self.tracker.end_scan(extra)
        self.model.end_scan(extra or set(), self.clock.t)
        self.check_change(before, changed)

    @rule()
    def expire(self) -> None:
        before = self.model.present()
        changed = self.tracker.expire()
        self.model.expire(self.clock.t)
        self.check_change(before, changed)

    @precondition(lambda self: self.model.next_expiry() is not None)
    @rule()
    def expire_at_next_expiry(self) -> None:
        """What a watch-style handler does: sleep until next_expiry, then expire."""
        when = self.tracker.next_expiry()
        assert when is not None
        self.clock.t = max(self.clock.t, when)
        before_entries = len(self.model.entries)
        self.expire()
        assert len(self.model.entries) < before_entries  # always progress

    @rule(key=KEYS)
    def forget(self, key: str) -> None:
        before = self.model.present()
        changed = self.tracker.forget(key)
        self.model.entries.pop(key, None)
        self.check_change(before, changed)

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0]))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)

    @invariant()
    def agrees_with_model(self) -> None:
        present = self.model.present()
        assert self.tracker.present() == present
        assert len(self.tracker) == len(present)
        for key in "abc":
            assert (key in self.tracker) == (key in present)
        assert self.tracker.next_expiry() == self.model.next_expiry()


PresenceMachine.TestCase.settings = settings(max_examples=500, stateful_step_count=50)
test_presence_model = PresenceMachine.TestCase
