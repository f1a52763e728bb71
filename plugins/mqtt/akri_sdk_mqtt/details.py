"""`discoveryDetails` of the `mqtt` handler, and the plan compiled from them.

The first four keys are the upstream handler's (suse-edge/akri-mqtt-discovery-handler),
so its Configurations work unchanged; upstream requires `timeoutSeconds`, we default
it to 60 (the value of upstream's example Configuration). Everything else is ours.
Each check runs while decoding, so a bad value reaches the Agent as INVALID_ARGUMENT
naming the key (the SDK turns a ValueError raised here into that answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal

import msgspec
from akri_sdk import env_name

from akri_sdk_mqtt.payload import (
    OPERATORS,
    Condition,
    FieldPath,
    MessageFilter,
    compile_regex,
)
from akri_sdk_mqtt.topics import TopicPattern, check_filter
from akri_sdk_mqtt.uri import BrokerUri, parse_broker_uri

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "DiscoveryPlan", "JsonCondition", "MqttDetails"]

DEFAULT_TIMEOUT_SECONDS = 60.0
MAX_TOPICS = 100
MAX_PAYLOAD_FIELDS = 16
MAX_PREFIX_CHARS = 64

Operator = Literal["==", "!=", ">", ">=", "<", "<=", "exists", "matches"]
assert set(OPERATORS) == {"==", "!=", ">", ">=", "<", "<=", "exists", "matches"}


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


class JsonCondition(msgspec.Struct, forbid_unknown_fields=True, dict=True):
    """A test on one field of a JSON payload, e.g. {field: volume, op: ">", value: 50}."""

    field: Annotated[str, _doc("Dot-separated path into the JSON payload: `a.b.0`.")]
    op: Annotated[
        Operator | None,
        _doc("Comparison; default `==` when a value is given, else `exists`."),
    ] = None
    value: Annotated[
        str | int | float | bool | None,
        _doc("What to compare with; a number for ordering, a regexp for `matches`."),
    ] = None

    def __post_init__(self) -> None:
        self.condition  # noqa: B018 - compiled now, so a bad condition fails decoding

    @cached_property
    def condition(self) -> Condition:
        op = self.op or ("exists" if self.value is None else "==")
        return Condition.build(self.field, op, self.value)


class MqttDetails(msgspec.Struct, rename="camel", dict=True):
    """discoveryDetails for `mqtt`: each concrete topic that carries messages is a device."""

    mqtt_broker_uri: Annotated[
        str,
        _doc(
            "Broker: mqtt:// or tcp:// (1883), mqtts:// or ssl:// (TLS, 8883), ws:// or "
            "wss:// (WebSocket). Query options: client_id (a prefix), keep_alive_secs."
        ),
    ]
    topics: Annotated[
        list[str],
        _doc("Topic filters to subscribe to (wildcards allowed). Default: deviceIdPattern's."),
    ] = msgspec.field(default_factory=list)
    timeout_seconds: Annotated[
        float,
        msgspec.Meta(gt=0, le=366 * 86400, description="Silence after which a device is gone."),
    ] = DEFAULT_TIMEOUT_SECONDS
    properties_prefix: Annotated[
        str | None,
        _doc("Prefix of property names, upper-cased, `_` added: spin_variable -> SPIN_VARIABLE_."),
    ] = None
    message_regexp: Annotated[
        str | None, _doc("Only messages whose payload contains a match count as a sighting.")
    ] = None
    json_filter: Annotated[
        JsonCondition | list[JsonCondition] | None,
        _doc("Only JSON payloads where this condition (or all of these) holds count."),
    ] = None
    device_id_pattern: Annotated[
        str | None,
        _doc("Topic pattern with {id} taking the device id from a level: booth/{id}/sound."),
    ] = None
    qos: Annotated[Literal[0, 1, 2], _doc("QoS of the subscriptions.")] = 0
    protocol: Annotated[Literal[5, "5", "3.1.1"], _doc("MQTT protocol version.")] = "5"
    liveness_topic: Annotated[
        str | None,
        _doc(
            "Status topic pattern with {id}, e.g. booth/{id}/status: a retained online "
            "payload keeps a device present without data; the offline payload (a last will) "
            "removes it at once. Needs deviceIdPattern."
        ),
    ] = None
    online_payload: Annotated[str, _doc("Status payload meaning online.")] = "online"
    offline_payload: Annotated[str, _doc("Status payload meaning offline.")] = "offline"
    ignore_retained: Annotated[
        bool, _doc("Do not count retained data messages (old values) as a sighting.")
    ] = False
    include_payload_fields: Annotated[
        list[str],
        _doc("JSON fields of the latest payload to copy into properties (MQTT_PAYLOAD_<FIELD>)."),
    ] = msgspec.field(default_factory=list)
    max_field_chars: Annotated[
        int, msgspec.Meta(ge=1, le=4096, description="Longest property value from a field.")
    ] = 256
    max_payload_bytes: Annotated[
        int,
        msgspec.Meta(ge=1, le=16 * 1024 * 1024, description="Larger payloads are not parsed."),
    ] = 64 * 1024
    max_devices: Annotated[
        int, msgspec.Meta(ge=1, le=1_000_000, description="New devices beyond this are ignored.")
    ] = 100_000
    grace_period_seconds: Annotated[
        Annotated[float, msgspec.Meta(ge=0, le=366 * 86400)] | None,
        _doc("How long devices outlive a lost broker connection (default 300)."),
    ] = None

    def __post_init__(self) -> None:
        self.plan  # noqa: B018 - compiled now, so bad details fail decoding

    @cached_property
    def plan(self) -> DiscoveryPlan:
        return DiscoveryPlan.compile(self)


@dataclass(frozen=True)
class DiscoveryPlan:
    """Details checked and compiled once: what to subscribe to and how to read messages."""

    uri: BrokerUri
    subscriptions: tuple[str, ...]
    data_filters: tuple[str, ...]
    device_pattern: TopicPattern | None
    liveness: TopicPattern | None
    message_filter: MessageFilter
    payload_fields: tuple[tuple[str, FieldPath], ...]
    prefix: str
    protocol: Literal["5", "3.1.1"]

    @classmethod
    def compile(cls, details: MqttDetails) -> DiscoveryPlan:
        uri = parse_broker_uri(details.mqtt_broker_uri)
        if len(details.topics) > MAX_TOPICS:
            raise ValueError(f"`topics` lists {len(details.topics)} filters; at most {MAX_TOPICS}")
        for topic in details.topics:
            try:
                check_filter(topic)
            except ValueError as error:
                raise ValueError(f"`topics`: {error}") from None
        pattern = None
        if details.device_id_pattern is not None:
            pattern = TopicPattern.parse(details.device_id_pattern, "deviceIdPattern")
        liveness = None
        if details.liveness_topic is not None:
            if pattern is None:
                raise ValueError(
                    "`livenessTopic` needs `deviceIdPattern`, so that a status message and "
                    "a data message can be told to belong to the same device"
                )
            liveness = TopicPattern.parse(details.liveness_topic, "livenessTopic")
            if details.online_payload == details.offline_payload:
                raise ValueError("`onlinePayload` and `offlinePayload` must differ")
        data_filters = tuple(details.topics)
        if not data_filters:
            if pattern is None:
                raise ValueError("`topics` must list at least one filter (or set deviceIdPattern)")
            data_filters = (pattern.subscription,)
        subscriptions = data_filters
        if liveness is not None and liveness.subscription not in subscriptions:
            subscriptions += (liveness.subscription,)
        regexp = None
        if details.message_regexp is not None:
            regexp = compile_regex(details.message_regexp, "messageRegexp")
        conditions = details.json_filter
        if isinstance(conditions, JsonCondition):
            conditions = [conditions]
        message_filter = MessageFilter(
            regexp=regexp,
            conditions=tuple(c.condition for c in conditions or ()),
            max_bytes=details.max_payload_bytes,
        )
        prefix = _prefix(details.properties_prefix)
        return cls(
            uri=uri,
            subscriptions=subscriptions,
            data_filters=data_filters,
            device_pattern=pattern,
            liveness=liveness,
            message_filter=message_filter,
            payload_fields=_payload_fields(details.include_payload_fields, prefix),
            prefix=prefix,
            protocol="3.1.1" if details.protocol == "3.1.1" else "5",
        )

    def property_name(self, name: str) -> str:
        return self.prefix + name


def _prefix(text: str | None) -> str:
    """Upstream's rule (upper-case, end with `_`), made a valid env var name."""
    if not text:
        return ""
    if len(text) > MAX_PREFIX_CHARS:
        raise ValueError(f"`propertiesPrefix` is longer than {MAX_PREFIX_CHARS} characters")
    prefix = env_name(text)
    return prefix if prefix.endswith("_") else prefix + "_"


def _payload_fields(paths: list[str], prefix: str) -> tuple[tuple[str, FieldPath], ...]:
    if len(paths) > MAX_PAYLOAD_FIELDS:
        raise ValueError(
            f"`includePayloadFields` lists {len(paths)} fields; at most {MAX_PAYLOAD_FIELDS}"
        )
    fields: dict[str, FieldPath] = {}
    for text in paths:
        try:
            path = FieldPath.parse(text)
        except ValueError as error:
            raise ValueError(f"`includePayloadFields`: {error}") from None
        name = env_name(prefix + "MQTT_PAYLOAD_" + "_".join(path.segments))
        if name in fields:
            raise ValueError(
                f"`includePayloadFields`: {fields[name].text!r} and {text!r} both become "
                f"property {name}"
            )
        fields[name] = path
    return tuple(fields.items())
