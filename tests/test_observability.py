"""Health probes, gRPC health, Prometheus metrics and the status view."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from akri_sdk import Device, DiscoveryContext, DiscoveryHandler
from akri_sdk.handlers.debug_echo import DebugEcho
from akri_sdk.runtime import HandlerRuntime
from akri_sdk.testing.fake_agent import FakeAgent
from akri_sdk.testing.harness import eventually
from tests.conftest import Served


class Scripted(DiscoveryHandler):
    """Polled; devices and failures scripted by the test."""

    name = "scripted"
    scan_interval = 0.02
    retry_initial = 0.02
    retry_max = 0.05

    def __init__(self) -> None:
        self.devices: list[Device] = [Device("a")]
        self.fail: Exception | None = None

    async def scan(self, ctx: DiscoveryContext[Any]) -> Iterable[Device]:
        if self.fail is not None:
            raise self.fail
        if ctx.raw_details:  # a second, distinct request adds one device of its own
            return [*self.devices, Device(f"only-{ctx.raw_details}")]
        return self.devices


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def get(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(http_get, port, path)


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


@pytest.fixture
async def probed(agent: FakeAgent, served: Served) -> tuple[FakeAgent, HandlerRuntime, int]:
    handler = Scripted()
    [runtime] = await served.start(handler, health_port=0, health_host="127.0.0.1")
    await agent.wait_registrations(1)
    await eventually(lambda: runtime.registrar is not None and runtime.registrar.registered)
    return agent, runtime, served.probe_port()


async def test_metrics_after_a_scripted_scenario(
    probed: tuple[FakeAgent, HandlerRuntime, int],
) -> None:
    agent, runtime, port = probed
    handler = runtime.handler
    assert isinstance(handler, Scripted)
    endpoint = agent.registrations[0]
    # Two streams on two tasks, a device added then removed, one rejected request.
    first = agent.discover(endpoint, "")
    second = agent.discover(endpoint, "x")
    assert [d.id for d in await first.next_snapshot()] == ["a"]
    assert [d.id for d in await second.next_snapshot()] == ["a", "only-x"]
    handler.devices = [Device("a"), Device("b")]
    assert [d.id for d in await first.next_snapshot()] == ["a", "b"]
    assert [d.id for d in await second.next_snapshot()] == ["a", "b", "only-x"]
    handler.devices = [Device("b")]
    assert [d.id for d in await first.next_snapshot()] == ["b"]
    assert [d.id for d in await second.next_snapshot()] == ["b", "only-x"]
    handler.fail = ConnectionError("gone")
    await eventually(lambda: runtime.service.stats.discovery_errors["ConnectionError"] >= 2)
    handler.fail = None

    status, text = await get(port, "/metrics")
    assert status == 200
    values = metric_values(text)
    labels = (("handler", "scripted"),)
    task_keys = {t.ctx.key: t for t in runtime.service.tasks.values()}
    assert values[("akri_dh_ready", labels)] == 1
    assert values[("akri_dh_registrations_total", labels)] == 1
    assert values[("akri_dh_open_streams", labels)] == 2
    assert values[("akri_dh_discovery_tasks", labels)] == 2
    assert values[("akri_dh_snapshots_sent_total", labels)] == 6
    assert values[("akri_dh_details_rejected_total", labels)] == 0
    for key, task in task_keys.items():
        expected = 1 if task.ctx.raw_details == "" else 2
        assert values[("akri_dh_devices", (("handler", "scripted"), ("task", key)))] == expected
    errors = values[
        ("akri_dh_discovery_errors_total", (("handler", "scripted"), ("kind", "ConnectionError")))
    ]
    assert errors == runtime.service.stats.discovery_errors["ConnectionError"]
    assert values[("akri_dh_discovery_duration_seconds_count", labels)] >= 6
    assert not any("device" in name and "id" in dict(lbl) for name, lbl in values)

    rejected = agent.discover(endpoint, "x" * (300 * 1024))  # over the details size limit
    await rejected.wait_ended()
    values = metric_values((await get(port, "/metrics"))[1])
    assert values[("akri_dh_details_rejected_total", labels)] == 1


async def test_readiness_follows_the_agent(
    probed: tuple[FakeAgent, HandlerRuntime, int],
) -> None:
    agent, runtime, port = probed
    assert await get(port, "/livez") == (200, "ok\n")
    assert await get(port, "/readyz") == (200, "scripted: serving and registered\n")
    await agent.stop()
    status, body = await get(port, "/readyz")
    assert status == 503
    assert "not registered" in body or "does not accept" in body
    assert (await get(port, "/livez"))[0] == 200  # alive, just not ready
    await agent.start()
    await agent.wait_registrations(1)
    await eventually(lambda: runtime.registrar is not None and runtime.registrar.registered)
    assert (await get(port, "/readyz"))[0] == 200
    assert (await get(port, "/nope"))[0] == 404


async def test_grpc_health_service_with_the_official_client(
    probed: tuple[FakeAgent, HandlerRuntime, int], akri_dir: Path
) -> None:
    agent, _, _ = probed
    async with grpc.aio.insecure_channel(
        f"unix:{akri_dir / 'scripted.sock'}", options=[("grpc.default_authority", "localhost")]
    ) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "scripted"):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.Check(health_pb2.HealthCheckRequest(service="other"))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        watch = stub.Watch(health_pb2.HealthCheckRequest(service="scripted"))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        await agent.stop()
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()


async def test_status_view_shows_streams_and_devices(
    probed: tuple[FakeAgent, HandlerRuntime, int],
) -> None:
    agent, _, port = probed
    stream = agent.discover(agent.registrations[0], "x", {"password": b"hunter2-secret"})
    await stream.next_snapshot()
    _, body = await get(port, "/status")
    report = json.loads(body)
    [handler] = report["handlers"]
    assert handler["ready"] is True
    assert len(handler["streams"]) == 1
    [task] = handler["tasks"]
    assert task["property_names"] == ["password"]
    assert [d["id"] for d in task["devices"]] == ["a", "only-x"]
    assert "hunter2-secret" not in body
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "akri_sdk.cli",
        "status",
        "--url",
        f"http://127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    text = out.decode()
    assert process.returncode == 0
    assert "scripted (local) READY" in text
    assert "- only-x" in text
    assert "1 stream(s)" in text


async def run_health(akri_dir: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "akri_sdk.cli",
        "health",
        *args,
        env={**os.environ, "DISCOVERY_HANDLERS_DIRECTORY": str(akri_dir)},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.mark.slow
async def test_exec_probe_exit_codes(
    agent: FakeAgent, served: Served, akri_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEBUG_ECHO_AVAILABILITY_FILE", str(akri_dir / "availability.txt"))
    assert (await run_health(akri_dir, "debugEcho"))[0] == 2  # nothing serving yet
    [runtime] = await served.start(DebugEcho())
    await eventually(lambda: runtime.registrar is not None and runtime.registrar.registered)
    assert await run_health(akri_dir, "debugEcho") == (0, "debugEcho: SERVING\n")
    await agent.stop()
    assert await run_health(akri_dir, "debugEcho") == (1, "debugEcho: NOT_SERVING\n")
    assert (await run_health(akri_dir, "debugEcho", "--liveness"))[0] == 0
    code, out = await run_health(akri_dir, "debugEcho", "nothere")
    assert code == 2
    assert "nothere: unreachable" in out
