"""TLS, credentials and refusals: against mosquitto listeners with test certificates."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from akri_sdk.testing.fake_agent import DiscoverStream, FakeAgent
from akri_sdk.testing.harness import eventually
from mqtt_helpers import Broker, Pki, Publisher, Served, ids

from akri_sdk_mqtt import MqttHandler

PASSWORD = "pw-Zq81-never-logged"
USER = "sensor-reader"


class FastMqtt(MqttHandler):
    retry_initial = 0.2
    retry_max = 0.5


def pem(path: Path) -> bytes:
    return path.read_bytes()


async def discover(
    agent: FakeAgent, served: Served, details: str, properties: dict[str, bytes]
) -> DiscoverStream:
    await served.start(FastMqtt(node="node-a"))
    await agent.wait_registrations(1)
    stream = agent.discover(agent.registrations[0], details, properties)
    await stream.until(lambda s: bool(s.snapshots) or s.ended)
    return stream


async def test_tls_with_username_and_password(
    agent: FakeAgent, served: Served, pki: Pki, make_broker: Callable[..., Broker],
    make_publisher: Callable[..., Publisher],
) -> None:  # fmt: skip
    broker = make_broker(tls="password", pki=pki, users={USER: PASSWORD, "pub": "pub-pw"})
    properties = {
        "mqtt_broker_username": USER.encode(),
        "mqtt_broker_password": PASSWORD.encode() + b"\n",  # as `--from-file` leaves it
        "mqtt_broker_ca": pem(pki.ca),
    }
    stream = await discover(
        agent, served, f"mqttBrokerUri: {broker.uri}\ntopics: ['#']", properties
    )
    publisher = make_publisher(
        broker, tls={"ca_certs": str(pki.ca)}, username="pub", password="pub-pw"
    )
    publisher.publish("booth/1", b"1")
    await stream.until(lambda s: ids(s.latest) == ["booth/1"])
    assert (stream.latest or ())[0].properties["MQTT_BROKER_URI"] == broker.uri


async def test_tls_with_a_client_certificate(
    agent: FakeAgent, served: Served, pki: Pki, make_broker: Callable[..., Broker],
    make_publisher: Callable[..., Publisher],
) -> None:  # fmt: skip
    broker = make_broker(tls="certificate", pki=pki)
    properties = {
        "mqtt_broker_ca": pem(pki.ca),
        "mqtt_broker_certificate": pem(pki.client_cert),
        "mqtt_broker_key": pem(pki.client_key),
    }
    before = _private_dirs()
    stream = await discover(
        agent, served, f"mqttBrokerUri: {broker.uri}\ntopics: ['#']", properties
    )
    assert _private_dirs() == before  # the key was on tmpfs only while it was loaded
    publisher = make_publisher(
        broker,
        tls={"ca_certs": str(pki.ca), "certfile": str(pki.client_cert),
             "keyfile": str(pki.client_key)},
    )  # fmt: skip
    publisher.publish("booth/2", b"1")
    await stream.until(lambda s: ids(s.latest) == ["booth/2"])


def _private_dirs() -> set[str]:
    found: set[str] = set()
    for base in ("/dev/shm", "/tmp"):
        with contextlib.suppress(OSError):
            found |= {name for name in os.listdir(base) if name.startswith("akri-mqtt-")}
    return found


async def test_refusals_keep_the_stream_open_and_say_why_once(
    agent: FakeAgent, served: Served, pki: Pki, make_broker: Callable[..., Broker],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    broker = make_broker(tls="password", pki=pki, users={USER: PASSWORD})
    await served.start(FastMqtt(node="node-a"))
    await agent.wait_registrations(1)
    registration = agent.registrations[0]
    details = f"mqttBrokerUri: {broker.uri}\ntopics: ['#']"
    wrong_password = agent.discover(registration, details, {
        "mqtt_broker_username": USER.encode(), "mqtt_broker_password": b"wrong-pw-0042",
        "mqtt_broker_ca": pem(pki.ca),
    })  # fmt: skip
    wrong_ca = agent.discover(registration, details, {"mqtt_broker_ca": pem(pki.other_ca)})
    for stream in (wrong_password, wrong_ca):
        await stream.until(lambda s: s.latest == ())
    await _wait_for(caplog, "refused the connection")
    await _wait_for(caplog, "certificate verification failed")
    assert not wrong_password.ended and not wrong_ca.ended
    assert "wrong-pw-0042" not in caplog.text


async def _wait_for(caplog: pytest.LogCaptureFixture, text: str) -> None:
    await eventually(lambda: text in caplog.text, what=f"log line {text!r}")


async def test_secrets_never_reach_debug_logs_or_properties(
    agent: FakeAgent, served: Served, pki: Pki, make_broker: Callable[..., Broker],
    make_publisher: Callable[..., Publisher], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    broker = make_broker(tls="password", pki=pki, users={USER: PASSWORD, "pub": "pub-pw"})
    key = pem(pki.client_key)
    properties = {
        "mqtt_broker_username": USER.encode(),
        "mqtt_broker_password": PASSWORD.encode(),
        "mqtt_broker_ca": pem(pki.ca),
        "mqtt_broker_certificate": pem(pki.client_cert),
        "mqtt_broker_key": key,
    }
    stream = await discover(
        agent, served, f"mqttBrokerUri: {broker.uri}\ntopics: ['#']", properties
    )
    # Credentials in the URI (discouraged, but upstream-compatible) are used and hidden.
    uri_with_password = broker.uri.replace("://", f"://{USER}:{PASSWORD}@")
    in_uri = agent.discover(
        agent.registrations[0], f"mqttBrokerUri: {uri_with_password}\ntopics: ['#']",
        {"mqtt_broker_ca": pem(pki.ca)},
    )  # fmt: skip
    wrong = agent.discover(
        agent.registrations[0], f"mqttBrokerUri: {broker.uri}\ntopics: ['x']",
        {**properties, "mqtt_broker_password": b"also-secret-991"},
    )  # fmt: skip
    publisher = make_publisher(
        broker, tls={"ca_certs": str(pki.ca)}, username="pub", password="pub-pw"
    )
    await in_uri.until(lambda s: bool(s.snapshots))
    publisher.publish("dev/1", b"1")
    for each in (stream, in_uri):
        await each.until(lambda s: ids(s.latest) == ["dev/1"])
    await wrong.until(lambda s: s.latest == ())
    await _wait_for(caplog, "refused the connection")
    assert "Sending CONNECT" in caplog.text  # paho's debug log was captured too
    assert "carries credentials" in caplog.text  # the URI credentials were warned about
    key_body = key.decode().splitlines()[1]
    texts = [caplog.text] + [repr(r.args) + repr(r.__dict__) for r in caplog.records]
    for secret in (PASSWORD, "also-secret-991", key_body):
        assert all(secret not in text for text in texts), secret
    for each in (stream, in_uri):
        for device in each.latest or ():
            assert all(PASSWORD not in value for value in device.properties.values())
            assert device.properties["MQTT_BROKER_URI"] == broker.uri


BAD_PROPERTIES = {
    "password without user": {"mqtt_broker_password": b"pw-1234-x"},
    "certificate without key": {"mqtt_broker_certificate": b"-----BEGIN CERTIFICATE-----"},
    "key without certificate": {"mqtt_broker_key": b"pw-1234-x"},
    "CA not PEM": {"mqtt_broker_ca": b"pw-1234-x"},
    "key not PEM": {"mqtt_broker_certificate": b"pw-1234-x", "mqtt_broker_key": b"pw-1234-x"},
    "password not UTF-8": {"mqtt_broker_username": b"u", "mqtt_broker_password": b"\xffpw"},
}


@pytest.mark.parametrize("case", sorted(BAD_PROPERTIES))
async def test_bad_credentials_are_invalid_argument(
    agent: FakeAgent, served: Served, case: str
) -> None:
    await served.start(FastMqtt(node="node-a"))
    await agent.wait_registrations(1)
    details = "mqttBrokerUri: mqtts://127.0.0.1:1\ntopics: ['#']"
    stream = agent.discover(agent.registrations[0], details, BAD_PROPERTIES[case])
    assert await stream.wait_ended() == grpc.StatusCode.INVALID_ARGUMENT
    assert stream.message is not None and "mqtt_broker_" in stream.message
    assert "pw-1234-x" not in stream.message
    assert stream.snapshots == []
