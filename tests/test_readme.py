"""The README's first-handler example works as written."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from akri_sdk.testing.fake_agent import FakeAgent
from tests.conftest import Served

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_module() -> ModuleType:
    text = README.read_text()
    block = re.search(r"```python\n(# my_handler\.py\n.*?)```", text, re.DOTALL)
    assert block, "the README lost its first-handler example"
    module = ModuleType("my_handler")
    # dont_inherit: this file's `from __future__ import annotations` must not leak in.
    code = compile(block.group(1), "README.md:my_handler.py", "exec", dont_inherit=True)
    exec(code, module.__dict__)
    return module


async def test_readme_handler_runs(agent: FakeAgent, served: Served) -> None:
    module = readme_module()
    await served.start(module.Pinger())
    await agent.wait_registrations(1)
    assert agent.registrations[0].name == "pinger"
    assert agent.registrations[0].shared is True
    details = "hosts: [cam-1, cam-2, nas]\nnames: {action: Exclude, items: [nas]}\n"
    stream = agent.discover(agent.registrations[0], details)
    devices = await stream.next_snapshot()
    assert [(d.id, dict(d.properties)) for d in devices] == [
        ("cam-1", {"PINGER_HOST": "cam-1"}),
        ("cam-2", {"PINGER_HOST": "cam-2"}),
    ]
    bad = agent.discover(agent.registrations[0], "hosts: nas")
    await bad.wait_ended()
    assert bad.message == "discoveryDetails: expected list at $.hosts, got string 'nas'"
