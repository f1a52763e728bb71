"""The hypothesis strategies produce what they promise."""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, Literal

import msgspec
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from akri_sdk.credentials import DiscoveryProperties
from akri_sdk.details import DetailsError, decode_details
from akri_sdk.device import (
    Device,
    decode_snapshot,
    encode_snapshot,
    is_env_name,
    normalise_snapshot,
)
from akri_sdk.filters import FilterAction, FilterList
from akri_sdk.handlers.debug_echo import DebugEchoDetails
from akri_sdk.testing.strategies import (
    DetailsFormat,
    details_data,
    details_for,
    details_values,
    devices,
    discover_requests,
    filter_lists,
    hostile_details,
    render_details,
    snapshots,
)

FAST = settings(max_examples=60, deadline=None)
FORMATS: tuple[DetailsFormat, ...] = ("yaml", "flow", "json")


class Mode(enum.Enum):
    PASSIVE = "passive"
    ACTIVE = "active"


class Endpoint(msgspec.Struct, rename="camel"):
    host_name: str
    port_number: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 4840


@dataclasses.dataclass
class Credentials:
    user_name: str
    secret_ref: str | None = None


class RichDetails(msgspec.Struct, rename="camel"):
    """A model with what handler models use: renames, optionals, nesting, enums."""

    endpoints: list[Endpoint]
    scan_interval_seconds: float | None = None
    discovery_mode: Mode = Mode.PASSIVE
    protocol: Literal["tcp", "udp"] = "tcp"
    labels: dict[str, str] = {}
    names: FilterList | None = None
    credentials: Credentials | None = None
    tags: frozenset[str] = frozenset()
    retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3


@FAST
@given(snapshot=snapshots())
def test_snapshots_round_trip_through_the_wire(snapshot: list[Device]) -> None:
    canonical = normalise_snapshot(snapshot)
    assert decode_snapshot(encode_snapshot(canonical)) == canonical
    for device in snapshot:
        assert Device.from_proto(device.to_proto()) == device


@FAST
@given(snapshot=snapshots())
def test_snapshots_have_unique_ids_and_env_valid_keys(snapshot: list[Device]) -> None:
    ids = [device.id for device in snapshot]
    assert len(ids) == len(set(ids))
    assert all(device.id for device in snapshot)
    assert all(is_env_name(key) for device in snapshot for key in device.properties)
    assert len(normalise_snapshot(snapshot)) == len(snapshot)


@FAST
@given(snapshot=snapshots(devices=devices(arbitrary_keys=True), allow_duplicate_ids=True))
def test_snapshots_with_duplicates_and_any_keys_still_round_trip(snapshot: list[Device]) -> None:
    canonical = normalise_snapshot(snapshot)
    assert {d.id for d in canonical} == {d.id for d in snapshot}
    assert decode_snapshot(encode_snapshot(canonical)) == canonical


def test_duplicates_and_arbitrary_keys_do_come_up() -> None:
    duplicated = find(
        snapshots(allow_duplicate_ids=True), lambda s: len({d.id for d in s}) < len(s)
    )
    assert len(duplicated) == 2
    odd = find(
        devices(arbitrary_keys=True), lambda d: any(not is_env_name(k) for k in d.properties)
    )
    assert odd.properties


@FAST
@given(request=discover_requests())
def test_discover_requests_serialise_and_keep_unset_properties(request: object) -> None:
    from akri_sdk._proto import discovery_pb2 as pb

    assert isinstance(request, pb.DiscoverRequest)
    again = pb.DiscoverRequest.FromString(request.SerializeToString())
    assert again == request
    properties = DiscoveryProperties.from_proto(again.discovery_properties)
    for name, data in request.discovery_properties.items():
        assert properties[name] == (data.vec if data.HasField("vec") else None)


def test_discover_requests_include_unset_and_empty_byte_data() -> None:
    unset = find(
        discover_requests(),
        lambda r: any(not v.HasField("vec") for v in r.discovery_properties.values()),
    )
    assert list(DiscoveryProperties.from_proto(unset.discovery_properties).values()) == [None]
    empty = find(
        discover_requests(),
        lambda r: any(v.HasField("vec") and not v.vec for v in r.discovery_properties.values()),
    )
    assert list(DiscoveryProperties.from_proto(empty.discovery_properties).values()) == [b""]


@FAST
@given(value=details_values(DebugEchoDetails), format=st.sampled_from(FORMATS))
def test_debug_echo_details_decode_to_the_same_value(
    value: DebugEchoDetails, format: DetailsFormat
) -> None:
    assert decode_details(render_details(value, format), DebugEchoDetails) == value


@settings(FAST, suppress_health_check=[HealthCheck.too_slow])
@given(value=details_values(RichDetails), format=st.sampled_from(FORMATS))
def test_rich_details_decode_to_the_same_value(value: RichDetails, format: DetailsFormat) -> None:
    assert decode_details(render_details(value, format), RichDetails) == value


@FAST
@given(data=details_data(RichDetails))
def test_details_data_uses_the_encoded_names(data: dict[str, object]) -> None:
    allowed = {f.encode_name for f in msgspec.structs.fields(RichDetails)}
    assert "endpoints" in data
    assert set(data) <= allowed
    assert "scan_interval_seconds" not in data


def test_camel_case_names_come_out_in_the_text() -> None:
    text = find(
        details_for(RichDetails, formats=("yaml",)),
        lambda t: decode_details(t, RichDetails).scan_interval_seconds is not None,
    )
    assert text.count("scanIntervalSeconds:") == 1


@FAST
@given(text=details_for(DebugEchoDetails))
def test_details_for_gives_accepted_text(text: str) -> None:
    assert isinstance(decode_details(text, DebugEchoDetails), DebugEchoDetails)


KINDS = {
    "alias bomb": "aliases are expanded",
    "too deep": "nests",
    "too big": "the limit is",
    "wrong type": "at $.descriptions",
    "not a mapping": "expected a mapping",
    "not yaml": "not valid YAML",
    "empty": "is empty",
}


def test_hostile_details_are_refused_with_a_readable_error() -> None:
    seen: set[str] = set()

    @settings(max_examples=150, deadline=None)
    @given(text=hostile_details(DebugEchoDetails))
    def refused(text: str) -> None:
        with pytest.raises(DetailsError) as caught:
            decode_details(text, DebugEchoDetails)
        message = str(caught.value)
        assert message.startswith("discoveryDetails"), message
        # The message goes into a gRPC trailer and `kubectl describe`: bounded.
        assert len(message) < 1000, message
        seen.update(kind for kind, words in KINDS.items() if words in message)

    refused()
    assert seen == set(KINDS)


@FAST
@given(filters=filter_lists(), format=st.sampled_from(FORMATS))
def test_filter_lists_round_trip_as_details(filters: FilterList, format: DetailsFormat) -> None:
    assert decode_details(render_details(filters, format), FilterList) == filters


@FAST
@given(filters=filter_lists(match="exact"), value=st.text(max_size=12))
def test_exact_filter_lists_have_akri_semantics(filters: FilterList, value: str) -> None:
    listed = value in filters.items
    if filters.action == FilterAction.INCLUDE:
        assert filters.includes(value) == listed
    else:
        assert filters.includes(value) == (not listed)
