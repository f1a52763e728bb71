"""Presence rules of the device inventory, on a fake clock (no broker needed)."""

from __future__ import annotations

from akri_sdk.details import decode_details

from akri_sdk_mqtt.details import MqttDetails
from akri_sdk_mqtt.events import Message
from akri_sdk_mqtt.inventory import STATUS_SETTLE_SECONDS, DeviceInventory

LIVENESS = (
    "mqttBrokerUri: mqtt://b:1883\ndeviceIdPattern: 'booth/{id}/sound'\n"
    "livenessTopic: 'status/{id}'\ntimeoutSeconds: 10"
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(details: str, grace: float = 30.0, **options: object) -> tuple[DeviceInventory, Clock]:
    parsed = decode_details(details, MqttDetails)
    clock = Clock()
    inventory = DeviceInventory(
        parsed.plan,
        timeout=parsed.timeout_seconds,
        grace=grace,
        max_devices=parsed.max_devices,
        online_payload=parsed.online_payload,
        offline_payload=parsed.offline_payload,
        ignore_retained=parsed.ignore_retained,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )
    inventory.on_connected(clock.now)
    return inventory, clock


def names(inventory: DeviceInventory) -> list[str]:
    return sorted(d.id for d in inventory.devices())


def test_silence_timeout_and_exact_deadline() -> None:
    inventory, clock = make("mqttBrokerUri: mqtt://b\ntopics: ['#']\ntimeoutSeconds: 10")
    assert inventory.on_message(Message("a", b"", False), clock.now)
    assert not inventory.on_message(Message("a", b"", False), clock.now)  # no change
    clock.now += 4
    inventory.on_message(Message("a", b"", False), clock.now)
    assert inventory.next_deadline() == clock.now + 10
    clock.now += 9.99
    assert not inventory.expire(clock.now)
    clock.now += 0.01
    assert inventory.expire(clock.now)
    assert names(inventory) == []
    assert inventory.next_deadline() is None


def test_status_online_offline_and_cleared() -> None:
    inventory, clock = make(LIVENESS)
    assert inventory.on_message(Message("status/s1", b"online", True), clock.now)
    assert names(inventory) == ["s1"]
    clock.now += 1000  # far past the timeout: online devices stay
    assert not inventory.expire(clock.now)
    inventory.on_message(Message("booth/s1/sound", b"{}", False), clock.now)
    assert inventory.on_message(Message("status/s1", b"offline", True), clock.now)
    assert names(inventory) == []
    # Data brings it back under the silence timeout; an empty retained status clears.
    inventory.on_message(Message("booth/s1/sound", b"{}", False), clock.now)
    inventory.on_message(Message("status/s1", b"online", True), clock.now)
    assert not inventory.on_message(Message("status/s1", b"", True), clock.now)
    clock.now += 10
    assert inventory.expire(clock.now)
    assert names(inventory) == []
    assert not inventory.on_message(Message("status/s1", b"rebooting", False), clock.now)
    assert inventory.ignored == 1


def test_outage_pauses_timeouts_then_grace_drops_everything() -> None:
    inventory, clock = make("mqttBrokerUri: mqtt://b\ntopics: ['#']\ntimeoutSeconds: 5", grace=60)
    inventory.on_message(Message("a", b"", False), clock.now)
    inventory.on_disconnected(clock.now)
    clock.now += 30  # silent far longer than the timeout, but the broker is down
    assert not inventory.expire(clock.now)
    assert inventory.next_deadline() == clock.now + 30
    inventory.on_connected(clock.now)  # back: a fresh timeout for everyone
    assert inventory.next_deadline() == clock.now + 5
    assert names(inventory) == ["a"]
    inventory.on_disconnected(clock.now)
    clock.now += 60
    assert inventory.expire(clock.now)
    assert names(inventory) == []
    assert inventory.next_deadline() is None


def test_statuses_not_confirmed_after_reconnect_are_dropped() -> None:
    inventory, clock = make(LIVENESS)
    inventory.on_message(Message("status/kept", b"online", True), clock.now)
    inventory.on_message(Message("status/gone", b"online", True), clock.now)
    inventory.on_disconnected(clock.now)
    inventory.on_connected(clock.now + 1)
    inventory.on_subscribed(clock.now + 1)
    inventory.on_message(Message("status/kept", b"online", True), clock.now + 1)
    assert inventory.next_deadline() == clock.now + 1 + STATUS_SETTLE_SECONDS
    assert inventory.expire(clock.now + 1 + STATUS_SETTLE_SECONDS)
    assert names(inventory) == ["kept"]


def test_status_subscription_does_not_make_data_devices() -> None:
    details = (
        "mqttBrokerUri: mqtt://b\ntopics: ['data/#']\ndeviceIdPattern: '+/{id}'\n"
        "livenessTopic: 'st/dev-{id}'"
    )
    inventory, clock = make(details)
    # Delivered for the `st/+` subscription, not a status (no `dev-` prefix), not data.
    assert not inventory.on_message(Message("st/other", b"x", False), clock.now)
    assert inventory.on_message(Message("data/x", b"x", False), clock.now)
    assert names(inventory) == ["x"]


def test_max_devices_and_ignore_retained() -> None:
    details = "mqttBrokerUri: mqtt://b\ntopics: ['#']\nmaxDevices: 2\nignoreRetained: true"
    inventory, clock = make(details)
    assert not inventory.on_message(Message("old", b"", True), clock.now)
    for topic in ("a", "b", "c"):
        inventory.on_message(Message(topic, b"", False), clock.now)
    assert names(inventory) == ["a", "b"]


def test_fields_update_properties_and_reuse_unchanged_devices() -> None:
    details = "mqttBrokerUri: mqtt://b\ntopics: ['#']\nincludePayloadFields: [v]"
    inventory, clock = make(details)
    inventory.on_message(Message("a", b'{"v": 1}', False), clock.now)
    inventory.on_message(Message("b", b'{"v": 1}', False), clock.now)
    first = {d.id: d for d in inventory.devices()}
    assert inventory.on_message(Message("a", b'{"v": 2}', False), clock.now)
    assert not inventory.on_message(Message("b", b'{"v": 1}', False), clock.now)
    second = {d.id: d for d in inventory.devices()}
    assert second["a"].properties["MQTT_PAYLOAD_V"] == "2"
    assert second["b"] is first["b"]  # unchanged: the same object, so its wire bytes are cached
    assert inventory.on_message(Message("a", b"not json", False), clock.now)
    assert "MQTT_PAYLOAD_V" not in {d.id: d for d in inventory.devices()}["a"].properties


def test_quiet_topics_are_only_those_that_cannot_change_the_set() -> None:
    details = (
        "mqttBrokerUri: mqtt://b\ntopics: ['#']\ndeviceIdPattern: 'dev/{id}'\n"
        "messageRegexp: loud\ntimeoutSeconds: 5"
    )
    inventory, clock = make(details)
    inventory.on_message(Message("other/x", b"loud", False), clock.now)
    inventory.on_message(Message("dev/a", b"quiet", False), clock.now)
    assert inventory.quiet_topics == {"other/x"}  # never a device; `dev/a` may become one
    inventory.on_message(Message("dev/a", b"loud", False), clock.now)
    assert inventory.quiet_topics == {"other/x", "dev/a"}
    # A repeat that arrived earlier but is applied late counts from its arrival.
    inventory.on_message(Message("dev/a", b"loud", False, clock.now + 3), clock.now + 4)
    assert inventory.next_deadline() == clock.now + 8
    assert inventory.expire(clock.now + 8)
    assert inventory.quiet_topics == set()  # a device went: its topics wake the loop again


def test_payload_fields_make_every_message_urgent() -> None:
    details = "mqttBrokerUri: mqtt://b\ntopics: ['#']\nincludePayloadFields: [v]"
    inventory, clock = make(details)
    inventory.on_message(Message("a", b'{"v": 1}', False), clock.now)
    assert inventory.quiet_topics == set()
