"""What the checks of one suite run share: its options, its Agent and process, what it saw.

The check modules (`checks_*`) each take a `PresentRun`, read what earlier
checks found there (the registration, the endpoint to call, the main stream)
and add what they find.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from akri_sdk.testing.conformance.process import HandlerProcess
from akri_sdk.testing.conformance.report import CheckResult, Recorder
from akri_sdk.testing.conformance.text import with_note
from akri_sdk.testing.fake_agent import DiscoverStream, FakeAgent, Registration

__all__ = ["POLL", "FirstRun", "Options", "PresentRun"]

# How often waits without a signal to wake on look again.
POLL = 0.02


@dataclass(frozen=True, slots=True)
class Options:
    """run_conformance's arguments, checked once."""

    command: tuple[str, ...]
    details: str
    properties: Mapping[str, bytes | None]
    name: str | None
    observe: float
    timeout: float
    headers_within: float
    streams: int
    env: Mapping[str, str]
    show_output: bool

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("no handler command to run")
        if not (self.observe > 0 and self.timeout > 0 and self.headers_within > 0):
            raise ValueError("observe, timeout and headers_within must be positive")
        if self.streams < 1:
            raise ValueError("streams must be at least 1")
        for key, value in self.properties.items():
            if not isinstance(key, str) or not (value is None or isinstance(value, bytes)):
                raise ValueError(f"property {key!r}: values must be bytes or None")


@dataclass(slots=True)
class FirstRun:
    """What the absent-Agent run needs from the main run: when to start its Agent."""

    registered: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    latency: float | None = None
    socket_name: str | None = None


class PresentRun:
    """The main run: the Agent is up before the handler starts."""

    def __init__(
        self,
        options: Options,
        recorder: Recorder,
        directory: Path,
        agent: FakeAgent,
        process: HandlerProcess,
        first_run: FirstRun,
    ) -> None:
        self.options = options
        self.record = recorder.add
        self.directory = directory
        self.agent = agent
        self.process = process
        self.registration: Registration | None = None
        self.endpoint: Registration | str | None = None
        self.socket_path: Path | None = None
        self.first_run = first_run
        self.via = ""  # how Discover is reached when registration failed
        self.exit_reported = False  # the handler's last output was quoted already
        self.main: DiscoverStream | None = None
        self.main_refused = False
        self.opened: list[DiscoverStream] = []

    async def wait(self, ready: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until `ready()`, the handler exits or `timeout` passes; `ready()` then."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.returncode is not None or time.monotonic() >= deadline:
                return ready()
            await asyncio.sleep(POLL)
        return True

    def with_exit(self, detail: str) -> str:
        """`detail`, plus why the handler is gone if it is (its output only the first time)."""
        note = self.process.exit_note(output=not self.exit_reported)
        self.exit_reported = self.exit_reported or bool(note)
        return with_note(detail, note)

    def discover(self, details: str | None = None) -> DiscoverStream:
        """A Discover call to the endpoint under test: the good details unless others given."""
        assert self.endpoint is not None
        text = self.options.details if details is None else details
        stream = self.agent.discover(self.endpoint, text, self.options.properties)
        self.opened.append(stream)
        return stream

    async def first_snapshot(self, stream: DiscoverStream) -> bool:
        """Wait for the stream's first snapshot (within the timeout); whether it came."""
        await self.wait(lambda: bool(stream.snapshots) or stream.ended, self.options.timeout)
        return bool(stream.snapshots)

    async def guarded(self, name: str, check: Callable[[], Awaitable[CheckResult]]) -> None:
        """Run one check; an unexpected error fails that check, not the suite."""
        try:
            result = await check()
        except Exception as error:
            result = CheckResult(
                name, False, self.with_exit(f"the check broke: {type(error).__name__}: {error}")
            )
        self.record(result)
