"""`akri-dh demo`: a live local demo with no cluster.

Starts the fake Agent in a temporary directory, runs `akri-dh run debugEcho` as
a real handler process against it, applies a Configuration, and prints the
Instances as devices go offline and come back. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from akri_sdk.device import Device
from akri_sdk.runtime import stop_on_signals
from akri_sdk.testing.fake_agent import FakeAgent

CONFIGURATION = "akri-debug-echo"
DETAILS = "descriptions: [foo0, foo1, foo2]"


def _table(instances: dict[str, Device], started: float) -> str:
    stamp = f"[{time.monotonic() - started:6.1f}s]"
    if not instances:
        return f"{stamp} no Instances"
    lines = [f"{stamp} {len(instances)} Instance(s):"]
    for name, device in sorted(instances.items()):
        props = ", ".join(f"{k}={v}" for k, v in sorted(device.properties.items()))
        lines.append(f"    {name:<24} device={device.id:<8} {props}")
    return "\n".join(lines)


async def run_demo(seconds: float | None, toggle_every: float) -> int:
    directory = Path(tempfile.mkdtemp(prefix="akri-demo-", dir="/tmp"))
    availability = directory / "debug-echo-availability.txt"
    stop = stop_on_signals(seconds)
    started = time.monotonic()
    handler: asyncio.subprocess.Process | None = None
    try:
        async with FakeAgent(directory, node_name="demo-node") as agent:
            print(f"local Agent listening in {directory}")
            handler = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "akri_sdk.cli",
                "run",
                "debugEcho",
                env={
                    **os.environ,
                    "DISCOVERY_HANDLERS_DIRECTORY": str(directory),
                    "DEBUG_ECHO_AVAILABILITY_FILE": str(availability),
                    "AKRI_LOG_LEVEL": os.environ.get("AKRI_LOG_LEVEL", "warning"),
                },
            )
            registrations = await agent.wait_registrations(1, timeout=30)
            registration = registrations[0]
            print(
                f"handler {registration.name!r} registered: endpoint {registration.endpoint}, "
                f"shared={registration.shared}"
            )
            print(f"applying Configuration {CONFIGURATION!r} with discoveryDetails {DETAILS!r}")
            agent.add_configuration(CONFIGURATION, "debugEcho", DETAILS)
            toggler = asyncio.create_task(_toggle(availability, toggle_every, stop))
            shown: dict[str, Device] | None = None
            while not stop.is_set():
                current = agent.instances(CONFIGURATION)
                if current != shown:
                    shown = current
                    print(_table(current, started), flush=True)
                with contextlib.suppress(TimeoutError):
                    await agent.until(
                        lambda a, shown=shown: (  # type: ignore[misc]
                            stop.is_set() or a.instances(CONFIGURATION) != shown
                        ),
                        timeout=0.5,
                    )
            toggler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await toggler
            print("stopping the handler (SIGTERM) ...")
            handler.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(handler.wait(), 10)
            print(
                f"handler exited with status {code}; socket removed: "
                f"{not (directory / 'debugEcho.sock').exists()}"
            )
            return 0 if code == 0 else 1
    finally:
        if handler is not None and handler.returncode is None:
            handler.kill()
            await handler.wait()
        shutil.rmtree(directory, ignore_errors=True)


async def _toggle(availability: Path, every: float, stop: asyncio.Event) -> None:
    online = True
    while not stop.is_set():
        await asyncio.sleep(every)
        online = not online
        state = "ONLINE" if online else "OFFLINE"
        print(
            f"-- writing {state} to the availability file: devices "
            f"{'come back' if online else 'go away'}",
            flush=True,
        )
        await asyncio.to_thread(availability.write_text, state)


def main(seconds: float | None = None, toggle_every: float = 4.0) -> int:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    return asyncio.run(run_demo(seconds, toggle_every))
