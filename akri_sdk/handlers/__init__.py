"""The built-in handlers, registered through the same hook as any plugin."""

from __future__ import annotations

from collections.abc import Callable

from akri_sdk.handler import DiscoveryHandler
from akri_sdk.hookspecs import hookimpl


@hookimpl
def register_handlers(register: Callable[[type[DiscoveryHandler]], None]) -> None:
    from akri_sdk.handlers.debug_echo import DebugEcho

    register(DebugEcho)
