"""Device value types, snapshot normalisation and the Agent's naming rules.

A snapshot is the complete set of devices a handler sees right now (spec §3.4).
Devices are immutable so a snapshot can be compared with the previous one and
shared between streams without copying.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from akri_sdk._proto import discovery_pb2 as pb

__all__ = [
    "Device",
    "DeviceSpec",
    "Mount",
    "Snapshot",
    "env_name",
    "instance_hash",
    "instance_name",
    "is_env_name",
    "normalise_snapshot",
]

log = logging.getLogger("akri_sdk.device")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_ENV_CHAR = re.compile(r"[^A-Za-z0-9_]")
_VALID_PERMISSIONS = re.compile(r"r?w?m?")


def is_env_name(name: str) -> bool:
    """True if `name` is a C identifier, as broker env vars need (spec §3.7)."""
    return _ENV_NAME.fullmatch(name) is not None


def env_name(*parts: str, upper: bool = True) -> str:
    """Join parts into a valid environment variable name.

    Every character that is not a letter, digit or underscore becomes `_`, and a
    leading digit gets a `_` prefix: `env_name("mqtt", "booth-1/sound")` is
    `MQTT_BOOTH_1_SOUND`.
    """
    joined = "_".join(p for p in parts if p)
    name = _NOT_ENV_CHAR.sub("_", joined)
    if upper:
        name = name.upper()
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def instance_hash(device_id: str, node_name: str, shared: bool) -> str:
    """The 6-hex digest the Agent puts in Instance names (spec §3.6)."""
    source = device_id if shared else device_id + node_name
    return hashlib.blake2b(source.encode(), digest_size=3).hexdigest()


def instance_name(configuration: str, device_id: str, node_name: str, shared: bool) -> str:
    """The Instance `metadata.name` the Agent creates for a device (spec §3.6)."""
    return f"{configuration}-{instance_hash(device_id, node_name, shared)}"


@dataclass(frozen=True, slots=True)
class Mount:
    """A host path mounted into broker containers (kubelet device-plugin Mount)."""

    container_path: str
    host_path: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A device node passed into broker containers (kubelet device-plugin DeviceSpec)."""

    container_path: str
    host_path: str
    permissions: str = "rwm"

    def __post_init__(self) -> None:
        if not self.permissions or not _VALID_PERMISSIONS.fullmatch(self.permissions):
            raise ValueError(
                "DeviceSpec permissions must combine r, w, m in that order, "
                f"got {self.permissions!r}"
            )


@dataclass(frozen=True, slots=True)
class Device:
    """One discovered device.

    `id` must be stable across scans: the Agent hashes it into the Instance
    name. `properties` become the Instance's brokerProperties and env vars in
    broker pods, so keys should be valid C identifiers (see `env_name`).
    """

    id: str
    properties: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    device_specs: tuple[DeviceSpec, ...] = ()
    # Serialised pb.Device, computed once: a device that stays in the set is not
    # re-encoded for every snapshot or every stream.
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str):
            raise TypeError(f"Device id must be a str, got {type(self.id).__name__}")
        props = dict(self.properties)
        for key, value in props.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"Device {self.id!r}: properties must map str to str, got {key!r}: {value!r}"
                )
        # Freeze so a device in a published snapshot can never change under a stream.
        object.__setattr__(self, "properties", MappingProxyType(props))
        object.__setattr__(self, "mounts", tuple(self.mounts))
        object.__setattr__(self, "device_specs", tuple(self.device_specs))

    def __hash__(self) -> int:
        return hash(
            (self.id, tuple(sorted(self.properties.items())), self.mounts, self.device_specs)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return (
            self.id == other.id
            and self.properties == other.properties
            and self.mounts == other.mounts
            and self.device_specs == other.device_specs
        )

    def __repr__(self) -> str:
        return f"Device(id={self.id!r}, properties={dict(self.properties)!r})"

    def wire(self) -> bytes:
        """This device as serialised `v0.Device` bytes (cached).

        Encoded directly rather than through `pb.Device`: building the protobuf
        object costs more than the bytes (tests compare both encodings).
        """
        cached = self._wire
        if cached is None:
            parts = [_string(1, self.id)]
            properties = self.properties
            for key in sorted(properties):
                k = key.encode()
                v = properties[key].encode()
                # Map entry {1: key, 2: value}; inlined, as this is the hot loop.
                entry = b"\x0a" + _length(len(k)) + k + b"\x12" + _length(len(v)) + v
                parts.append(b"\x12" + _length(len(entry)) + entry)
            for mount in self.mounts:
                body = _string(1, mount.container_path) + _string(2, mount.host_path)
                if mount.read_only:
                    body += b"\x18\x01"  # field 3, varint true
                parts.append(_message(3, body))
            for spec in self.device_specs:
                body = (
                    _string(1, spec.container_path)
                    + _string(2, spec.host_path)
                    + _string(3, spec.permissions)
                )
                parts.append(_message(4, body))
            cached = b"".join(parts)
            object.__setattr__(self, "_wire", cached)
        return cached

    def to_proto(self) -> pb.Device:
        return pb.Device(
            id=self.id,
            properties=self.properties,
            mounts=[
                pb.Mount(
                    container_path=m.container_path, host_path=m.host_path, read_only=m.read_only
                )
                for m in self.mounts
            ],
            device_specs=[
                pb.DeviceSpec(
                    container_path=s.container_path,
                    host_path=s.host_path,
                    permissions=s.permissions,
                )
                for s in self.device_specs
            ],
        )

    @classmethod
    def from_proto(cls, message: pb.Device) -> Device:
        return cls(
            id=message.id,
            properties=dict(message.properties),
            mounts=tuple(Mount(m.container_path, m.host_path, m.read_only) for m in message.mounts),
            device_specs=tuple(
                DeviceSpec(s.container_path, s.host_path, s.permissions or "rwm")
                for s in message.device_specs
            ),
        )


Snapshot = tuple[Device, ...]
"""A complete device set in canonical order (sorted by id, ids unique)."""


def normalise_snapshot(devices: Iterable[Device], *, source: str = "handler") -> Snapshot:
    """Sort by id and drop duplicate ids (first wins, as the Agent would collapse them).

    Canonical order makes "did anything change?" a plain tuple comparison.
    """
    by_id: dict[str, Device] = {}
    for device in devices:
        if not isinstance(device, Device):
            raise TypeError(f"{source} produced {type(device).__name__}, expected Device")
        if device.id in by_id:
            if by_id[device.id] != device:
                log.warning(
                    "%s reported two different devices with id %r; keeping the first",
                    source,
                    device.id,
                )
            continue
        by_id[device.id] = device
    return tuple(by_id[key] for key in sorted(by_id))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_ONE_BYTE_LENGTHS = tuple(bytes((n,)) for n in range(128))


def _length(value: int) -> bytes:
    return _ONE_BYTE_LENGTHS[value] if value < 128 else _varint(value)


def _message(field_number: int, body: bytes) -> bytes:
    """A length-delimited field (wire type 2): tag, length, bytes."""
    return bytes((field_number << 3 | 2,)) + _length(len(body)) + body


def _string(field_number: int, value: str) -> bytes:
    # proto3 leaves default (empty) scalars off the wire.
    return _message(field_number, value.encode()) if value else b""


_DEVICES_TAG = b"\x0a"  # DiscoverResponse.devices: field 1, wire type 2 (length-delimited)


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """Serialise a snapshot as a DiscoverResponse once, for every stream to send.

    A repeated message field is just its elements, each tagged and length
    prefixed, so the response is the concatenation of the cached device bytes.
    """
    parts: list[bytes] = []
    for device in snapshot:
        wire = device.wire()
        parts.append(_DEVICES_TAG)
        parts.append(_length(len(wire)))
        parts.append(wire)
    return b"".join(parts)


def decode_snapshot(data: bytes) -> Snapshot:
    response = pb.DiscoverResponse.FromString(data)
    return tuple(Device.from_proto(d) for d in response.devices)
