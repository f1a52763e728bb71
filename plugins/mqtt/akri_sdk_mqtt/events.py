"""Broker events and connection settings, free of paho.

Kept apart from `connection` so that loading the plugin (which every
`akri-dh run` does, whatever handler it runs) does not import paho-mqtt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from akri_sdk_mqtt.auth import BrokerAuth
from akri_sdk_mqtt.uri import BrokerUri

__all__ = [
    "BrokerEvent",
    "Connected",
    "ConnectionSettings",
    "Disconnected",
    "Message",
    "Subscribed",
]


class Message(NamedTuple):
    """A PUBLISH as received (a NamedTuple: built once per message, so cheap).

    `at` is the arrival time (time.monotonic), or None for "when it is applied".
    """

    topic: str
    payload: bytes
    retain: bool
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Connected:
    """CONNACK accepted; subscriptions were just sent."""


@dataclass(frozen=True, slots=True)
class Subscribed:
    """SUBACK arrived; `refused` lists the filters the broker did not accept."""

    refused: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Not connected (any more), and why; a reconnect attempt follows after a backoff."""

    reason: str


BrokerEvent = Message | Connected | Subscribed | Disconnected


@dataclass(frozen=True)
class ConnectionSettings:
    uri: BrokerUri
    auth: BrokerAuth
    client_id: str
    subscriptions: tuple[str, ...]
    qos: int = 0
    protocol: Literal["5", "3.1.1"] = "5"
    retry_initial: float = 1.0
    retry_max: float = 30.0
    connect_timeout: float = 10.0
