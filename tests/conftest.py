"""Shared fixtures: a short socket directory, a running fake Agent, served handlers."""

from __future__ import annotations

import os

# grpc's C core logs every idle-connection GOAWAY at INFO; keep test output readable.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from akri_sdk.handler import DiscoveryHandler
from akri_sdk.probes import ProbeServer
from akri_sdk.runtime import HandlerRuntime, RuntimeConfig, serve
from akri_sdk.testing.fake_agent import FakeAgent


@pytest.fixture
def akri_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="akri-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def agent(akri_dir: Path) -> AsyncIterator[FakeAgent]:
    async with FakeAgent(akri_dir) as fake:
        yield fake


class Served:
    """Handlers served in this event loop, stopped at the end of the test."""

    def __init__(self, akri_dir: Path) -> None:
        self.akri_dir = akri_dir
        self.runtimes: list[HandlerRuntime] = []
        self.probe_servers: list[ProbeServer] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, *handlers: DiscoveryHandler, **config: Any) -> list[HandlerRuntime]:
        options: dict[str, Any] = {"directory": self.akri_dir, "poll_interval": 0.05}
        options.update(config)
        started = asyncio.Event()
        self._task = asyncio.create_task(
            serve(
                handlers,
                RuntimeConfig(**options),
                stop=self._stop,
                started=started,
                runtimes=self.runtimes,
                probe_servers=self.probe_servers,
            )
        )
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            waiter.cancel()
            self._task.result()
        return self.runtimes

    def probe_port(self) -> int:
        """The bound health port (started with health_port=0)."""
        [probes] = self.probe_servers
        return probes.port

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None


@pytest.fixture
async def served(akri_dir: Path) -> AsyncIterator[Served]:
    harness = Served(akri_dir)
    yield harness
    with contextlib.suppress(Exception):
        await harness.stop()


async def eventually(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll a cheap predicate until it holds (for state with no event to wait on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
