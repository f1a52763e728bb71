"""`akri-dh agent`: read manifests, play the Agent in a directory, show Instances live.

Wiring only: manifests and value sources in, a FakeAgent in the directory, the
LocalAgent between them, and either JSON lines or the live table out. Handlers
named with `--run` are served in this process, the others register themselves
from their own processes (`DISCOVERY_HANDLERS_DIRECTORY` set to the directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from akri_sdk.handler import DiscoveryHandler
from akri_sdk.local_agent import events
from akri_sdk.local_agent.agent import LocalAgent
from akri_sdk.local_agent.events import Event
from akri_sdk.local_agent.inprocess import serve_in_process
from akri_sdk.local_agent.manifests import ManifestError, load_manifests
from akri_sdk.local_agent.model import Manifests
from akri_sdk.local_agent.properties import (
    ChainedValues,
    DirectoryValues,
    ManifestValues,
    ValueSource,
)
from akri_sdk.local_agent.table import LiveTable
from akri_sdk.local_agent.view import AgentStatus
from akri_sdk.runtime import stop_on_signals
from akri_sdk.testing.fake_agent import REGISTRATION_SOCKET_NAME, FakeAgent

__all__ = ["AgentOptions", "run_agent"]

EXIT_OK, EXIT_USAGE = 0, 2


@dataclass(frozen=True)
class AgentOptions:
    """`akri-dh agent` options, after argparse."""

    files: Sequence[str] = ()
    directory: str | None = None
    node_name: str = field(default_factory=socket.gethostname)
    secrets_dir: str | None = None
    configmaps_dir: str | None = None
    json: bool = False
    seconds: float | None = None


class JsonLines:
    """Writes one event per line and flushes, so a reading script sees it at once."""

    def __init__(self, stream: TextIO, on_closed: Callable[[], None]) -> None:
        self._stream = stream
        self._on_closed = on_closed
        self.closed = False

    def emit(self, event: Event) -> None:
        if self.closed:
            return
        try:
            self._stream.write(event.to_json() + "\n")
            self._stream.flush()
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly
            self.closed = True
            # Python flushes stdout again at exit; send that to /dev/null.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            self._on_closed()


class Coalesced:
    """Calls `show` with the latest status at most once per `delay` seconds.

    A burst of changes (a Configuration applied: stream opened, snapshot,
    Instances) becomes one redraw instead of several half-way tables.
    """

    def __init__(self, show: Callable[[AgentStatus], None], delay: float = 0.05) -> None:
        self._show = show
        self._delay = delay
        self._latest: AgentStatus | None = None
        self._pending: asyncio.TimerHandle | None = None

    def __call__(self, status: AgentStatus) -> None:
        self._latest = status
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self._delay, self.flush)

    def flush(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._latest is not None:
            self._show(self._latest)
            self._latest = None


def _listening(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _value_source(manifests: Manifests, options: AgentOptions) -> ValueSource:
    sources: list[ValueSource] = [ManifestValues(manifests)]
    if options.secrets_dir:
        sources.append(DirectoryValues(Path(options.secrets_dir), "Secret"))
    if options.configmaps_dir:
        sources.append(DirectoryValues(Path(options.configmaps_dir), "ConfigMap"))
    return ChainedValues(sources)


def _check_dirs(options: AgentOptions) -> str | None:
    for flag, value in (
        ("--secrets-dir", options.secrets_dir),
        ("--configmaps-dir", options.configmaps_dir),
    ):
        if value and not Path(value).is_dir():
            return f"{flag} {value}: not a directory"
    if not options.node_name:
        return "--node-name must not be empty"
    return None


def _error(message: str) -> None:
    print(f"akri-dh agent: {message}", file=sys.stderr)


def run_agent(options: AgentOptions, handlers: Sequence[DiscoveryHandler] = ()) -> int:
    """The whole command: 0 after a clean stop, 2 when it cannot start."""
    problem = _check_dirs(options)
    if problem is not None:
        _error(problem)
        return EXIT_USAGE
    try:
        manifests = load_manifests(options.files)
    except ManifestError as error:
        _error("invalid manifests:\n  " + "\n  ".join(error.problems))
        return EXIT_USAGE
    for ignored in manifests.ignored:
        print(f"akri-dh agent: ignoring {ignored}", file=sys.stderr)
    created = False
    if options.directory or os.environ.get("DISCOVERY_HANDLERS_DIRECTORY"):
        directory = Path(options.directory or os.environ["DISCOVERY_HANDLERS_DIRECTORY"])
    else:
        directory = Path(tempfile.mkdtemp(prefix="akri-agent-", dir="/tmp"))
        created = True
    try:
        if _listening(directory / REGISTRATION_SOCKET_NAME):
            _error(f"an Agent is already listening on {directory / REGISTRATION_SOCKET_NAME}")
            return EXIT_USAGE
        return asyncio.run(_run(options, manifests, directory, handlers))
    finally:
        if created:
            shutil.rmtree(directory, ignore_errors=True)


async def _run(
    options: AgentOptions,
    manifests: Manifests,
    directory: Path,
    handlers: Sequence[DiscoveryHandler],
) -> int:
    stop = stop_on_signals(options.seconds)
    on_status: Coalesced | None = None
    if options.json:
        on_event: Callable[[Event], None] = JsonLines(sys.stdout, stop.set).emit
    else:
        tty = sys.stdout.isatty()
        table = LiveTable(
            sys.stdout,
            tty=tty,
            width=lambda: shutil.get_terminal_size().columns if tty else 120,
        )
        on_event, on_status = (lambda _: None), Coalesced(table.show)
    if not options.json:
        print(
            f"akri-dh agent: export DISCOVERY_HANDLERS_DIRECTORY={directory} "
            "to register handlers with this agent",
            file=sys.stderr,
        )
    try:
        fake = FakeAgent(directory, node_name=options.node_name)
        await fake.start()
    except (OSError, ValueError) as error:
        _error(f"cannot serve registrations in {directory}: {error}")
        return EXIT_USAGE
    handlers_stop = asyncio.Event()
    serving: asyncio.Task[None] | None = None
    try:
        on_event(
            events.agent_started(
                str(directory), options.node_name, [c.name for c in manifests.configurations]
            )
        )
        if handlers:
            serving, failure = await serve_in_process(handlers, directory, handlers_stop)
            if failure is not None:
                _error(f"cannot serve {', '.join(h.name for h in handlers)}: {failure}")
                return EXIT_USAGE
        agent = LocalAgent(
            fake,
            manifests.configurations,
            _value_source(manifests, options),
            on_event=on_event,
            on_status=on_status,
        )
        await agent.run(stop)
        if on_status is not None:
            on_status.flush()
    finally:
        await fake.stop()
        handlers_stop.set()
        if serving is not None:
            with contextlib.suppress(Exception):
                await serving
    on_event(events.agent_stopped())
    return EXIT_OK
