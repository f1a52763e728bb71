"""Child processes the benchmarks start (and always stop), and what /proc says about them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "AKRI_DH",
    "BENCH_DIR",
    "PYTHON",
    "Child",
    "cpu_seconds",
    "memory_kib",
    "scratch_dir",
    "spawn_to_exit",
]

PYTHON = sys.executable
AKRI_DH = str(Path(sys.executable).parent / "akri-dh")
BENCH_DIR = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A short directory under /tmp (Unix socket paths must stay under 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="akri-bench-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Child:
    """A process we started; `stop()` (or leaving the `with` block) always ends it.

    `started_at` is time.monotonic() taken just before `subprocess.Popen`.
    stderr goes to `log_path` so a failure can show what the child said.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        stdout: int | None = subprocess.DEVNULL,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        try:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                self.argv, env=full_env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=self._log
            )
        except BaseException:
            self._log.close()
            raise
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._log.close()
        self.returncode = self.proc.returncode
        return self.returncode

    async def astop(self, timeout: float = 5.0) -> int:
        """`stop()` without blocking the event loop (our streams may still need it)."""
        return await asyncio.to_thread(self.stop, timeout)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def spawn_to_exit(argv: Sequence[str]) -> float:
    """Seconds from just before Popen to the process having exited (status 0 required)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    # wait() with a timeout polls with sleeps of up to 50 ms, which would blur the
    # figure; block in waitpid instead and let a timer kill a hung child.
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        status = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - started
    if status != 0:
        raise RuntimeError(f"{argv} exited with {status}")
    return elapsed


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem (KiB) and Threads from /proc/<pid>/status."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads"):
                found[key] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    # The command name is in parentheses and may hold spaces; fields follow the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS
