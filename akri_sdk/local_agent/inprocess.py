"""Serve handler objects in this process, for `agent --run` and `discover`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from akri_sdk.handler import DiscoveryHandler
from akri_sdk.runtime import RuntimeConfig, serve

__all__ = ["serve_in_process"]


async def serve_in_process(
    handlers: Sequence[DiscoveryHandler], directory: Path, stop: asyncio.Event
) -> tuple[asyncio.Task[None], str | None]:
    """Start serving and registering in `directory` until `stop` is set.

    Returns the serving task and, if it failed to start, why. The handlers go
    through the same runtime as `akri-dh run`: sockets, registration, shutdown.
    """
    started = asyncio.Event()
    task = asyncio.create_task(
        serve(handlers, RuntimeConfig(directory), stop=stop, started=started),
        name="in-process handlers",
    )
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        error = task.exception()
        return task, str(error) if error is not None else "stopped at once"
    return task, None
