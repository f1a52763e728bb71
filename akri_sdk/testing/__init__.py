"""Testing kit: a fake Agent as strict as the real one, fixtures, strategies.

Names load on first use: pytest imports this package for our `pytest11`
entry point in every project that installs akri-sdk, and that must not cost
grpc and h2 imports (or fail when an optional test dependency is missing).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from akri_sdk.testing.authority import authority_is_valid
    from akri_sdk.testing.fake_agent import (
        DiscoverStream,
        FakeAgent,
        InstanceInfo,
        Registration,
        RejectedCall,
        StreamEndedError,
        TimedSnapshot,
    )

__all__ = [
    "DiscoverStream",
    "FakeAgent",
    "InstanceInfo",
    "Registration",
    "RejectedCall",
    "StreamEndedError",
    "TimedSnapshot",
    "authority_is_valid",
]

_WHERE = {
    "authority_is_valid": "akri_sdk.testing.authority",
    **{name: "akri_sdk.testing.fake_agent" for name in __all__ if name != "authority_is_valid"},
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'akri_sdk.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
