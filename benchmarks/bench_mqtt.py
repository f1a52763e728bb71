"""The MQTT plugin under load, against a real mosquitto started here.

    .venv/bin/python -m benchmarks.bench_mqtt [--quick]

1. Publish-to-snapshot latency: each message goes to a new topic, so each one makes
   a device appear. Measured at the (fake) Agent, which receives snapshots over the
   handler's real Unix socket from `akri-dh run mqtt` in its own process; the floor
   is a raw paho subscriber, in its own process too, on the same broker, receiving
   the same messages in the same run. Clock: CLOCK_MONOTONIC, shared by processes.
2. 10,000 sensors: publisher processes (paho) publish one message per sensor per
   second. Reported: time from the first publish until one snapshot holds all of
   them, how many snapshots that took (coalescing), then the handler's RSS and CPU
   per second while the sensors keep publishing, next to a raw paho subscriber's.

Standalone on purpose (the rest of benchmarks/ is another module's): it needs only
the SDK, the plugin, paho and a mosquitto binary. Exit status 0 unless it crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["main"]

# Only the first is the issue's; the others are ours, relative to a raw paho
# subscriber in the same run, since absolute figures depend on the machine.
LATENCY_TARGET = 0.010  # median above the floor
FLEET_ALL_TARGET = 0.5  # all 10,000 in one snapshot at most this long after the floor saw them
RSS_TARGET_MIB = 200.0
CPU_TARGET = 1.5  # times the raw subscriber's CPU
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---- helper processes (this module re-runs itself with a role) ------------------


def _role_floor(port: int, pattern: str) -> None:
    """A raw paho subscriber: records receive times and prints them at EOF.

    `lat/...` topics: every receipt. Others: only when each topic was first seen,
    printed as one line `all <topics> <last first-seen time>`.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    received: list[tuple[str, int]] = []
    first_seen: dict[str, int] = {}
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)

    def on_connect(c: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        c.subscribe(pattern)

    def on_message(c: mqtt.Client, u: object, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        if topic.startswith("lat/"):
            received.append((topic, time.monotonic_ns()))
        elif topic not in first_seen:
            first_seen[topic] = time.monotonic_ns()

    client.on_connect = on_connect
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    client.disconnect()
    client.loop_stop()
    for topic, at in received:
        print(topic, at)
    print("all", len(first_seen), max(first_seen.values(), default=0))


def _role_publisher(port: int, first: int, count: int, seconds: float) -> None:
    """Publish `fleet/<i>/sound` for `count` sensors, each once per second, for `seconds`."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    topics = [f"fleet/s{i}/sound" for i in range(first, first + count)]
    payload = b'{"volume": 42}'
    start = time.monotonic()
    rounds = 0
    while time.monotonic() - start < seconds:
        round_start = start + rounds
        for index, topic in enumerate(topics):
            # Spread each round over the second, as independent sensors would be.
            due = round_start + index / len(topics)
            delay = due - time.monotonic()
            if delay > 0.002:
                time.sleep(delay)
            client.publish(topic, payload)
        rounds += 1
    client.disconnect()
    client.loop_stop()


# ---- the parent ---------------------------------------------------------------------


class _Stream:
    """A Discover call made as the Agent makes it, keeping (arrival time, raw bytes).

    Responses are decoded only when asked: the Rust Agent decodes far faster than
    Python builds Device objects, so timing the FakeAgent's own stream would charge
    its decoding of 10,000-device snapshots to the handler.
    """

    def __init__(self, socket_path: Path, details: str) -> None:
        import grpc

        from akri_sdk._proto import discovery_pb2 as pb

        self._pb = pb
        self.messages: list[tuple[float, bytes]] = []
        self._changed = asyncio.Event()
        self._channel = grpc.aio.insecure_channel(
            f"unix:{socket_path}",
            options=[
                ("grpc.default_authority", "[::1]:50051"),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ],
        )
        call = self._channel.unary_stream(
            "/v0.DiscoveryHandler/Discover",
            request_serializer=pb.DiscoverRequest.SerializeToString,
        )
        self._call = call(pb.DiscoverRequest(discovery_details=details))
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for payload in self._call:
            self.messages.append((time.monotonic(), payload))
            self._changed.set()

    def devices(self, index: int = -1) -> list[str]:
        """Device ids in a message (the latest by default)."""
        if not self.messages:
            return []
        response = self._pb.DiscoverResponse.FromString(self.messages[index][1])
        return [device.id for device in response.devices]

    async def until(self, count: int, timeout: float) -> None:
        """Wait until the latest snapshot holds `count` devices."""
        async with asyncio.timeout(timeout):
            while not self.messages or len(self.devices()) != count:
                self._changed.clear()
                if self._task.done():
                    self._task.result()
                    raise RuntimeError("the Discover stream ended")
                await self._changed.wait()

    async def close(self) -> None:
        self._call.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        await self._channel.close()


def _die_with_parent(argv: list[str]) -> list[str]:
    """SIGTERM the child if this process dies (util-linux setpriv), so that a crashed
    run leaves no broker or handler behind."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else argv


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _mosquitto() -> str:
    path = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(path, os.X_OK):
        raise SystemExit("mosquitto is not installed (bash scripts/system-deps.sh)")
    return path


@contextlib.contextmanager
def _broker(directory: Path) -> Iterator[int]:
    port = _free_port()
    config = directory / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence false",
        "max_queued_messages 0",
        "log_dest stderr",
        "log_type error",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        _die_with_parent([_mosquitto(), "-c", str(config)]), stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.01)
        yield port
    finally:
        process.terminate()
        process.wait(5)


def _helper(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_mqtt", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError(f"helper {args} did not start")
    return process


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@dataclass
class Row:
    figure: str
    measured: str
    target: str = "-"
    met: str = "-"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def _latency(port: int, socket_path: Path, samples: int) -> list[Row]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    floor = _helper("--role", "floor", str(port), "lat/#")
    details = f"mqttBrokerUri: mqtt://127.0.0.1:{port}\ntopics: ['lat/#']\ntimeoutSeconds: 30"
    stream = _Stream(socket_path, details)
    await stream.until(0, timeout=10)  # subscribed
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    warmup = 20
    sent: dict[str, int] = {}
    try:
        for index in range(warmup + samples):
            topic = f"lat/{index}"
            sent[topic] = time.monotonic_ns()
            publisher.publish(topic, b"1")
            await asyncio.sleep(0.01)
        await stream.until(warmup + samples, timeout=10)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        assert floor.stdin is not None
        assert floor.stdout is not None
        floor.stdin.close()
        floor_lines = floor.stdout.read().splitlines()
        floor.wait(10)
    first_seen: dict[str, float] = {}
    for index, (at, _) in enumerate(stream.messages):
        for device in stream.devices(index):
            first_seen.setdefault(device, at)
    measured = [f"lat/{i}" for i in range(warmup, warmup + samples)]
    handler = [first_seen[t] - sent[t] / 1e9 for t in measured if t in first_seen]
    floor_at = {topic: int(at) for topic, at in (line.split() for line in floor_lines[:-1])}
    raw = [(floor_at[t] - sent[t]) / 1e9 for t in measured if t in floor_at]
    paired = [first_seen[t] - floor_at[t] / 1e9 for t in measured if t in floor_at]
    await stream.close()
    median_above = _median(paired)
    met = "yes" if median_above < LATENCY_TARGET else "no"
    return [
        Row("publish→snapshot at the Agent, median", _ms(_median(handler))),
        Row("publish→snapshot at the Agent, p99", _ms(_p99(handler))),
        Row("raw paho subscriber (floor), median", _ms(_median(raw))),
        Row("raw paho subscriber (floor), p99", _ms(_p99(raw))),
        Row("median above the floor (paired)", _ms(median_above), "< 10 ms", met),
        Row("p99 above the floor (paired)", _ms(_p99(paired))),
        Row("latency samples (handler / floor)", f"{len(handler)} / {len(raw)}"),
    ]


async def _fleet(
    port: int, socket_path: Path, handler_pid: int, sensors: int, window: float
) -> list[Row]:
    details = (
        f"mqttBrokerUri: mqtt://127.0.0.1:{port}\ndeviceIdPattern: 'fleet/{{id}}/sound'\n"
        "timeoutSeconds: 10"
    )
    stream = _Stream(socket_path, details)
    await stream.until(0, timeout=10)
    rss_idle, _ = _memory_mib(handler_pid)
    processes = 2
    share = sensors // processes
    seconds = window + 8.0
    publishers = [
        _helper("--role", "publisher", str(port), str(i * share), str(share), str(seconds))
        for i in range(processes)
    ]
    floor = _helper("--role", "floor", str(port), "fleet/+/sound")
    try:
        started = time.monotonic()
        for publisher in publishers:
            assert publisher.stdin is not None
            publisher.stdin.write("go\n")
            publisher.stdin.flush()
        await stream.until(sensors, timeout=30)
        complete = stream.messages[-1][0] - started
        ramp_snapshots = len(stream.messages) - 1
        await asyncio.sleep(1.0)  # settle
        snapshots_before = len(stream.messages)
        handler_cpu = _cpu_seconds(handler_pid)
        floor_cpu = _cpu_seconds(floor.pid)
        window_start = time.monotonic()
        await asyncio.sleep(window)
        elapsed = time.monotonic() - window_start
        handler_rate = (_cpu_seconds(handler_pid) - handler_cpu) / elapsed
        floor_rate = (_cpu_seconds(floor.pid) - floor_cpu) / elapsed
        steady_snapshots = len(stream.messages) - snapshots_before
        rss, peak = _memory_mib(handler_pid)
        still_all = len(stream.devices()) == sensors
    finally:
        for process in [*publishers, floor]:
            assert process.stdin is not None
            with contextlib.suppress(OSError):
                process.stdin.close()
        assert floor.stdout is not None
        floor_lines = floor.stdout.read().splitlines()
        for process in [*publishers, floor]:
            try:
                process.wait(seconds + 5)
            except subprocess.TimeoutExpired:
                process.kill()
    await stream.close()
    _, floor_topics, floor_last = floor_lines[-1].split()
    floor_complete = int(floor_last) / 1e9 - started
    behind = complete - floor_complete
    return [
        Row(
            f"{sensors:,} sensors: first publish → all in one snapshot",
            f"{complete:.2f} s",
        ),
        Row(
            f"raw paho subscriber: first publish → all {int(floor_topics):,} seen (floor)",
            f"{floor_complete:.2f} s",
        ),
        Row(
            "all-in-one-snapshot after the floor saw them all",
            f"{behind:.2f} s",
            f"< {FLEET_ALL_TARGET} s (ours)",
            "yes" if behind < FLEET_ALL_TARGET else "no",
        ),
        Row("snapshots sent while they joined (coalesced)", str(ramp_snapshots)),
        Row(
            f"snapshots sent in {window:.0f} s of steady publishing",
            str(steady_snapshots),
            "0",
            "yes" if steady_snapshots == 0 and still_all else "no",
        ),
        Row(
            f"handler RSS with {sensors:,} devices (idle before; peak)",
            f"{rss:.0f} MiB ({rss_idle:.0f}; {peak:.0f})",
            f"< {RSS_TARGET_MIB:.0f} MiB (ours)",
            "yes" if rss < RSS_TARGET_MIB else "no",
        ),
        Row(f"raw paho subscriber CPU at {sensors:,} msg/s (floor)", f"{floor_rate:.2f} s/s"),
        Row(
            f"handler CPU at {sensors:,} msg/s",
            f"{handler_rate:.2f} s/s ({handler_rate / floor_rate:.1f}x floor)",
            f"< {CPU_TARGET}x floor (ours)",
            "yes" if handler_rate < CPU_TARGET * floor_rate else "no",
        ),
    ]


def _spawn_handler(directory: Path) -> subprocess.Popen[bytes]:
    """`akri-dh run mqtt`, as a DaemonSet would run it (logs in the scratch directory)."""
    env = dict(os.environ, AKRI_SDK_PLUGINS="mqtt", GRPC_VERBOSITY="ERROR")
    env["AKRI_LOG_LEVEL"] = "warning"
    with (directory / "handler.log").open("wb") as log:
        return subprocess.Popen(
            _die_with_parent(
                [sys.executable, "-m", "akri_sdk.cli", "run", "mqtt", "--directory", str(directory)]
            ),
            env=env,
            stdout=log,
            stderr=log,
        )


async def _run(quick: bool) -> list[Row]:
    from akri_sdk.testing.fake_agent import FakeAgent

    samples = 100 if quick else 500
    window = 3.0 if quick else 10.0
    sensors = 10_000
    scratch = Path(tempfile.mkdtemp(prefix="akri-bench-mqtt-", dir="/tmp"))
    handler: subprocess.Popen[bytes] | None = None
    try:
        with _broker(scratch) as port:
            async with FakeAgent(scratch) as agent:
                handler = _spawn_handler(scratch)
                # The fake Agent takes the registration; the streams are our own.
                [registration] = await agent.wait_registrations(1, timeout=30)
                socket_path = Path(registration.endpoint)
                rows = await _latency(port, socket_path, samples)
                rows += await _fleet(port, socket_path, handler.pid, sensors, window)
                return rows
    finally:
        if handler is not None:
            handler.send_signal(signal.SIGTERM)
            try:
                handler.wait(10)
            except subprocess.TimeoutExpired:
                handler.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def _table(rows: list[Row]) -> str:
    lines = ["| figure | measured | target | met |", "|---|---|---|---|"]
    lines += [f"| {r.figure} | {r.measured} | {r.target} | {r.met} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_mqtt", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter windows")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        role, *rest = args.role
        if role == "floor":
            _role_floor(int(rest[0]), rest[1])
        elif role == "publisher":
            _role_publisher(int(rest[0]), int(rest[1]), int(rest[2]), float(rest[3]))
        return 0
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    started = time.monotonic()
    rows = asyncio.run(_run(args.quick))
    print(f"\nMQTT plugin benchmark ({'quick' if args.quick else 'full'}, "
          f"{os.cpu_count()} CPUs, {time.monotonic() - started:.0f} s)\n")  # fmt: skip
    print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
