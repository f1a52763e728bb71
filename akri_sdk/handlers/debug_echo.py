"""debugEcho: Akri's test handler, wire-compatible with the Rust one (spec §5.1).

Each description becomes a device. Writing `OFFLINE` into the availability file
makes every device disappear; anything else brings them back. Akri re-reads the
file every 10 s; we notice a change within `poll_interval` (0.2 s).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from akri_sdk.device import Device
from akri_sdk.handler import DiscoveryContext, DiscoveryHandler

__all__ = ["DebugEcho", "DebugEchoDetails"]

AVAILABILITY_FILE = "/tmp/debug-echo-availability.txt"
OFFLINE = "OFFLINE"
PROPERTY = "DEBUG_ECHO_DESCRIPTION"


class DebugEchoDetails(msgspec.Struct, rename="camel"):
    """discoveryDetails of debugEcho: `descriptions: [foo0, foo1]`."""

    descriptions: list[str]


def shared_from_env(value: str | None) -> bool:
    """DEBUG_ECHO_INSTANCES_SHARED: Akri requires it; we default to the chart's `true`."""
    if value is None or value.strip() == "":
        return True
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError(f"DEBUG_ECHO_INSTANCES_SHARED must be 'true' or 'false', got {value!r}")


class DebugEcho(DiscoveryHandler):
    name = "debugEcho"
    details = DebugEchoDetails
    poll_interval = 0.2

    def __init__(self) -> None:
        self.shared = shared_from_env(os.environ.get("DEBUG_ECHO_INSTANCES_SHARED"))
        self.availability_file = Path(
            os.environ.get("DEBUG_ECHO_AVAILABILITY_FILE") or AVAILABILITY_FILE
        )

    def _online(self) -> bool:
        try:
            content = self.availability_file.read_text(errors="replace")
        except OSError:
            return True  # no file: online, as in Akri
        return OFFLINE not in content

    def _file_state(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.availability_file)
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    async def watch(self, ctx: DiscoveryContext[Any]) -> AsyncIterator[list[Device]]:
        devices = [
            Device(id=description, properties={PROPERTY: description})
            for description in ctx.details.descriptions
        ]
        seen: tuple[int, int, int] | bool | None = False  # False: not looked yet
        while True:
            state = self._file_state()
            if state != seen:
                seen = state
                yield devices if self._online() else []
            await asyncio.sleep(self.poll_interval)
