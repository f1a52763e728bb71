"""`akri-dh run` as a real process: registration, SIGTERM, logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from akri_sdk.testing.fake_agent import FakeAgent

AKRI_DH = [sys.executable, "-m", "akri_sdk.cli"]


@pytest.fixture
async def handler_process(
    akri_dir: Path,
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    processes: list[asyncio.subprocess.Process] = []
    yield processes
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def start(
    processes: list[asyncio.subprocess.Process], akri_dir: Path, *args: str, **env: str
) -> asyncio.subprocess.Process:
    environment = {
        **os.environ,
        "DISCOVERY_HANDLERS_DIRECTORY": str(akri_dir),
        "DEBUG_ECHO_AVAILABILITY_FILE": str(akri_dir / "availability.txt"),
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        *AKRI_DH,
        *args,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    processes.append(process)
    return process


async def test_sigterm_exits_zero_and_removes_socket(
    akri_dir: Path, agent: FakeAgent, handler_process: list[asyncio.subprocess.Process]
) -> None:
    process = await start(handler_process, akri_dir, "run", "debugEcho")
    await agent.wait_registrations(1, timeout=15)
    socket_path = akri_dir / "debugEcho.sock"
    assert socket_path.exists()
    stream = agent.discover(agent.registrations[0], "descriptions: [foo0]")
    assert [d.id for d in await stream.next_snapshot(timeout=10)] == ["foo0"]
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0
    assert not socket_path.exists()
    await stream.wait_ended()


async def test_secrets_never_logged_at_debug_and_json_lines_parse(
    akri_dir: Path, agent: FakeAgent, handler_process: list[asyncio.subprocess.Process]
) -> None:
    secret = "p4ssw0rd-Zq9-never-log"
    process = await start(
        handler_process,
        akri_dir,
        "run",
        "debugEcho",
        AKRI_LOG_LEVEL="debug",
        AKRI_LOG_FORMAT="json",
    )
    await agent.wait_registrations(1, timeout=15)
    endpoint = agent.registrations[0]
    properties = {"password": secret.encode(), "username": b"admin"}
    good = agent.discover(endpoint, "descriptions: [cam]", properties)
    await good.next_snapshot(timeout=10)
    bad = agent.discover(endpoint, "descriptions: 5", properties)
    await bad.wait_ended()
    await good.cancel()
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0
    assert process.stderr is not None
    output = (await process.stderr.read()).decode()
    assert secret not in output
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert records, "no log lines"
    messages = [r["message"] for r in records]
    assert any(r["level"] == "debug" for r in records)
    assert any("registered with the Agent" in m for m in messages)
    assert any("refused a Discover request" in m for m in messages)
    changes = [r for r in records if r["message"].startswith("devices now")]
    assert changes
    assert changes[0]["handler"] == "debugEcho"
    assert changes[0]["task"]


async def test_run_unknown_handler_fails_clearly(
    akri_dir: Path, handler_process: list[asyncio.subprocess.Process]
) -> None:
    process = await start(handler_process, akri_dir, "run", "nope")
    _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 2
    assert "no discovery handler named 'nope'" in stderr.decode()
