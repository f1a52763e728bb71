"""Registration through the `akri_sdk` entry point and the `akri-dh` commands."""

from __future__ import annotations

import json
import subprocess
import sys

import mqtt_helpers
import pytest
from akri_sdk import DetailsError
from akri_sdk.details import decode_details
from akri_sdk.plugins import load_registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akri_sdk_mqtt import MqttDetails, MqttHandler


def test_entry_point_registers_the_handler() -> None:
    registry = load_registry()
    assert registry.get("mqtt") is MqttHandler
    assert registry.plugins["mqtt"].distribution == "akri-sdk-mqtt"
    assert MqttHandler.shared is True and MqttHandler.is_event_driven()


def test_akri_dh_plugins_and_schema() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "akri_sdk.cli", "plugins", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = json.loads(listed.stdout)
    assert {"plugin": "mqtt", "handler": "mqtt", "style": "watch"}.items() <= next(
        r for r in rows if r["handler"] == "mqtt"
    ).items()
    schema = subprocess.run(
        [sys.executable, "-m", "akri_sdk.cli", "schema", "mqtt"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    properties = json.loads(schema.stdout)["$defs"]["MqttDetails"]["properties"]
    keys = "mqttBrokerUri topics timeoutSeconds propertiesPrefix messageRegexp jsonFilter"
    keys += " deviceIdPattern livenessTopic onlinePayload offlinePayload includePayloadFields"
    assert set(keys.split()) <= set(properties)


def test_upstream_configuration_decodes_unchanged() -> None:
    # deploy/akri-mqtt-configuration.yaml of suse-edge/akri-mqtt-discovery-handler.
    details = decode_details(
        'mqttBrokerUri: "tcp://192.168.1.14:1883"\ntopics: ["hello", "goodbye", "wow"]\n'
        "timeoutSeconds: 60\n",
        MqttDetails,
    )
    assert details.plan.uri.port == 1883 and not details.plan.uri.tls
    assert details.plan.subscriptions == ("hello", "goodbye", "wow")
    assert details.timeout_seconds == 60
    spin = decode_details(
        "mqttBrokerUri: mqtt://b\ntopics: [booth/+]\npropertiesPrefix: spin_variable",
        MqttDetails,
    )
    assert spin.plan.property_name("MQTT_TOPIC") == "SPIN_VARIABLE_MQTT_TOPIC"


def test_a_missing_broker_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mqtt_helpers.shutil, "which", lambda name: None)
    monkeypatch.setattr(mqtt_helpers.os, "access", lambda path, mode: False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="mosquitto is not installed"):
        mqtt_helpers.find_mosquitto()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="mosquitto is not installed"):
        mqtt_helpers.find_mosquitto()


settings_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False),
    st.text(max_size=30), st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(st.sampled_from(["field", "op", "value"]), st.text(max_size=5), max_size=3),
)  # fmt: skip
DETAIL_KEYS = (
    "mqttBrokerUri topics timeoutSeconds propertiesPrefix messageRegexp jsonFilter "
    "deviceIdPattern qos protocol livenessTopic onlinePayload offlinePayload ignoreRetained "
    "includePayloadFields maxFieldChars maxPayloadBytes maxDevices gracePeriodSeconds"
)
detail_keys = st.sampled_from(DETAIL_KEYS.split())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(detail_keys, settings_values, max_size=6), st.booleans())
def test_any_details_decode_or_raise_details_error(data: dict[str, object], uri: bool) -> None:
    if uri:
        data.setdefault("mqttBrokerUri", "mqtt://broker:1883")
    try:
        details = decode_details(json.dumps(data), MqttDetails)
    except DetailsError as error:
        message = str(error)
        assert message.startswith("discoveryDetails"), message
        return
    assert details.plan.subscriptions  # a decoded request always has something to subscribe


def test_loading_the_plugin_does_not_import_paho() -> None:
    """Every `akri-dh run` loads every plugin; paho must wait until mqtt is used."""
    import subprocess
    import sys

    code = "import sys, akri_sdk_mqtt.plugin; print(sorted(m for m in sys.modules if 'paho' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
