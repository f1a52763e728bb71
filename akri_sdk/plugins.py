"""Plugin loading and the handler registry.

Plugins are entry points in the `akri_sdk` group. `AKRI_SDK_PLUGINS` limits
which of them load (comma-separated entry point names; empty loads none); the
built-in handlers always load.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from akri_sdk import hookspecs
from akri_sdk.handler import DiscoveryHandler

__all__ = ["ENTRY_POINT_GROUP", "HandlerRegistry", "PluginError", "PluginInfo", "load_registry"]

ENTRY_POINT_GROUP = "akri_sdk"
PLUGINS_ENV = "AKRI_SDK_PLUGINS"

log = logging.getLogger("akri_sdk.plugins")


class PluginError(Exception):
    """A plugin could not be loaded, or a handler name is unknown or taken twice."""


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    handlers: list[str] = field(default_factory=list)


class HandlerRegistry:
    """Handler classes by name, with the plugin each came from."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.handlers: dict[str, type[DiscoveryHandler]] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self.failed: dict[str, str] = {}  # plugin name -> why it did not load

    def add_plugin(self, plugin: object, info: PluginInfo) -> None:
        """Register one plugin object and collect the handlers it registers."""
        if info.name in self.plugins:
            raise PluginError(f"plugin {info.name!r} is loaded twice")

        def register(handler_class: type[DiscoveryHandler]) -> None:
            if not (
                isinstance(handler_class, type) and issubclass(handler_class, DiscoveryHandler)
            ):
                raise PluginError(
                    f"plugin {info.name!r} registered {handler_class!r}, "
                    "which is not a DiscoveryHandler subclass"
                )
            name = getattr(handler_class, "name", None)
            if not isinstance(name, str):
                raise PluginError(f"plugin {info.name!r} registered {handler_class!r} with no name")
            if name in self.handlers:
                owner = next(p.name for p in self.plugins.values() if name in p.handlers)
                raise PluginError(
                    f"handler {name!r} from plugin {info.name!r} is already registered by "
                    f"plugin {owner!r}"
                )
            self.handlers[name] = handler_class
            info.handlers.append(name)

        self.manager.register(plugin, name=info.name)
        self.plugins[info.name] = info
        # Call this plugin's hook alone, so `register` knows whose handlers it gets.
        others = [p for p in self.manager.get_plugins() if p is not plugin]
        self.manager.subset_hook_caller("register_handlers", remove_plugins=others)(
            register=register
        )

    def get(self, name: str) -> type[DiscoveryHandler]:
        try:
            return self.handlers[name]
        except KeyError:
            known = ", ".join(sorted(self.handlers)) or "none"
            failed = "".join(f"; {why}" for why in self.failed.values())
            raise PluginError(
                f"no discovery handler named {name!r}; loaded handlers: {known} "
                f"(see `akri-dh plugins`; {PLUGINS_ENV} limits which plugins load){failed}"
            ) from None


def _allowed_plugins() -> set[str] | None:
    value = os.environ.get(PLUGINS_ENV)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def load_registry(*, entry_points: bool = True) -> HandlerRegistry:
    """Load the built-in handlers and the entry point plugins allowed by the environment."""
    from akri_sdk import handlers as builtin

    registry = HandlerRegistry()
    version = _version("akri-sdk")
    registry.add_plugin(builtin, PluginInfo("builtin", "akri-sdk", version))
    if not entry_points:
        return registry
    allowed = _allowed_plugins()
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allowed is not None and entry_point.name not in allowed:
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:
            # One broken plugin must not take down the handlers of the others:
            # record it, and name it when someone asks for a handler we lack.
            message = f"plugin {entry_point.name!r} ({entry_point.value}) failed to import: {error}"
            registry.failed[entry_point.name] = message
            log.error("%s", message)
            continue
        dist = entry_point.dist
        registry.add_plugin(
            plugin,
            PluginInfo(
                entry_point.name,
                dist.metadata["Name"] if dist is not None else None,
                dist.version if dist is not None else None,
            ),
        )
    if allowed:
        missing = allowed - set(registry.plugins)
        missing -= set(registry.failed)
        if missing:
            raise PluginError(
                f"{PLUGINS_ENV} names plugins that are not installed: {', '.join(sorted(missing))}"
            )
    return registry


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
