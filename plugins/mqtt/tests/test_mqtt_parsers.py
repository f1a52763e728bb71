"""Property tests for every parser in the plugin: broker URIs, topic filters and
patterns, JSON field paths and payload conditions."""

from __future__ import annotations

import re
from urllib.parse import quote

import msgspec
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from akri_sdk_mqtt.handler import client_id
from akri_sdk_mqtt.payload import (
    MISSING,
    Condition,
    FieldPath,
    MessageFilter,
    PayloadView,
    compile_regex,
    field_text,
)
from akri_sdk_mqtt.topics import TopicPattern, check_filter, filter_matches
from akri_sdk_mqtt.uri import SCHEMES, parse_broker_uri

# ---- broker URIs ------------------------------------------------------------------

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(labels, min_size=1, max_size=4).map(".".join)
ports = st.integers(1, 65535)
secrets_text = st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s)


@given(st.sampled_from(sorted(SCHEMES)), hostnames, st.none() | ports)
def test_uri_host_port_and_transport(scheme: str, host: str, port: int | None) -> None:
    text = f"{scheme}://{host}" + ("" if port is None else f":{port}")
    uri = parse_broker_uri(text)
    tls, websocket, default = SCHEMES[scheme]
    assert (uri.scheme, uri.host, uri.tls, uri.websocket) == (scheme, host, tls, websocket)
    assert uri.port == (default if port is None else port)
    assert uri.public == text
    assert parse_broker_uri(uri.public) == uri


@given(st.ip_addresses(v=6), ports)
def test_uri_ipv6_literals(address: object, port: int) -> None:
    uri = parse_broker_uri(f"mqtts://[{address}]:{port}")
    assert (uri.host, uri.port, uri.tls) == (str(address), port, True)


@given(st.sampled_from(sorted(SCHEMES)), hostnames, secrets_text, secrets_text)
def test_uri_credentials_are_parsed_and_never_public(
    scheme: str, host: str, user: str, password: str
) -> None:
    password = "pw~" + password  # recognisable in a repr
    text = f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}:1883"
    uri = parse_broker_uri(text)
    assert (uri.username, uri.password) == (user, password)
    assert uri.public == f"{scheme}://{host}:1883"
    assert password not in repr(uri) and quote(password, safe="") not in repr(uri)


@given(st.text(max_size=80))
@example("mqtt://")
@example("mqtt://:1883")
@example("mqtt://[::1")
@example("mqtt://h:0")
@example("mqtt://h:-1")
@example("mqtt://h:1883:1")
@example("mqtt://h?client_id=")
@example("mqtt://h#frag")
@example("ws://h/path with space")
def test_uri_parser_only_raises_value_error(text: str) -> None:
    try:
        uri = parse_broker_uri(text)
    except ValueError as error:
        message = str(error)
        assert message.startswith("`mqttBrokerUri`"), message
        return
    assert 1 <= uri.port <= 65535 and uri.host
    assert parse_broker_uri(uri.public).public == uri.public


@pytest.mark.parametrize(
    ("text", "path", "client", "keepalive"),
    [
        ("ws://h:9001", "/mqtt", None, 60),
        ("wss://h/custom/path", "/custom/path", None, 60),
        ("tcp://h?client_id=spin&keep_alive_secs=15", "/mqtt", "spin", 15),
        ("mqtt://h?clean_start=true&inflight_num=10", "/mqtt", None, 60),
    ],
)
def test_uri_options(text: str, path: str, client: str | None, keepalive: int) -> None:
    uri = parse_broker_uri(text)
    assert (uri.websocket_path, uri.client_id, uri.keepalive) == (path, client, keepalive)


# ---- topic filters and patterns ----------------------------------------------------

level_text = st.sampled_from(["a", "b", "$SYS", "", "x y", "é"])
topic_levels = st.lists(level_text, min_size=1, max_size=5)
filter_levels = st.lists(st.sampled_from(["a", "b", "$SYS", "", "+", "#"]), min_size=1, max_size=5)


def reference_match(topic_filter: str, topic: str) -> bool:
    """MQTT 4.7 matching, written as a regular expression."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    parts = []
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if level == "#":
            # `a/#` also matches `a`: the separator before `#` is optional.
            return re.fullmatch("/".join(parts) + ("(/.*)?" if parts else ".*"), topic) is not None
        parts.append("[^/]*" if level == "+" else re.escape(level))
        del index
    return re.fullmatch("/".join(parts), topic) is not None


@given(filter_levels, topic_levels)
def test_filter_matching_agrees_with_the_reference(levels: list[str], topic: list[str]) -> None:
    topic_filter = "/".join(levels)
    try:
        check_filter(topic_filter)
    except ValueError:
        assert "#" in levels[:-1] or not topic_filter
        return
    assert filter_matches(topic_filter, "/".join(topic)) == reference_match(
        topic_filter, "/".join(topic)
    )


@given(st.text(max_size=40))
def test_check_filter_only_raises_value_error(text: str) -> None:
    try:
        check_filter(text)
    except ValueError:
        return
    levels = text.split("/")
    assert all(level in ("+", "#") or not set(level) & {"+", "#"} for level in levels)
    assert "#" not in levels[:-1]


ids_text = st.text(
    st.characters(blacklist_characters="/+#\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
)
literal_level = st.text(
    st.characters(blacklist_characters="/+#{}\x00", blacklist_categories=("Cs",)), max_size=6
)


@given(
    before=st.lists(st.one_of(literal_level, st.just("+")), max_size=3),
    after=st.lists(st.one_of(literal_level, st.just("+")), max_size=3),
    prefix=literal_level,
    suffix=literal_level,
    tail=st.booleans(),
    device=ids_text,
    filler=st.lists(ids_text, min_size=8, max_size=8),
)
def test_pattern_captures_the_id_it_was_given(
    before: list[str], after: list[str], prefix: str, suffix: str, tail: bool, device: str,
    filler: list[str],
) -> None:  # fmt: skip
    levels = [*before, prefix + "{id}" + suffix, *after] + (["#"] if tail else [])
    text = "/".join(levels)
    assume(not text.startswith("$"))
    pattern = TopicPattern.parse(text, "deviceIdPattern")
    concrete = pattern.for_device(device).split("/")
    fill = iter(filler)
    topic_levels_ = [next(fill) if level == "+" else level for level in concrete]
    if tail:
        topic_levels_[-1:] = [next(fill), next(fill)]
    topic = "/".join(topic_levels_)
    assume(not topic.startswith("$"))
    assert pattern.match(topic) == device
    assert filter_matches(pattern.subscription, topic)
    assert pattern.has_wildcards == ("+" in levels or tail)


@given(st.text(max_size=30), topic_levels)
def test_pattern_parse_and_match_never_crash(text: str, topic: list[str]) -> None:
    try:
        pattern = TopicPattern.parse(text, "deviceIdPattern")
    except ValueError as error:
        message = str(error)
        assert "deviceIdPattern" in message, message
        return
    found = pattern.match("/".join(topic))
    if found is not None:
        assert found and "/" not in found
        assert filter_matches(pattern.subscription, "/".join(topic))


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("booth/{id}/sound", "booth/7/sound", "7"),
        ("booth/{id}/sound", "booth//sound", None),
        ("booth/{id}/sound", "booth/7/light", None),
        ("booth/{id}", "booth/7/sound", None),
        ("booth/sensor-{id}", "booth/sensor-", None),
        ("booth/sensor-{id}", "booth/sensor-ab", "ab"),
        ("{id}/#", "$SYS/x", None),
        ("{id}/#", "dev", "dev"),
        ("+/{id}", "a/b", "b"),
    ],
)
def test_pattern_examples(pattern: str, topic: str, expected: str | None) -> None:
    assert TopicPattern.parse(pattern).match(topic) == expected


# ---- payload paths and conditions ---------------------------------------------------

# What msgspec can decode from a payload: JSON has no lone surrogates.
json_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
json_keys = st.text(
    st.characters(blacklist_characters=".", blacklist_categories=("Cs",)), min_size=1, max_size=4
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | json_text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_keys, inner, max_size=3),
    max_leaves=12,
)


def paths_in(
    document: object, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], object]]:
    found = [(prefix, document)] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths_in(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths_in(value, (*prefix, str(index)))
    return found


@settings(max_examples=200)
@given(json_values, st.data())
def test_field_paths_find_what_is_there(document: object, data: st.DataObject) -> None:
    view = PayloadView(msgspec.json.encode(document))
    candidates = paths_in(document)
    assume(candidates)
    segments, value = data.draw(st.sampled_from(candidates))
    assert view.field(FieldPath.parse(".".join(segments))) == value


@given(st.text(max_size=30))
def test_field_path_parse_only_raises_value_error(text: str) -> None:
    try:
        path = FieldPath.parse(text)
    except ValueError:
        return
    assert ".".join(path.segments) == text and all(path.segments)


numbers = st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False)


@given(st.sampled_from([">", ">=", "<", "<=", "==", "!="]), numbers, numbers)
def test_numeric_conditions_compare_like_python(op: str, found: float, wanted: float) -> None:
    condition = Condition.build("v", op, wanted)
    expected = {
        ">": found > wanted, ">=": found >= wanted, "<": found < wanted,
        "<=": found <= wanted, "==": found == wanted, "!=": found != wanted,
    }[op]  # fmt: skip
    assert condition.holds({"v": found}) == expected
    assert condition.holds({"v": str(found)}) == (op == "!=")  # a string is not a number
    assert condition.holds({}) is False  # a missing field never holds


@given(st.binary(max_size=200), st.sampled_from([None, "a", "[0-9]+"]))
def test_message_filter_never_raises(payload: bytes, regexp: str | None) -> None:
    message_filter = MessageFilter(
        regexp=None if regexp is None else compile_regex(regexp, "messageRegexp"),
        conditions=(Condition.build("a.0", "exists", None), Condition.build("b", "matches", "x")),
        max_bytes=100,
    )
    assert message_filter.admits(PayloadView(payload)) in (True, False)


@given(json_values, st.integers(1, 50))
def test_field_text_is_bounded(value: object, limit: int) -> None:
    text = field_text(value, limit)
    assert text is not None and len(text) <= limit
    assert field_text(MISSING, limit) is None


def test_true_is_not_one() -> None:
    assert not Condition.build("v", "==", 1).holds({"v": True})
    assert Condition.build("v", "==", True).holds({"v": True})
    assert Condition.build("v", "==", 1).holds({"v": 1.0})


# ---- client ids ---------------------------------------------------------------------


@given(st.text(max_size=80), st.none() | st.from_regex(r"[A-Za-z0-9_.-]{1,32}", fullmatch=True))
def test_client_ids_are_unique_and_plain(node: str, prefix: str | None) -> None:
    made = {client_id(prefix, node, "0a1b2c3d") for _ in range(20)}
    assert len(made) == 20
    for each in made:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", each) and len(each) <= 100
