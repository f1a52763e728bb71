"""Device types, naming rules and snapshot encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.device import (
    Device,
    DeviceSpec,
    Mount,
    decode_snapshot,
    encode_snapshot,
    env_name,
    instance_hash,
    instance_name,
    is_env_name,
    normalise_snapshot,
)


@pytest.mark.parametrize(
    ("device_id", "node", "shared", "expected"),
    [
        # The Agent's own unit-test vectors (spec §3.6).
        ("my_local_device", "my_node", False, "e77db4"),
        ("my_local_device", "my_other_node", False, "099763"),
        ("my_shared_device", "my_node", True, "4294ea"),
        ("my_shared_device", "my_other_node", True, "4294ea"),
    ],
)
def test_instance_hash_matches_agent_vectors(
    device_id: str, node: str, shared: bool, expected: str
) -> None:
    assert instance_hash(device_id, node, shared) == expected
    assert (
        instance_name("akri-debug-echo", device_id, node, shared) == f"akri-debug-echo-{expected}"
    )


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("mqtt", "booth-1/sound"), "MQTT_BOOTH_1_SOUND"),
        (("1abc",), "_1ABC"),
        (("",), "_"),
        (("ok_NAME",), "OK_NAME"),
        (("a.b", "c d"), "A_B_C_D"),
    ],
)
def test_env_name(parts: tuple[str, ...], expected: str) -> None:
    assert env_name(*parts) == expected


@given(st.lists(st.text(max_size=20), max_size=4))
def test_env_name_is_always_valid(parts: list[str]) -> None:
    assert is_env_name(env_name(*parts))


def test_device_is_immutable_and_validated() -> None:
    props = {"A": "1"}
    device = Device(id="x", properties=props)
    props["A"] = "2"
    assert device.properties["A"] == "1"
    with pytest.raises(TypeError):
        device.properties["B"] = "3"  # type: ignore[index]
    with pytest.raises(TypeError, match="str to str"):
        Device(id="x", properties={"A": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="id must be a str"):
        Device(id=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="permissions"):
        DeviceSpec("/dev/x", "/dev/x", "x")


def test_normalise_sorts_and_drops_duplicate_ids(caplog: pytest.LogCaptureFixture) -> None:
    a1 = Device("a", {"V": "1"})
    a2 = Device("a", {"V": "2"})
    b = Device("b")
    assert normalise_snapshot([b, a1, a2, a1]) == (a1, b)
    assert "two different devices with id 'a'" in caplog.text
    with pytest.raises(TypeError, match="expected Device"):
        normalise_snapshot(["a"])  # type: ignore[list-item]


devices = st.builds(
    Device,
    id=st.text(max_size=30),
    properties=st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=4),
    mounts=st.lists(
        st.builds(Mount, st.text(max_size=10), st.text(max_size=10), st.booleans()), max_size=2
    ).map(tuple),
    device_specs=st.lists(
        st.builds(
            DeviceSpec,
            st.text(max_size=10),
            st.text(max_size=10),
            st.sampled_from(["r", "rw", "rwm", "m"]),
        ),
        max_size=2,
    ).map(tuple),
)


@given(st.lists(devices, max_size=8))
def test_encoding_equals_protobuf_and_round_trips(items: list[Device]) -> None:
    snapshot = normalise_snapshot(items)
    payload = encode_snapshot(snapshot)
    reference = pb.DiscoverResponse(devices=[d.to_proto() for d in snapshot])
    assert pb.DiscoverResponse.FromString(payload) == reference
    assert decode_snapshot(payload) == snapshot


def test_large_device_length_prefix() -> None:
    big = Device("big", {"P": "x" * 70_000})
    assert decode_snapshot(encode_snapshot((big,))) == (big,)
