"""Reading payloads: the regexp and JSON conditions that admit a message, and the
fields copied into device properties.

Payloads come from any client that may publish on the broker, so everything here
is bounded: only the first `max_bytes` of a payload are looked at, JSON is decoded
at most once per message, and field values are cut to a fixed length.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

__all__ = [
    "MISSING",
    "OPERATORS",
    "Condition",
    "FieldPath",
    "MessageFilter",
    "PayloadView",
    "field_text",
]

Operator = Literal["==", "!=", ">", ">=", "<", "<=", "exists", "matches"]
OPERATORS: tuple[str, ...] = ("==", "!=", ">", ">=", "<", "<=", "exists", "matches")
_ORDERING = frozenset({">", ">=", "<", "<="})
MAX_PATH_SEGMENTS = 16
MAX_REGEX_CHARS = 1000
MISSING: Any = object()  # a field that is not there (JSON null is None)
_JSON = msgspec.json.Decoder()


@dataclass(frozen=True)
class FieldPath:
    """`a.b.0`: keys of objects, and indexes of arrays for digit-only segments."""

    text: str
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        segments = tuple(text.split("."))
        if not text or any(not s for s in segments):
            raise ValueError(f"field path {text[:60]!r} must be dot-separated non-empty names")
        if len(segments) > MAX_PATH_SEGMENTS:
            raise ValueError(f"field path {text[:60]!r} has more than {MAX_PATH_SEGMENTS} parts")
        return cls(text, segments)

    def lookup(self, document: object) -> object:
        """The value at this path, or MISSING when the document has none there."""
        current = document
        for segment in self.segments:
            if isinstance(current, dict):
                current = current.get(segment, MISSING)
            elif isinstance(current, list) and segment.isdigit():
                index = int(segment)
                current = current[index] if index < len(current) else MISSING
            else:
                return MISSING
            if current is MISSING:
                return MISSING
        return current


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Condition:
    """One test on a JSON field: `volume > 50`, `state == "on"`, `id exists`."""

    path: FieldPath
    op: str
    value: object = None
    pattern: re.Pattern[str] | None = None

    @classmethod
    def build(cls, field: str, op: str, value: object) -> Condition:
        path = FieldPath.parse(field)
        if op not in OPERATORS:
            raise ValueError(f"op must be one of {', '.join(OPERATORS)}, got {op!r}")
        if op in _ORDERING and not _is_number(value):
            raise ValueError(f"op {op!r} compares numbers; value must be a number")
        if _is_number(value) and not math.isfinite(float(value)):  # type: ignore[arg-type]
            raise ValueError("value must be a finite number")
        pattern = None
        if op == "matches":
            if not isinstance(value, str):
                raise ValueError("op 'matches' needs a regular expression string as value")
            pattern = compile_regex(value, "value")
        if op == "exists" and value is not None:
            raise ValueError("op 'exists' takes no value")
        return cls(path, op, value, pattern)

    def holds(self, document: object) -> bool:
        found = self.path.lookup(document)
        if found is MISSING:
            return False
        op = self.op
        if op == "exists":
            return True
        if op == "matches":
            assert self.pattern is not None
            return isinstance(found, str) and self.pattern.search(found) is not None
        if op in ("==", "!="):
            equal = _json_equal(found, self.value)
            return equal if op == "==" else not equal
        if not _is_number(found):
            return False
        a, b = float(found), float(self.value)  # type: ignore[arg-type]
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op == "<":
            return a < b
        return a <= b


def _json_equal(a: object, b: object) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)  # type: ignore[arg-type]
    return a == b


def compile_regex(text: str, key: str) -> re.Pattern[str]:
    if len(text) > MAX_REGEX_CHARS:
        raise ValueError(f"`{key}` is {len(text)} characters; the limit is {MAX_REGEX_CHARS}")
    try:
        return re.compile(text)
    except (re.error, RecursionError, OverflowError) as error:
        raise ValueError(f"`{key}` is not a valid regular expression: {error}") from None


class PayloadView:
    """One message's payload, decoded lazily and at most once."""

    __slots__ = ("_document", "_text", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._text: str | object | None = MISSING
        self._document: object = MISSING

    @property
    def text(self) -> str | None:
        """The payload as UTF-8 text, or None when it is not UTF-8."""
        if self._text is MISSING:
            try:
                self._text = self.payload.decode("utf-8")
            except UnicodeDecodeError:
                self._text = None
        return self._text  # type: ignore[return-value]

    @property
    def document(self) -> object:
        """The payload as JSON, or `MISSING` when it is not JSON."""
        if self._document is MISSING:
            try:
                self._document = _JSON.decode(self.payload)
            except (msgspec.DecodeError, RecursionError):
                self._document = MISSING
                return MISSING
        return self._document

    def field(self, path: FieldPath) -> object:
        document = self.document
        return MISSING if document is MISSING else path.lookup(document)


@dataclass(frozen=True)
class MessageFilter:
    """Which messages count as a sign of life: all of regexp and conditions must hold.

    An empty filter admits everything without looking at the payload. A payload
    larger than `max_bytes` is never parsed, so a filtered handler ignores it.
    """

    regexp: re.Pattern[str] | None = None
    conditions: Sequence[Condition] = ()
    max_bytes: int = 64 * 1024

    @property
    def empty(self) -> bool:
        return self.regexp is None and not self.conditions

    def admits(self, view: PayloadView) -> bool:
        if self.empty:
            return True
        if len(view.payload) > self.max_bytes:
            return False
        if self.regexp is not None:
            text = view.text
            if text is None or self.regexp.search(text) is None:
                return False
        if self.conditions:
            document = view.document
            if document is MISSING:
                return False
            return all(condition.holds(document) for condition in self.conditions)
        return True


def field_text(value: object, limit: int) -> str | None:
    """A JSON value as property text (strings as-is, others as JSON), cut to `limit`."""
    if value is MISSING:
        return None
    if isinstance(value, str):
        text = value
    else:
        try:
            text = msgspec.json.encode(value).decode()
        except (TypeError, OverflowError, UnicodeError, msgspec.EncodeError):
            return None
    if len(text) > limit:
        text = text[:limit]
    # A JSON escape can decode to a lone surrogate, which protobuf refuses to send.
    return text.encode("utf-8", "replace").decode("utf-8")
