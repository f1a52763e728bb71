"""Broken on purpose: ends every Discover stream (status OK) after its first snapshot.

The Agent then deletes the Configuration's Instances (spec §3.5).
"""

from collections.abc import AsyncIterator

from akri_sdk.discovery import SnapshotFeed
from akri_sdk.handlers.debug_echo import DebugEcho
from akri_sdk.runtime import run

_updates = SnapshotFeed.updates


async def _first_update_only(self: SnapshotFeed) -> AsyncIterator[bytes]:
    async for payload in _updates(self):
        yield payload
        return


SnapshotFeed.updates = _first_update_only  # type: ignore[method-assign]

if __name__ == "__main__":
    run(DebugEcho())
