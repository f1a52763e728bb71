"""The local agent: Akri Configuration manifests in, live Instances out, no cluster.

`akri-dh agent` and `akri-dh discover` are thin commands over this package. It
plays the Agent with the testing kit's `FakeAgent` (so it needs the `testing`
extra), reads Configurations, Secrets and ConfigMaps from local YAML, and
resolves `discoveryProperties` exactly as the Agent does (spec §3.2).
"""

from akri_sdk.local_agent.manifests import ManifestError, load_manifests, parse_manifests
from akri_sdk.local_agent.model import (
    ConfigMapObject,
    Configuration,
    DiscoveryProperty,
    KeyRef,
    Manifests,
    Origin,
    SecretObject,
)
from akri_sdk.local_agent.properties import (
    ChainedValues,
    DirectoryValues,
    ManifestValues,
    UnsolvablePropertyError,
    resolve_properties,
)

__all__ = [
    "ChainedValues",
    "ConfigMapObject",
    "Configuration",
    "DirectoryValues",
    "DiscoveryProperty",
    "KeyRef",
    "ManifestError",
    "ManifestValues",
    "Manifests",
    "Origin",
    "SecretObject",
    "UnsolvablePropertyError",
    "load_manifests",
    "parse_manifests",
    "resolve_properties",
]
