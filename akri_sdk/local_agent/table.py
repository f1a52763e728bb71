"""Plain-text tables for people: the live Instance table and a device list.

Rendering is a pure function of the status, so it is tested without a
terminal; `LiveTable` only decides how to put it on screen (clear and redraw on
a TTY, append with a time stamp otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from akri_sdk.device import Device
from akri_sdk.local_agent.view import AgentStatus, ConfigurationStatus

__all__ = [
    "LiveTable",
    "format_table",
    "properties_text",
    "render_devices",
    "render_status",
    "truncate",
]

CLEAR = "\x1b[H\x1b[2J"
_MIN_PROPERTIES_WIDTH = 24


def truncate(text: str, width: int) -> str:
    """`text` cut to `width` characters, the cut marked with an ellipsis."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def properties_text(properties: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(properties.items())) or "-"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row))
        for row in table
    ]


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def _state(status: ConfigurationStatus) -> str:
    if status.state == "discovering":
        plural = "" if status.open_streams == 1 else "s"
        return f"discovering ({status.open_streams} stream{plural})"
    if status.state == "waiting":
        return f"waiting for a {status.handler!r} handler to register"
    if status.state == "connecting":
        return "calling Discover"
    if status.state == "error":
        retry = f", retry at {_clock(status.retry_at)}" if status.retry_at is not None else ""
        return f"error{retry}"
    return status.state


def render_status(status: AgentStatus, width: int = 120) -> str:
    """The live table: handlers, Configurations with their state, Instances."""
    lines = [
        f"Local Akri Agent on node {status.node!r}; handlers register in {status.directory}",
        "",
    ]
    if status.registrations:
        lines += format_table(
            ("HANDLER", "SHARED", "ENDPOINT"),
            [(r.handler, "yes" if r.shared else "no", r.endpoint) for r in status.registrations],
        )
    else:
        lines.append(f"No handler registered yet (DISCOVERY_HANDLERS_DIRECTORY={status.directory})")
    lines.append("")
    if status.configurations:
        lines += format_table(
            ("CONFIGURATION", "HANDLER", "STATE"),
            [(c.name, c.handler, _state(c)) for c in status.configurations],
        )
        lines += [f"  {c.name}: {c.error}" for c in status.configurations if c.error]
    else:
        lines.append("No Configurations")
    lines.append("")
    if not status.instances:
        lines.append("No Instances")
        return "\n".join(lines)
    rows = [
        (
            view.configuration,
            view.name,
            view.device.id,
            properties_text(view.properties),
            ",".join(view.nodes),
        )
        for view in status.instances
    ]
    fixed = max(len("CONFIGURATION"), *(len(r[0]) for r in rows))
    fixed += max(len("INSTANCE"), *(len(r[1]) for r in rows))
    fixed += max(len("DEVICE"), *(len(r[2]) for r in rows))
    nodes = max(len("NODES"), *(len(r[4]) for r in rows))
    budget = max(width - fixed - nodes - 8, _MIN_PROPERTIES_WIDTH)
    lines += format_table(
        ("CONFIGURATION", "INSTANCE", "DEVICE", "PROPERTIES", "NODES"),
        [(r[0], r[1], r[2], truncate(r[3], budget), r[4]) for r in rows],
    )
    return "\n".join(lines)


def render_devices(devices: Sequence[Device], width: int = 120) -> str:
    """One row per device, for `akri-dh discover`."""
    if not devices:
        return "No devices"
    rows = []
    for device in devices:
        attached = [f"{m.host_path}->{m.container_path}" for m in device.mounts]
        attached += [f"{s.host_path}({s.permissions})" for s in device.device_specs]
        rows.append((device.id, properties_text(device.properties), ", ".join(attached) or "-"))
    budget = max(width - max(len("DEVICE"), *(len(r[0]) for r in rows)) - 20, 24)
    return "\n".join(
        format_table(
            ("DEVICE", "PROPERTIES", "MOUNTS/DEVICES"),
            [(r[0], truncate(r[1], budget), r[2]) for r in rows],
        )
    )


class LiveTable:
    """Shows each new rendering: redrawn in place on a terminal, appended elsewhere."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool,
        width: Callable[[], int] = lambda: 120,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stream = stream
        self._tty = tty
        self._width = width
        self._clock = clock
        self._last: str | None = None

    def show(self, status: AgentStatus) -> None:
        text = render_status(status, self._width())
        if text == self._last:
            return
        self._last = text
        stamp = f"[{_clock(self._clock())}]"
        if self._tty:
            self._stream.write(f"{CLEAR}{stamp} {text}\n")
        else:
            self._stream.write(f"{stamp} {text}\n\n")
        self._stream.flush()
