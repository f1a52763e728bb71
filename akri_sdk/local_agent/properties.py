"""Resolve `discoveryProperties` into the DiscoverRequest map, as the Agent does (spec §3.2).

| entry                               | result                                          |
|-------------------------------------|-------------------------------------------------|
| `value: s`                          | UTF-8 bytes of s (`value` wins over valueFrom)  |
| `secretKeyRef`                      | the Secret's decoded bytes for `key`            |
| `configMapKeyRef`                   | `data[key]` as UTF-8, else `binaryData[key]`    |
| neither                             | None (ByteData with `vec` unset)                |
| missing referent or key, optional   | left out of the map                             |
| missing referent or key, required   | UnsolvablePropertyError: the request fails      |

A reference without `namespace` looks in "default", not in the Configuration's
namespace. Values come from manifests and from directories laid out like
mounted volumes, `DIR/<name>/<key>`: one subdirectory per Secret or ConfigMap,
one file per key. Directory lookups ignore the namespace (a mounted volume has
none); the first source that holds the object answers.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from akri_sdk.local_agent.model import DiscoveryProperty, KeyRef, Manifests, RefKind

__all__ = [
    "MAX_VALUE_BYTES",
    "ChainedValues",
    "DirectoryValues",
    "ManifestValues",
    "Missing",
    "UnsolvablePropertyError",
    "ValueSource",
    "resolve_properties",
]

MAX_VALUE_BYTES = 1024 * 1024  # the API server's limit for a whole Secret or ConfigMap
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")


class Missing(enum.Enum):
    """Why a reference found nothing."""

    OBJECT = "object"
    KEY = "key"


class UnsolvablePropertyError(Exception):
    """A required reference found nothing: the whole Discover request fails.

    The Agent's `UnsolvableProperty`. The message names the property and the
    reference, never a value.
    """

    def __init__(self, name: str, ref: KeyRef, reason: str, hint: str | None = None) -> None:
        self.name = name
        self.ref = ref
        self.reason = reason
        text = f"discoveryProperty {name!r}: {reason}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class ValueSource(Protocol):
    """Somewhere Secrets and ConfigMaps can be looked up."""

    def lookup(self, ref: KeyRef) -> bytes | Missing:
        """The referenced value, or what is missing. OSError/ValueError if unreadable."""
        ...

    def namespaces(self, kind: RefKind, name: str) -> list[str]:
        """Namespaces holding a `kind` called `name`, for "did you mean" hints."""
        ...


class ManifestValues:
    """Secrets and ConfigMaps from manifest files, namespace-aware like the cluster."""

    def __init__(self, manifests: Manifests) -> None:
        self._manifests = manifests

    def lookup(self, ref: KeyRef) -> bytes | Missing:
        key = (ref.namespace, ref.name)
        if ref.kind == "Secret":
            secret = self._manifests.secrets.get(key)
            if secret is None:
                return Missing.OBJECT
            return secret.data.get(ref.key, Missing.KEY)
        config_map = self._manifests.config_maps.get(key)
        if config_map is None:
            return Missing.OBJECT
        if ref.key in config_map.data:  # data wins over binaryData
            return config_map.data[ref.key].encode()
        return config_map.binary_data.get(ref.key, Missing.KEY)

    def namespaces(self, kind: RefKind, name: str) -> list[str]:
        table: Iterable[tuple[str, str]] = (
            self._manifests.secrets if kind == "Secret" else self._manifests.config_maps
        )
        return sorted(namespace for namespace, candidate in table if candidate == name)


def _safe_component(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


class DirectoryValues:
    """`ROOT/<name>/<key>` files, as a mounted Secret or ConfigMap volume lays them out.

    The namespace is ignored. A ConfigMap file's bytes are the value whether it
    came from `data` or `binaryData`, as in a mounted volume. Entries starting
    with `..` (the kubelet's atomic-update links) are never keys.
    """

    def __init__(self, root: Path, kind: RefKind) -> None:
        self.root = root
        self.kind = kind

    def lookup(self, ref: KeyRef) -> bytes | Missing:
        if ref.kind != self.kind or not _safe_component(ref.name):
            return Missing.OBJECT
        folder = self.root / ref.name
        if not folder.is_dir():
            return Missing.OBJECT
        if not _DATA_KEY.fullmatch(ref.key) or ref.key.startswith(".."):
            return Missing.KEY
        path = folder / ref.key
        if not path.is_file():
            return Missing.KEY
        with path.open("rb") as stream:
            data = stream.read(MAX_VALUE_BYTES + 1)
        if len(data) > MAX_VALUE_BYTES:
            raise ValueError(f"{path} is larger than {MAX_VALUE_BYTES // 1024} KiB")
        return data

    def namespaces(self, kind: RefKind, name: str) -> list[str]:
        return []


class ChainedValues:
    """Several sources; the first that holds the referenced object answers."""

    def __init__(self, sources: Sequence[ValueSource]) -> None:
        self.sources = list(sources)

    def lookup(self, ref: KeyRef) -> bytes | Missing:
        for source in self.sources:
            found = source.lookup(ref)
            if found is not Missing.OBJECT:
                return found
        return Missing.OBJECT

    def namespaces(self, kind: RefKind, name: str) -> list[str]:
        return sorted({ns for source in self.sources for ns in source.namespaces(kind, name)})


def _hint(ref: KeyRef, source: ValueSource) -> str | None:
    others = [ns for ns in source.namespaces(ref.kind, ref.name) if ns != ref.namespace]
    if not others:
        return None
    field = "secretKeyRef" if ref.kind == "Secret" else "configMapKeyRef"
    return (
        f"there is one in namespace {', '.join(others)}; {field}.namespace defaults to "
        "'default', not to the Configuration's namespace"
    )


def _lookup(name: str, ref: KeyRef, source: ValueSource) -> bytes | Missing:
    try:
        return source.lookup(ref)
    except (OSError, ValueError) as error:
        # Unreadable is not missing: `optional` does not cover it.
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise UnsolvablePropertyError(name, ref, f"cannot read {ref}: {reason}") from None


def resolve_properties(
    properties: Sequence[DiscoveryProperty], source: ValueSource
) -> dict[str, bytes | None]:
    """The `discovery_properties` map of a DiscoverRequest; see the module table."""
    resolved: dict[str, bytes | None] = {}
    for prop in properties:
        if prop.value is not None:
            resolved[prop.name] = prop.value.encode()
            continue
        ref = prop.value_from
        if ref is None:
            resolved[prop.name] = None
            continue
        found = _lookup(prop.name, ref, source)
        if isinstance(found, bytes):
            resolved[prop.name] = found
        elif not ref.optional:
            where = f"{ref.kind} {ref.namespace}/{ref.name}"
            reason = (
                f"{where} not found"
                if found is Missing.OBJECT
                else f"{where} has no key {ref.key!r}"
            )
            hint = _hint(ref, source) if found is Missing.OBJECT else None
            raise UnsolvablePropertyError(
                prop.name, ref, reason + " and the reference is not optional", hint
            )
    return resolved
