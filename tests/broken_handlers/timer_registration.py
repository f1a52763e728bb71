"""Broken on purpose: registers again every 0.1 s instead of once per Agent start.

The current Agent opens one more Discover stream per registration (spec §2.2).
"""

import asyncio
import contextlib

import grpc

from akri_sdk.handlers.debug_echo import DebugEcho
from akri_sdk.registration import Registrar
from akri_sdk.runtime import run

INTERVAL = 0.1  # short, so a 0.5 s observation window always sees repeats


async def _register_on_a_timer(self: Registrar) -> None:
    while True:
        with contextlib.suppress(grpc.RpcError, OSError, TimeoutError):
            await self._register_once()
        await asyncio.sleep(INTERVAL)


Registrar.run = _register_on_a_timer  # type: ignore[method-assign]

if __name__ == "__main__":
    run(DebugEcho())
