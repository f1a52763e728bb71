"""`akri-dh discover`: one handler, one Discover stream, a look at what it finds.

The handler is served in this process on a temporary directory and the fake
Agent calls it exactly as the Agent would, so what is printed is what a cluster
would get. With `--json`, one line per event: `snapshot` (`handler`, `shared`,
`devices`: id, properties, mounts, device_specs) or `error` (`handler`, `code`,
`message`), each with `event` and `ts` as in `akri-dh agent --json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from akri_sdk.device import Device
from akri_sdk.handler import DiscoveryHandler
from akri_sdk.local_agent.events import Event, code_name
from akri_sdk.local_agent.inprocess import serve_in_process
from akri_sdk.local_agent.table import render_devices
from akri_sdk.local_agent.view import device_fields
from akri_sdk.runtime import stop_on_signals
from akri_sdk.testing.fake_agent import DiscoverStream, FakeAgent

__all__ = ["DiscoverOptions", "run_discover"]

EXIT_OK, EXIT_FAILED = 0, 1
REGISTRATION_TIMEOUT = 10.0


@dataclass(frozen=True)
class DiscoverOptions:
    """`akri-dh discover` options, after argparse."""

    details: str = ""
    properties: Mapping[str, bytes | None] = field(default_factory=dict)
    json: bool = False
    watch: bool = False
    seconds: float | None = None
    timeout: float = 30.0


class _Printer:
    def __init__(self, handler: DiscoveryHandler, options: DiscoverOptions) -> None:
        self.handler = handler
        self.options = options

    def snapshot(self, devices: tuple[Device, ...]) -> None:
        if self.options.json:
            event = Event(
                "snapshot",
                {
                    "handler": self.handler.name,
                    "shared": bool(self.handler.shared),
                    "devices": [device_fields(device) for device in devices],
                },
            )
            print(event.to_json(), flush=True)
            return
        shared = "shared" if self.handler.shared else "local"
        count = f"{len(devices)} device{'' if len(devices) == 1 else 's'}"
        stamp = time.strftime("[%H:%M:%S] ", time.localtime()) if self.options.watch else ""
        print(f"{stamp}{self.handler.name} ({shared}): {count}", flush=True)
        if devices:
            print(render_devices(devices, shutil.get_terminal_size().columns), flush=True)

    def error(self, code: str | None, message: str) -> None:
        if self.options.json:
            fields = {"handler": self.handler.name, "code": code, "message": message}
            print(Event("error", fields).to_json(), flush=True)
        how = f" ({code})" if code else ""
        print(f"akri-dh discover: {self.handler.name}{how}: {message}", file=sys.stderr)


async def _until(stream: DiscoverStream, count: int, stop: asyncio.Event, limit: float) -> bool:
    """Wait for snapshot number `count`, the stream's end or `stop`; False after `limit` s."""
    waiting = asyncio.create_task(
        stream.until(lambda s: len(s.snapshots) >= count or s.ended, limit)
    )
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        waiting.cancel()
    timed_out = waiting.done() and not waiting.cancelled() and waiting.exception() is not None
    return not timed_out


async def _look(
    fake: FakeAgent, printer: _Printer, options: DiscoverOptions, stop: asyncio.Event
) -> int:
    try:
        registrations = await fake.wait_registrations(1, timeout=REGISTRATION_TIMEOUT)
    except TimeoutError:
        printer.error(None, f"did not register within {REGISTRATION_TIMEOUT:g} s")
        return EXIT_FAILED
    stream = fake.discover(registrations[0], options.details, options.properties)
    shown = 0
    timeout = options.timeout
    while not stop.is_set():
        if not await _until(stream, shown + 1, stop, timeout):
            printer.error(None, f"sent no devices within {timeout:g} s")
            return EXIT_FAILED
        for snapshot in stream.snapshots[shown:]:
            printer.snapshot(snapshot.devices)
        shown = len(stream.snapshots)
        if stream.ended:
            # A refusal (INVALID_ARGUMENT) ends the call before any snapshot;
            # a handler should never end a stream on its own (spec §3.4).
            printer.error(code_name(stream.code), stream.message or "the stream ended")
            return EXIT_FAILED
        if shown and not options.watch:
            break
        timeout = float("inf")  # later snapshots come when devices change
    await stream.cancel()
    return EXIT_OK


async def _discover(handler: DiscoveryHandler, options: DiscoverOptions) -> int:
    stop = stop_on_signals(options.seconds)
    directory = Path(tempfile.mkdtemp(prefix="akri-discover-", dir="/tmp"))
    handler_stop = asyncio.Event()
    printer = _Printer(handler, options)
    try:
        async with FakeAgent(directory) as fake:
            serving, failure = await serve_in_process([handler], directory, handler_stop)
            try:
                if failure is not None:
                    printer.error(None, f"cannot serve: {failure}")
                    return EXIT_FAILED
                return await _look(fake, printer, options, stop)
            finally:
                handler_stop.set()
                with contextlib.suppress(Exception):
                    await serving
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_discover(handler: DiscoveryHandler, options: DiscoverOptions) -> int:
    """The whole command: 0 after showing devices, 1 if the handler refused or failed."""
    return asyncio.run(_discover(handler, options))
