"""LocalAgent: Configurations driven through a FakeAgent, with events and status.

The fake Agent already does the protocol work (registrations, one Discover
stream per Configuration and endpoint, snapshot replacement, Instance names).
This class adds what the real Agent does around it (spec §3.1-§3.5):
`discoveryProperties` resolved before each request; a request that fails
(a reference that cannot be solved, a Discover call refused, every stream
ended) drops the Configuration's Instances and is retried after 1, 2, 4, ...
seconds, the backoff starting over once a request succeeds. It turns every
change into events and a status for the live table.

Where the Agent would re-query at once after its last stream ended, we wait
the backoff too (at least 1 s), so a handler that ends its streams cannot spin.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from akri_sdk.local_agent import events
from akri_sdk.local_agent.events import Event
from akri_sdk.local_agent.model import Configuration
from akri_sdk.local_agent.properties import (
    UnsolvablePropertyError,
    ValueSource,
    resolve_properties,
)
from akri_sdk.local_agent.view import (
    AgentStatus,
    ConfigurationStatus,
    InstanceView,
    RegistrationView,
)
from akri_sdk.testing.fake_agent import DiscoverStream, FakeAgent

__all__ = ["LocalAgent", "agent_backoff"]


def agent_backoff(attempt: int) -> float:
    """The Agent's per-Configuration error backoff: 1, 2, 4, 8 s ... with no cap (spec §3.1)."""
    return float(2 ** min(attempt - 1, 30))


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    code: grpc.StatusCode | None
    message: str


class _Slot:
    """One Configuration's place in the agent: is it applied, and its last error."""

    def __init__(self, configuration: Configuration) -> None:
        self.configuration = configuration
        self.applied = False
        self.error: str | None = None
        self.retry_at: float | None = None


class LocalAgent:
    """Runs Configurations against a started FakeAgent until told to stop."""

    def __init__(
        self,
        fake: FakeAgent,
        configurations: Sequence[Configuration],
        values: ValueSource,
        *,
        on_event: Callable[[Event], None],
        on_status: Callable[[AgentStatus], None] | None = None,
        backoff: Callable[[int], float] = agent_backoff,
    ) -> None:
        self.fake = fake
        self.values = values
        self._slots = [_Slot(c) for c in configurations]
        self._on_event = on_event
        self._on_status = on_status
        self._backoff = backoff
        self._wake = asyncio.Event()
        self._registrations_seen = 0
        self._streams_seen: dict[DiscoverStream, bool] = {}  # stream -> ended reported
        self._instances: dict[tuple[str, str], InstanceView] = {}

    # ---- running -----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Apply every Configuration and keep them going until `stop` is set."""
        self.publish(force=True)
        tasks = [
            # until() re-checks its predicate on every registration, snapshot and
            # stream end: with a predicate that never holds, it is a change feed.
            asyncio.create_task(self.fake.until(self._agent_changed, timeout=math.inf)),
            asyncio.create_task(self._observe()),
            *(asyncio.create_task(self._supervise(slot)) for slot in self._slots),
        ]
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopping:
                    task.result()  # a bug in here: let it surface
        finally:
            for task in [stopping, *tasks]:
                task.cancel()
            await asyncio.gather(stopping, *tasks, return_exceptions=True)

    def _agent_changed(self, _: FakeAgent) -> bool:
        self._wake.set()
        return False

    async def _observe(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.publish()

    async def _supervise(self, slot: _Slot) -> None:
        configuration = slot.configuration
        attempt = 0
        while True:
            try:
                properties = resolve_properties(configuration.properties, self.values)
            except UnsolvablePropertyError as error:
                attempt += 1
                await self._fail(slot, _Failure("unsolvable_property", None, str(error)), attempt)
                continue
            self.fake.add_configuration(
                configuration.name, configuration.handler, configuration.details, properties
            )
            slot.applied, slot.error, slot.retry_at = True, None, None
            self.publish(force=True)
            await self.fake.until(lambda _: self._failure(configuration) is not None, math.inf)
            if any(s.headers_at is not None for s in self.fake.streams(configuration.name)):
                attempt = 0  # the request had succeeded: the backoff starts over
            failure = self._failure(configuration)
            assert failure is not None
            attempt += 1
            await self._fail(slot, failure, attempt)

    def _failure(self, configuration: Configuration) -> _Failure | None:
        """Why the Configuration's request failed, or None while it stands."""
        streams = self.fake.streams(configuration.name)
        for stream in streams:
            if stream.ended and stream.headers_at is None:
                # Refused before response headers (INVALID_ARGUMENT for bad
                # details, or no connection): the Agent fails the request (§3.3).
                return _Failure("discover_failed", stream.code, stream.message or "")
        if streams and all(stream.ended for stream in streams):
            last = streams[-1]
            return _Failure("streams_ended", last.code, last.message or "")
        return None

    async def _fail(self, slot: _Slot, failure: _Failure, attempt: int) -> None:
        configuration = slot.configuration
        delay = self._backoff(attempt)
        self.publish()  # report the stream ends first
        slot.error, slot.retry_at = failure.message, time.time() + delay
        self._on_event(
            events.configuration_error(
                configuration, failure.reason, failure.code, failure.message, attempt, delay
            )
        )
        if slot.applied:
            slot.applied = False  # first: publish() may run while the streams are cancelled
            await self.fake.remove_configuration(configuration.name)
        self.publish(force=True)
        await asyncio.sleep(delay)

    # ---- publishing --------------------------------------------------------

    def publish(self, *, force: bool = False) -> None:
        """Emit events for what changed since the last call, then the status."""
        emitted: list[Event] = []
        registrations = self.fake.registrations
        if len(registrations) < self._registrations_seen:
            self._registrations_seen = 0  # the fake Agent restarted
        emitted += [events.registration(r) for r in registrations[self._registrations_seen :]]
        self._registrations_seen = len(registrations)
        instances: dict[tuple[str, str], InstanceView] = {}
        live: dict[DiscoverStream, bool] = {}
        for slot in self._slots:
            if not slot.applied:
                continue
            configuration = slot.configuration
            for stream in self.fake.streams(configuration.name):
                if stream.headers_at is None:
                    continue
                ended_reported = self._streams_seen.get(stream)
                if ended_reported is None:
                    emitted.append(events.stream_opened(configuration, stream))
                    ended_reported = False
                if stream.ended and not ended_reported:
                    emitted.append(events.stream_ended(configuration, stream))
                    ended_reported = True
                live[stream] = ended_reported
            for view in self._instance_views(configuration):
                instances[(view.configuration, view.name)] = view
        self._streams_seen = live
        emitted += events.instance_events(self._instances, instances)
        self._instances = instances
        for event in emitted:
            self._on_event(event)
        if (emitted or force) and self._on_status is not None:
            self._on_status(self.status())

    def _instance_views(self, configuration: Configuration) -> list[InstanceView]:
        node = self.fake.node_name
        # Each Instance is shared as its endpoint registered (spec §2.4, §3.6).
        return [
            InstanceView.build(configuration, name, info.device, node, info.shared)
            for name, info in self.fake.instance_details(configuration.name).items()
        ]

    def status(self) -> AgentStatus:
        """What the live table shows now."""
        registrations = {
            r.uid: RegistrationView(r.name, r.endpoint, r.shared) for r in self.fake.registrations
        }
        configurations = []
        for slot in self._slots:
            configuration = slot.configuration
            streams = self.fake.streams(configuration.name) if slot.applied else []
            open_streams = sum(1 for s in streams if s.headers_at is not None and not s.ended)
            if slot.error is not None:
                state = "error"
            elif not slot.applied:
                state = "starting"
            elif open_streams:
                state = "discovering"
            elif streams:
                state = "connecting"
            else:
                state = "waiting"
            configurations.append(
                ConfigurationStatus(
                    configuration.name,
                    configuration.handler,
                    state,
                    open_streams,
                    slot.error,
                    slot.retry_at,
                )
            )
        return AgentStatus(
            node=self.fake.node_name,
            directory=str(self.fake.directory),
            registrations=tuple(registrations.values()),
            configurations=tuple(configurations),
            instances=tuple(self._instances[key] for key in sorted(self._instances)),
        )
