"""What the local agent reads from manifests: Configurations and the objects they refer to.

Plain frozen values, validated once by `manifests`. Secret values sit in fields
kept out of `repr`, so a model object in a log line or traceback shows no secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DEFAULT_NAMESPACE",
    "ConfigMapObject",
    "Configuration",
    "DiscoveryProperty",
    "KeyRef",
    "Manifests",
    "Origin",
    "RefKind",
    "SecretObject",
]

# Where a key reference looks when it names no namespace: "default", not the
# Configuration's namespace (spec §3.2, `default_namespace()` in the Agent).
DEFAULT_NAMESPACE = "default"

RefKind = Literal["Secret", "ConfigMap"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a manifest object came from, for error messages: file and 1-based document."""

    file: str
    document: int
    item: int | None = None  # 0-based index inside a `kind: List`

    def __str__(self) -> str:
        text = f"{self.file}, document {self.document}"
        return text if self.item is None else f"{text}, items[{self.item}]"


@dataclass(frozen=True, slots=True)
class KeyRef:
    """`valueFrom.secretKeyRef` or `valueFrom.configMapKeyRef`."""

    kind: RefKind
    name: str
    key: str
    namespace: str = DEFAULT_NAMESPACE
    optional: bool = False

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} key {self.key!r}"


@dataclass(frozen=True, slots=True)
class DiscoveryProperty:
    """One `discoveryProperties` entry; neither `value` nor `value_from` means no value."""

    name: str
    value: str | None = field(default=None, repr=False)
    value_from: KeyRef | None = None


@dataclass(frozen=True, slots=True)
class Configuration:
    """The parts of an `akri.sh/v0` Configuration that matter on one node (spec §6.1)."""

    name: str
    handler: str
    namespace: str = DEFAULT_NAMESPACE
    details: str = ""
    properties: tuple[DiscoveryProperty, ...] = ()
    capacity: int = 1
    broker_properties: Mapping[str, str] = field(default_factory=dict)
    origin: Origin | None = field(default=None, compare=False)

    def instance_properties(self, device_properties: Mapping[str, str]) -> dict[str, str]:
        """An Instance's brokerProperties: the device's, then ours on top (spec §3.6)."""
        return {**device_properties, **self.broker_properties}


@dataclass(frozen=True, slots=True)
class SecretObject:
    """A v1 Secret: `data` decoded from base64, with `stringData` merged over it."""

    name: str
    namespace: str = DEFAULT_NAMESPACE
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ConfigMapObject:
    """A v1 ConfigMap: text `data` and base64-decoded `binary_data`."""

    name: str
    namespace: str = DEFAULT_NAMESPACE
    data: Mapping[str, str] = field(default_factory=dict, repr=False)
    binary_data: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    origin: Origin | None = field(default=None, compare=False)


@dataclass
class Manifests:
    """Everything read from a set of manifest files."""

    configurations: list[Configuration] = field(default_factory=list)
    secrets: dict[tuple[str, str], SecretObject] = field(default_factory=dict)
    config_maps: dict[tuple[str, str], ConfigMapObject] = field(default_factory=dict)
    # "file, document N: apiVersion/kind name" for documents of other kinds.
    ignored: list[str] = field(default_factory=list)
