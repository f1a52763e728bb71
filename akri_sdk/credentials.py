"""Access to `discovery_properties`, whose values are secrets by default.

The Agent resolves each property from a literal, a ConfigMap or a Secret (spec §3.2),
and a handler cannot tell which: so every value is treated as a secret. Nothing here
puts a value into a repr, str, format or exception message; only deliberate access
(`props["x"]`, `secret.reveal()`) yields one. Standard library only, because every
handler imports this module.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Credentials", "DiscoveryProperties", "PropertyError", "Secret"]

_MASK = "********"

# Keys the fingerprint so a short password cannot be brute-forced from a logged
# fingerprint; the price is that fingerprints only compare within one process.
_FINGERPRINT_KEY = os.urandom(32)

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class PropertyError(ValueError):
    """A discovery property's value cannot be used as asked.

    The message names the property and the problem, never the value, so it can go
    into logs and gRPC status details as it is.
    """

    def __init__(self, name: str | None, problem: str) -> None:
        self.name = name
        self.problem = problem
        where = f"discovery property {name!r}" if name is not None else "secret value"
        super().__init__(f"{where}: {problem}")


class Secret:
    """A secret value, bytes underneath, that never shows itself by accident.

    repr, str and format all give a fixed mask (not even the length), so a Secret can
    sit in dataclasses, log arguments and tracebacks safely. Equality with another
    Secret is constant-time (for equal lengths) to avoid a timing oracle.
    """

    __slots__ = ("_name", "_value")

    def __init__(
        self, value: bytes | bytearray | memoryview | str, *, name: str | None = None
    ) -> None:
        if isinstance(value, str):
            data = value.encode()
        elif isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
        else:
            raise TypeError(f"Secret needs bytes or str, not {type(value).__name__}")
        self._value = data
        # Only used to name the property in error messages.
        self._name = name

    def reveal(self) -> str:
        """The value as text; PropertyError (a ValueError) if it is not UTF-8."""
        return _decode(self._value, self._name)

    def reveal_bytes(self) -> bytes:
        """The raw value, for binary secrets such as keys or certificates."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Credentials:
    """A username (not secret, it appears in logs) and an optional password (secret)."""

    username: str
    password: Secret | None


class _ByteDataLike(Protocol):
    """What `from_proto` needs from a `v0.ByteData` message."""

    @property
    def vec(self) -> bytes: ...

    def HasField(self, field_name: str, /) -> bool: ...


class DiscoveryProperties(Mapping[str, bytes | None]):
    """Read-only view of a request's `discovery_properties`.

    A value is the property's bytes, or None for a property declared with no value
    (unset `vec`, spec §3.2); an absent name is not in the mapping. repr and str list
    names only, so logging the object (or its keys/values/items views) leaks nothing.
    Typed accessors return `default` for absent and unset properties alike.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, bytes | None]) -> None:
        checked: dict[str, bytes | None] = {}
        for name, value in values.items():
            if not isinstance(name, str):
                raise TypeError(f"property names must be str, not {type(name).__name__}")
            if value is None or isinstance(value, bytes):
                checked[name] = value
            elif isinstance(value, bytearray | memoryview):
                checked[name] = bytes(value)
            else:
                raise TypeError(
                    f"discovery property {name!r} must be bytes or None, not {type(value).__name__}"
                )
        self._values = checked

    @classmethod
    def from_proto(cls, proto_map: Mapping[str, _ByteDataLike]) -> DiscoveryProperties:
        """Build from `DiscoverRequest.discovery_properties`, keeping unset `vec` as None."""
        return cls({name: m.vec if m.HasField("vec") else None for name, m in proto_map.items()})

    # Mapping protocol: deliberate access returns values as they are.

    def __getitem__(self, name: str) -> bytes | None:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"DiscoveryProperties(names={sorted(self._values)!r})"

    __str__ = __repr__

    # Typed accessors.

    def text(self, name: str, default: str | None = None, *, strip: bool = False) -> str | None:
        """The value as UTF-8 text; `strip` trims the newline `kubectl --from-file` leaves."""
        raw = self._values.get(name)
        if raw is None:
            return default
        value = _decode(raw, name)
        return value.strip() if strip else value

    def secret(self, name: str) -> Secret | None:
        """The value wrapped in a Secret, or None when absent or unset."""
        raw = self._values.get(name)
        return None if raw is None else Secret(raw, name=name)

    def json(self, name: str, default: object = None) -> object:
        """The value parsed as JSON; errors give the position, never the document."""
        raw = self._values.get(name)
        if raw is None:
            return default
        text = _decode(raw, name)
        import json  # Only a few handlers need JSON properties; keep import time small.

        problem: str
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            # The exception holds the whole document in `.doc`, so raise outside the
            # except block: no __context__ carries the value into a traceback.
            problem = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        except RecursionError:
            problem = "not valid JSON: nested too deeply"
        raise PropertyError(name, problem)

    def flag(self, name: str, default: bool = False) -> bool:
        """The value as a boolean: true/false, 1/0 or yes/no, any case, spaces trimmed."""
        raw = self._values.get(name)
        if raw is None:
            return default
        word = _decode(raw, name).strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise PropertyError(name, "expected one of true/false, 1/0, yes/no")

    def credentials(self, username: str, password: str) -> Credentials | None:
        """Credentials from the properties *named* `username` and `password`.

        None when the username property is absent, unset or empty, because a
        password alone cannot authenticate; the password may be missing.
        """
        user = self.text(username)
        if not user:
            return None
        return Credentials(username=user, password=self.secret(password))

    def fingerprint(self) -> str:
        """A hex digest of names and values, equal for equal properties.

        Lets identical requests share one discovery task (design rule 8) with a key
        that is safe to log. Keyed per process: do not persist or compare across
        processes.
        """
        h = hashlib.blake2b(key=_FINGERPRINT_KEY, digest_size=16)
        h.update(len(self._values).to_bytes(8, "big"))
        for name in sorted(self._values):
            encoded = name.encode()
            h.update(len(encoded).to_bytes(8, "big"))
            h.update(encoded)
            value = self._values[name]
            if value is None:
                h.update(b"\x00")
            else:
                h.update(b"\x01" + len(value).to_bytes(8, "big"))
                h.update(value)
        return h.hexdigest()

    def redacted(self) -> dict[str, str]:
        """{name: "<secret>" or "<unset>"}, for logs and debug output."""
        return {
            name: "<unset>" if value is None else "<secret>" for name, value in self._values.items()
        }


def _decode(raw: bytes, name: str | None) -> str:
    """UTF-8 decode without letting the value reach an exception or its context."""
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        # UnicodeDecodeError keeps the whole input in `.object`; report only where.
        position = exc.start
    raise PropertyError(name, f"not valid UTF-8 (invalid byte at offset {position})")


_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*):[^/@\s]*@")


def redact_url_passwords(text: str) -> str:
    """`mqtt://user:pw@host` -> `mqtt://user:********@host`, anywhere in `text`.

    Credentials belong in discoveryProperties, but a Configuration may still put
    one in a URI inside discoveryDetails; logs and status views show details.
    """
    return _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:********@", text)
