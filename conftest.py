"""Fixtures shared by the SDK's tests and the plugins' tests in this repository."""

from __future__ import annotations

import os

# grpc's C core logs every idle-connection GOAWAY at INFO; keep test output readable.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from pathlib import Path

import pytest

from akri_sdk.testing.fake_agent import FakeAgent

# Our tests use the testing kit's pytest plugin like any handler project, under the
# shorter names they were written with.


@pytest.fixture
def akri_dir(akri_socket_dir: Path) -> Path:
    return akri_socket_dir


@pytest.fixture
def agent(akri_agent: FakeAgent) -> FakeAgent:
    return akri_agent
