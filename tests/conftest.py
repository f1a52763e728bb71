"""Shared fixtures: a short socket directory, a running fake Agent, served handlers."""

from __future__ import annotations

import os

# grpc's C core logs every idle-connection GOAWAY at INFO; keep test output readable.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from akri_sdk.testing.fake_agent import FakeAgent
from akri_sdk.testing.harness import ServedHandlers

# Our own tests use the testing kit's pytest plugin like any handler project,
# under the shorter names they were written with.


@pytest.fixture
def akri_dir(akri_socket_dir: Path) -> Path:
    return akri_socket_dir


@pytest.fixture
def agent(akri_agent: FakeAgent) -> FakeAgent:
    return akri_agent


# The reusable harness of the testing kit; named for the tests that use it.
Served = ServedHandlers


@pytest.fixture
async def served(akri_dir: Path) -> AsyncIterator[Served]:
    harness = ServedHandlers(akri_dir)
    yield harness
    with contextlib.suppress(Exception):
        await harness.stop()
