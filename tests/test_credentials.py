"""discovery_properties access: values never leak through repr, str, format or errors."""

from __future__ import annotations

import contextlib
import copy
import logging
import pickle
import traceback
from collections.abc import Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.credentials import (
    Credentials,
    DiscoveryProperties,
    PropertyError,
    Secret,
    redact_url_passwords,
)

VALUE = "hunter2-Zq9xKv"  # distinctive, so a leak is unmistakable
BVALUE = VALUE.encode()


def renderings(obj: object) -> list[str]:
    """Every accidental way an object becomes text."""
    texts = [
        repr(obj),
        str(obj),
        f"{obj}",
        f"{obj!r}",
        f"{obj!s}",
        format(obj),
        format(obj, ""),
        "{}".format(obj),  # noqa: UP032 - str.format is a distinct path
        "%s" % (obj,),  # noqa: UP031 - %-formatting is what logging uses
        "%r" % (obj,),  # noqa: UP031
    ]
    # object.__format__ refuses a non-empty spec, which leaks nothing either.
    with contextlib.suppress(TypeError):
        texts.append(f"{obj:>40}")
    return texts


def assert_hidden(obj: object, *values: str) -> None:
    for text in renderings(obj):
        for value in values:
            assert value not in text, text


def props(**values: bytes | None) -> DiscoveryProperties:
    return DiscoveryProperties(values)


# Secret


@pytest.mark.parametrize("value", [VALUE, BVALUE])
def test_secret_renders_as_mask(value: str | bytes) -> None:
    s = Secret(value)
    assert_hidden(s, VALUE, str(len(VALUE)))
    assert repr(s) == "Secret('********')"
    assert str(s) == "********"
    assert f"{s:>40}" == "********"


def test_secret_reveals_on_request() -> None:
    assert Secret(VALUE).reveal() == VALUE
    assert Secret(BVALUE).reveal_bytes() == BVALUE
    assert Secret(bytearray(BVALUE)).reveal_bytes() == BVALUE


def test_secret_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="bytes or str"):
        Secret(12345)  # type: ignore[arg-type]


def test_secret_equality_and_hash() -> None:
    assert Secret(VALUE) == Secret(BVALUE)
    assert Secret(VALUE) != Secret(VALUE + "x")
    assert Secret(VALUE) != VALUE  # a Secret only equals a Secret
    assert len({Secret(VALUE), Secret(BVALUE), Secret("other")}) == 2


def test_secret_truthiness() -> None:
    assert Secret("x")
    assert not Secret(b"")


def test_secret_copies_and_pickles() -> None:
    s = Secret(VALUE, name="pw")
    assert copy.copy(s) == s
    assert copy.deepcopy(s) == s
    assert pickle.loads(pickle.dumps(s)) == s


def test_secret_reveal_invalid_utf8_names_property_not_value() -> None:
    s = Secret(b"\xff" + BVALUE, name="password_default")
    with pytest.raises(PropertyError) as info:
        s.reveal()
    assert "password_default" in str(info.value)
    assert VALUE not in str(info.value)
    assert info.value.__context__ is None  # the UnicodeDecodeError holds the value
    assert isinstance(info.value, ValueError)


# Credentials


def test_credentials_repr_hides_password() -> None:
    c = Credentials(username="admin", password=Secret(VALUE))
    assert_hidden(c, VALUE)
    assert repr(c) == "Credentials(username='admin', password=Secret('********'))"


# DiscoveryProperties


def test_properties_render_names_only() -> None:
    p = props(password_default=BVALUE, declared=None, username_default=b"admin-Yw3")
    assert_hidden(p, VALUE, "admin-Yw3")
    assert repr(p) == (
        "DiscoveryProperties(names=['declared', 'password_default', 'username_default'])"
    )
    for view in (p.keys(), p.values(), p.items()):
        assert_hidden(view, VALUE, "admin-Yw3")


def test_logging_properties_at_debug_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    p = props(username_default=b"admin", password_default=BVALUE)
    log = logging.getLogger("akri_sdk.test")
    with caplog.at_level(logging.DEBUG, logger="akri_sdk.test"):
        log.debug("request properties %s", p)
        log.debug("request properties %r", p)
        log.debug("secret %s", p.secret("password_default"))
        log.debug("creds %s", p.credentials("username_default", "password_default"))
        log.debug("redacted %s", p.redacted())
        log.debug("values %s", p.values())
    assert len(caplog.records) == 6
    assert "password_default" in caplog.text
    assert VALUE not in caplog.text
    for record in caplog.records:
        assert VALUE not in record.getMessage()


def test_mapping_access_is_normal() -> None:
    p = props(a=b"1", b=None)
    assert p["a"] == b"1"
    assert p["b"] is None
    assert "b" in p
    assert "c" not in p
    assert p.get("c") is None
    assert len(p) == 2
    assert list(p) == ["a", "b"]
    assert dict(p.items()) == {"a": b"1", "b": None}
    assert list(p.values()) == [b"1", None]
    assert p == {"a": b"1", "b": None}
    with pytest.raises(KeyError):
        p["c"]


def test_properties_are_read_only_copies() -> None:
    source: dict[str, bytes | None] = {"a": b"1"}
    p = DiscoveryProperties(source)
    source["a"] = b"2"
    assert p["a"] == b"1"
    with pytest.raises(TypeError):
        p["a"] = b"3"  # type: ignore[index]


def test_constructor_type_errors_do_not_show_values() -> None:
    with pytest.raises(TypeError, match="'a'") as info:
        DiscoveryProperties({"a": VALUE})  # type: ignore[dict-item]
    assert VALUE not in str(info.value)


def test_from_proto_keeps_unset_as_none() -> None:
    request = pb.DiscoverRequest(
        discovery_properties={
            "a": pb.ByteData(vec=b"x"),
            "b": pb.ByteData(),
            "c": pb.ByteData(vec=b""),
        }
    )
    p = DiscoveryProperties.from_proto(request.discovery_properties)
    assert dict(p) == {"a": b"x", "b": None, "c": b""}
    assert p.text("a") == "x"
    assert p.text("b") is None
    assert p.text("b", "dflt") == "dflt"
    assert p.text("c", "dflt") == ""  # set but empty is a value
    assert p.secret("b") is None


def test_text() -> None:
    p = props(a=b"  v\n", u="h\u00e9".encode())
    assert p.text("a") == "  v\n"
    assert p.text("a", strip=True) == "v"
    assert p.text("u") == "h\u00e9"
    assert p.text("missing") is None
    assert p.text("missing", "d") == "d"


def errors_name_property_only(call: Callable[[], object], name: str) -> PropertyError:
    with pytest.raises(PropertyError) as info:
        call()
    err = info.value
    assert err.name == name
    assert name in str(err)
    text = "".join(traceback.format_exception(err))
    assert VALUE not in text
    assert err.__context__ is None
    return err


def test_text_invalid_utf8() -> None:
    p = props(bad=BVALUE + b"\xc3")
    err = errors_name_property_only(lambda: p.text("bad"), "bad")
    assert "UTF-8" in str(err)
    assert str(len(BVALUE)) in str(err)  # the offset helps, the bytes would not


def test_secret_from_properties() -> None:
    p = props(pw=BVALUE, bad=b"\xff" + BVALUE)
    s = p.secret("pw")
    assert s == Secret(VALUE)
    assert s is not None
    assert s.reveal() == VALUE
    assert p.secret("missing") is None
    bad = p.secret("bad")
    assert bad is not None
    errors_name_property_only(bad.reveal, "bad")


def test_json() -> None:
    p = props(j=b'{"a": [1, 2]}', n=b"null")
    assert p.json("j") == {"a": [1, 2]}
    assert p.json("n", default=5) is None  # a JSON null is a value
    assert p.json("missing") is None
    assert p.json("missing", default=[]) == []


def test_json_errors_give_position_not_document() -> None:
    p = props(j=b'{"user": "' + BVALUE + b'", }', empty=b"", deep=b"[" * 100_000)
    err = errors_name_property_only(lambda: p.json("j"), "j")
    assert "line 1 column" in str(err)
    errors_name_property_only(lambda: p.json("empty"), "empty")
    errors_name_property_only(lambda: p.json("deep"), "deep")
    bad_utf8 = props(j=b"\xff" + BVALUE)
    errors_name_property_only(lambda: bad_utf8.json("j"), "j")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"true", True),
        (b"TRUE", True),
        (b"Yes", True),
        (b"1", True),
        (b" true\n", True),
        (b"false", False),
        (b"No", False),
        (b"0", False),
    ],
)
def test_flag(raw: bytes, expected: bool) -> None:
    assert props(f=raw).flag("f") is expected


def test_flag_defaults_and_errors() -> None:
    p = props(unset=None, bad=BVALUE, empty=b"")
    assert p.flag("missing") is False
    assert p.flag("missing", default=True) is True
    assert p.flag("unset", default=True) is True
    err = errors_name_property_only(lambda: p.flag("bad"), "bad")
    assert "true/false" in str(err)
    errors_name_property_only(lambda: p.flag("empty"), "empty")


def test_credentials_present() -> None:
    p = props(username_default=b"admin", password_default=BVALUE)
    c = p.credentials("username_default", "password_default")
    assert c == Credentials("admin", Secret(VALUE))
    assert c is not None
    assert c.password is not None
    assert c.password.reveal() == VALUE
    assert VALUE not in repr(c)


def test_credentials_without_password() -> None:
    p = props(username_default=b"admin", password_default=None)
    assert p.credentials("username_default", "password_default") == Credentials("admin", None)
    assert p.credentials("username_default", "nope") == Credentials("admin", None)


@pytest.mark.parametrize("username", [None, b"", "absent"])
def test_credentials_absent_or_empty_username(username: bytes | str | None) -> None:
    values: dict[str, bytes | None] = {"password_default": BVALUE}
    if username != "absent":
        values["username_default"] = username  # type: ignore[assignment]
    p = DiscoveryProperties(values)
    assert p.credentials("username_default", "password_default") is None


def test_fingerprint() -> None:
    base = {"a": b"1", "b": None, "c": BVALUE}
    fp = props(**base).fingerprint()
    assert fp == DiscoveryProperties(dict(reversed(base.items()))).fingerprint()
    assert VALUE not in fp
    assert int(fp, 16) >= 0
    different = [
        {**base, "c": BVALUE + b"!"},
        {**base, "b": b""},  # unset differs from empty
        {**base, "a": None},
        {"a": b"1", "b": None},
        {**base, "d": None},
        {"a": b"1b", "": None, "c": BVALUE},  # no ambiguity from concatenation
    ]
    for other in different:
        assert DiscoveryProperties(other).fingerprint() != fp
    assert props().fingerprint() == DiscoveryProperties({}).fingerprint()


def test_redacted() -> None:
    p = props(a=BVALUE, b=None, c=b"")
    assert p.redacted() == {"a": "<secret>", "b": "<unset>", "c": "<secret>"}


# Properties

names = st.from_regex(r"[_A-Za-z][_A-Za-z0-9]{0,12}", fullmatch=True)
values = st.one_of(st.none(), st.binary(max_size=40))
property_maps = st.dictionaries(names, values, max_size=6)


@given(st.binary())
def test_text_decodes_or_raises_property_error(raw: bytes) -> None:
    p = props(x=raw)
    try:
        expected = raw.decode()
    except UnicodeDecodeError:
        with pytest.raises(PropertyError, match="'x'"):
            p.text("x")
    else:
        assert p.text("x") == expected


@given(property_maps)
def test_repr_never_depends_on_values(values_by_name: dict[str, bytes | None]) -> None:
    p = DiscoveryProperties(values_by_name)
    blank = DiscoveryProperties(dict.fromkeys(values_by_name))
    secrets = [p.secret(n) for n in values_by_name]
    pairs: list[tuple[object, object]] = [
        (p, blank),
        (p.keys(), blank.keys()),
        (p.items(), blank.items()),
        (p.values(), blank.values()),
        *((s, None if s is None else Secret(b"")) for s in secrets),
        (Credentials("u", secrets[0] if secrets else None), Credentials("u", Secret(b""))),
    ]
    rendered: list[str] = [repr(p.redacted())]
    boilerplate: list[str] = ["<secret>", "<unset>"]
    for obj, twin in pairs:
        if not (isinstance(obj, Credentials) and obj.password is None):
            assert renderings(obj) == renderings(twin)
        rendered += renderings(obj)
        boilerplate += renderings(twin)
    for value in values_by_name.values():
        if value is None or len(value) < 4:
            continue
        for text in {value.decode("utf-8", "replace"), value.decode("latin-1"), repr(value)}:
            assume(not any(text in b for b in boilerplate))
            assert not any(text in r for r in rendered)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "mqttBrokerUri: mqtts://user:hunter2@broker:8883/x",
            "mqttBrokerUri: mqtts://user:********@broker:8883/x",
        ),
        ("a ws://u:p@h b tcp://v:q@i", "a ws://u:********@h b tcp://v:********@i"),
        ("mqtt://broker:1883 and http://user@host", "mqtt://broker:1883 and http://user@host"),
        ("no url here", "no url here"),
    ],
)
def test_redact_url_passwords(text: str, expected: str) -> None:
    assert redact_url_passwords(text) == expected


@given(
    st.text(alphabet="abc:/@ 12", max_size=40),
    st.text(alphabet="xyzXYZ789", min_size=4, max_size=12),
)
def test_redacted_urls_never_show_the_password(prefix: str, password: str) -> None:
    text = f"{prefix} mqtt://user:{password}@host/{prefix}"
    assert f":{password}@" not in redact_url_passwords(text)
