"""`akri-dh discover`: one handler in-process, one Discover stream, its devices printed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from akri_sdk.commands.discover import parse_properties, read_details

AKRI_DH = [sys.executable, "-m", "akri_sdk.cli"]


def discover(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AKRI_DH, "discover", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR", **env},
    )


def test_json_prints_both_devices_and_exits_zero(tmp_path: Path) -> None:
    result = discover(
        "debugEcho",
        "--details",
        "descriptions: [a, b]",
        "--json",
        DEBUG_ECHO_AVAILABILITY_FILE=str(tmp_path / "none"),
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1
    snapshot = lines[0]
    assert (snapshot["event"], snapshot["handler"]) == ("snapshot", "debugEcho")
    assert snapshot["devices"] == [
        {
            "id": description,
            "properties": {"DEBUG_ECHO_DESCRIPTION": description},
            "mounts": [],
            "device_specs": [],
        }
        for description in ("a", "b")
    ]


def test_bad_details_print_the_invalid_argument_message_and_exit_one() -> None:
    result = discover("debugEcho", "--details", "descriptions: 5")
    assert result.returncode == 1
    assert result.stdout == ""
    assert (
        "akri-dh discover: debugEcho (INVALID_ARGUMENT): discoveryDetails: expected list at "
        "$.descriptions, got integer 5"
    ) in result.stderr


def test_bad_details_in_json_mode_are_also_an_error_line() -> None:
    result = discover("debugEcho", "--json")  # details default to "", which debugEcho refuses
    assert result.returncode == 1
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert (line["event"], line["code"]) == ("error", "INVALID_ARGUMENT")
    assert "discoveryDetails is empty" in line["message"]


def test_details_from_a_file_and_a_table(tmp_path: Path) -> None:
    details = tmp_path / "details.yaml"
    details.write_text("descriptions:\n- camera-1\n")
    result = discover(
        "debugEcho", "--details", str(details), DEBUG_ECHO_AVAILABILITY_FILE=str(tmp_path / "x")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "debugEcho (shared): 1 device",
        "DEVICE    PROPERTIES                       MOUNTS/DEVICES",
        "camera-1  DEBUG_ECHO_DESCRIPTION=camera-1  -",
    ]


def test_unknown_handler_exits_two() -> None:
    result = discover("noSuchHandler", "--details", "x: 1")
    assert result.returncode == 2
    assert "no discovery handler named 'noSuchHandler'" in result.stderr


def test_read_details_file_inline_and_properties(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("descriptions: [x]")
    assert read_details(str(path)) == "descriptions: [x]"
    assert read_details("descriptions: [y]") == "descriptions: [y]"
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x00pw")
    assert parse_properties(["A=1", "B=", "C"], [f"D={secret}"]) == {
        "A": b"1",
        "B": b"",
        "C": None,
        "D": b"\x00pw",
    }
    with pytest.raises(ValueError, match="must match"):
        parse_properties(["1A=x"], [])
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_properties([], ["D"])


@pytest.mark.slow
async def test_watch_prints_each_snapshot_until_interrupted(tmp_path: Path) -> None:
    availability = tmp_path / "availability.txt"
    process = await asyncio.create_subprocess_exec(
        *AKRI_DH,
        "discover",
        "debugEcho",
        "--details",
        "descriptions: [a]",
        "--watch",
        "--json",
        "--seconds",
        "60",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "GRPC_VERBOSITY": "ERROR",
            "DEBUG_ECHO_AVAILABILITY_FILE": str(availability),
        },
    )
    try:
        assert process.stdout is not None

        async def next_devices() -> list[Any]:
            line = await asyncio.wait_for(process.stdout.readline(), 15)  # type: ignore[union-attr]
            event = json.loads(line)
            assert event["event"] == "snapshot", event
            return [device["id"] for device in event["devices"]]

        assert await next_devices() == ["a"]
        availability.write_text("OFFLINE")
        assert await next_devices() == []
        availability.write_text("ONLINE")
        assert await next_devices() == ["a"]
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
