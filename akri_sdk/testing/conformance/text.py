"""How figures, devices and streams are worded in check lines."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from akri_sdk.device import Device
from akri_sdk.testing.fake_agent import DiscoverStream

__all__ = [
    "describe_devices",
    "excerpt",
    "ms",
    "seconds",
    "status_name",
    "stream_state",
    "with_note",
]


def ms(value: float) -> str:
    """Seconds as whole milliseconds: `143 ms`."""
    return f"{max(value, 0.0) * 1000:.0f} ms"


def seconds(value: float) -> str:
    """Seconds to a tenth: `2.0 s`."""
    return f"{value:.1f} s"


def excerpt(text: str | None, limit: int = 120) -> str:
    """`text` on one line, cut to `limit` characters."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def with_note(detail: str, note: str) -> str:
    """`detail (note)`, or `detail` alone when there is no note."""
    return f"{detail} ({note})" if note else detail


def describe_devices(devices: Sequence[Device], limit: int = 5) -> str:
    ids = [device.id for device in devices]
    shown = ", ".join(ids[:limit]) + (", ..." if len(ids) > limit else "")
    noun = "device" if len(ids) == 1 else "devices"
    return f"{len(ids)} {noun}" + (f": {shown}" if ids else "")


def status_name(code: grpc.StatusCode | None) -> str:
    return "no status" if code is None else str(code.name)


def stream_state(stream: DiscoverStream) -> str:
    """Where a stream without a snapshot stands, for failure lines."""
    if not stream.ended:
        return "still open" if stream.headers_at is not None else "no response headers"
    return f"ended with {status_name(stream.code)}: {excerpt(stream.message)!r}"
