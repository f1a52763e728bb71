"""discoveryDetails decoding: Akri-compatible YAML, bounded input, errors an operator can act on."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, TypedDict

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from akri_sdk import details as details_module
from akri_sdk.details import (
    DEFAULT_MAX_DETAILS_BYTES,
    DetailsError,
    decode_details,
    details_schema,
    load_yaml,
)


class D(msgspec.Struct, rename="camel"):
    """debugEcho's details."""

    descriptions: list[str]


class Udev(msgspec.Struct, rename="camel"):
    udev_rules: list[str]
    group_recursive: bool = False
    permissions: str = "rwm"


class Timeout(msgspec.Struct, rename="camel"):
    discovery_timeout_seconds: int = 1


def error_of(text: str, model: Any, **limits: int) -> DetailsError:
    with pytest.raises(DetailsError) as caught:
        decode_details(text, model, **limits)
    return caught.value


# --- what Akri accepts -------------------------------------------------------------


def test_yaml_and_json_decode_alike() -> None:
    assert decode_details("descriptions:\n  - foo0\n  - foo1\n", D) == D(["foo0", "foo1"])
    assert decode_details('{"descriptions": ["foo0", "foo1"]}', D) == D(["foo0", "foo1"])
    assert decode_details('{"descriptions":["foo0"]}', D) == D(["foo0"])


def test_empty_list_accepted() -> None:
    assert decode_details("descriptions: []", D) == D([])


def test_unknown_keys_are_ignored() -> None:
    assert decode_details("descriptions: [a]\nextra: {x: 1}", D) == D(["a"])


def test_camel_case_keys_and_defaults() -> None:
    assert decode_details("udevRules: ['KERNEL==\"video*\"']", Udev) == Udev(['KERNEL=="video*"'])
    assert decode_details("udevRules: []\ngroupRecursive: true", Udev).group_recursive is True


@pytest.mark.parametrize("text", ["", "   \n\t\n", "# only a comment\n", "~", "null", "---\n"])
def test_empty_details_rejected_with_what_is_expected(text: str) -> None:
    err = error_of(text, D)
    assert str(err).startswith("discoveryDetails is empty; expected a mapping with keys:")
    assert "descriptions" in str(err)


def test_empty_details_allowed_when_the_model_accepts_none() -> None:
    assert decode_details("", Any) is None
    assert decode_details("", object) is None
    assert decode_details("null", D | None) is None
    assert decode_details("descriptions: [a]", D | None) == D(["a"])


def test_bare_string_model() -> None:
    url = "http://discovery:9999/discovery"
    assert decode_details(url, str) == url
    assert decode_details(f"  {url}\n", str) == url
    assert str(error_of("", str)) == "discoveryDetails is empty; expected a string"
    assert "expected string at $, got mapping" in str(error_of("a: b", str))


def test_any_and_dict_models() -> None:
    assert decode_details("a: [1, x]\nb: {c: null}", Any) == {"a": [1, "x"], "b": {"c": None}}
    assert decode_details("a: 1", dict[str, Any]) == {"a": 1}


def test_dataclass_and_typeddict_models() -> None:
    @dataclasses.dataclass
    class DC:
        name: str
        port: int = 80

    class TD(TypedDict):
        name: str

    assert decode_details("name: cam", DC) == DC("cam")
    assert decode_details("name: cam", TD) == {"name": "cam"}
    assert "missing required key `name` at $" in str(error_of("port: 1", DC))


# --- YAML 1.2 core schema, as serde_yaml reads it ------------------------------------


def test_yaml_1_1_booleans_numbers_and_dates_stay_strings() -> None:
    text = "descriptions: [yes, on, 0755, 2001-01-01, No, 'true', 12:30:00, 1_000]"
    assert decode_details(text, D).descriptions == [
        "yes",
        "on",
        "0755",
        "2001-01-01",
        "No",
        "true",
        "12:30:00",
        "1_000",
    ]


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("yes", "yes"),
        ("off", "off"),
        ("y", "y"),
        ("null", None),
        ("Null", None),
        ("~", None),
        ("", None),
        ("nil", "nil"),
        ("0", 0),
        ("-0", 0),
        ("+12", 12),
        ("-12", -12),
        ("0o17", 15),
        ("0x1F", 31),
        ("-0x1F", -31),
        ("0b101", 5),
        ("0755", "0755"),  # serde_yaml: leading-zero digits are a string
        ("-007", "-007"),
        ("0X1F", "0X1F"),
        ("1_000", "1_000"),
        ("1.5", 1.5),
        ("-1.5e3", -1500.0),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("0755.5", 755.5),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ("+.INF", math.inf),
        ("inf", "inf"),
        ("1e400", "1e400"),  # serde_yaml keeps an overflowing float a string
        ("2001-01-01", "2001-01-01"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("'5'", "5"),
        ('"true"', "true"),
        ("<<", "<<"),
        ("=", "="),
    ],
)
def test_plain_scalars_resolve_as_in_yaml_1_2(scalar: str, value: object) -> None:
    loaded = load_yaml(f"v: {scalar}")
    assert isinstance(loaded, dict)
    assert loaded["v"] == value
    assert type(loaded["v"]) is type(value)


def test_nan() -> None:
    loaded = load_yaml("[.nan, .NaN, .NAN, +.nan]")
    assert isinstance(loaded, list)
    assert all(math.isnan(v) for v in loaded[:3])
    assert loaded[3] == "+.nan"


def test_merge_keys_are_plain_keys_and_duplicates_refused() -> None:
    # serde_yaml 0.9 does not apply `<<`, and serde refuses duplicate fields.
    assert load_yaml("base: &b {x: 1}\nitem: {<<: *b, y: 2}") == {
        "base": {"x": 1},
        "item": {"<<": {"x": 1}, "y": 2},
    }
    err = error_of("descriptions: [a]\ndescriptions: [b]", D)
    assert "duplicate key 'descriptions'" in str(err)
    assert "line 2, column 1" in str(err)


def test_anchors_and_aliases_work_and_may_be_redefined() -> None:
    assert load_yaml("a: &x [1, 2]\nb: *x\nc: &x 3\nd: *x") == {
        "a": [1, 2],
        "b": [1, 2],
        "c": 3,
        "d": 3,
    }


def test_json_surrogate_pair_escapes_are_joined() -> None:
    assert decode_details('{"descriptions": ["\\ud83d\\ude00"]}', D) == D(["\U0001f600"])
    assert "unpaired UTF-16 surrogate" in str(error_of('["\\ud83d"]', Any))


@pytest.mark.parametrize("text", ["a: !!binary aGVsbG8=", "a: !!timestamp 2001-01-01", "!foo x"])
def test_tags_beyond_the_core_schema_refused(text: str) -> None:
    assert "unsupported tag" in str(error_of(text, Any))


# --- errors an operator can act on -------------------------------------------------


def test_wrong_type_names_path_expectation_and_value() -> None:
    err = error_of("descriptions: foo", D)
    assert str(err) == "discoveryDetails: expected list at $.descriptions, got string 'foo'"
    assert err.path == "$.descriptions"

    err = error_of("descriptions: [a, [b, c]]", D)
    assert str(err) == (
        "discoveryDetails: expected string at $.descriptions[1], got list ['b', 'c']"
    )
    assert err.path == "$.descriptions[1]"


def test_types_are_strict() -> None:
    err = error_of('discoveryTimeoutSeconds: "5"', Timeout)
    assert str(err) == (
        "discoveryDetails: expected integer at $.discoveryTimeoutSeconds, got string '5'"
    )
    assert "got boolean True" in str(error_of("udevRules: []\npermissions: true", Udev))


def test_missing_required_key() -> None:
    err = error_of("{}", D)
    assert str(err) == "discoveryDetails: missing required key `descriptions` at $"
    assert err.path == "$"
    assert "missing required key `udevRules` at $" in str(error_of("groupRecursive: true", Udev))


def test_unknown_keys_refused_only_when_the_model_asks() -> None:
    class Closed(msgspec.Struct, forbid_unknown_fields=True):
        name: str = ""

    err = error_of("inner: {name: a, nmae: b}", dict[str, Closed])
    assert str(err) == "discoveryDetails: unknown key `nmae` at $.inner"


def test_root_of_the_wrong_kind() -> None:
    assert (
        str(error_of("[a, b]", D)) == "discoveryDetails: expected mapping at $, got list ['a', 'b']"
    )


def test_long_values_are_shortened_in_messages() -> None:
    err = error_of(f"descriptions: {'x' * 5000}", D)
    assert "xxx" in str(err)
    assert len(str(err)) < 160


def test_mapping_values_are_located_by_key() -> None:
    err = error_of("a: 1\nb: two\nc: 3", dict[str, int])
    assert str(err) == "discoveryDetails: expected integer at $.b, got string 'two'"
    err = error_of("a: [1]\nb: [2, x]", dict[str, list[int]])
    assert err.path == "$.b[1]"
    err = error_of("a: 1\n5: 2", dict[str, int])
    assert str(err) == "discoveryDetails: expected string as a key at $, got integer 5"


def test_post_init_errors_keep_their_text() -> None:
    class Checked(msgspec.Struct):
        port: int

        def __post_init__(self) -> None:
            if not 0 < self.port < 65536:
                raise ValueError(f"port must be 1-65535, got {self.port}")

    err = error_of("port: 70000", Checked)
    assert str(err) == "discoveryDetails: invalid value at $: port must be 1-65535, got 70000"


def test_model_bugs_still_surface_as_details_errors() -> None:
    class Buggy(msgspec.Struct):
        x: int

        def __post_init__(self) -> None:
            raise KeyError("oops")

    assert "handler's details model raised KeyError" in str(error_of("x: 1", Buggy))


def test_syntax_error_gives_line_column_and_problem() -> None:
    err = error_of("descriptions:\n  - a\n  - b: c: d\n", D)
    assert "is not valid YAML" in str(err)
    assert "line 3, column" in str(err)
    assert "mapping values are not allowed here" in str(err)

    err = error_of('{"descriptions": ["a"', D)
    assert "line 1" in str(err)
    assert "flow sequence" in str(err)


def test_control_characters_refused() -> None:
    assert "U+0007 at line 2, column 3" in str(error_of("a: 1\nb:\x07", Any))


def test_multiple_documents_refused() -> None:
    err = error_of("descriptions: [a]\n---\ndescriptions: [b]\n", D)
    assert "more than one YAML document" in str(err)
    assert "line 2" in str(err)
    assert decode_details("---\ndescriptions: [a]\n...\n", D) == D(["a"])


# --- bounded input -------------------------------------------------------------------


def test_oversized_text_refused_before_parsing() -> None:
    text = "descriptions: [" + "a," * (5 * 1024 * 1024 // 2) + "]"
    err = error_of(text, D)
    # A size message, not a parse error: the check ran before the parser.
    assert str(err) == "discoveryDetails is 5.0 MiB; the limit is 256.0 KiB"


def test_size_is_counted_in_utf8_bytes() -> None:
    assert str(error_of("é" * 600, str, max_bytes=1000)) == (
        "discoveryDetails is 1.2 KiB; the limit is 1000 bytes"
    )
    assert decode_details("é" * 500, str, max_bytes=1000) == "é" * 500
    assert str(error_of("x" * (DEFAULT_MAX_DETAILS_BYTES + 1), str)) == (
        "discoveryDetails is 262145 bytes; the limit is 262144 bytes"
    )


BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


def test_billion_laughs_refused() -> None:
    assert len(BILLION_LAUGHS) < 1000
    # Refused by counting the composed graph; constructing it would never finish.
    err = error_of(BILLION_LAUGHS, Any)
    assert "more than 100000 values once YAML aliases are expanded" in str(err)


def test_node_limit_counts_alias_expansions() -> None:
    # 1 mapping + key a + [1, 2, 3] (4) + key b + [*a, *a] (1 + 4 + 4) = 16 nodes
    text = "a: &a [1, 2, 3]\nb: [*a, *a]"
    assert load_yaml(text, max_nodes=16) == {"a": [1, 2, 3], "b": [[1, 2, 3], [1, 2, 3]]}
    with pytest.raises(DetailsError, match="more than 15 values"):
        load_yaml(text, max_nodes=15)


def test_node_limit_applies_without_aliases_too() -> None:
    with pytest.raises(DetailsError, match="more than 10 values"):
        load_yaml("[" + "1, " * 20 + "]", max_nodes=10)


def test_deep_flow_nesting_within_the_limit_decodes() -> None:
    # PyYAML's scanner is quadratic in flow depth; our loader keeps it linear.
    unit = "[" * 120 + "1" + "]" * 120
    assert decode_details(f"[{', '.join([unit] * 50)}]", Any) is not None


@pytest.mark.parametrize("text", ["&a [*a]", "a: &x {b: [1, *x]}", "&k {*k : 1}"])
def test_recursive_alias_refused(text: str) -> None:
    assert "recursive YAML alias" in str(error_of(text, Any))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000,
        "[" * 10_000 + "]" * 10_000,
        "{a: " * 10_000 + "1" + "}" * 10_000,
        "".join(f"{' ' * i}a:\n" for i in range(300)),
    ],
)
def test_deep_nesting_refused_without_recursion_error(text: str) -> None:
    assert "nests deeper than 128 levels" in str(error_of(text, Any))


def test_nesting_limit_boundary() -> None:
    assert decode_details("[" * 128 + "]" * 128, Any) is not None
    assert "nests deeper" in str(error_of("[" * 129 + "]" * 129, Any))


def test_alias_chains_cannot_nest_past_the_limit() -> None:
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 200)]
    assert "nests deeper than 128 levels once YAML aliases are expanded" in str(
        error_of("\n".join(lines), Any)
    )


# --- schema ----------------------------------------------------------------------------


def test_details_schema_uses_the_names_operators_write() -> None:
    schema = details_schema(Udev)
    definition = schema["$defs"]["Udev"]
    assert set(definition["properties"]) == {"udevRules", "groupRecursive", "permissions"}
    assert definition["required"] == ["udevRules"]
    assert details_schema(D)["$defs"]["D"]["description"] == "debugEcho's details."


# --- properties ------------------------------------------------------------------------

YAMLISH = st.text(alphabet=" \n\t-:,?[]{}&*!|>'\"#%@`~.0123456789abxyzTtNn\\", max_size=60)


def refusal(text: str, model: Any) -> DetailsError | None:
    """Decode, letting only DetailsError through (any other exception fails the test)."""
    try:
        decode_details(text, model)
    except DetailsError as err:
        return err
    return None


def is_clean(err: DetailsError | None) -> bool:
    """No internal failure reached decode_details' last-resort wrapping."""
    return err is None or not str(err).startswith("discoveryDetails could not be")


@given(st.text() | YAMLISH)
def test_any_text_raises_only_details_error(text: str) -> None:
    assert is_clean(refusal(text, D))


@given(YAMLISH)
def test_any_text_loads_or_raises_details_error(text: str) -> None:
    assert is_clean(refusal(text, Any))


def events(loader: type[yaml.SafeLoader], text: str) -> list[object]:
    try:
        return [
            (type(e).__name__, getattr(e, "value", None), e.start_mark.index, e.end_mark.index)
            for e in yaml.parse(text, Loader=loader)
        ]
    except yaml.YAMLError as err:
        return [str(err)]


class _ScannerOnly(yaml.SafeLoader):
    next_possible_simple_key = details_module._DetailsLoader.next_possible_simple_key
    stale_possible_simple_keys = details_module._DetailsLoader.stale_possible_simple_keys


@given(st.text(alphabet="[]{}:, a\n?-#'\"", max_size=1500) | YAMLISH)
def test_scanner_shortcut_scans_as_pyyaml_does(text: str) -> None:
    assert events(_ScannerOnly, text) == events(yaml.SafeLoader, text)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    # serde_yaml reads integers as 128-bit at most; JSON peers rarely pass 64 bits.
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
JSON_OBJECTS = st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=5)


@given(JSON_OBJECTS)
def test_json_round_trips(value: dict[str, Any]) -> None:
    assert decode_details(json.dumps(value), dict[str, Any]) == value
    assert decode_details(json.dumps(value, separators=(",", ":")), dict[str, Any]) == value
    assert decode_details(json.dumps(value, indent=2), dict[str, Any]) == value


class _CoreDumper(yaml.SafeDumper):
    """Quotes exactly the strings our loader would not read back as strings."""

    yaml_implicit_resolvers = details_module._DetailsLoader.yaml_implicit_resolvers


@given(JSON_OBJECTS)
def test_yaml_round_trips(value: dict[str, Any]) -> None:
    for flow in (False, True):
        text = yaml.dump(value, Dumper=_CoreDumper, default_flow_style=flow)
        assert decode_details(text, dict[str, Any]) == value


@settings(max_examples=50)
@given(JSON_OBJECTS)
def test_yaml_1_1_dumps_raise_only_details_error(value: dict[str, Any]) -> None:
    for text in (
        yaml.safe_dump(value),
        yaml.safe_dump(value, allow_unicode=True),
        json.dumps(value, ensure_ascii=False),
    ):
        assert is_clean(refusal(text, D))
