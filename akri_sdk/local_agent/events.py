"""The JSON-lines interface of `akri-dh agent --json`: one object per event.

Every line has `event` (the kind) and `ts` (Unix time, seconds). Kinds:

- `agent_started`: `schema` (this format's version), `directory`, `node`,
  `configurations` (names).
- `registration`: `handler`, `endpoint`, `endpoint_type` ("uds" or "network"), `shared`.
- `stream_opened` / `stream_ended`: a Discover stream of a Configuration got its
  response headers / ended after them. `configuration`, `namespace`, `handler`,
  `endpoint`; `stream_ended` adds `code` (gRPC status name) and `message`.
- `configuration_error`: the Configuration's discovery request failed and will
  be retried, as the Agent does, after `retry_in` seconds (1, 2, 4, ...).
  `configuration`, `namespace`, `handler`, `reason` ("unsolvable_property",
  "discover_failed" or "streams_ended"), `code` (gRPC status name or null),
  `message`, `attempt`, `retry_in`.
- `instance_added` / `instance_changed` / `instance_removed`: `configuration`,
  `namespace`, `instance`, `cdi_name`, `device_id`, `shared`, `nodes`,
  `capacity`, `properties` (device properties with the Configuration's
  brokerProperties on top), `mounts`, `device_specs`. A removal carries the
  Instance as it last was.
- `agent_stopped`.

Fields are only ever added, and a change of meaning bumps `schema`. No event
holds a discovery property value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from akri_sdk.local_agent.model import Configuration
from akri_sdk.local_agent.view import InstanceView
from akri_sdk.testing.fake_agent import NETWORK, DiscoverStream, Registration

__all__ = [
    "SCHEMA_VERSION",
    "Event",
    "agent_started",
    "agent_stopped",
    "code_name",
    "configuration_error",
    "instance_events",
    "registration",
    "stream_ended",
    "stream_opened",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the JSON output."""

    kind: str
    fields: Mapping[str, Any]
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "ts": round(self.ts, 3), **self.fields}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


def agent_started(directory: str, node: str, configurations: list[str]) -> Event:
    return Event(
        "agent_started",
        {
            "schema": SCHEMA_VERSION,
            "directory": directory,
            "node": node,
            "configurations": configurations,
        },
    )


def agent_stopped() -> Event:
    return Event("agent_stopped", {})


def registration(item: Registration) -> Event:
    return Event(
        "registration",
        {
            "handler": item.name,
            "endpoint": item.endpoint,
            "endpoint_type": "network" if item.endpoint_type == NETWORK else "uds",
            "shared": item.shared,
        },
    )


def _stream_fields(configuration: Configuration, stream: DiscoverStream) -> dict[str, Any]:
    return {
        "configuration": configuration.name,
        "namespace": configuration.namespace,
        "handler": configuration.handler,
        "endpoint": stream.endpoint,
    }


def code_name(code: grpc.StatusCode | None) -> str | None:
    """`INVALID_ARGUMENT` rather than `StatusCode.INVALID_ARGUMENT`."""
    return None if code is None else str(code.name)


def stream_opened(configuration: Configuration, stream: DiscoverStream) -> Event:
    return Event("stream_opened", _stream_fields(configuration, stream))


def stream_ended(configuration: Configuration, stream: DiscoverStream) -> Event:
    return Event(
        "stream_ended",
        {
            **_stream_fields(configuration, stream),
            "code": code_name(stream.code),
            "message": stream.message,
        },
    )


def configuration_error(
    configuration: Configuration,
    reason: str,
    code: grpc.StatusCode | None,
    message: str,
    attempt: int,
    retry_in: float,
) -> Event:
    return Event(
        "configuration_error",
        {
            "configuration": configuration.name,
            "namespace": configuration.namespace,
            "handler": configuration.handler,
            "reason": reason,
            "code": code_name(code),
            "message": message,
            "attempt": attempt,
            "retry_in": retry_in,
        },
    )


def instance_events(
    before: Mapping[tuple[str, str], InstanceView],
    after: Mapping[tuple[str, str], InstanceView],
) -> list[Event]:
    """Removals, then additions, then changes, each sorted by Configuration and Instance."""
    removed = [before[key] for key in sorted(before.keys() - after.keys())]
    added = [after[key] for key in sorted(after.keys() - before.keys())]
    changed = [
        after[key] for key in sorted(after.keys() & before.keys()) if after[key] != before[key]
    ]
    now = time.time()
    return (
        [Event("instance_removed", view.fields(), now) for view in removed]
        + [Event("instance_added", view.fields(), now) for view in added]
        + [Event("instance_changed", view.fields(), now) for view in changed]
    )
