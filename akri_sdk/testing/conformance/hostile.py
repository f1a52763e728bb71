"""The hostile discoveryDetails a handler must refuse, shaped after its good details."""

from __future__ import annotations

import json
from dataclasses import dataclass

from akri_sdk.details import load_yaml

__all__ = ["HostileCase", "hostile_cases"]

_FIVE_MB = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HostileCase:
    """discoveryDetails a handler must refuse with INVALID_ARGUMENT (DESIGN rule 6)."""

    label: str
    details: str


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


def _alias_bomb(key: str | None) -> str:
    """Nine levels of ten aliases each: 10^9 values once expanded."""
    lines = ["lol0: &lol0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [
        f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * 10) + "]"
        for level in range(1, 9)
    ]
    if key is not None:
        lines.append(f"{json.dumps(key)}: *lol8")
    return "\n".join(lines)


def hostile_cases(details: str) -> list[HostileCase]:
    """The hostile details to try, shaped after the handler's own good `details`.

    Where the good details are a mapping, the wrong-type cases and the alias
    bomb use its first key, so a handler that only looks at its own keys still
    meets them. Cases identical to the good details are left out.
    """
    try:
        parsed = load_yaml(details)
    except ValueError:
        parsed = None
    mapping = parsed if isinstance(parsed, dict) and parsed else None
    key = next(iter(mapping)) if mapping is not None else None
    if key is not None and not isinstance(key, str):
        key = None
    cases = [HostileCase("non-YAML details", "{unclosed: [yaml")]
    if mapping is not None:
        cases.append(HostileCase("a scalar where a mapping is expected", "just a string"))
    if mapping is not None and key is not None and mapping[key] is not None:
        expected = _kind(mapping[key])
        wrong = "[wrong, type]" if expected == "a mapping" else "{wrong: type}"
        given = "a list" if expected == "a mapping" else "a mapping"
        cases.append(
            HostileCase(f"{given} where {key!r} expects {expected}", f"{json.dumps(key)}: {wrong}")
        )
    cases += [
        HostileCase("empty details", ""),
        # The good details, made 5 MB long by a comment: only a size bound refuses it.
        HostileCase("5 MB details", details + "\n# " + "x" * _FIVE_MB),
        HostileCase("a YAML alias bomb", _alias_bomb(key)),
    ]
    return [case for case in cases if case.details != details]
