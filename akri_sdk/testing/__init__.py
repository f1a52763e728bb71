"""Testing kit: a fake Agent as strict as the real one."""

from akri_sdk.testing.authority import authority_is_valid
from akri_sdk.testing.fake_agent import (
    DiscoverStream,
    FakeAgent,
    Registration,
    RejectedCall,
    StreamEndedError,
    TimedSnapshot,
)

__all__ = [
    "DiscoverStream",
    "FakeAgent",
    "Registration",
    "RejectedCall",
    "StreamEndedError",
    "TimedSnapshot",
    "authority_is_valid",
]
