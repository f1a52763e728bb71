"""pytest plugin (entry point `pytest11`): fixtures for testing a handler, no imports needed.

    async def test_echo(akri_serve, akri_instances):
        await akri_serve(DebugEcho())
        found = await akri_instances("debugEcho", "descriptions: [a, b]", expect=2)
        assert {d.id for d in found.values()} == {"a", "b"}

pytest imports this module in every project that installs akri-sdk, so it
imports only pytest (and pytest-asyncio when present) at module level; the
fake Agent and h2 load when a test first asks for a fixture (which also needs
the packages above this module, akri_sdk and akri_sdk.testing, to import
nothing optional). Async
fixtures are declared with `pytest_asyncio.fixture`, so they work in both
asyncio modes (strict: mark the tests `@pytest.mark.asyncio`). They run in the
event loop pytest-asyncio gives function-scoped fixtures
(`asyncio_default_fixture_loop_scope`), which must be the tests' loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from akri_sdk.handler import DiscoveryHandler
    from akri_sdk.runtime import HandlerRuntime
    from akri_sdk.testing.fake_agent import FakeAgent
    from akri_sdk.testing.harness import HandlerProcess, InstanceWatcher, ServedHandlers

__all__ = ["CommandRunner", "HandlerServer"]

DEFAULT_TIMEOUT = 10.0
_INSTALL_HINT = "the akri_* async fixtures need pytest-asyncio: pip install 'akri-sdk[testing]'"

F = TypeVar("F", bound=Callable[..., Any])


def _async_fixture(function: F) -> F:
    """`pytest_asyncio.fixture` when available, else a fixture that says what is missing.

    pytest-asyncio's own decorator marks the fixture for strict mode too;
    without the plugin an async fixture would fail with a puzzling message.
    """
    try:
        import pytest_asyncio
    except ImportError:

        @functools.wraps(function)
        def missing(*args: Any, **kwargs: Any) -> Any:
            pytest.fail(_INSTALL_HINT, pytrace=False)

        return cast(F, pytest.fixture(missing))
    return cast(F, pytest_asyncio.fixture(function))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("akri", "akri-sdk handler testing")
    group.addoption(
        "--akri-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long akri_* fixtures wait for registrations and Instances "
        f"(default: ini akri_timeout or {DEFAULT_TIMEOUT:g})",
    )
    parser.addini(
        "akri_timeout",
        "how long akri_* fixtures wait for registrations and Instances, in seconds",
        default=str(DEFAULT_TIMEOUT),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "akri_timeout(seconds): how long this test's akri_* fixtures wait (a slow handler)",
    )


@pytest.fixture
def akri_timeout(request: pytest.FixtureRequest) -> float:
    """Seconds the akri_* fixtures wait: marker, then --akri-timeout, then ini akri_timeout."""
    marker = request.node.get_closest_marker("akri_timeout")
    if marker is not None:
        if len(marker.args) != 1:
            raise pytest.UsageError("use @pytest.mark.akri_timeout(seconds)")
        return float(marker.args[0])
    option = request.config.getoption("akri_timeout")
    if option is not None:
        return float(option)
    return float(request.config.getini("akri_timeout"))


@pytest.fixture
def akri_socket_dir() -> Iterator[Path]:
    """A fresh directory short enough for Unix sockets; the DISCOVERY_HANDLERS_DIRECTORY.

    pytest's `tmp_path` can exceed the 107-byte socket path limit.
    """
    from akri_sdk.testing.harness import short_socket_dir

    path = short_socket_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _same_loop(loop: asyncio.AbstractEventLoop, fixture: str) -> None:
    """Objects made in one event loop do not work in another: say so plainly."""
    if asyncio.get_running_loop() is not loop:
        raise RuntimeError(
            f"{fixture} was set up in another event loop than this test runs in; set "
            "asyncio_default_fixture_loop_scope to your tests' loop scope (function)"
        )


@_async_fixture
async def akri_agent(akri_socket_dir: Path) -> AsyncIterator[FakeAgent]:
    """A running fake Agent (as strict as Akri's) in `akri_socket_dir`; stopped afterwards."""
    from akri_sdk.testing.fake_agent import FakeAgent

    async with FakeAgent(akri_socket_dir) as agent:
        yield agent


class HandlerServer:
    """`await akri_serve(MyHandler(), ...)`: serve handler instances in this event loop.

    Keyword arguments override RuntimeConfig fields. Returns the runtimes (their
    `socket_path`, `service`); every handler stops when the test ends.
    """

    def __init__(self, served: ServedHandlers, loop: asyncio.AbstractEventLoop) -> None:
        self.served = served
        self._loop = loop

    async def __call__(self, *handlers: DiscoveryHandler, **config: Any) -> list[HandlerRuntime]:
        _same_loop(self._loop, "akri_serve")
        return await self.served.start(*handlers, **config)

    @property
    def runtimes(self) -> list[HandlerRuntime]:
        return self.served.runtimes

    async def stop(self) -> None:
        """Stop everything served so far (to test what the Agent sees afterwards)."""
        await self.served.stop()


@_async_fixture
async def akri_serve(akri_agent: FakeAgent, akri_socket_dir: Path) -> AsyncIterator[HandlerServer]:
    """Serve handler instances in-process against `akri_agent`, stopped at teardown."""
    from akri_sdk.testing.harness import ServedHandlers

    served = ServedHandlers(akri_socket_dir)
    try:
        yield HandlerServer(served, asyncio.get_running_loop())
    finally:
        # Agent first: its streams are cancelled as for a deleted Configuration,
        # so the handlers stop at once instead of waiting out their stop grace.
        await akri_agent.stop()
        await served.stop()


class CommandRunner:
    """`await akri_run_command([...], env={...})`: start a handler command as a subprocess.

    It gets DISCOVERY_HANDLERS_DIRECTORY = `akri_socket_dir` and our environment
    plus `env`; stdout and stderr are captured (`.stdout`, `.stderr`). At teardown
    it gets SIGTERM, then SIGKILL; `await process.stop()` earlier gives its exit
    status (a handler must exit 0 on SIGTERM).
    """

    def __init__(self, directory: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.directory = directory
        self.processes: list[HandlerProcess] = []
        self._loop = loop

    async def __call__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: Path | str | None = None,
    ) -> HandlerProcess:
        from akri_sdk.testing.harness import start_handler_process

        _same_loop(self._loop, "akri_run_command")
        process = await start_handler_process(
            args, directory=self.directory, env=env, inherit_env=inherit_env, cwd=cwd
        )
        self.processes.append(process)
        return process

    async def stop_all(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                await process.stop()


@_async_fixture
async def akri_run_command(
    akri_agent: FakeAgent, akri_socket_dir: Path
) -> AsyncIterator[CommandRunner]:
    """Run handler commands as subprocesses against `akri_agent`; stopped at teardown."""
    runner = CommandRunner(akri_socket_dir, asyncio.get_running_loop())
    try:
        yield runner
    finally:
        await akri_agent.stop()  # as in akri_serve: no open streams to wait for
        await runner.stop_all()


@pytest.fixture
def akri_instances(
    akri_agent: FakeAgent, akri_run_command: CommandRunner, akri_timeout: float
) -> InstanceWatcher:
    """`await akri_instances("debugEcho", details, expect=2)` -> {instance name: Device}.

    Waits for the handler to register, adds a Configuration for it (once per
    distinct request) and waits until `expect` holds: a count, the device ids,
    or a predicate over the Instances; None waits for the first report. Fails
    fast with the reason when the handler refused the details or its process died.
    """
    from akri_sdk.testing.harness import InstanceWatcher

    return InstanceWatcher(
        akri_agent, timeout=akri_timeout, processes=lambda: akri_run_command.processes
    )
