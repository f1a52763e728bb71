"""The pytest plugin: a handler project gets akri_* fixtures without importing anything.

The pytester tests write a small handler project and run pytest on it in a
subprocess (its own event loop, plugins loaded from the entry point, as in a
user's project); the others use the fixtures directly, since this suite has
the plugin installed too.
"""

from __future__ import annotations

import signal
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest

from akri_sdk import Device, DiscoveryContext, DiscoveryHandler
from akri_sdk.testing.fake_agent import FakeAgent, StreamEndedError
from akri_sdk.testing.harness import InstanceWatcher
from akri_sdk.testing.pytest_plugin import CommandRunner, HandlerServer

pytest_plugins = ["pytester"]

HANDLER = """
import msgspec
import pytest
from akri_sdk import Device, DiscoveryHandler


class Details(msgspec.Struct, rename="camel"):
    hosts: list[str]


class Pinger(DiscoveryHandler):
    name = "pinger"
    shared = True
    details = Details
    scan_interval = 0.1

    async def scan(self, ctx):
        return [Device(id=h, properties={"PINGER_HOST": h}) for h in ctx.details.hosts]
"""

INI = """
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
"""


def run_project(pytester: pytest.Pytester, mode: str, tests: str, *args: str) -> pytest.RunResult:
    pytester.makeini(INI.format(mode=mode))
    pytester.makepyfile(test_handler=HANDLER + textwrap.dedent(tests))
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", *args, timeout=120)


def test_fixtures_work_without_imports_in_auto_mode(pytester: pytest.Pytester) -> None:
    result = run_project(
        pytester,
        "auto",
        """
        async def test_pinger_finds_hosts(akri_serve, akri_instances):
            await akri_serve(Pinger())
            found = await akri_instances("pinger", "hosts: [a, b]", expect=2)
            assert sorted(d.properties["PINGER_HOST"] for d in found.values()) == ["a", "b"]

        async def test_bad_details_fail_fast_with_the_reason(akri_serve, akri_instances):
            await akri_serve(Pinger())
            with pytest.raises(Exception, match="INVALID_ARGUMENT.*hosts"):
                await akri_instances("pinger", "hosts: 5")

        async def test_agent_restart(akri_agent, akri_serve, akri_instances):
            await akri_serve(Pinger())
            await akri_instances("pinger", "hosts: [a]", expect={"a"})
            await akri_agent.restart()
            assert len(await akri_instances.wait(expect=1)) == 1

        def test_timeout_from_the_command_line(akri_timeout):
            assert akri_timeout == 7.5

        @pytest.mark.akri_timeout(2)
        def test_timeout_from_a_marker(akri_timeout):
            assert akri_timeout == 2.0
        """,
        "--akri-timeout=7.5",
    )
    result.assert_outcomes(passed=5, warnings=0)


def test_fixtures_work_in_strict_mode(pytester: pytest.Pytester) -> None:
    result = run_project(
        pytester,
        "strict",
        """
        @pytest.mark.asyncio
        async def test_pinger_finds_hosts(akri_serve, akri_instances, akri_agent):
            [runtime] = await akri_serve(Pinger())
            found = await akri_instances("pinger", "hosts: [a, b]", expect={"a", "b"})
            assert len(found) == 2
            assert akri_agent.registrations[0].endpoint == str(runtime.socket_path)

        @pytest.mark.asyncio
        async def test_agent_alone(akri_agent, akri_socket_dir):
            assert akri_agent.socket_path.parent == akri_socket_dir
            assert len(bytes(akri_agent.socket_path)) < 107
        """,
    )
    result.assert_outcomes(passed=2, warnings=0)


@pytest.mark.slow
def test_run_command_serves_debug_echo_as_a_subprocess(pytester: pytest.Pytester) -> None:
    result = run_project(
        pytester,
        "auto",
        """
        import sys

        async def test_debug_echo_command(akri_run_command, akri_instances, akri_socket_dir):
            process = await akri_run_command(
                [sys.executable, "-m", "akri_sdk.cli", "run", "debugEcho"],
                env={"DEBUG_ECHO_AVAILABILITY_FILE": str(akri_socket_dir / "availability")},
            )
            found = await akri_instances(
                "debugEcho", "descriptions: [foo0, foo1]", expect={"foo0", "foo1"}
            )
            assert {d.properties["DEBUG_ECHO_DESCRIPTION"] for d in found.values()} == {
                "foo0", "foo1"
            }
            assert await process.stop() == 0, process.stderr
            assert not (akri_socket_dir / "debugEcho.sock").exists()
        """,
    )
    result.assert_outcomes(passed=1, warnings=0)


# --- the fixtures used directly -------------------------------------------------------


class Pinger(DiscoveryHandler):
    name = "pinger"
    shared = True
    scan_interval = 0.1

    async def scan(self, ctx: DiscoveryContext[object]) -> Iterable[Device]:
        hosts = ctx.raw_details.split()
        return [Device(id=host, properties={"PINGER_HOST": host}) for host in hosts]


def test_socket_dir_is_short_and_fresh(akri_socket_dir: Path) -> None:
    assert akri_socket_dir.is_dir()
    assert not list(akri_socket_dir.iterdir())
    # Room for the Agent's socket and a long handler name.
    assert len(bytes(akri_socket_dir / "agent-registration.sock")) < 107
    assert len(bytes(akri_socket_dir / ("x" * 80 + ".sock"))) < 107


async def test_our_own_fixtures_are_the_plugins(
    agent: FakeAgent, akri_agent: FakeAgent, akri_dir: Path, akri_socket_dir: Path
) -> None:
    # tests/conftest.py's short names are aliases: one Agent per test, not two.
    assert agent is akri_agent
    assert akri_dir == akri_socket_dir
    assert agent.directory == akri_dir


async def test_serving_a_name_twice_fails_at_the_call(akri_serve: HandlerServer) -> None:
    [runtime] = await akri_serve(Pinger())
    with pytest.raises(RuntimeError, match="another process is serving"):
        await akri_serve(Pinger())
    assert akri_serve.runtimes == [runtime]


async def test_same_request_reuses_its_configuration(
    akri_serve: HandlerServer, akri_instances: InstanceWatcher
) -> None:
    await akri_serve(Pinger())
    first = await akri_instances("pinger", "a b", expect=2)
    assert akri_instances.configuration == "akri-pinger"
    assert await akri_instances("pinger", "a b", expect=2) == first
    assert akri_instances.configuration == "akri-pinger"
    other = await akri_instances("pinger", "c", expect={"c"})
    assert akri_instances.configuration == "akri-pinger-2"
    assert [d.id for d in other.values()] == ["c"]
    with pytest.raises(ValueError, match="exists with another request"):
        await akri_instances("pinger", "d", configuration="akri-pinger")
    await akri_instances.remove("akri-pinger")
    assert akri_instances.agent.streams("akri-pinger-2")


async def test_expecting_nothing_waits_for_the_first_report(
    akri_serve: HandlerServer, akri_instances: InstanceWatcher, akri_agent: FakeAgent
) -> None:
    await akri_serve(Pinger())
    assert await akri_instances("pinger", "", expect=0) == {}
    [stream] = akri_agent.streams("akri-pinger")
    assert stream.snapshots  # the handler did report "no devices"


async def test_a_handler_that_never_registers_times_out_with_the_state(
    akri_instances: InstanceWatcher,
) -> None:
    with pytest.raises(TimeoutError, match=r"(?s)'nobody' did not register.*registrations=\[\]"):
        await akri_instances("nobody", timeout=0.2)


async def test_a_process_that_dies_fails_fast_with_its_output(
    akri_run_command: CommandRunner, akri_instances: InstanceWatcher
) -> None:
    process = await akri_run_command(
        [sys.executable, "-c", "import sys; print('no such handler', file=sys.stderr); exit(3)"]
    )
    with pytest.raises(RuntimeError, match=r"(?s)exited with 3.*no such handler"):
        await akri_instances("pinger", timeout=30)
    assert process.returncode == 3
    assert "no such handler" in process.stderr


async def test_a_stream_ended_by_the_handler_is_reported(
    akri_serve: HandlerServer, akri_instances: InstanceWatcher
) -> None:
    class Refuses(Pinger):
        name = "refuses"

        def validate(self, ctx: DiscoveryContext[object]) -> None:
            from akri_sdk import DetailsError

            raise DetailsError("discoveryDetails: no thanks")

    await akri_serve(Refuses())
    with pytest.raises(StreamEndedError, match="INVALID_ARGUMENT: discoveryDetails: no thanks"):
        await akri_instances("refuses", "a")


async def test_command_output_environment_and_exit_status(
    akri_run_command: CommandRunner, akri_socket_dir: Path
) -> None:
    script = (
        "import os, sys, time\n"
        "print(os.environ['DISCOVERY_HANDLERS_DIRECTORY'], os.environ['EXTRA'], flush=True)\n"
        "print('on stderr', file=sys.stderr)\n"
        "time.sleep(60)\n"
    )
    process = await akri_run_command([sys.executable, "-c", script], env={"EXTRA": "yes"})
    await process.wait_for_output(f"{akri_socket_dir} yes", stream="stdout")
    await process.wait_for_output("on stderr", stream="stderr")
    assert process.running
    assert await process.stop() == -signal.SIGTERM
    assert process.returncode == -signal.SIGTERM


async def test_a_command_ignoring_sigterm_is_killed(akri_run_command: CommandRunner) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = await akri_run_command([sys.executable, "-c", script])
    await process.wait_for_output("ready")
    assert await process.stop(timeout=0.2) == -signal.SIGKILL


def test_without_pytest_asyncio_the_fixtures_say_what_is_missing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A project that installed akri-sdk without the testing extra: our plugin
    # still loads, sync tests run, and the async fixtures explain themselves.
    blocker = pytester.mkdir("blocker")
    (blocker / "pytest_asyncio.py").write_text("raise ImportError('not installed')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker))
    pytester.makepyfile(
        test_plain="""
        def test_unrelated():
            assert True

        def test_uses_the_agent(akri_agent):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:asyncio", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.re_match_lines([r".*need pytest-asyncio: pip install 'akri-sdk\[testing\]'"])


def test_without_h2_other_projects_still_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = pytester.mkdir("blocker")
    (blocker / "h2").mkdir()
    (blocker / "h2" / "__init__.py").write_text("raise ImportError('not installed')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker))
    pytester.makepyfile(test_plain="def test_unrelated():\n    assert True\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
