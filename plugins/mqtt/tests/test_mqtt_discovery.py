"""The `mqtt` handler end to end: a real mosquitto, the handler served in-process,
the fake Agent opening Discover streams over a real Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
from akri_sdk.testing.fake_agent import DiscoverStream, FakeAgent
from akri_sdk.testing.harness import eventually
from mqtt_helpers import Broker, Publisher, Served, ids

from akri_sdk_mqtt import MqttHandler


class FastMqtt(MqttHandler):
    """Reconnects quickly, so broker outages in tests take a second, not thirty."""

    retry_initial = 0.2
    retry_max = 0.5


async def open_stream(
    agent: FakeAgent, served: Served, details: str, properties: dict[str, bytes] | None = None,
    handler: MqttHandler | None = None,
) -> tuple[MqttHandler, DiscoverStream]:  # fmt: skip
    handler = handler or FastMqtt(node="node-a")
    await served.start(handler)
    await agent.wait_registrations(1)
    stream = agent.discover(agent.registrations[0], details, properties or {})
    # The first snapshot comes once subscribed (or once the broker is known to be down).
    await stream.until(lambda s: bool(s.snapshots))
    return handler, stream


def has(*wanted: str) -> Callable[[DiscoverStream], bool]:
    return lambda s: ids(s.latest) == sorted(wanted)


async def test_first_message_becomes_a_device_at_once(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['booth/+/sound']\ntimeoutSeconds: 60"
    _, stream = await open_stream(agent, served, details)
    assert stream.latest == ()  # an honest "nothing yet" once subscribed
    loop = asyncio.get_running_loop()
    sent = loop.time()
    publisher.publish("booth/1/sound", b'{"volume": 61}')
    await stream.until(has("booth/1/sound"))
    assert loop.time() - sent < 1.0  # no poll in between
    [device] = stream.latest or ()
    assert device.id == "booth/1/sound"
    assert dict(device.properties) == {
        "MQTT_BROKER_URI": broker.uri,
        "MQTT_TOPIC": "booth/1/sound",
        "MQTT_DEVICE_ID": "booth/1/sound",
    }
    # More messages on a known topic change nothing, so nothing is sent.
    for _ in range(20):
        publisher.publish("booth/1/sound", b'{"volume": 62}')
    publisher.publish("booth/2/sound", b"{}")
    await stream.until(has("booth/1/sound", "booth/2/sound"))
    assert [len(s.devices) for s in stream.snapshots] == [0, 1, 2]
    assert not stream.ended


async def test_device_id_pattern_prefix_and_payload_fields(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    details = "\n".join([
        f"mqttBrokerUri: {broker.uri}",
        "deviceIdPattern: booth/{id}/sound",
        "propertiesPrefix: spin_variable",
        "includePayloadFields: [volume, meta.model]",
        "maxFieldChars: 8",
    ])  # fmt: skip
    _, stream = await open_stream(agent, served, details)
    publisher.publish("booth/b-7/sound", json.dumps({"volume": 61, "meta": {"model": "grove"}}))
    publisher.publish("booth/b-7/light", b"{}")  # not the pattern: not a device
    await stream.until(has("b-7"))
    [device] = stream.latest or ()
    assert dict(device.properties) == {
        "SPIN_VARIABLE_MQTT_BROKER_URI": broker.uri,
        "SPIN_VARIABLE_MQTT_TOPIC": "booth/b-7/sound",
        "SPIN_VARIABLE_MQTT_DEVICE_ID": "b-7",
        "SPIN_VARIABLE_MQTT_PAYLOAD_VOLUME": "61",
        "SPIN_VARIABLE_MQTT_PAYLOAD_META_MODEL": "grove",
    }
    publisher.publish("booth/b-7/sound", json.dumps({"volume": 70, "meta": {"model": "x" * 50}}))
    await stream.until(
        lambda s: (
            bool(s.latest) and s.latest[0].properties["SPIN_VARIABLE_MQTT_PAYLOAD_VOLUME"] == "70"
        )
    )
    assert (stream.latest or ())[0].properties["SPIN_VARIABLE_MQTT_PAYLOAD_META_MODEL"] == "x" * 8


async def test_message_regexp_is_applied(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['sensors/#']\nmessageRegexp: 'volume=[0-9]+'"
    _, stream = await open_stream(agent, served, details)
    publisher.publish("sensors/quiet", b"hello")
    publisher.publish("sensors/binary", b"\xff\xfe volume=1")  # not UTF-8: cannot match
    publisher.publish("sensors/loud", b"level: volume=70")
    await stream.until(has("sensors/loud"))
    publisher.publish("sensors/quiet", b"volume=3")
    await stream.until(has("sensors/loud", "sensors/quiet"))


async def test_json_filter_conditions(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    details = "\n".join([
        f"mqttBrokerUri: {broker.uri}",
        "deviceIdPattern: booth/{id}",
        "jsonFilter:",
        "  - {field: volume, op: '>', value: 50}",
        "  - {field: kind, value: sound}",
    ])  # fmt: skip
    _, stream = await open_stream(agent, served, details)
    publisher.publish("booth/quiet", json.dumps({"volume": 10, "kind": "sound"}))
    publisher.publish("booth/wrongkind", json.dumps({"volume": 90, "kind": "light"}))
    publisher.publish("booth/text", b"volume 90")
    publisher.publish("booth/string", json.dumps({"volume": "90", "kind": "sound"}))
    publisher.publish("booth/loud", json.dumps({"volume": 90.5, "kind": "sound"}))
    await stream.until(has("loud"))
    publisher.publish("booth/quiet", json.dumps({"volume": 51, "kind": "sound"}))
    await stream.until(has("loud", "quiet"))


async def test_silent_devices_drop_after_the_timeout(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['t/#']\ntimeoutSeconds: 0.6"
    _, stream = await open_stream(agent, served, details)
    loop = asyncio.get_running_loop()
    publisher.publish("t/a", b"1")
    await stream.until(has("t/a"))
    seen = loop.time()
    await asyncio.sleep(0.25)  # so that the two expire in separate snapshots
    publisher.publish("t/b", b"1")
    await stream.until(has("t/a", "t/b"))
    await stream.until(has("t/b"), timeout=3)
    assert 0.5 <= loop.time() - seen < 1.5  # dropped on time, not at a poll
    await stream.until(has(), timeout=3)
    assert not stream.ended


async def test_last_will_and_retained_birth(
    agent: FakeAgent, served: Served, broker: Broker, make_publisher: Callable[..., Publisher]
) -> None:
    details = "\n".join([
        f"mqttBrokerUri: {broker.uri}",
        "deviceIdPattern: booth/{id}/sound",
        "livenessTopic: booth/{id}/status",
        "timeoutSeconds: 0.5",
    ])  # fmt: skip
    sensor = make_publisher(broker, will=("booth/s1/status", b"offline"))
    sensor.publish("booth/s1/status", b"online", retain=True)
    _, stream = await open_stream(agent, served, details)
    # The retained birth message alone makes the device present...
    await stream.until(has("s1"))
    [device] = stream.latest or ()
    assert device.properties["MQTT_TOPIC"] == "booth/s1/sound"
    assert device.properties["MQTT_STATUS_TOPIC"] == "booth/s1/status"
    # ... and it stays, though it never publishes data (timeout 0.5 s).
    await asyncio.sleep(1.0)
    assert ids(stream.latest) == ["s1"]
    sensor.publish("booth/s1/sound", b"{}")
    sensor.die()  # the broker publishes the last will: offline
    await stream.until(has(), timeout=3)
    # The sensor comes back: its retained birth message brings the device back.
    again = make_publisher(broker, will=("booth/s1/status", b"offline"))
    again.publish("booth/s1/status", b"online", retain=True)
    await stream.until(has("s1"))
    assert not stream.ended


async def test_broker_unreachable_at_start_then_up(
    agent: FakeAgent, served: Served, make_broker: Callable[..., Broker],
    make_publisher: Callable[..., Publisher], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    broker = make_broker(start=False)
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['#']"
    _, stream = await open_stream(agent, served, details)
    # Upstream answered INVALID_ARGUMENT here; we keep the stream open and retry.
    assert stream.latest == ()
    broker.start()
    await asyncio.sleep(0.6)  # the handler's backoff is at most 0.5 s
    publisher = make_publisher(broker)
    publisher.publish("x", b"1")
    await stream.until(has("x"), timeout=5)
    assert not stream.ended
    assert caplog.text.count("connection refused") == 1  # once, not once per retry


async def test_broker_restart_keeps_stream_and_devices(
    agent: FakeAgent, served: Served, broker: Broker, make_publisher: Callable[..., Publisher]
) -> None:
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['t/#']\ntimeoutSeconds: 0.5"
    handler, stream = await open_stream(agent, served, details)
    make_publisher(broker).publish("t/a", b"1")
    await stream.until(has("t/a"))
    [connection] = handler.connections.values()
    [runtime] = served.runtimes
    [task] = runtime.service.tasks.values()
    broker.stop()
    # Down for longer than the silence timeout: the devices stay (grace period).
    await asyncio.sleep(1.2)
    assert ids(stream.latest) == ["t/a"]
    # The outage is visible to metrics and `akri-dh status` although watch() never raised.
    assert runtime.service.stats.discovery_errors["Broker"] >= 1
    assert task.last_error is not None
    assert task.last_error.startswith(f"broker {broker.uri}")
    broker.start()
    await eventually(lambda: connection.connects == 2, what="reconnect")
    await eventually(lambda: task.last_error is None, what="problem resolved")
    make_publisher(broker).publish("t/a", b"2")
    make_publisher(broker).publish("t/b", b"2")
    await stream.until(has("t/a", "t/b"))
    assert all(s.devices for s in stream.snapshots[1:]), "devices were dropped in between"
    assert not stream.ended


@pytest.mark.slow
async def test_grace_period_ends_then_devices_come_back(
    agent: FakeAgent, served: Served, broker: Broker, make_publisher: Callable[..., Publisher]
) -> None:
    details = "\n".join([
        f"mqttBrokerUri: {broker.uri}", "topics: ['t/#']", "gracePeriodSeconds: 0.5",
    ])  # fmt: skip
    _, stream = await open_stream(agent, served, details)
    make_publisher(broker).publish("t/a", b"1")
    await stream.until(has("t/a"))
    broker.stop()
    await stream.until(has(), timeout=3)
    broker.start()
    await asyncio.sleep(0.6)
    make_publisher(broker).publish("t/a", b"1")
    await stream.until(has("t/a"), timeout=5)
    assert not stream.ended


async def test_identical_requests_share_one_connection(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['t/#']"
    handler, first = await open_stream(agent, served, details)
    others = [agent.discover(agent.registrations[0], details) for _ in range(4)]
    publisher.publish("t/a", b"1")
    for stream in [first, *others]:
        await stream.until(has("t/a"))
    assert len(handler.connections) == 1
    [runtime] = served.runtimes
    assert len(runtime.service.tasks) == 1
    for stream in [first, *others]:
        await stream.cancel()
    await eventually(lambda: not handler.connections, what="the connection to close")
    await eventually(
        lambda: not any(t.name.startswith("mqtt ") for t in threading.enumerate()),
        what="the network thread to end",
    )


async def test_two_nodes_on_one_broker_do_not_evict_each_other(
    broker: Broker, publisher: Publisher, make_publisher: Callable[..., Publisher]
) -> None:
    # Same node name and a fixed client_id prefix: the worst case for upstream.
    details = f"mqttBrokerUri: {broker.uri}?client_id=akri\ntopics: ['t/#']"
    directories = [Path(tempfile.mkdtemp(prefix="akri-", dir="/tmp")) for _ in range(2)]
    handlers = [FastMqtt(node="same-node") for _ in range(2)]
    harnesses = [Served(d) for d in directories]
    try:
        async with FakeAgent(directories[0]) as one, FakeAgent(directories[1]) as two:
            streams = []
            for agent, harness, handler in zip((one, two), harnesses, handlers, strict=True):
                await harness.start(handler)
                await agent.wait_registrations(1)
                stream = agent.discover(agent.registrations[0], details)
                await stream.until(lambda s: bool(s.snapshots))  # subscribed
                streams.append(stream)
            publisher.publish("t/a", b"1")
            for stream in streams:
                await stream.until(has("t/a"))
            await asyncio.sleep(1.0)  # an eviction would show as reconnects by now
            publisher.publish("t/b", b"1")
            for stream in streams:
                await stream.until(has("t/a", "t/b"))
            connections = [next(iter(h.connections.values())) for h in handlers]
            assert [c.connects for c in connections] == [1, 1]
            client_ids = {c.settings.client_id for c in connections}
            assert len(client_ids) == 2
            assert all(i.startswith("akri-same-node-") for i in client_ids)
    finally:
        for harness in harnesses:
            await harness.stop()
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)


async def test_mqtt_3_1_1_and_qos_1(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['t/+']\nprotocol: '3.1.1'\nqos: 1"
    _, stream = await open_stream(agent, served, details)
    publisher.publish("t/a", b"1", qos=1)
    await stream.until(has("t/a"))


async def test_ignore_retained_data(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    publisher.publish("t/old", b"1", retain=True)
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['t/+']\nignoreRetained: true"
    _, stream = await open_stream(agent, served, details)
    assert stream.latest == ()
    publisher.publish("t/new", b"1")
    await stream.until(has("t/new"))
    publisher.publish("t/old", b"", retain=True)  # clean up the broker's retained store


async def test_a_device_that_keeps_publishing_never_drops(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    # Repeat messages do not wake the handler (quiet topics); the silence timer must
    # still see them when it comes due.
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['t/#']\ntimeoutSeconds: 0.4"
    handler, stream = await open_stream(agent, served, details)
    for _ in range(15):
        publisher.publish("t/a", b"1", qos=0)
        await asyncio.sleep(0.1)
    await stream.until(has("t/a"))
    assert [ids(s.devices) for s in stream.snapshots] == [[], ["t/a"]]
    [connection] = handler.connections.values()
    assert connection.received >= 15
    await stream.until(has(), timeout=2)  # and it goes once it stops


def sockets_to(port: int) -> int:
    """How many of this process's TCP sockets are connected to `port` on loopback."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                ours.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[9] in ours:
            count += 1
    return count


async def test_streams_and_connections_leave_nothing_behind(
    agent: FakeAgent, served: Served, broker: Broker, publisher: Publisher
) -> None:
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['t/#']"
    handler = FastMqtt(node="node-a")
    await served.start(handler)
    await agent.wait_registrations(1)
    baseline = sockets_to(broker.port)  # the test's own publisher
    connections: list[weakref.ref[object]] = []
    for round_ in range(5):
        stream = agent.discover(agent.registrations[0], details)
        await stream.until(lambda s: bool(s.snapshots))  # subscribed
        assert sockets_to(broker.port) == baseline + 1
        connections += [weakref.ref(c) for c in handler.connections.values()]
        publisher.publish(f"t/{round_}", b"1")
        await stream.until(lambda s: bool(s.latest))
        await stream.cancel()
        await eventually(lambda: not handler.connections)
    await eventually(
        lambda: not any(t.name.startswith("mqtt ") for t in threading.enumerate()),
        what="network threads to end",
    )
    gc.collect()
    assert sockets_to(broker.port) == baseline
    assert [ref() for ref in connections] == [None] * 5
