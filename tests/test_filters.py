"""FilterList: Akri's Include/Exclude semantics, ONVIF's unknown-value rule, opt-in glob/regex."""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from akri_sdk.details import DetailsError, decode_details, details_schema
from akri_sdk.filters import MAX_PATTERN_LENGTH, FilterAction, FilterList, should_include

INCLUDE, EXCLUDE = FilterAction.INCLUDE, FilterAction.EXCLUDE


class Opcua(msgspec.Struct, rename="camel"):
    application_names: FilterList | None = None


def error_of(text: str, model: object) -> DetailsError:
    with pytest.raises(DetailsError) as caught:
        decode_details(text, model)
    return caught.value


# --- Akri's should_include (discovery-utils test_should_include) -----------------------


def test_no_filter_list_includes_everything() -> None:
    assert should_include(None, "anything")


def test_include_keeps_only_listed_items() -> None:
    fl = FilterList(["item1", "item2"], INCLUDE)
    assert should_include(fl, "item1")
    assert not should_include(fl, "item3")


def test_include_with_no_items_rejects_everything() -> None:
    assert not should_include(FilterList([], INCLUDE), "item1")


def test_exclude_drops_listed_items() -> None:
    fl = FilterList(["item1", "item2"], EXCLUDE)
    assert not should_include(fl, "item1")
    assert should_include(fl, "item3")


def test_exclude_with_no_items_accepts_everything() -> None:
    assert should_include(FilterList([], EXCLUDE), "item1")


def test_matching_is_exact_and_case_sensitive() -> None:
    fl = FilterList(["OPC UA Server"], INCLUDE)
    assert should_include(fl, "OPC UA Server")
    assert not should_include(fl, "opc ua server")
    # "similar" values (prefixes, extensions) do not match
    ips = FilterList(["10.0.0.1"], INCLUDE)
    assert not should_include(ips, "10.0.0.10")
    assert not should_include(ips, "10.0.0.")
    assert should_include(FilterList(["10.0.0.10"], EXCLUDE), "10.0.0.1")


# --- includes(): ONVIF execute_filter ------------------------------------------------


@pytest.mark.parametrize(
    ("items", "action", "expected"),
    [
        ([], INCLUDE, False),
        (["a"], INCLUDE, False),
        ([], EXCLUDE, True),
        (["a"], EXCLUDE, False),
    ],
)
def test_unknown_value(items: list[str], action: FilterAction, expected: bool) -> None:
    assert FilterList(items, action).includes(None) is expected


def test_case_insensitive_mode() -> None:
    macs = FilterList(["AA:BB:CC:DD:EE:FF"], INCLUDE)
    assert not macs.includes("aa:bb:cc:dd:ee:ff")
    assert macs.includes("aa:bb:cc:dd:ee:ff", case_sensitive=False)
    assert not macs.includes("aa:bb:cc:dd:ee:f", case_sensitive=False)
    uuids = FilterList(["3fa1fe68-b915-4053-a3e1-ac15a21f5f91"], EXCLUDE)
    assert not uuids.includes("3FA1FE68-B915-4053-A3E1-AC15A21F5F91", case_sensitive=False)
    assert uuids.includes("3FA1FE68-B915-4053-A3E1-AC15A21F5F91")


# --- glob and regex ----------------------------------------------------------------


def test_glob_matches_the_whole_value() -> None:
    fl = FilterList(["camera-*", "door-?"], INCLUDE, match="glob")
    assert fl.includes("camera-12")
    assert fl.includes("door-1")
    assert not fl.includes("door-12")
    assert not fl.includes("old-camera-1")
    assert not fl.includes("Camera-1")
    assert fl.includes("Camera-1", case_sensitive=False)
    assert not FilterList(["camera-*"], EXCLUDE, match="glob").includes("camera-1")


def test_regex_must_match_the_whole_value() -> None:
    fl = FilterList([r"cam-[0-9]+"], INCLUDE, match="regex")
    assert fl.includes("cam-12")
    assert not fl.includes("cam-12x")
    assert not fl.includes("my-cam-12")
    assert not fl.includes("CAM-12")
    assert fl.includes("CAM-12", case_sensitive=False)
    assert should_include(FilterList([r"\d+"], EXCLUDE, match="regex"), "abc")


def test_glob_and_regex_decode_from_details() -> None:
    details = decode_details(
        "applicationNames: {items: ['Server-.*'], action: Exclude, match: regex}", Opcua
    )
    assert details.application_names == FilterList(["Server-.*"], EXCLUDE, "regex")
    assert not should_include(details.application_names, "Server-1")
    assert should_include(details.application_names, "Client-1")


def test_invalid_regex_refused_naming_the_pattern() -> None:
    err = error_of("applicationNames: {items: [ok, 'cam-(['], match: regex}", Opcua)
    assert err.path == "$.applicationNames"
    assert str(err).startswith(
        "discoveryDetails: invalid value at $.applicationNames: "
        "`items` holds an invalid regex 'cam-(['"
    )
    with pytest.raises(ValueError, match="invalid regex"):
        FilterList(["("], match="regex")
    # the same text is fine as an exact item, and a glob takes an unclosed `[` literally
    assert FilterList(["cam-(["]).includes("cam-([")
    assert FilterList(["cam-(["], match="glob").includes("cam-([")


def test_pathological_regex_nesting_is_a_clean_error() -> None:
    pattern = "(" * 500 + ")" * 500  # within the length limit, but re.compile recurses
    err = error_of(f"applicationNames: {{items: ['{pattern}'], match: regex}}", Opcua)
    assert "invalid regex '((((" in str(err)
    assert "it nests too deeply" in str(err)
    assert len(str(err)) < 200


def test_pattern_length_is_bounded() -> None:
    long = "a" * (MAX_PATTERN_LENGTH + 1)
    err = error_of(f"applicationNames: {{items: [{long}], match: glob}}", Opcua)
    assert f"the limit is {MAX_PATTERN_LENGTH}" in str(err)
    assert len(str(err)) < 250
    assert FilterList([long]).includes(long)  # exact items are not patterns


# --- decoding as Akri does -----------------------------------------------------------


def test_decoding_defaults_to_include_and_exact() -> None:
    assert decode_details("items: [a]", FilterList) == FilterList(["a"], INCLUDE, "exact")
    assert decode_details('{"items": [], "action": "Exclude"}', FilterList).action is EXCLUDE


def test_items_are_required() -> None:
    err = error_of("{action: Include}", FilterList)
    assert str(err) == "discoveryDetails: missing required key `items` at $"
    err = error_of("applicationNames: {action: Exclude}", Opcua)
    assert str(err) == "discoveryDetails: missing required key `items` at $.applicationNames"


def test_action_is_case_sensitive() -> None:
    err = error_of("items: []\naction: include", FilterList)
    assert str(err) == (
        "discoveryDetails: expected one of 'Include', 'Exclude' at $.action, got string 'include'"
    )


def test_unknown_match_mode_refused() -> None:
    err = error_of("items: []\nmatch: fuzzy", FilterList)
    assert str(err) == (
        "discoveryDetails: expected one of 'exact', 'glob', 'regex' at $.match, got string 'fuzzy'"
    )


def test_encodes_as_akri_spells_it() -> None:
    fl = FilterList(["a"], EXCLUDE)
    assert msgspec.json.decode(msgspec.json.encode(fl)) == {
        "items": ["a"],
        "action": "Exclude",
        "match": "exact",
    }
    assert str(EXCLUDE) == "Exclude"


def test_json_schema_inside_a_details_model() -> None:
    schema = details_schema(Opcua)
    field = schema["$defs"]["Opcua"]["properties"]["applicationNames"]
    assert {"$ref": "#/$defs/FilterList"} in field["anyOf"]
    fl = schema["$defs"]["FilterList"]
    assert set(fl["properties"]) == {"items", "action", "match"}
    assert fl["required"] == ["items"]
    assert fl["properties"]["match"]["enum"] == ["exact", "glob", "regex"]
    assert sorted(schema["$defs"]["FilterAction"]["enum"]) == ["Exclude", "Include"]


# --- against an independent oracle ---------------------------------------------------

TEXT = st.text(alphabet="aAbB.", max_size=3)


def oracle(items: list[str], action: str, value: str | None, case_sensitive: bool) -> bool:
    """Akri's should_include and ONVIF's execute_filter, written out as a truth table."""
    exclude = action == "Exclude"
    if exclude and len(items) == 0:
        return True
    if value is None:
        return False

    def fold(s: str) -> str:
        return s if case_sensitive else s.lower()

    listed = any(fold(item) == fold(value) for item in items)
    return not listed if exclude else listed


@given(
    items=st.lists(TEXT, max_size=4),
    action=st.sampled_from(["Include", "Exclude"]),
    case_sensitive=st.booleans(),
    data=st.data(),
)
def test_includes_matches_the_oracle(
    items: list[str], action: str, case_sensitive: bool, data: st.DataObject
) -> None:
    values = st.none() | TEXT
    if items:
        values |= st.sampled_from(items)
    value = data.draw(values)
    fl = decode_details(
        msgspec.json.encode({"items": items, "action": action}).decode(), FilterList
    )
    expected = oracle(items, action, value, case_sensitive)
    assert fl.includes(value, case_sensitive=case_sensitive) is expected
    # literal patterns behave exactly like exact items
    as_glob = FilterList([re.sub(r"([*?\[])", r"[\1]", i) for i in items], fl.action, "glob")
    as_regex = FilterList([re.escape(i) for i in items], fl.action, "regex")
    assert as_glob.includes(value, case_sensitive=case_sensitive) is expected
    assert as_regex.includes(value, case_sensitive=case_sensitive) is expected
    if value is not None:
        akri = (value in items) if action == "Include" else (value not in items)
        assert should_include(fl, value) is akri is oracle(items, action, value, True)
