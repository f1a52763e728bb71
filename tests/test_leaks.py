"""1,000 open/cancel cycles of a stream leave no task, descriptor or memory behind."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tracemalloc
from pathlib import Path

import grpc
import pytest

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.handlers.debug_echo import DebugEcho
from akri_sdk.testing.fake_agent import FakeAgent
from akri_sdk.testing.harness import eventually
from tests.conftest import Served

pytestmark = pytest.mark.slow


def open_fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def details_for(index: int) -> str:
    # Alternate identical and distinct details: shared and fresh tasks both churn.
    return "descriptions: [a, b]" if index % 2 else f"descriptions: [d{index % 7}]"


async def test_in_process_cycles_leave_no_task_fd_or_memory(
    agent: FakeAgent, served: Served, akri_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEBUG_ECHO_AVAILABILITY_FILE", str(akri_dir / "availability.txt"))
    [runtime] = await served.start(DebugEcho())
    await agent.wait_registrations(1)
    service = runtime.service
    # One client channel, so every descriptor that moves is the server's.
    channel = grpc.aio.insecure_channel(
        f"unix:{akri_dir / 'debugEcho.sock'}", options=[("grpc.default_authority", "[::1]:50051")]
    )
    discover = channel.unary_stream(
        "/v0.DiscoveryHandler/Discover",
        request_serializer=pb.DiscoverRequest.SerializeToString,
        response_deserializer=pb.DiscoverResponse.FromString,
    )

    async def cycle(count: int) -> None:
        for index in range(count):
            request = pb.DiscoverRequest(
                discovery_details=details_for(index),
                discovery_properties={"token": pb.ByteData(vec=b"t")},
            )
            call = discover(request)
            async for _ in call:
                break
            call.cancel()
            # Let the client finish its side too, so only server state can remain.
            assert await call.code() == grpc.StatusCode.CANCELLED

    async def settle() -> tuple[int, int]:
        await eventually(lambda: not service.streams and not service.tasks, what="streams to close")
        await asyncio.sleep(0.1)
        gc.collect()
        return len(asyncio.all_tasks()), open_fds()

    try:
        await cycle(100)  # warm up caches, pools, interned strings
        tasks_before, fds_before = await settle()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        await cycle(1000)
        tasks_after, fds_after = await settle()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        await channel.close()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    top = "\n".join(str(s) for s in after.compare_to(before, "lineno")[:8])
    assert tasks_after == tasks_before
    # Fewer is fine (an earlier test's idle connection closing); more is a leak.
    assert fds_after <= fds_before, (fds_before, fds_after)
    # A leak of even one small object per cycle would be over 100 KiB here.
    assert growth < 100 * 1024, f"grew {growth} bytes over 1,000 cycles:\n{top}"


async def test_handler_process_cycles_with_fresh_connections(
    agent: FakeAgent, akri_dir: Path
) -> None:
    """As the Agent does it: a new connection per Discover, handler in its own process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "akri_sdk.cli",
        "run",
        "debugEcho",
        env={
            **os.environ,
            "DISCOVERY_HANDLERS_DIRECTORY": str(akri_dir),
            "DEBUG_ECHO_AVAILABILITY_FILE": str(akri_dir / "availability.txt"),
            "AKRI_LOG_LEVEL": "warning",
            "AKRI_IDLE_CONNECTION_SECONDS": "0.5",
        },
    )
    try:
        await agent.wait_registrations(1, timeout=15)
        endpoint = agent.registrations[0]

        async def cycle(count: int) -> None:
            for index in range(count):
                stream = agent.discover(endpoint, details_for(index))
                await stream.next_snapshot()
                await stream.cancel()

        async def settle() -> tuple[int, int]:
            # grpcio clients keep closed channels' connections; the handler
            # closes them once idle, which is part of what is tested here.
            await asyncio.sleep(1.5)
            return open_fds(process.pid), rss_kib(process.pid)

        await cycle(500)  # the allocator's high-water mark settles here
        fds_before, rss_before = await settle()
        await cycle(1000)
        fds_after, rss_middle = await settle()
        assert fds_after <= fds_before + 2, (fds_before, fds_after)
        await cycle(1000)
        _, rss_after = await settle()
        # RSS wobbles by a few MiB with the allocator, in either direction. A leak of
        # 4 KiB a cycle would grow it by 4 MiB in each of the two rounds; noise does
        # not grow it in both.
        growth = min(rss_middle - rss_before, rss_after - rss_middle)
        assert growth < 4096, (rss_before, rss_middle, rss_after)
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
