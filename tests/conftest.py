"""Served handlers for the SDK's tests (akri_dir and agent come from ../conftest.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from akri_sdk.testing.harness import ServedHandlers

# The reusable harness of the testing kit; named for the tests that use it.
Served = ServedHandlers


@pytest.fixture
async def served(akri_dir: Path) -> AsyncIterator[Served]:
    harness = ServedHandlers(akri_dir)
    yield harness
    with contextlib.suppress(Exception):
        await harness.stop()
