"""akri-sdk: write Akri Discovery Handlers in Python.

Subclass `DiscoveryHandler`, implement `scan` or `watch`, call `run()`.
"""

from akri_sdk.credentials import Credentials, DiscoveryProperties, PropertyError, Secret
from akri_sdk.details import DetailsError
from akri_sdk.device import (
    Device,
    DeviceSpec,
    Mount,
    env_name,
    instance_hash,
    instance_name,
    is_env_name,
)
from akri_sdk.filters import FilterList, should_include
from akri_sdk.handler import DiscoveryContext, DiscoveryHandler
from akri_sdk.hookspecs import hookimpl
from akri_sdk.presence import PresenceTracker
from akri_sdk.runtime import RuntimeConfig, run, serve

__all__ = [
    "Credentials",
    "DetailsError",
    "Device",
    "DeviceSpec",
    "DiscoveryContext",
    "DiscoveryHandler",
    "DiscoveryProperties",
    "FilterList",
    "Mount",
    "PresenceTracker",
    "PropertyError",
    "RuntimeConfig",
    "Secret",
    "env_name",
    "hookimpl",
    "instance_hash",
    "instance_name",
    "is_env_name",
    "run",
    "serve",
    "should_include",
]
