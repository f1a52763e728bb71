"""What a handler process sees right now, as plain data for `/status` and `akri-dh status`.

Device properties are shown (they end up in Instances anyway); discovery
property values never are, only their names.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from akri_sdk.credentials import redact_url_passwords
from akri_sdk.health import readiness

if TYPE_CHECKING:
    from akri_sdk.runtime import HandlerRuntime

__all__ = ["status_report"]


def _handler_status(runtime: HandlerRuntime, now: float) -> dict[str, Any]:
    service = runtime.service
    registrar = runtime.registrar
    ready = readiness(runtime)
    tasks = []
    for task in service.tasks.values():
        snapshot = task.feed.snapshot or ()
        tasks.append(
            {
                "task": task.ctx.key,
                "details": redact_url_passwords(task.ctx.raw_details),
                "property_names": sorted(task.ctx.properties),
                "streams": task.subscribers,
                "failures": task.failures,
                "last_error": task.last_error,
                "devices": [
                    {"id": device.id, "properties": dict(device.properties)} for device in snapshot
                ],
                "updated_seconds_ago": (
                    round(now - task.feed.published_at, 3) if task.feed.version else None
                ),
            }
        )
    return {
        "handler": runtime.handler.name,
        "shared": bool(runtime.handler.shared),
        "endpoint": runtime.endpoint,
        "ready": ready.ready,
        "reason": ready.reason,
        "registrations": registrar.registrations if registrar else 0,
        "registration_error": registrar.last_error if registrar else None,
        "streams": [
            {
                "stream": stream.stream_id,
                "task": stream.task_key,
                "peer": stream.peer,
                "open_seconds": round(now - stream.opened_at, 3),
            }
            for stream in service.streams.values()
        ],
        "tasks": tasks,
        "stats": {
            "snapshots_sent": service.stats.snapshots_sent,
            "details_rejected": service.stats.details_rejected,
            "discovery_errors": dict(service.stats.discovery_errors),
        },
    }


def status_report(runtimes: Sequence[HandlerRuntime]) -> dict[str, Any]:
    now = time.monotonic()
    return {"handlers": [_handler_status(runtime, now) for runtime in runtimes]}
