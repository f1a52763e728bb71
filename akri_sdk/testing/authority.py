"""Validate an HTTP/2 `:authority` the way the Rust Agent does.

The Agent's Registration server is tonic on hyper and h2 (tonic 0.13, h2 0.4,
`http` 1.4 in Akri 0.13.26's Cargo.lock). h2 builds each request URI with
`http::uri::Authority::from_maybe_shared`; when that fails it resets the stream
with PROTOCOL_ERROR. This module re-states the rules of that parser
(`hyperium/http` `src/uri/authority.rs`, `validate_authority_bytes`, and the
`URI_CHARS` table in `src/uri/mod.rs`, read at v1.4.2) so that the fake Agent
rejects exactly the authorities the real one rejects:

1. Empty is rejected (`Empty`).
2. Every byte must be an unreserved or sub-delim URI character, or one of
   `: @ [ ] / ? #`; anything else (space, `"`, `<`, `>`, `\\`, `^`, a backtick,
   `{`, `|`, `}`, controls, non-ASCII) is `InvalidUriChar`.
3. `/`, `?` or `#` end the authority; since the whole value must be authority,
   any of them is rejected.
4. `%` is allowed only in userinfo (before the last `@`) or inside `[...]`
   (an IPv6 zone id); anywhere else it is `InvalidPercent`. A `[` after a
   pending `%` is `InvalidBracketUsage`. No check that `%` starts a valid escape.
5. At most one `[` and one `]`, `[` first, and both or neither
   (`InvalidBracketUsage`, `MismatchedBrackets`).
6. Colons are counted, reset at `]` and at `@`; more than one left is
   `InvalidAuthority` (`host:port:x`, bare `::1`), and a 9th colon anywhere is
   `TooManyColons`, so an IPv6 literal has at most 8.
7. An `@` as the last character is `EmptyAfterAt`.

What the crate does *not* check, and neither do we: that the port is numeric
or in range, that the host is non-empty (`:80`, `@host`, `[]` pass), that an
IPv6 literal is well formed, or that `%` escapes are complete.
"""

from __future__ import annotations

import string

__all__ = ["authority_error", "authority_is_valid"]

# Bytes the http crate's URI_CHARS table maps to themselves (not 0), minus the
# terminators `/ ? #` that are handled separately. `%` is handled separately too.
_URI_CHARS = frozenset(string.ascii_letters + string.digits + "!$&'()*+,-.:;=@[]_~")
_TERMINATORS = frozenset("/?#")
_MAX_COLONS = 8


def authority_error(value: str) -> str | None:
    """The http crate's error kind for `value`, or None if it is a valid authority.

    `value` should be the header bytes decoded as latin-1, so every byte is one
    character and non-ASCII bytes stay non-ASCII.
    """
    if not value:
        return "Empty"
    colons = 0
    start_bracket = end_bracket = has_percent = False
    for char in value:
        if char in _TERMINATORS:
            # The parser stops here; the caller needs the whole string consumed.
            return "InvalidUriChar"
        if char == "%":
            has_percent = True
        elif char not in _URI_CHARS:
            return "InvalidUriChar"
        elif char == ":":
            if colons >= _MAX_COLONS:
                return "TooManyColons"
            colons += 1
        elif char == "[":
            if has_percent or start_bracket:
                return "InvalidBracketUsage"
            start_bracket = True
        elif char == "]":
            if not start_bracket or end_bracket:
                return "InvalidBracketUsage"
            end_bracket = True
            colons = 0
            has_percent = False
        elif char == "@":
            colons = 0
            has_percent = False
    if start_bracket != end_bracket:
        return "MismatchedBrackets"
    if colons > 1:
        return "InvalidAuthority"
    if value.endswith("@"):
        return "EmptyAfterAt"
    if has_percent:
        return "InvalidPercent"
    return None


def authority_is_valid(value: str) -> bool:
    """True if Rust's `http::uri::Authority::from_str(value)` would accept it."""
    return authority_error(value) is None
