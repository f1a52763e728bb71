"""Akri's FilterList, with the exact semantics Rust handlers give it (spec §4).

A Configuration that works with a built-in Rust handler must filter the same way
here, so the default is Akri's: exact, case-sensitive string equality, where
`Include` with no items rejects everything and `Exclude` with no items accepts
everything. `match: glob` and `match: regex` are our opt-in extension; Akri
ignores the unknown key, so a Configuration that uses it still parses there.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import re
from typing import Literal

import msgspec

__all__ = ["MAX_PATTERN_LENGTH", "FilterAction", "FilterList", "MatchMode", "should_include"]

MatchMode = Literal["exact", "glob", "regex"]
# Patterns come from whoever writes Configurations; keep compiling them cheap.
MAX_PATTERN_LENGTH = 1000
_MATCH_MODES = ("exact", "glob", "regex")


class FilterAction(enum.StrEnum):
    """Keep only the listed values (Include) or drop them (Exclude)."""

    INCLUDE = "Include"
    EXCLUDE = "Exclude"


def _shown(pattern: str) -> str:
    """A pattern as an error message shows it: recognisable, not a wall of text."""
    return repr(pattern) if len(pattern) <= 60 else repr(pattern[:57]) + "..."


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """Compiled once per pattern, not once per comparison."""
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


class FilterList(msgspec.Struct, rename="camel"):
    """Which values to keep.

    `action: Include` keeps only values matching an item (no items keeps
    nothing); `action: Exclude` drops values matching an item (no items keeps
    everything). `match` says how an item matches: `exact` (Akri's behaviour),
    `glob` (shell wildcards over the whole value) or `regex` (a Python regular
    expression that must match the whole value).
    """

    items: list[str]
    action: FilterAction = FilterAction.INCLUDE
    match: MatchMode = "exact"

    def __post_init__(self) -> None:
        # msgspec reports a ValueError from here as a validation error at this
        # list's path, so a bad pattern is refused with the Configuration.
        self.action = FilterAction(self.action)
        if self.match not in _MATCH_MODES:
            raise ValueError(
                f"`match` must be one of {', '.join(_MATCH_MODES)}, not {self.match!r}"
            )
        if self.match == "exact":
            return
        for item in self.items:
            if len(item) > MAX_PATTERN_LENGTH:
                raise ValueError(
                    f"{self.match} pattern {_shown(item)} in `items` is {len(item)} characters;"
                    f" the limit is {MAX_PATTERN_LENGTH}"
                )
            if self.match == "regex":
                try:
                    _regex(item, False)
                except RecursionError:
                    problem = "it nests too deeply"
                except (re.error, OverflowError) as err:
                    problem = str(err)
                else:
                    continue
                raise ValueError(f"`items` holds an invalid regex {_shown(item)}: {problem}")

    def includes(self, value: str | None, *, case_sensitive: bool = True) -> bool:
        """Whether to keep a device with this value.

        `None` means the value could not be found out (an ONVIF camera whose IP
        lookup failed): it is kept only by an Exclude list with no items, as in
        Akri's ONVIF handler. `case_sensitive=False` compares case-insensitively,
        as that handler does for IP and MAC addresses and UUIDs.
        """
        if self.action == FilterAction.EXCLUDE and not self.items:
            return True
        if value is None:
            return False
        return self._matches(value, case_sensitive) == (self.action == FilterAction.INCLUDE)

    def _matches(self, value: str, case_sensitive: bool) -> bool:
        if self.match == "regex":
            return any(_regex(p, not case_sensitive).fullmatch(value) for p in self.items)
        if not case_sensitive:
            value = value.lower()
        if self.match == "glob":
            if case_sensitive:
                return any(fnmatch.fnmatchcase(value, p) for p in self.items)
            return any(fnmatch.fnmatchcase(value, p.lower()) for p in self.items)
        if case_sensitive:
            return value in self.items
        return any(value == item.lower() for item in self.items)


def should_include(filter_list: FilterList | None, item: str) -> bool:
    """Akri's `should_include`: no list keeps everything, otherwise the list decides."""
    if filter_list is None:
        return True
    return filter_list.includes(item)
