"""One broker connection: a paho client on its own thread, events handed to asyncio.

Why a thread and not paho's socket callbacks on the event loop: paho's connect,
TLS handshake and WebSocket upgrade are blocking calls, and the same event loop
serves the Agent's gRPC streams; on a thread they cannot stall it. We drive
paho's `loop()` ourselves instead of `loop_start()` so that every failed
attempt reports its cause (refused, TLS verification, DNS, bad credentials),
which paho's own reconnect loop swallows, and so that stopping never waits out
a reconnect delay.

The hand-off costs one `call_soon_threadsafe` per burst, not per message: the
network thread appends to a deque and wakes the loop only when no wake-up is
pending, and the asyncio side drains everything that arrived meanwhile. A message
on a *quiet* topic (one the inventory says can only refresh a present device's
silence timer, or can never be a device) wakes nobody: it waits in the deque,
stamped with its arrival time, until the next wake-up, which at the latest is the
next timeout the loop sleeps towards. At 10,000 sensors publishing once a second
that removes nearly all wake-ups, while a new device still wakes the loop at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import socket
import ssl
import threading
import time
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from akri_sdk_mqtt.events import (
    BrokerEvent,
    Connected,
    ConnectionSettings,
    Disconnected,
    Message,
    Subscribed,
)

__all__ = ["BrokerConnection"]

PAHO_LOGGER = "akri_sdk_mqtt.paho"


def describe_error(error: BaseException) -> str:
    """A connect failure in words an operator can act on (never any credential)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed: {error.reason or error}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the broker listening on that port?)"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the broker's host name: {error.strerror}"
    if isinstance(error, TimeoutError):
        return "timed out connecting to the broker"
    return f"{type(error).__name__}: {error}"


class BrokerConnection:
    """Connects, subscribes, reconnects with capped backoff; `next_batch` reads events.

    Use as `async with BrokerConnection(...) as connection:`; leaving the block
    disconnects and joins the network thread.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        quiet_topics: set[str] | None = None,
        max_queue: int = 500_000,
        max_batch: int = 20_000,
        quiet_backlog: int = 2_000,
    ) -> None:
        self.settings = settings
        self.max_queue = max_queue
        self.max_batch = max_batch
        # Written by the event loop, read here: single set operations are atomic
        # under the GIL, and a stale answer only costs or saves one wake-up.
        self.quiet_topics = quiet_topics if quiet_topics is not None else set()
        self.quiet_backlog = quiet_backlog
        self.received = 0
        self.dropped = 0
        self.connects = 0
        self._queue: collections.deque[BrokerEvent] = collections.deque()
        self._wake_pending = False
        self._ready = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._stopping = threading.Event()
        self._refused = False
        self._subscribing: dict[int, tuple[str, ...]] = {}
        self._client = self._make_client()
        self._thread = threading.Thread(
            target=self._run, name=f"mqtt {settings.client_id}", daemon=True
        )

    # ---- asyncio side ------------------------------------------------------

    async def __aenter__(self) -> BrokerConnection:
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Disconnect and join the network thread (in a worker, never blocking the loop)."""
        self._stopping.set()
        with contextlib.suppress(Exception):
            self._client.disconnect()
        if self._thread.is_alive():
            # Shielded: a second cancellation must not leave the thread unjoined.
            await asyncio.shield(asyncio.to_thread(self._thread.join, 5.0))

    async def next_batch(self, deadline: float | None = None) -> list[BrokerEvent]:
        """Events that arrived since the last call, waiting until `deadline` (loop time)."""
        if not self._queue:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._ready.wait()
            except TimeoutError:
                pass
        self._ready.clear()
        self._wake_pending = False  # before draining, so no arrival goes unnoticed
        queue = self._queue
        batch: list[BrokerEvent] = []
        for _ in range(min(len(queue), self.max_batch)):
            batch.append(queue.popleft())
        if queue:
            self._ready.set()  # more than one batch waiting: come straight back
        return batch

    def _wake(self) -> None:
        self._ready.set()

    # ---- network thread ----------------------------------------------------

    def _push(self, event: BrokerEvent) -> None:
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        self._queue.append(event)
        if not self._wake_pending:
            self._wake_pending = True
            # RuntimeError: the loop is closed, so we are shutting down anyway.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake)

    def _make_client(self) -> mqtt.Client:
        settings = self.settings
        uri = settings.uri
        v5 = settings.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=None if v5 else True,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            transport="websockets" if uri.websocket else "tcp",
            reconnect_on_failure=False,
        )
        client.enable_logger(logging.getLogger(PAHO_LOGGER))
        client.connect_timeout = settings.connect_timeout
        if uri.websocket:
            client.ws_set_options(path=uri.websocket_path)
        auth = settings.auth
        if auth.ssl_context is not None:
            client.tls_set_context(auth.ssl_context)
        if auth.username is not None:
            password = auth.password.reveal() if auth.password is not None else None
            client.username_pw_set(auth.username, password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        # Sets host, port and keepalive without connecting; clean start every time,
        # since a random client id must not leave sessions behind on the broker.
        if v5:
            client.connect_async(uri.host, uri.port, uri.keepalive, clean_start=True)
        else:
            client.connect_async(uri.host, uri.port, uri.keepalive)
        return client

    def _run(self) -> None:
        failures = 0
        client = self._client
        while not self._stopping.is_set():
            self._refused = False
            try:
                client.reconnect()
            except Exception as error:
                failures += 1
                self._push(Disconnected(describe_error(error)))
                self._stopping.wait(self._delay(failures))
                continue
            connects = self.connects
            result = MQTTErrorCode.MQTT_ERR_SUCCESS
            while result == MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stopping.is_set():
                result = client.loop(timeout=1.0)
            if self._stopping.is_set():
                break
            failures = 1 if self.connects > connects else failures + 1
            self._stopping.wait(self._delay(failures))
        with contextlib.suppress(Exception):
            if client.socket() is not None:
                client.loop(timeout=0.1)  # flush the DISCONNECT packet
            sock = client.socket()
            if sock is not None:
                sock.close()

    def _delay(self, failures: int) -> float:
        """Capped exponential backoff with jitter, so nodes do not reconnect in step."""
        settings = self.settings
        base = min(settings.retry_max, settings.retry_initial * 2.0 ** min(failures - 1, 20))
        return base * random.uniform(0.5, 1.0)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self._refused = True
            self._push(Disconnected(f"the broker refused the connection: {reason_code}"))
            return
        self.connects += 1
        filters = self.settings.subscriptions
        qos = self.settings.qos
        result, mid = client.subscribe([(f, qos) for f in filters])
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._subscribing[mid] = filters
        self._push(Connected())

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Any,
    ) -> None:
        filters = self._subscribing.pop(mid, ())
        refused = tuple(
            f for f, code in zip(filters, reason_codes, strict=False) if code.is_failure
        )
        self._push(Subscribed(refused))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        if self._stopping.is_set() or self._refused:
            return
        if flags.is_disconnect_packet_from_server:
            # e.g. "Session taken over": another client connected with our client id.
            self._push(Disconnected(f"the broker disconnected us: {reason_code}"))
        else:
            self._push(Disconnected("connection lost (the broker closed it or went away)"))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers check UTF-8, but do not trust them to
            return
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        self.received += 1
        event = Message(topic, payload, bool(message.retain), time.monotonic())
        queue = self._queue
        if topic in self.quiet_topics and len(queue) < self.quiet_backlog:
            queue.append(event)  # no wake-up: nothing can change before the next one
        else:
            self._push(event)
