"""Every hook a plugin can implement, in one place.

A plugin is a module or object with `@hookimpl` functions, registered through
an entry point in the `akri_sdk` group. The built-in handlers are a plugin like
any other (`akri_sdk.handlers`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from akri_sdk.handler import DiscoveryHandler

__all__ = ["hookimpl", "hookspec"]

PROJECT = "akri_sdk"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_handlers(register: Callable[[type[DiscoveryHandler]], None]) -> None:
    """Register discovery handler classes by calling `register(HandlerClass)`.

    Called once per plugin when the plugin manager loads plugins (for
    `akri-dh run`, `akri-dh plugins`, `akri-dh schema`). Handlers are looked up
    by their `name`; registering a name that is already taken is an error.
    """
