"""The `mqtt` discovery handler: each topic (or topic pattern id) that carries
messages is a device, present until it falls silent or its status says offline.

Event-driven: a batch of broker events becomes at most one snapshot, yielded as
soon as it is applied, so a device's first message reaches the Agent without
waiting for a poll, and a burst is one snapshot. Between events the watch sleeps
exactly until the next silence timeout (or grace deadline) is due.

Bursts are also coalesced across batches, adaptively: after a snapshot that took
`cost` seconds to build and publish, the next one waits until `2 * cost` has
passed. A lone change after a quiet spell goes out at once; while 10,000 sensors
join, snapshots of 10,000 devices (about 10 ms each) go out every few tens of
milliseconds instead of after every batch, so the handler keeps up with the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from akri_sdk import Device, DiscoveryContext, DiscoveryHandler

from akri_sdk_mqtt.auth import BrokerAuth
from akri_sdk_mqtt.events import (
    BrokerEvent,
    Connected,
    ConnectionSettings,
    Disconnected,
    Message,
    Subscribed,
)

if TYPE_CHECKING:
    from akri_sdk_mqtt.connection import BrokerConnection
from akri_sdk_mqtt.details import MqttDetails
from akri_sdk_mqtt.inventory import DeviceInventory

__all__ = ["MqttHandler", "client_id"]

# Until the first CONNACK (or a failure) nothing is known; the Agent still gets an
# honest "no devices yet" after this long rather than a silent stream.
FIRST_ANSWER_SECONDS = 5.0
# After the SUBACK, retained messages arrive at once; a short wait lets the first
# snapshot include them instead of sending an empty one first.
RETAINED_SETTLE_SECONDS = 0.1
# Snapshots may use at most a third of the time while devices keep changing.
COOLDOWN_FACTOR = 2.0
COOLDOWN_MAX_SECONDS = 0.5
DROP_LOG_SECONDS = 60.0
_NOT_CLIENT_ID_CHARS = re.compile(r"[^A-Za-z0-9-]+")


def client_id(prefix: str | None, node: str, task_key: str) -> str:
    """`akri-<node>-<task>-<random>`: unique per node and per stream, so that no two
    connections evict each other on the broker (upstream used one fixed id)."""
    node_part = _NOT_CLIENT_ID_CHARS.sub("-", node).strip("-")[:40] or "node"
    return f"{prefix or 'akri'}-{node_part}-{task_key}-{secrets.token_hex(3)}"


def node_name() -> str:
    """The node this handler runs on: NODE_NAME if the DaemonSet sets it, else the host."""
    return os.environ.get("NODE_NAME") or os.environ.get("AGENT_NODE_NAME") or socket.gethostname()


class MqttHandler(DiscoveryHandler):
    """Discovers sensors that publish on an MQTT broker (see MqttDetails for the keys)."""

    name = "mqtt"
    shared = True
    details = MqttDetails
    grace_period = 300.0
    retry_initial = 1.0
    retry_max = 30.0

    def __init__(self, node: str | None = None) -> None:
        self.node = node or node_name()
        # Open connections by task key: identical requests share one task, hence one.
        self.connections: dict[str, BrokerConnection] = {}

    def validate(self, ctx: DiscoveryContext[Any]) -> None:
        """Refuse unusable credentials or TLS material before the stream opens."""
        details: MqttDetails = ctx.details
        ctx.state["auth"] = BrokerAuth.from_properties(ctx.properties, details.plan.uri)

    async def watch(self, ctx: DiscoveryContext[Any]) -> AsyncIterator[list[Device]]:
        details: MqttDetails = ctx.details
        plan = details.plan
        auth = ctx.state.get("auth")
        if not isinstance(auth, BrokerAuth):
            auth = BrokerAuth.from_properties(ctx.properties, plan.uri)
        for warning in auth.warnings:
            ctx.log.warning("%s", warning)
        settings = ConnectionSettings(
            uri=plan.uri,
            auth=auth,
            client_id=client_id(plan.uri.client_id, self.node, ctx.key),
            subscriptions=plan.subscriptions,
            qos=details.qos,
            protocol=plan.protocol,
            retry_initial=self.retry_initial,
            retry_max=self.retry_max,
        )
        grace = details.grace_period_seconds
        inventory = DeviceInventory(
            plan,
            timeout=details.timeout_seconds,
            grace=self.grace_period if grace is None else grace,
            max_devices=details.max_devices,
            online_payload=details.online_payload,
            offline_payload=details.offline_payload,
            ignore_retained=details.ignore_retained,
            max_field_chars=details.max_field_chars,
            log=ctx.log,
        )
        loop = asyncio.get_running_loop()
        # paho is imported here, when a Configuration first needs a broker.
        from akri_sdk_mqtt.connection import BrokerConnection

        connection = BrokerConnection(settings, quiet_topics=inventory.quiet_topics)
        snapshots = _Session(connection, inventory, ctx, loop).snapshots()
        async with connection, contextlib.aclosing(snapshots):
            self.connections[ctx.key] = connection
            try:
                async for devices in snapshots:
                    yield devices
            finally:
                self.connections.pop(ctx.key, None)


class _Session:
    """One watch's loop: applies broker events to the inventory and paces snapshots."""

    def __init__(
        self,
        connection: BrokerConnection,
        inventory: DeviceInventory,
        ctx: DiscoveryContext[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.connection = connection
        self.inventory = inventory
        self.ctx = ctx
        self.log = ctx.log
        self.loop = loop
        self.public_uri = connection.settings.uri.public
        self.answered = False  # no snapshot yet: the Agent is waiting for a first answer
        self.answer_by = loop.time() + FIRST_ANSWER_SECONDS
        self.pending = False  # the device set changed since the last snapshot
        self.next_snapshot_at = 0.0
        self.dropped = 0
        self.drop_logged_at = -DROP_LOG_SECONDS
        self.last_problem: str | None = None
        self.lost_at: float | None = None

    async def snapshots(self) -> AsyncGenerator[list[Device], None]:
        inventory = self.inventory
        while True:
            batch = await self.connection.next_batch(self._deadline())
            now = self.loop.time()
            changed = False
            for event in batch:
                if event.__class__ is Message:  # the hot path: no isinstance chain
                    changed |= inventory.on_message(event, now)
                else:
                    changed |= self._apply(event, now)
            self._report_drops(now)
            self.pending |= inventory.expire(now) or changed
            due = self.pending and now >= self.next_snapshot_at
            if due or (not self.answered and now >= self.answer_by):
                self.answered, self.pending = True, False
                yield inventory.devices()
                done = self.loop.time()
                cooldown = min(COOLDOWN_MAX_SECONDS, COOLDOWN_FACTOR * (done - now))
                self.next_snapshot_at = done + cooldown

    def _deadline(self) -> float | None:
        """The loop time by which something is due: a timeout, a first answer, a snapshot."""
        deadlines = [self.inventory.next_deadline()]
        if not self.answered:
            deadlines.append(self.answer_by)
        if self.pending:
            deadlines.append(self.next_snapshot_at)
        return min((d for d in deadlines if d is not None), default=None)

    def _apply(self, event: BrokerEvent, now: float) -> bool:
        """A connection event: log it, tell the inventory; True if devices changed."""
        if isinstance(event, Connected):
            if self.lost_at is not None:
                self.log.info("reconnected to %s after %.1fs", self.public_uri, now - self.lost_at)
            else:
                client = self.connection.settings.client_id
                self.log.info("connected to %s as %s", self.public_uri, client)
            self.lost_at, self.last_problem = None, None
            self.ctx.problem_resolved()
            return self.inventory.on_connected(now)
        if isinstance(event, Subscribed):
            if event.refused:
                self.log.warning("the broker refused the subscriptions %s", list(event.refused))
            self.inventory.on_subscribed(now)
            self.answer_by = min(self.answer_by, now + RETAINED_SETTLE_SECONDS)
            return False
        if isinstance(event, Disconnected):
            if event.reason != self.last_problem:
                # One line per distinct problem, not one per retry.
                self.log.warning("broker %s: %s; retrying", self.public_uri, event.reason)
                self.last_problem = event.reason
            # Counted per failed attempt and shown by `akri-dh status` until reconnected.
            self.ctx.report_problem(f"broker {self.public_uri}: {event.reason}", kind="Broker")
            if self.lost_at is None:
                self.lost_at = now
            self.answer_by = min(self.answer_by, now)
            return self.inventory.on_disconnected(now)
        return False

    def _report_drops(self, now: float) -> None:
        dropped = self.connection.dropped
        if dropped > self.dropped and now >= self.drop_logged_at + DROP_LOG_SECONDS:
            self.log.warning(
                "%d messages dropped so far: the handler cannot keep up with the broker",
                dropped,
            )
            self.dropped, self.drop_logged_at = dropped, now
