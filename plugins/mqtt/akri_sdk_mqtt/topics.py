"""MQTT topic filters, and topic patterns that name a device (`booth/{id}/sound`).

Filters are checked here with the MQTT rules (wildcards take a whole level, `#` only
last) so a bad one is refused with the Configuration instead of by the broker later.
A pattern is a filter whose levels may also capture the device id: `{id}` alone, or
with a literal prefix and suffix (`sensor-{id}`). Matching follows the broker's rules,
including that a leading wildcard never matches a `$SYS`-style topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_TOPIC_BYTES",
    "TopicPattern",
    "check_filter",
    "check_topic_name",
    "filter_matches",
]

MAX_TOPIC_BYTES = 65535  # MQTT strings carry a 16-bit length
PLACEHOLDER = "{id}"
_BRACES = re.compile(r"[{}]")


def _check_utf8(text: str, what: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{what} must not contain a NUL character")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid UTF-8") from None
    if size > MAX_TOPIC_BYTES:
        raise ValueError(f"{what} is {size} bytes; MQTT allows {MAX_TOPIC_BYTES}")


def check_topic_name(topic: str) -> None:
    """A topic a message can be published to: no wildcards. ValueError otherwise."""
    if not topic:
        raise ValueError("a topic name must not be empty")
    _check_utf8(topic, "a topic name")
    if "+" in topic or "#" in topic:
        raise ValueError(f"topic name {topic[:60]!r} must not contain wildcards")


def check_filter(topic_filter: str) -> None:
    """A subscription filter: `+` and `#` only as whole levels, `#` only last."""
    shown = repr(topic_filter[:60])
    if not topic_filter:
        raise ValueError("a topic filter must not be empty")
    _check_utf8(topic_filter, f"topic filter {shown}")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"topic filter {shown}: `#` must be a whole level, and the last")
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {shown}: `+` must be a whole level")


def filter_matches(topic_filter: str, topic: str) -> bool:
    """True when a broker would deliver `topic` to a subscription on `topic_filter`."""
    return _levels_match(topic_filter.split("/"), topic.split("/"))


def _levels_match(filter_levels: list[str], levels: list[str]) -> bool:
    if levels and levels[0].startswith("$") and filter_levels and filter_levels[0] in "+#":
        return False  # MQTT 4.7.2: wildcards at the start never match $-topics
    for index, wanted in enumerate(filter_levels):
        if wanted == "#":
            return True  # also matches the parent level: `a/#` matches `a`
        if index >= len(levels):
            return False
        if wanted != "+" and wanted != levels[index]:
            return False
    return len(filter_levels) == len(levels)


@dataclass(frozen=True)
class _Capture:
    prefix: str
    suffix: str


@dataclass(frozen=True)
class TopicPattern:
    """A filter with one level capturing the device id, e.g. `booth/{id}/sound`.

    `subscription` is the filter to subscribe to (the capturing level as `+`);
    `match(topic)` gives the id or None; `for_device(id)` puts an id back in,
    which gives a concrete topic, or a filter when the pattern has wildcards.
    """

    text: str
    levels: tuple[str | _Capture, ...]
    subscription: str

    @classmethod
    def parse(cls, text: str, key: str = "pattern") -> TopicPattern:
        """Parse `text`; ValueError naming `key` when it is not a usable pattern."""
        shown = f"`{key}` {text[:60]!r}"
        if text.count(PLACEHOLDER) != 1:
            raise ValueError(f"{shown} must contain {PLACEHOLDER} exactly once")
        levels: list[str | _Capture] = []
        filter_levels: list[str] = []
        for level in text.split("/"):
            if PLACEHOLDER in level:
                prefix, _, suffix = level.partition(PLACEHOLDER)
                if _BRACES.search(prefix + suffix) or "+" in level or "#" in level:
                    raise ValueError(
                        f"{shown}: the {PLACEHOLDER} level may add literal text around it, "
                        "but no other braces or wildcards"
                    )
                levels.append(_Capture(prefix, suffix))
                filter_levels.append("+")
            else:
                if _BRACES.search(level):
                    raise ValueError(f"{shown}: only {PLACEHOLDER} may appear in braces")
                levels.append(level)
                filter_levels.append(level)
        subscription = "/".join(filter_levels)
        try:
            check_filter(subscription)
        except ValueError as error:
            raise ValueError(f"{shown}: {error}") from None
        return cls(text=text, levels=tuple(levels), subscription=subscription)

    def match(self, topic: str) -> str | None:
        """The device id this topic belongs to, or None if the pattern does not match."""
        parts = topic.split("/")
        if parts[0].startswith("$") and (
            isinstance(self.levels[0], _Capture) or self.levels[0] in ("+", "#")
        ):
            return None
        found: str | None = None
        for index, wanted in enumerate(self.levels):
            if wanted == "#":
                return found if found is not None else None
            if index >= len(parts):
                return None
            part = parts[index]
            if isinstance(wanted, _Capture):
                size = len(wanted.prefix) + len(wanted.suffix)
                if (
                    len(part) <= size
                    or not part.startswith(wanted.prefix)
                    or not part.endswith(wanted.suffix)
                ):
                    return None
                found = part[len(wanted.prefix) : len(part) - len(wanted.suffix)]
            elif wanted != "+" and wanted != part:
                return None
        if len(parts) != len(self.levels):
            return None
        return found

    def for_device(self, device_id: str) -> str:
        """The pattern with `device_id` in place of {id}."""
        return self.text.replace(PLACEHOLDER, device_id)

    @property
    def has_wildcards(self) -> bool:
        return any(level in ("+", "#") for level in self.levels)
