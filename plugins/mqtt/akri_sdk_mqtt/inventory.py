"""The device set of one discovery task, kept from broker events.

A device is present while its data keeps arriving (a PresenceTracker with the
silence timeout) or while its status topic says online. An offline status (a
sensor's last will) removes it at once. While the broker connection is down,
silence says nothing about the devices, so timeouts are paused and the devices
are kept for the grace period; after a reconnect every device gets a fresh
timeout, and online statuses that the broker does not deliver again (retained)
within a short settle time are dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from akri_sdk import Device, PresenceTracker

from akri_sdk_mqtt.details import DiscoveryPlan
from akri_sdk_mqtt.events import Message
from akri_sdk_mqtt.payload import PayloadView, field_text
from akri_sdk_mqtt.topics import filter_matches

__all__ = ["STATUS_SETTLE_SECONDS", "DeviceInventory"]

# Retained statuses follow the SUBACK in the same TCP stream; two seconds is
# ample for them to arrive even for thousands of devices.
STATUS_SETTLE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _Record:
    """What a device's properties are made of; equal records mean an unchanged device."""

    topic: str
    fields: tuple[tuple[str, str], ...] = ()


class DeviceInventory:
    """Applies messages and connection changes; every `on_*` returns True on a change."""

    def __init__(
        self,
        plan: DiscoveryPlan,
        *,
        timeout: float,
        grace: float,
        max_devices: int,
        online_payload: str = "online",
        offline_payload: str = "offline",
        ignore_retained: bool = False,
        max_field_chars: int = 256,
        log: logging.LoggerAdapter[logging.Logger] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.grace = grace
        self.max_devices = max_devices
        self.online_payload = online_payload.encode()
        self.offline_payload = offline_payload.encode()
        self.ignore_retained = ignore_retained
        self.max_field_chars = max_field_chars
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {})
        self.tracker: PresenceTracker[str, _Record] = PresenceTracker(ttl=timeout, clock=clock)
        self.online: dict[str, _Record] = {}
        self.connected = False
        self.outage_since: float | None = clock()  # not connected yet
        self.ignored = 0
        self._unconfirmed: set[str] = set()
        self._settle_at: float | None = None
        self._warned_full = False
        self._cache: dict[str, tuple[_Record, Device]] = {}
        self._static = {plan.property_name("MQTT_BROKER_URI"): plan.uri.public}
        self._check_data_filters = (
            plan.liveness is not None and plan.liveness.subscription not in plan.data_filters
        )
        # Topics whose next message cannot change the device set: a present device's
        # data topic (when no payload field is copied), or a topic that is never a
        # device. The connection does not wake the loop for them. Cleared whenever
        # a device goes, so that its topics are urgent again.
        self.quiet_topics: set[str] = set()
        self._max_quiet = 4 * max_devices + 1000

    # ---- broker events -------------------------------------------------------

    def on_message(self, message: Message, now: float) -> bool:
        plan = self.plan
        topic = message.topic
        if plan.liveness is not None:
            device_id = plan.liveness.match(topic)
            if device_id is not None:
                return self._on_status(device_id, message.payload)
            if self._check_data_filters and not any(
                filter_matches(f, topic) for f in plan.data_filters
            ):
                self._quiet(topic)
                return False  # delivered for the status subscription only
        if message.retain and self.ignore_retained:
            return False
        if plan.device_pattern is None:
            device_id = topic
            device_topic = topic
        else:
            device_id = plan.device_pattern.match(topic)
            if device_id is None:
                self.ignored += 1
                self._quiet(topic)
                return False
            device_topic = plan.device_pattern.for_device(device_id)
        view = PayloadView(message.payload)
        if not plan.message_filter.admits(view):
            return False
        record = (
            _Record(device_topic, self._fields(view))
            if plan.payload_fields
            else _Record(device_topic)
        )
        if not self._room_for(device_id):
            return False
        changed = self.tracker.seen(device_id, record, now if message.at is None else message.at)
        if not plan.payload_fields:
            self._quiet(topic)
        return changed

    def _quiet(self, topic: str) -> None:
        quiet = self.quiet_topics
        if len(quiet) >= self._max_quiet:
            quiet.clear()
        quiet.add(topic)

    def _gone(self, changed: bool) -> bool:
        """A device may have gone: its topics must wake the loop again."""
        if changed:
            self.quiet_topics.clear()
        return changed

    def _fields(self, view: PayloadView) -> tuple[tuple[str, str], ...]:
        if len(view.payload) > self.plan.message_filter.max_bytes:
            return ()
        found = []
        for name, path in self.plan.payload_fields:
            text = field_text(view.field(path), self.max_field_chars)
            if text is not None:
                found.append((name, text))
        return tuple(found)

    def _on_status(self, device_id: str, payload: bytes) -> bool:
        self._unconfirmed.discard(device_id)
        status = payload.strip()
        if status == self.online_payload:
            if device_id in self.online:
                return False
            if not self._room_for(device_id):
                return False
            assert self.plan.device_pattern is not None  # checked with the details
            self.online[device_id] = _Record(self.plan.device_pattern.for_device(device_id))
            return device_id not in self.tracker
        if status == self.offline_payload:
            was_online = self.online.pop(device_id, None) is not None
            return self._gone(self.tracker.forget(device_id) or was_online)
        if not payload:  # the retained status was cleared: back to silence timeouts
            return self._gone(self._drop_online(device_id))
        self.ignored += 1
        return False

    def _drop_online(self, device_id: str) -> bool:
        return self.online.pop(device_id, None) is not None and device_id not in self.tracker

    def _room_for(self, device_id: str) -> bool:
        if device_id in self.tracker or device_id in self.online:
            return True
        if len(self.tracker) + len(self.online) < self.max_devices:
            return True
        if not self._warned_full:
            self._warned_full = True
            self.log.warning(
                "more than maxDevices=%d devices; ignoring new ones (raise maxDevices or "
                "narrow the topics)",
                self.max_devices,
            )
        return False

    def on_connected(self, now: float) -> bool:
        """Subscriptions were sent: restart the silence clocks, re-check statuses."""
        self.connected = True
        if self.outage_since is not None:
            for device_id, record in self.tracker.present().items():
                self.tracker.seen(device_id, record, now)
        self.outage_since = None
        self._unconfirmed = set(self.online)
        self._settle_at = None
        return False

    def on_subscribed(self, now: float) -> None:
        if self._unconfirmed:
            self._settle_at = now + STATUS_SETTLE_SECONDS

    def on_disconnected(self, now: float) -> bool:
        self.connected = False
        if self.outage_since is None:
            self.outage_since = now
        self._settle_at = None
        return False

    # ---- time ----------------------------------------------------------------

    def expire(self, now: float) -> bool:
        """Apply whatever is due at `now`: silence timeouts, settling, the grace period."""
        if not self.connected:
            if (
                self.outage_since is not None
                and now >= self.outage_since + self.grace
                and (len(self.tracker) or self.online)
            ):
                self.log.warning(
                    "broker unreachable for %.0fs (grace period); reporting no devices",
                    now - self.outage_since,
                )
                for device_id in list(self.tracker.present()):
                    self.tracker.forget(device_id)
                self.online.clear()
                return self._gone(True)
            return False
        changed = False
        if self._settle_at is not None and now >= self._settle_at:
            self._settle_at = None
            for device_id in self._unconfirmed:
                changed |= self._drop_online(device_id)
            self._unconfirmed = set()
        return self._gone(self.tracker.expire(now) or changed)

    def next_deadline(self) -> float | None:
        """When `expire` next has something to do (loop/monotonic time), or None."""
        if not self.connected:
            if self.outage_since is not None and (len(self.tracker) or self.online):
                return self.outage_since + self.grace
            return None
        deadlines = [d for d in (self.tracker.next_expiry(), self._settle_at) if d is not None]
        return min(deadlines) if deadlines else None

    # ---- the snapshot --------------------------------------------------------

    def devices(self) -> list[Device]:
        """The complete device set; unchanged devices reuse their Device objects."""
        # The latest data wins; a device known only from its status has no fields.
        records = dict(self.online)
        records.update(self.tracker.present())
        previous = self._cache
        cache: dict[str, tuple[_Record, Device]] = {}
        for device_id, record in records.items():
            cached = previous.get(device_id)
            if cached is None or cached[0] != record:
                cached = (record, self._device(device_id, record))
            cache[device_id] = cached
        self._cache = cache
        return [device for _, device in cache.values()]

    def _device(self, device_id: str, record: _Record) -> Device:
        plan = self.plan
        properties = dict(self._static)
        properties[plan.property_name("MQTT_TOPIC")] = record.topic
        properties[plan.property_name("MQTT_DEVICE_ID")] = device_id
        if plan.liveness is not None:
            properties[plan.property_name("MQTT_STATUS_TOPIC")] = plan.liveness.for_device(
                device_id
            )
        properties.update(record.fields)
        return Device(id=device_id, properties=properties)
