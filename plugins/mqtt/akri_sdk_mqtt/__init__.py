"""akri-sdk-mqtt: an MQTT discovery handler for akri-sdk (handler name `mqtt`).

Sensors that publish on a broker become Akri devices; see `MqttDetails` for the
discoveryDetails keys (upstream-compatible plus payload filters, topic-pattern ids,
status topics) and README.md for examples.
"""

from akri_sdk_mqtt.details import MqttDetails
from akri_sdk_mqtt.handler import MqttHandler

__all__ = ["MqttDetails", "MqttHandler"]
