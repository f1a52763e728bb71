"""What the local agent shows: Instances, Configuration states, registrations.

Values only, built from the fake Agent's state; `table` renders them for people
and `events` turns their changes into JSON lines for scripts. Nothing here holds
a discovery property value: those are secrets (DESIGN rule 10).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from akri_sdk.device import Device, DeviceSpec, Mount
from akri_sdk.local_agent.model import Configuration

__all__ = [
    "AgentStatus",
    "ConfigurationStatus",
    "InstanceView",
    "RegistrationView",
    "device_fields",
]


def _mount(mount: Mount) -> dict[str, Any]:
    return {
        "container_path": mount.container_path,
        "host_path": mount.host_path,
        "read_only": mount.read_only,
    }


def _device_spec(spec: DeviceSpec) -> dict[str, Any]:
    return {
        "container_path": spec.container_path,
        "host_path": spec.host_path,
        "permissions": spec.permissions,
    }


def device_fields(device: Device) -> dict[str, Any]:
    """A device as JSON-ready fields (a handler's properties are not secrets)."""
    return {
        "id": device.id,
        "properties": dict(sorted(device.properties.items())),
        "mounts": [_mount(m) for m in device.mounts],
        "device_specs": [_device_spec(s) for s in device.device_specs],
    }


@dataclass(frozen=True, slots=True)
class InstanceView:
    """One Instance as the Agent would create it on this node (spec §3.6)."""

    configuration: str
    namespace: str
    name: str
    device: Device
    shared: bool
    nodes: tuple[str, ...]
    capacity: int
    properties: Mapping[str, str]

    @classmethod
    def build(
        cls, configuration: Configuration, name: str, device: Device, node: str, shared: bool
    ) -> InstanceView:
        return cls(
            configuration=configuration.name,
            namespace=configuration.namespace,
            name=name,
            device=device,
            shared=shared,
            nodes=(node,),
            capacity=configuration.capacity,
            properties=configuration.instance_properties(device.properties),
        )

    @property
    def cdi_name(self) -> str:
        """`akri.sh/<configuration>=<hash>`, the name pods' devices are allocated by."""
        digest = self.name[len(self.configuration) + 1 :]
        return f"akri.sh/{self.configuration}={digest}"

    def fields(self) -> dict[str, Any]:
        device = device_fields(self.device)
        return {
            "configuration": self.configuration,
            "namespace": self.namespace,
            "instance": self.name,
            "cdi_name": self.cdi_name,
            "device_id": self.device.id,
            "shared": self.shared,
            "nodes": list(self.nodes),
            "capacity": self.capacity,
            "properties": dict(sorted(self.properties.items())),
            "mounts": device["mounts"],
            "device_specs": device["device_specs"],
        }


@dataclass(frozen=True, slots=True)
class RegistrationView:
    """A handler endpoint the Agent knows."""

    handler: str
    endpoint: str
    shared: bool


@dataclass(frozen=True, slots=True)
class ConfigurationStatus:
    """Where one Configuration stands: waiting, discovering or failing."""

    name: str
    handler: str
    state: str  # "starting", "waiting", "connecting", "discovering" or "error"
    open_streams: int = 0
    error: str | None = None
    retry_at: float | None = None  # wall-clock time of the next attempt


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """Everything the live table shows."""

    node: str
    directory: str
    registrations: tuple[RegistrationView, ...] = ()
    configurations: tuple[ConfigurationStatus, ...] = ()
    instances: tuple[InstanceView, ...] = field(default=())
