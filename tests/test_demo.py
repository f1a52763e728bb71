"""The README's first command: the live demo runs, shows devices going and coming, exits 0."""

from __future__ import annotations

import subprocess
import sys

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
