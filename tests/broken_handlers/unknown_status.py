"""Broken on purpose: bad details escape the Discover method as an exception.

grpcio answers that with UNKNOWN, which the Agent reads as a temporary handler
failure instead of bad details (spec §3.3).
"""

from typing import Any

import akri_sdk.runtime
from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.details import DetailsError
from akri_sdk.handlers.debug_echo import DebugEcho
from akri_sdk.runtime import run
from akri_sdk.server import DiscoverService


class CarelessService(DiscoverService):
    async def discover(self, request: pb.DiscoverRequest, context: Any) -> None:
        try:
            await self._task_for(request)
        except DetailsError as error:
            raise ValueError(f"cannot use these details: {error}") from None
        await super().discover(request, context)


akri_sdk.runtime.DiscoverService = CarelessService  # type: ignore[misc]

if __name__ == "__main__":
    run(DebugEcho())
