"""Plugin loading: built-ins, entry points, the env filter, and clear errors."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from akri_sdk import DiscoveryHandler, hookimpl
from akri_sdk.cli import main
from akri_sdk.handlers.debug_echo import DebugEcho
from akri_sdk.plugins import HandlerRegistry, PluginError, PluginInfo, load_registry


class Alpha(DiscoveryHandler):
    name = "alpha"

    async def scan(self, ctx: object) -> list[object]:  # type: ignore[override]
        return []


def plugin_registering(*classes: type[DiscoveryHandler]) -> object:
    class Plugin:
        @hookimpl
        def register_handlers(self, register: Callable[[type[DiscoveryHandler]], None]) -> None:
            for cls in classes:
                register(cls)

    return Plugin()


def test_builtin_debug_echo_is_registered() -> None:
    registry = load_registry(entry_points=False)
    assert registry.get("debugEcho") is DebugEcho
    assert registry.plugins["builtin"].handlers == ["debugEcho"]


def test_duplicate_handler_names_are_refused() -> None:
    registry = load_registry(entry_points=False)
    registry.add_plugin(plugin_registering(Alpha), PluginInfo("first", None, None))
    with pytest.raises(
        PluginError, match="'alpha' from plugin 'second' is already registered by plugin 'first'"
    ):
        registry.add_plugin(plugin_registering(Alpha), PluginInfo("second", None, None))


def test_unknown_name_lists_known_handlers() -> None:
    registry = load_registry(entry_points=False)
    with pytest.raises(
        PluginError, match="no discovery handler named 'nope'; loaded handlers: debugEcho"
    ):
        registry.get("nope")


def test_register_rejects_non_handlers() -> None:
    registry = HandlerRegistry()
    with pytest.raises(PluginError, match="not a DiscoveryHandler subclass"):
        registry.add_plugin(plugin_registering(int), PluginInfo("bad", None, None))  # type: ignore[arg-type]


def test_handler_class_checks() -> None:
    with pytest.raises(TypeError, match="must implement scan"):

        class NoMethod(DiscoveryHandler):
            name = "nomethod"

    with pytest.raises(TypeError, match="names the socket file"):

        class BadName(DiscoveryHandler):
            name = "a/b"

            async def scan(self, ctx: object) -> list[object]:  # type: ignore[override]
                return []


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real distribution on sys.path with an `akri_sdk` entry point."""
    (tmp_path / "demo_plugin.py").write_text(
        textwrap.dedent(
            """
            from akri_sdk import DiscoveryHandler, hookimpl

            class Beta(DiscoveryHandler):
                name = "beta"
                shared = True

                async def scan(self, ctx):
                    return []

            @hookimpl
            def register_handlers(register):
                register(Beta)
            """
        )
    )
    dist = tmp_path / "demo_plugin-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[akri_sdk]\ndemo = demo_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("demo_plugin", None)


def test_entry_point_plugin_loads_with_version(installed_plugin: Path) -> None:
    registry = load_registry()
    assert registry.get("beta").shared is True
    info = registry.plugins["demo"]
    assert (info.distribution, info.version, info.handlers) == ("demo-plugin", "1.2.3", ["beta"])


def test_env_limits_plugins(installed_plugin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AKRI_SDK_PLUGINS", "")
    registry = load_registry()
    assert "demo" not in registry.plugins
    assert "debugEcho" in registry.handlers  # built-ins always load
    monkeypatch.setenv("AKRI_SDK_PLUGINS", "demo")
    assert "beta" in load_registry().handlers
    monkeypatch.setenv("AKRI_SDK_PLUGINS", "demo,missing")
    with pytest.raises(PluginError, match="not installed: missing"):
        load_registry()


def test_broken_plugin_import_names_the_plugin(
    installed_plugin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (installed_plugin / "demo_plugin.py").write_text("raise ImportError('boom')\n")
    registry = load_registry()  # the others still load
    assert registry.get("debugEcho") is DebugEcho
    assert "failed to import: boom" in registry.failed["demo"]
    with pytest.raises(
        PluginError, match=r"no discovery handler named 'beta'.*plugin 'demo' .*boom"
    ):
        registry.get("beta")


def test_cli_plugins_json(installed_plugin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_handler = {r["handler"]: r for r in rows}
    assert by_handler["debugEcho"]["plugin"] == "builtin"
    assert by_handler["debugEcho"]["style"] == "watch"
    assert by_handler["beta"] == {
        "plugin": "demo",
        "distribution": "demo-plugin",
        "version": "1.2.3",
        "handler": "beta",
        "shared": True,
        "style": "scan",
    }


def test_cli_plugins_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "HANDLER", "STYLE"]
    assert "debugEcho" in out


def test_cli_schema_and_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "debugEcho"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "descriptions" in json.dumps(schema)
    assert main(["schema", "nope"]) == 2
    assert "no discovery handler named 'nope'" in capsys.readouterr().err
