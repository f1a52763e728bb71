"""Run handlers against a fake Agent from a test: in-process, or as a command.

The pytest plugin's fixtures are thin wrappers around these classes; they are
public so a test suite that does not use pytest (or wants other lifetimes) can
use them too. Everything here waits on conditions with a timeout, never on
fixed sleeps, and says in its error what it was waiting for and what it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from akri_sdk.device import Device
from akri_sdk.handler import DiscoveryHandler
from akri_sdk.probes import ProbeServer
from akri_sdk.runtime import HandlerRuntime, RuntimeConfig, serve
from akri_sdk.testing.fake_agent import FakeAgent, StreamEndedError

__all__ = [
    "Expectation",
    "HandlerProcess",
    "InstanceWatcher",
    "ServedHandlers",
    "eventually",
    "short_socket_dir",
    "start_handler_process",
]

# sun_path holds 107 bytes plus NUL; leave room for "/<handler name up to 100>.sock".
_SHORT_BASE_BYTES = 40

Expectation = int | Iterable[str] | Callable[[dict[str, Device]], bool] | None
"""What `InstanceWatcher` waits for: an Instance count, the set of device ids, a
predicate over {instance name: device}, or None for "every stream has reported"."""


def short_socket_dir(prefix: str = "akri-") -> Path:
    """A new private directory short enough for Unix socket paths (< 107 bytes).

    pytest's `tmp_path` easily exceeds the limit, and so can $TMPDIR (macOS), so
    fall back to /tmp when the usual temp directory has a long name.
    """
    base = tempfile.gettempdir()
    if len(os.fsencode(base)) > _SHORT_BASE_BYTES and os.path.isdir("/tmp"):
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


class ServedHandlers:
    """Handler instances served in this event loop; `stop()` ends them all.

    Each call to `start` (or the object itself) serves a group of handlers the
    way `akri_sdk.run` would, with `DISCOVERY_HANDLERS_DIRECTORY` = `directory`,
    and returns once every endpoint is serving (registration follows in the
    background, as in production).
    """

    def __init__(self, directory: Path | str, *, poll_interval: float = 0.05) -> None:
        self.directory = Path(directory)
        # Fast registration-socket polling: a test restarting the Agent should
        # not wait the production 0.25 s for the watchdog.
        self.poll_interval = poll_interval
        self._groups: list[tuple[asyncio.Task[None], asyncio.Event, list[HandlerRuntime]]] = []
        self.probe_servers: list[ProbeServer] = []

    @property
    def runtimes(self) -> list[HandlerRuntime]:
        """Every runtime started so far, in start order."""
        return [runtime for _, _, runtimes in self._groups for runtime in runtimes]

    async def start(self, *handlers: DiscoveryHandler, **config: Any) -> list[HandlerRuntime]:
        """Serve `handlers`; keyword arguments override RuntimeConfig fields."""
        options: dict[str, Any] = {"directory": self.directory, "poll_interval": self.poll_interval}
        options.update(config)
        stop, started = asyncio.Event(), asyncio.Event()
        runtimes: list[HandlerRuntime] = []
        names = ", ".join(handler.name for handler in handlers) or "nothing"
        task = asyncio.create_task(
            serve(
                handlers,
                RuntimeConfig(**options),
                stop=stop,
                started=started,
                runtimes=runtimes,
                probe_servers=self.probe_servers,
            ),
            name=f"serve {names}",
        )
        self._groups.append((task, stop, runtimes))
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            self._groups.remove((task, stop, runtimes))
            task.result()  # raises what serve() raised (socket in use, duplicate names, ...)
            raise RuntimeError(f"serving {names} ended before it started")
        return runtimes

    __call__ = start

    def probe_port(self) -> int:
        """The bound port of the health server (start with health_port=0)."""
        if len(self.probe_servers) != 1:
            raise RuntimeError(f"{len(self.probe_servers)} health servers running, expected 1")
        return self.probe_servers[0].port

    async def stop(self) -> None:
        """Stop every group, newest first: streams cancelled, sockets removed."""
        groups, self._groups = self._groups, []
        errors: list[BaseException] = []
        for task, stop, _ in reversed(groups):
            stop.set()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as error:  # keep stopping the others
                errors.append(error)
        if errors:
            raise errors[0]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class _Changed:
    """Wakes every waiter on each change (new output, process exit)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()


def _tail(data: bytes | bytearray, lines: int = 20) -> str:
    text = bytes(data).decode(errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:])


class HandlerProcess:
    """A handler command running as a child process, with its output captured.

    Create with `start_handler_process`. The child gets its own session, so a
    command that starts helpers (a shell script, `uv run`) can be killed whole.
    """

    def __init__(self, args: Sequence[str], process: asyncio.subprocess.Process) -> None:
        self.args = list(args)
        self.process = process
        self.pid = process.pid
        self._out = {"stdout": bytearray(), "stderr": bytearray()}
        self._changed = _Changed()
        self._readers = [
            asyncio.create_task(self._read(name, stream), name=f"{name} of {self.pid}")
            for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
            if stream is not None
        ]
        self._exit = asyncio.create_task(self._wait_exit(), name=f"exit of {self.pid}")

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<HandlerProcess {self.pid} {state}: {' '.join(self.args)}>"

    async def _read(self, name: str, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self._out[name] += chunk
            self._changed.notify()

    async def _wait_exit(self) -> int:
        code = await self.process.wait()
        self._changed.notify()
        return code

    @property
    def returncode(self) -> int | None:
        """The exit status once the process ended (negative: killed by that signal)."""
        return self.process.returncode

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    @property
    def stdout(self) -> str:
        """Everything the process wrote to stdout so far."""
        return self._out["stdout"].decode(errors="replace")

    @property
    def stderr(self) -> str:
        """Everything the process wrote to stderr so far (Python logs go here)."""
        return self._out["stderr"].decode(errors="replace")

    def describe(self) -> str:
        """State and the last lines of output, for failure messages."""
        lines = [repr(self)]
        for name, data in self._out.items():
            if data:
                lines.append(f"--- last {name} lines ---\n{_tail(data)}")
        return "\n".join(lines)

    async def wait(self, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Wait for the process to exit and return its status."""
        try:
            async with asyncio.timeout(timeout):
                code = await asyncio.shield(self._exit)
        except TimeoutError:
            raise TimeoutError(f"still running after {timeout:g}s: {self.describe()}") from None
        await self._drain()
        return code

    async def wait_for_output(
        self,
        text: str | re.Pattern[str],
        *,
        stream: Literal["stdout", "stderr", "any"] = "any",
        timeout: float = 10.0,  # noqa: ASYNC109 - the TimeoutError must show the output
    ) -> None:
        """Wait until the output contains `text` (or matches the pattern)."""
        names = ("stdout", "stderr") if stream == "any" else (stream,)

        def seen() -> bool:
            for name in names:
                output = self._out[name].decode(errors="replace")
                found = text.search(output) if isinstance(text, re.Pattern) else text in output
                if found:
                    return True
            return False

        try:
            async with asyncio.timeout(timeout):
                while not seen():
                    if not self.running and all(task.done() for task in self._readers):
                        raise RuntimeError(f"exited before writing {text!r}: {self.describe()}")
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no {text!r} within {timeout:g}s: {self.describe()}") from None

    def _signal(self, signum: int, *, group: bool = False) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.pid, signum)  # the session we created: leader pid = group id
            else:
                os.kill(self.pid, signum)

    async def stop(self, timeout: float = 5.0) -> int:  # noqa: ASYNC109
        """SIGTERM, and SIGKILL (the whole process group) after `timeout`; the exit status.

        A handler must exit 0 on SIGTERM (DESIGN rule 9): assert on the result.
        """
        if self.running:
            self._signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._exit)
            except TimeoutError:
                pass
        # Also reap helpers the command left behind, which could hold our pipes.
        self._signal(signal.SIGKILL, group=True)
        code = await asyncio.shield(self._exit)
        await self._drain()
        return code

    async def _drain(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Let the readers collect the last output; a grandchild may keep a pipe open."""
        _, pending = await asyncio.wait(self._readers, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


async def start_handler_process(
    args: Sequence[str],
    *,
    directory: Path | str,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    cwd: Path | str | None = None,
) -> HandlerProcess:
    """Start a handler command with DISCOVERY_HANDLERS_DIRECTORY = `directory`.

    The environment is ours (unless `inherit_env=False`) plus `env`; POD_IP is
    dropped so the handler serves on a socket the fake Agent can reach, and
    PYTHONUNBUFFERED is set so a Python handler's output arrives as it is written.
    """
    if isinstance(args, str):
        raise TypeError("args must be a list of arguments, not one string")
    environ = dict(os.environ) if inherit_env else {}
    environ.pop("POD_IP", None)
    environ["PYTHONUNBUFFERED"] = "1"
    environ.update(env or {})
    environ["DISCOVERY_HANDLERS_DIRECTORY"] = os.fspath(directory)
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
        cwd=cwd,
        start_new_session=True,
    )
    return HandlerProcess(args, process)


_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def _default_configuration(handler: str) -> str:
    """A Kubernetes-style name for a handler's Configuration: `akri-debugecho`."""
    slug = _NOT_DNS.sub("-", handler.lower()).strip("-") or "handler"
    return f"akri-{slug}"[:50]


def _condition(expect: Expectation) -> tuple[Callable[[dict[str, Device]], bool], str]:
    """Turn an expectation into a predicate over instances, and words for errors."""
    if expect is None:
        return (lambda _: True), "every stream's first snapshot"
    if isinstance(expect, bool):
        raise TypeError("expect must be a count, device ids or a predicate, not a bool")
    if isinstance(expect, int):
        count = expect
        return (lambda found: len(found) == count), f"{count} Instance(s)"
    if isinstance(expect, str):
        raise TypeError("expect must be an iterable of device ids, not one string")
    if callable(expect):
        predicate = expect
        name = getattr(expect, "__name__", "predicate")
        return (lambda found: bool(predicate(found))), f"{name}(instances) to hold"
    ids = frozenset(expect)
    return (lambda found: {d.id for d in found.values()} == ids), f"device ids {sorted(ids)}"


class InstanceWatcher:
    """Add Configurations to a fake Agent and wait for the Instances they produce.

    `await watcher("debugEcho", details="descriptions: [a, b]", expect=2)` waits
    for the handler to register, adds a Configuration (once; calling again with
    the same request waits on the same one) and returns {instance name: device}
    once `expect` holds. Fails fast, with the reason, when every Discover stream
    of the Configuration ended (bad details get INVALID_ARGUMENT) or a handler
    process exited before registering.
    """

    def __init__(
        self,
        agent: FakeAgent,
        *,
        timeout: float = 10.0,
        processes: Callable[[], Sequence[HandlerProcess]] = list,
    ) -> None:
        self.agent = agent
        self.timeout = timeout
        self._processes = processes
        # name -> (handler, details, properties) this watcher added.
        self._requests: dict[str, tuple[str, str, dict[str, bytes | None]]] = {}
        self.configuration: str | None = None
        """The Configuration the last call used (its name is in every Instance name)."""

    async def __call__(
        self,
        handler: str,
        details: str = "",
        *,
        properties: Mapping[str, bytes | str | None] | None = None,
        expect: Expectation = None,
        configuration: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Device]:
        """Make sure a Configuration for `handler` exists; wait until `expect` holds.

        `properties` are discoveryProperties (str values are UTF-8 encoded, None is
        a property declared without a value).
        """
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        encoded = {
            key: value.encode() if isinstance(value, str) else value
            for key, value in (properties or {}).items()
        }
        request = (handler, details, encoded)
        name = self._name_for(request, configuration)
        await self._wait_registered(handler, max(deadline - loop.time(), 0.0))
        if name not in self._requests:
            self.agent.add_configuration(name, handler, details, encoded)
            self._requests[name] = request
        self.configuration = name
        return await self.wait(name, expect, timeout=max(deadline - loop.time(), 0.0))

    def _name_for(
        self, request: tuple[str, str, dict[str, bytes | None]], configuration: str | None
    ) -> str:
        if configuration is not None:
            known = self._requests.get(configuration)
            if known is not None and known != request:
                raise ValueError(
                    f"Configuration {configuration!r} exists with another request "
                    f"(handler {known[0]!r}, details {known[1]!r}); use another name, or "
                    "remove() it first"
                )
            return configuration
        base = _default_configuration(request[0])
        name, number = base, 1
        while name in self._requests and self._requests[name] != request:
            number += 1
            name = f"{base}-{number}"
        return name

    async def _wait_registered(self, handler: str, timeout: float) -> None:  # noqa: ASYNC109
        if self.agent.endpoints(handler):
            return
        registered = asyncio.create_task(
            self.agent.until(lambda agent: bool(agent.endpoints(handler)), timeout)
        )
        exits = {asyncio.create_task(p.wait()): p for p in self._processes() if p.running}
        try:
            await asyncio.wait({registered, *exits}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in exits:
                task.cancel()
        if not registered.done():
            registered.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await registered
            gone = next(p for task, p in exits.items() if task.done() and not task.cancelled())
            raise RuntimeError(
                f"handler {handler!r} did not register: its process exited with "
                f"{gone.returncode}\n{gone.describe()}"
            )
        try:
            registered.result()
        except TimeoutError:
            raise TimeoutError(
                f"handler {handler!r} did not register with the fake Agent within "
                f"{timeout:g}s\n{self._context()}"
            ) from None

    def _context(self) -> str:
        parts = [self.agent.describe()]
        parts.extend(p.describe() for p in self._processes())
        return "\n".join(parts)

    async def wait(
        self,
        configuration: str | None = None,
        expect: Expectation = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Device]:
        """Wait until the Instances of a Configuration this watcher added meet `expect`.

        Without a name, the Configuration of the last call. Raises StreamEndedError
        when every stream ended, TimeoutError with the Agent's state otherwise.
        """
        name = configuration or self.configuration
        if name is None:
            raise ValueError("no Configuration yet: call the watcher with a handler name first")
        holds, wanted = _condition(expect)
        timeout = self.timeout if timeout is None else timeout

        def settled(agent: FakeAgent) -> bool:
            streams = agent.streams(name)
            if streams and all(s.ended for s in streams):
                return True  # reported below
            # Wait for every live stream's first report even when `expect` holds
            # for no Instances: "0 Instances" must mean the handler said so.
            live = [s for s in streams if not s.ended]
            return bool(live) and all(s.snapshots for s in live) and holds(agent.instances(name))

        try:
            await self.agent.until(settled, timeout)
        except TimeoutError:
            seen = {n: d.id for n, d in self.agent.instances(name).items()}
            raise TimeoutError(
                f"Configuration {name!r}: waited {timeout:g}s for {wanted}; Instances are "
                f"{seen}\n{self._context()}"
            ) from None
        streams = self.agent.streams(name)
        if streams and all(s.ended for s in streams):
            ends = "; ".join(f"{s.code}: {s.message}" for s in streams)
            raise StreamEndedError(
                f"every Discover stream of Configuration {name!r} ended ({ends}); a handler "
                f"ends a stream only to refuse a request\n{self._context()}"
            )
        return self.agent.instances(name)

    async def remove(self, configuration: str | None = None) -> None:
        """Delete a Configuration; the handler sees its streams cancelled."""
        name = configuration or self.configuration
        if name is None or name not in self._requests:
            raise KeyError(f"no Configuration {name!r} was added by this watcher")
        del self._requests[name]
        if self.configuration == name:
            self.configuration = None
        await self.agent.remove_configuration(name)


async def eventually(
    predicate: Callable[[], bool],
    timeout: float = 5.0,  # noqa: ASYNC109 - a plain bound on the wait
    what: str = "condition",
) -> None:
    """Poll a cheap predicate until it holds (for state with no event to wait on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
