"""Bad discoveryDetails: INVALID_ARGUMENT before any response headers, naming the key."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.testing.fake_agent import FakeAgent
from akri_sdk.testing.raw_discover import raw_discover
from mqtt_helpers import Served

from akri_sdk_mqtt import MqttHandler

URI = "mqttBrokerUri: mqtt://127.0.0.1:1883\n"

BAD_DETAILS = {
    "no uri": ("topics: [a]", "mqttBrokerUri"),
    "uri without host": ("mqttBrokerUri: 'mqtt://'\ntopics: [a]", "mqttBrokerUri"),
    "uri not a url": ("mqttBrokerUri: broker:1883\ntopics: [a]", "mqttBrokerUri"),
    "uri bad port": ("mqttBrokerUri: 'mqtt://h:port'\ntopics: [a]", "mqttBrokerUri"),
    "uri port range": ("mqttBrokerUri: 'mqtt://h:70000'\ntopics: [a]", "mqttBrokerUri"),
    "uri scheme": ("mqttBrokerUri: 'http://h'\ntopics: [a]", "mqttBrokerUri"),
    "uri path": ("mqttBrokerUri: 'mqtt://h/x'\ntopics: [a]", "mqttBrokerUri"),
    "uri option": ("mqttBrokerUri: 'mqtt://h?bogus=1'\ntopics: [a]", "mqttBrokerUri"),
    "uri space": ("mqttBrokerUri: 'mqtt://h ost'\ntopics: [a]", "mqttBrokerUri"),
    "uri ipv6": ("mqttBrokerUri: 'mqtt://[::1'\ntopics: [a]", "mqttBrokerUri"),
    "no topics": (URI, "topics"),
    "topics not a list": (URI + "topics: a/b", "topics"),
    "bad filter": (URI + "topics: ['a/b#']", "topics"),
    "timeout zero": (URI + "topics: [a]\ntimeoutSeconds: 0", "timeoutSeconds"),
    "timeout string": (URI + "topics: [a]\ntimeoutSeconds: '60'", "timeoutSeconds"),
    "bad regexp": (URI + "topics: [a]\nmessageRegexp: '(unclosed'", "messageRegexp"),
    "bad qos": (URI + "topics: [a]\nqos: 3", "qos"),
    "bad protocol": (URI + "topics: [a]\nprotocol: '4'", "protocol"),
    "json op": (URI + "topics: [a]\njsonFilter: {field: v, op: '~', value: 1}", "jsonFilter"),
    "json ordering": (URI + "topics: [a]\njsonFilter: {field: v, op: '>', value: x}", "jsonFilter"),
    "json field": (URI + "topics: [a]\njsonFilter: {field: 'a..b'}", "jsonFilter"),
    "pattern no id": (URI + "deviceIdPattern: a/+/b", "deviceIdPattern"),
    "pattern two ids": (URI + "deviceIdPattern: '{id}/{id}'", "deviceIdPattern"),
    "pattern wildcard": (URI + "deviceIdPattern: 'a/{id}#'", "deviceIdPattern"),
    "liveness alone": (URI + "topics: [a]\nlivenessTopic: 's/{id}'", "livenessTopic"),
    "same payloads": (
        URI + "deviceIdPattern: 'd/{id}'\nlivenessTopic: 's/{id}'\nofflinePayload: online",
        "offlinePayload",
    ),
    "too many fields": (
        URI + "topics: [a]\nincludePayloadFields: [" + ", ".join(f"f{i}" for i in range(17)) + "]",
        "includePayloadFields",
    ),
    "colliding fields": (URI + "topics: [a]\nincludePayloadFields: [a.b, a_b]", "includePayload"),
}


@pytest.mark.parametrize("case", sorted(BAD_DETAILS))
async def test_bad_details_get_invalid_argument(
    agent: FakeAgent, served: Served, case: str
) -> None:
    details, key = BAD_DETAILS[case]
    [runtime] = await served.start(MqttHandler(node="n"))
    await agent.wait_registrations(1)
    stream = agent.discover(agent.registrations[0], details)
    assert await stream.wait_ended() == grpc.StatusCode.INVALID_ARGUMENT, stream.message
    assert stream.message is not None and key in stream.message, stream.message
    assert stream.snapshots == []
    assert not runtime.service.tasks  # nothing was started: no broker connection


async def test_invalid_argument_is_trailers_only(
    agent: FakeAgent, served: Served, akri_dir: Path
) -> None:
    await served.start(MqttHandler(node="n"))
    await agent.wait_registrations(1)
    request = pb.DiscoverRequest(discovery_details="mqttBrokerUri: 'mqtt://h:0'\ntopics: [a]")
    raw = await raw_discover(akri_dir / "mqtt.sock", request)
    assert raw.trailers_only, raw
    assert raw.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert raw.status_message is not None and "mqttBrokerUri" in raw.status_message
