"""The handler command under test: start it, capture its output, stop it and its children.

Also the directory it shares with its Agent, and what the handler left in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from akri_sdk.testing.conformance.text import excerpt
from akri_sdk.testing.fake_agent import REGISTRATION_SOCKET_NAME

__all__ = [
    "CannotStart",
    "HandlerProcess",
    "exists",
    "handler_process",
    "short_directory",
    "sockets_in",
]


class CannotStart(Exception):
    """The handler command could not be executed at all."""


class HandlerProcess:
    """The command under test, in its own session so every child can be stopped."""

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str], *, show_output: bool
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.show_output = show_output
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self._log: IO[bytes] | None = None
        self._killed = False

    async def start(self) -> None:
        output: int | IO[bytes]
        if self.show_output:
            output = 2  # our stderr: stdout stays for the check lines
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
            output = self._log
        self.started_at = time.monotonic()
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise CannotStart(f"cannot run {self.command[0]!r}: {error}") from error

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def how_it_ended(self) -> str:
        """`exited with status N` or `was killed by signal N`; '' while it runs."""
        code = self.returncode
        if code is None:
            return ""
        return f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"

    def exit_note(self, *, output: bool = True) -> str:
        """Why the handler is gone, with its last output, or '' while it runs."""
        how = self.how_it_ended()
        if not how:
            return ""
        tail = self.output_tail() if output else ""
        return f"the handler {how}" + (f"; its last output: {tail}" if tail else "")

    def output_tail(self, limit: int = 300) -> str:
        if self._log is None or self._log.closed:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        data = os.pread(fd, limit, max(0, size - limit))
        return excerpt(data.decode(errors="replace"), limit)

    async def terminate(self, timeout: float) -> tuple[int | None, float]:  # noqa: ASYNC109
        """SIGTERM, then wait: (exit status or None if it had to be killed, seconds taken)."""
        assert self.process is not None
        sent = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                code = await self.process.wait()
        except TimeoutError:
            await self.kill()
            return None, time.monotonic() - sent
        return code, time.monotonic() - sent

    async def kill(self) -> None:
        """Kill the whole process group: the handler and anything it started (once)."""
        process = self.process
        if process is None or self._killed:
            return
        self._killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

    async def stop(self) -> None:
        """Kill what is left and let go of the output file."""
        await self.kill()
        if self._log is not None:
            self._log.close()


@contextlib.asynccontextmanager
async def handler_process(
    command: Sequence[str], directory: Path, extra_env: Mapping[str, str], show_output: bool
) -> AsyncIterator[HandlerProcess]:
    """The command, started with DISCOVERY_HANDLERS_DIRECTORY=`directory`; killed on exit."""
    env = {**os.environ, **extra_env, "DISCOVERY_HANDLERS_DIRECTORY": str(directory)}
    process = HandlerProcess(command, env, show_output=show_output)
    try:
        await process.start()
        yield process
    finally:
        await process.stop()


@contextlib.contextmanager
def short_directory() -> Iterator[Path]:
    """A fresh directory for the Agent's and the handler's sockets, removed on exit."""
    # AF_UNIX paths are limited to 107 bytes: stay directly under /tmp.
    with tempfile.TemporaryDirectory(
        prefix="akri-conf-", dir="/tmp", ignore_cleanup_errors=True
    ) as path:
        yield Path(path)


def exists(path: Path) -> bool:
    """Whether anything, even a dangling link or a socket, is at `path`."""
    return os.path.lexists(path)


def sockets_in(directory: Path) -> list[Path]:
    """The sockets in `directory`, but the Agent's registration socket."""
    found = []
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if entry.name == REGISTRATION_SOCKET_NAME:
                continue
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(entry.lstat().st_mode):
                    found.append(entry)
    return sorted(found)
