"""The README's first command: the live demo runs, shows devices going and coming, exits 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from akri_sdk.device import instance_name


@pytest.mark.slow
def test_demo_shows_instances_going_and_coming() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "akri_sdk.cli", "demo", "--seconds", "5", "--toggle-every", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "handler 'debugEcho' registered" in out
    # foo0's shared Instance hash is the one in Akri's docs (DEBUG_ECHO_DESCRIPTION_8120FE).
    assert instance_name("akri-debug-echo", "foo0", "demo-node", True) == "akri-debug-echo-8120fe"
    assert "akri-debug-echo-8120fe   device=foo0" in out
    offline = out.index("writing OFFLINE")
    assert "no Instances" in out[offline:]
    online = out.index("writing ONLINE")
    assert "3 Instance(s)" in out[online:]
    assert "handler exited with status 0; socket removed: True" in out


@pytest.mark.slow
def test_make_demo_shows_sensors_joining_and_going_silent() -> None:
    """`make demo`: debugEcho and simulated MQTT sound sensors through the local Agent."""
    demo = Path(__file__).resolve().parents[1] / "examples" / "demo" / "demo.py"
    result = subprocess.run(
        [sys.executable, str(demo), "--seconds", "17", "--json"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    changes = [
        (e["event"], e["device_id"])
        for e in events
        if e["event"] in ("instance_added", "instance_removed")
    ]
    assert {d for kind, d in changes if kind == "instance_added"} >= {
        "foo0",
        "foo1",
        "foo2",
        "booth-1",
        "booth-2",
        "booth-3",
        "booth-4",
    }
    # booth-1 goes quiet (dropped after the silence timeout), then comes back;
    # booth-2 loses its connection (its last will removes it at once).
    booth_1 = [kind for kind, d in changes if d == "booth-1"]
    assert booth_1 == ["instance_added", "instance_removed", "instance_added"]
    assert [kind for kind, d in changes if d == "booth-2"] == ["instance_added", "instance_removed"]
    assert not [d for kind, d in changes if kind == "instance_removed" and d.startswith("foo")]
    assert events[-1]["event"] == "agent_stopped"
