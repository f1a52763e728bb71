"""Fixtures for the MQTT plugin: mosquitto brokers, certificates, a fake Agent."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mqtt_helpers import Broker, Pki, Publisher, Served, find_mosquitto


@pytest.fixture
async def served(akri_dir: Path) -> AsyncIterator[Served]:
    harness = Served(akri_dir)
    yield harness
    with contextlib.suppress(Exception):
        await harness.stop()


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    return find_mosquitto()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.generate(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def make_broker(
    mosquitto_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Broker]]:
    """Start brokers on free ports; all are killed at teardown."""
    brokers: list[Broker] = []

    def make(start: bool = True, **options: Any) -> Broker:
        broker = Broker(mosquitto_binary, tmp_path_factory.mktemp("mosquitto"), **options)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def broker(make_broker: Callable[..., Broker]) -> Broker:
    return make_broker()


@pytest.fixture
def make_publisher() -> Iterator[Callable[..., Publisher]]:
    publishers: list[Publisher] = []

    def make(broker: Broker, **options: Any) -> Publisher:
        publisher = Publisher(broker, **options)
        publishers.append(publisher)
        return publisher

    yield make
    for publisher in publishers:
        publisher.close()


@pytest.fixture
def publisher(broker: Broker, make_publisher: Callable[..., Publisher]) -> Publisher:
    return make_publisher(broker)
