"""Entry point `akri_sdk: mqtt`: registers the `mqtt` handler with akri-sdk."""

from __future__ import annotations

from collections.abc import Callable

from akri_sdk import DiscoveryHandler, hookimpl

from akri_sdk_mqtt.handler import MqttHandler


@hookimpl
def register_handlers(register: Callable[[type[DiscoveryHandler]], None]) -> None:
    register(MqttHandler)
