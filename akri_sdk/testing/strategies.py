"""Hypothesis strategies for handler tests: devices, snapshots, requests, details.

Property tests find the inputs nobody writes by hand: a device id with a NUL,
a description that YAML would read as a number, a Configuration with an alias
bomb. `details_for(Model)` gives valid `discoveryDetails` text for a handler's
own model (camelCase renames included); `hostile_details()` gives text every
handler must refuse with INVALID_ARGUMENT rather than crash or hang on.

    @given(details=details_for(Details))
    def test_accepts_every_valid_configuration(details):
        decode_details(details, Details)
"""

from __future__ import annotations

import datetime
import itertools
import json
import math
import re
from collections.abc import Hashable
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi
import yaml
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from akri_sdk._proto import discovery_pb2 as pb
from akri_sdk.details import _MAX_DEPTH, DEFAULT_MAX_DETAILS_BYTES, DEFAULT_MAX_YAML_NODES
from akri_sdk.details import _core_schema_resolvers as _yaml12_resolvers
from akri_sdk.device import Device, DeviceSpec, Mount
from akri_sdk.filters import MAX_PATTERN_LENGTH, FilterAction, FilterList, MatchMode

__all__ = [
    "details_data",
    "details_for",
    "details_values",
    "device_ids",
    "device_specs",
    "devices",
    "discover_requests",
    "env_names",
    "filter_lists",
    "hostile_details",
    "mounts",
    "render_details",
    "snapshots",
]

DetailsFormat = Literal["yaml", "json", "flow"]
_FORMATS: tuple[DetailsFormat, ...] = ("yaml", "flow", "json")

# UTF-8 encodable text (no lone surrogates): protobuf strings must be valid UTF-8.
_TEXT = st.characters(codec="utf-8")
# Environment variable values cannot hold NUL (execve), and Akri puts
# properties into broker pods' environments (spec §3.7).
_VALUE_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")


# --- devices -----------------------------------------------------------------------


def env_names(max_size: int = 24) -> SearchStrategy[str]:
    """Valid environment variable names (C identifiers), as property keys should be."""
    return st.from_regex(r"[A-Za-z_][A-Za-z0-9_]*", fullmatch=True).filter(
        lambda name: len(name) <= max_size
    )


def device_ids(max_size: int = 40) -> SearchStrategy[str]:
    """Non-empty device ids: any UTF-8 text, since the Agent only hashes them (spec §3.6)."""
    return st.text(_TEXT, min_size=1, max_size=max_size)


def _paths() -> SearchStrategy[str]:
    segment = st.text(
        st.characters(codec="ascii", categories=("L", "N"), include_characters="._-"),
        min_size=1,
        max_size=12,
    ).filter(lambda s: s not in (".", ".."))
    return st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))


def mounts() -> SearchStrategy[Mount]:
    """Host paths mounted into brokers: absolute paths, either access."""
    return st.builds(Mount, container_path=_paths(), host_path=_paths(), read_only=st.booleans())


def device_specs() -> SearchStrategy[DeviceSpec]:
    """Device nodes for brokers, with every valid permission string."""
    return st.builds(
        DeviceSpec,
        container_path=_paths(),
        host_path=_paths().map(lambda p: "/dev" + p),
        permissions=st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm"]),
    )


def devices(
    *,
    ids: SearchStrategy[str] | None = None,
    keys: SearchStrategy[str] | None = None,
    arbitrary_keys: bool = False,
    values: SearchStrategy[str] | None = None,
    max_properties: int = 4,
    max_mounts: int = 2,
    max_device_specs: int = 2,
) -> SearchStrategy[Device]:
    """Valid `Device` values.

    Property keys are environment variable names unless `arbitrary_keys` (any
    text: what a careless handler produces, which the SDK must still carry) or
    `keys` is given. Values are any text without NUL.
    """
    if keys is None:
        keys = st.text(_TEXT, max_size=24) if arbitrary_keys else env_names()
    return st.builds(
        Device,
        id=ids if ids is not None else device_ids(),
        properties=st.dictionaries(
            keys,
            values if values is not None else st.text(_VALUE_TEXT, max_size=40),
            max_size=max_properties,
        ),
        mounts=st.lists(mounts(), max_size=max_mounts).map(tuple),
        device_specs=st.lists(device_specs(), max_size=max_device_specs).map(tuple),
    )


_devices = devices


def snapshots(
    *,
    devices: SearchStrategy[Device] | None = None,
    min_size: int = 0,
    max_size: int = 6,
    allow_duplicate_ids: bool = False,
) -> SearchStrategy[list[Device]]:
    """A device list as a handler reports it: any order, ids unique.

    `allow_duplicate_ids` draws ids from a small pool, so lists with the same id
    twice (equal or different devices) are common: what `normalise_snapshot`
    has to cope with.
    """
    if not allow_duplicate_ids:
        element = devices if devices is not None else _devices()
        return st.lists(element, min_size=min_size, max_size=max_size, unique_by=lambda d: d.id)

    @st.composite
    def with_duplicates(draw: st.DrawFn) -> list[Device]:
        pool = draw(st.lists(device_ids(), min_size=1, max_size=3, unique=True))
        element = _devices(ids=st.sampled_from(pool))
        if devices is not None:
            # Re-id the caller's devices into the pool.
            element = st.tuples(devices, st.sampled_from(pool)).map(
                lambda pair: Device(
                    id=pair[1],
                    properties=pair[0].properties,
                    mounts=pair[0].mounts,
                    device_specs=pair[0].device_specs,
                )
            )
        return draw(st.lists(element, min_size=min_size, max_size=max_size))

    return with_duplicates()


# --- requests ----------------------------------------------------------------------


def discover_requests(
    *,
    details: SearchStrategy[str] | None = None,
    property_names: SearchStrategy[str] | None = None,
    max_properties: int = 4,
) -> SearchStrategy[pb.DiscoverRequest]:
    """`v0.DiscoverRequest`s as the Agent sends them.

    Property values are bytes (any, including empty and non-UTF-8) or unset
    `ByteData` (a property declared without a value, spec §3.2). Details are any
    text unless `details` is given (e.g. `details_for(Model)`).
    """
    names = property_names if property_names is not None else st.text(_TEXT, max_size=20)
    byte_data = st.one_of(
        st.just(pb.ByteData()), st.binary(max_size=32).map(lambda vec: pb.ByteData(vec=vec))
    )
    return st.builds(
        lambda text, props: pb.DiscoverRequest(discovery_details=text, discovery_properties=props),
        details if details is not None else st.text(_TEXT, max_size=200),
        st.dictionaries(names, byte_data, max_size=max_properties),
    )


# --- details -----------------------------------------------------------------------

_INT64 = (-(2**63), 2**63 - 1)
_MAX_ITEMS = 4
_MAX_TEXT = 20
_RECURSION_LIMIT = 4  # nested Structs deeper than this get empty lists and no optionals


def _strings(t: mi.StrType) -> SearchStrategy[str]:
    low = t.min_length or 0
    high = t.max_length if t.max_length is not None else max(low, _MAX_TEXT)
    if t.pattern is not None:
        return st.from_regex(t.pattern).filter(lambda s: low <= len(s) <= high)
    return st.text(_TEXT, min_size=low, max_size=min(high, low + _MAX_TEXT))


def _integers(t: mi.IntType) -> SearchStrategy[int]:
    low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else _INT64[0])
    high = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else _INT64[1])
    if t.multiple_of:
        step = t.multiple_of
        return st.integers(-(-low // step), high // step).map(lambda n: n * step)
    return st.integers(low, high)


def _floats(t: mi.FloatType) -> SearchStrategy[float]:
    strategy = st.floats(
        min_value=t.ge if t.ge is not None else t.gt,
        max_value=t.le if t.le is not None else t.lt,
        exclude_min=t.ge is None and t.gt is not None,
        exclude_max=t.le is None and t.lt is not None,
        allow_nan=False,
        allow_infinity=False,  # JSON has no infinity
    )
    if t.multiple_of:
        step = t.multiple_of
        strategy = strategy.filter(lambda x: math.isclose(x % step, 0.0, abs_tol=1e-9))
    return strategy


def _sized(
    items: SearchStrategy[Any], t: Any, depth: int, unique: bool = False
) -> SearchStrategy[list[Any]]:
    low = getattr(t, "min_length", None) or 0
    high = getattr(t, "max_length", None)
    high = low + _MAX_ITEMS if high is None else min(high, low + _MAX_ITEMS)
    if depth >= _RECURSION_LIMIT:
        high = low
    return st.lists(items, min_size=low, max_size=high, unique_by=(_freeze if unique else None))


def _freeze(value: Any) -> Hashable:
    return json.dumps(value, sort_keys=True, default=str)


def _fields(fields: tuple[mi.Field, ...], depth: int) -> SearchStrategy[dict[str, Any]]:
    """A mapping with every required field and some of the optional ones."""
    required = {f.encode_name: _data(f.type, depth + 1) for f in fields if f.required}
    optional = (
        {}
        if depth >= _RECURSION_LIMIT
        else {f.encode_name: _data(f.type, depth + 1) for f in fields if not f.required}
    )
    return st.fixed_dictionaries(required, optional=optional)


def _key_strategy(t: mi.Type) -> SearchStrategy[Any]:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.StrType):
        return _strings(t)
    if isinstance(t, mi.AnyType):
        return st.text(_TEXT, max_size=_MAX_TEXT)
    if isinstance(t, mi.LiteralType) and all(isinstance(v, str) for v in t.values):
        return st.sampled_from(t.values)
    if isinstance(t, mi.EnumType) and all(isinstance(m.value, str) for m in t.cls):
        return st.sampled_from([m.value for m in t.cls])
    raise TypeError(
        f"details strategies support only string mapping keys (JSON has no others), got {t!r}"
    )


_ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(*_INT64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_TEXT, max_size=_MAX_TEXT),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(_TEXT, max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)


def _data(t: mi.Type, depth: int = 0) -> SearchStrategy[Any]:
    """Plain data (what YAML and JSON hold) that converts to type `t`."""
    if isinstance(t, mi.Metadata):
        return _data(t.type, depth)
    if isinstance(t, mi.AnyType):
        return _ANY
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.IntType):
        return _integers(t)
    if isinstance(t, mi.FloatType):
        return _floats(t)
    if isinstance(t, mi.StrType):
        return _strings(t)
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.EnumType):
        return st.sampled_from([member.value for member in t.cls])
    if isinstance(t, mi.DateTimeType):
        zone = (
            st.just(datetime.UTC)
            if t.tz
            else st.none()
            if t.tz is False
            else st.sampled_from([None, datetime.UTC])
        )
        return st.datetimes(timezones=zone).map(lambda v: msgspec.to_builtins(v))
    if isinstance(t, mi.DateType):
        return st.dates().map(lambda v: v.isoformat())
    if isinstance(t, mi.UUIDType):
        return st.uuids().map(str)
    if isinstance(t, mi.DecimalType):
        return st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str)
    if isinstance(t, mi.ListType | mi.VarTupleType):
        return _sized(_data(t.item_type, depth + 1), t, depth)
    if isinstance(t, mi.SetType | mi.FrozenSetType):
        return _sized(_data(t.item_type, depth + 1), t, depth, unique=True)
    if isinstance(t, mi.TupleType):
        return st.tuples(*(_data(item, depth + 1) for item in t.item_types)).map(list)
    if isinstance(t, mi.DictType):
        low = t.min_length or 0
        high = low if depth >= _RECURSION_LIMIT else low + _MAX_ITEMS
        if t.max_length is not None:
            high = min(high, t.max_length)
        return st.dictionaries(
            _key_strategy(t.key_type), _data(t.value_type, depth + 1), min_size=low, max_size=high
        )
    if isinstance(t, mi.StructType):
        return _struct(t, depth)
    if isinstance(t, mi.DataclassType | mi.TypedDictType):
        return _fields(t.fields, depth)
    if isinstance(t, mi.NamedTupleType):
        return st.tuples(*(_data(f.type, depth + 1) for f in t.fields)).map(list)
    if isinstance(t, mi.UnionType):
        members = list(t.types)
        if depth >= _RECURSION_LIMIT and any(isinstance(m, mi.NoneType) for m in members):
            return st.none()
        return st.one_of(*(_data(member, depth) for member in members))
    raise TypeError(
        f"no details strategy for {t!r}: use YAML-representable types (str, int, float, "
        "bool, lists, string-keyed mappings, Structs, dataclasses, enums, literals)"
    )


def _struct(t: mi.StructType, depth: int) -> SearchStrategy[Any]:
    if t.array_like:
        return st.tuples(*(_data(f.type, depth + 1) for f in t.fields)).map(list)
    mapping = _fields(t.fields, depth)
    if t.tag_field is not None:
        tag_field, tag = t.tag_field, t.tag
        mapping = mapping.map(lambda data: {tag_field: tag, **data})
    return mapping


def details_data(model: Any) -> SearchStrategy[Any]:
    """Plain data (mappings, lists, scalars) that converts to `model`.

    Keys are the model's encoded names (a `rename="camel"` Struct gets
    `scanIntervalSeconds`); data the model's own checks (`__post_init__`)
    refuse is skipped.
    """
    base = _data(mi.type_info(model))

    def accepted(data: Any) -> bool:
        try:
            msgspec.convert(data, type=model, strict=True)
        except (msgspec.ValidationError, ValueError, TypeError):
            return False
        return True

    return base.filter(accepted)


def details_values(model: Any) -> SearchStrategy[Any]:
    """Values of a handler's details model (msgspec Struct, dataclass, TypedDict, ...)."""
    return details_data(model).map(lambda data: msgspec.convert(data, type=model, strict=True))


class _Dumper(yaml.SafeDumper):
    """Quotes every string that a YAML 1.1 *or* 1.2 reader would take for another type.

    PyYAML decides quoting with YAML 1.1 rules, where `0o17` is a string; our
    loader (and serde_yaml) read it as 15.
    """


# YAML 1.1 line breaks (PyYAML and libyaml read them so): in a single-quoted or
# plain scalar they fold into spaces, so only double quotes (`\N`, `\L`, `\P`) keep them.
_BREAKS = ("\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(ch in value for ch in _BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.yaml_implicit_resolvers = {
    first: list(yaml.SafeDumper.yaml_implicit_resolvers.get(first, []))
    + _yaml12_resolvers().get(first, [])
    for first in {*yaml.SafeDumper.yaml_implicit_resolvers, *_yaml12_resolvers()}
}


def _plain(value: Any) -> Any:
    """Plain data for rendering: model instances encoded with their renames."""
    return msgspec.to_builtins(value)


def render_details(value: Any, format: DetailsFormat = "yaml") -> str:
    """A details value (a model instance or plain data) as Configuration text.

    `yaml` is block style, as people write it; `flow` is YAML flow style
    (`{descriptions: [a, b]}`); `json` is JSON (which is also YAML), ASCII only.
    """
    data = _plain(value)
    if format == "json":
        text = json.dumps(data, ensure_ascii=True, allow_nan=False)
        # JSON leaves DEL raw, which YAML readers refuse as non-printable.
        return text.replace("\x7f", "\\u007f")
    if format not in ("yaml", "flow"):
        raise ValueError(f"format must be yaml, flow or json, got {format!r}")
    return yaml.dump(
        data,
        Dumper=_Dumper,
        default_flow_style=format == "flow",
        allow_unicode=True,
        sort_keys=False,
        width=80,
    )


def details_for(
    model: Any, *, formats: tuple[DetailsFormat, ...] = ("yaml", "flow", "json")
) -> SearchStrategy[str]:
    """Valid `discoveryDetails` text for `model`, in one of `formats`.

    Every text decodes with `decode_details(text, model)`; draw from
    `details_values(model)` and `render_details` to also know the value.
    """
    return _rendered(details_data(model), formats)


def _rendered(
    data: SearchStrategy[Any], formats: tuple[DetailsFormat, ...] = _FORMATS
) -> SearchStrategy[str]:
    return st.builds(render_details, data, st.sampled_from(formats))


# --- hostile details ---------------------------------------------------------------

_NOT_YAML = [
    "descriptions: [unclosed",
    "descriptions: {a: 1",
    "key: : value",
    "a:\n\t- tab indented",
    "- a\nb: c",
    "'unterminated",
    '"unterminated',
    "@reserved",
    "`reserved",
    "a: 1\n---\nb: 2",
    "%YAML 9.9\n---\na: 1",
    "!!python/object:os.system ls",
    "a: !!binary AAAA",
    "a: &x 1\nb: *undefined",
    "{a: 1, a: 2}",
    "a: 1\na: 2",
    "[1, 2]]",
    "\x00",
    "a: \x07",
]

_EMPTY = ["", " ", "\n", "\t\n", "# only a comment", "~", "null", "---", "---\n...\n"]


def _alias_bomb(levels: int, width: int) -> str:
    """`a: &a [x, x, ...]`, each level `width` aliases of the last: width**levels nodes."""
    names = [f"l{i}" for i in range(levels + 1)]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(["x"] * width) + "]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _alias_bombs() -> SearchStrategy[str]:
    # Each expands to more than DEFAULT_MAX_YAML_NODES, yet is a few hundred bytes.
    return st.tuples(st.integers(2, 8), st.integers(2, 12)).filter(
        lambda p: p[1] ** p[0] > DEFAULT_MAX_YAML_NODES
    ).map(lambda p: _alias_bomb(*p)) | st.just("a: &a [*a]")


def _deeply_nested() -> SearchStrategy[str]:
    depth = st.integers(_MAX_DEPTH + 1, _MAX_DEPTH + 200)
    return st.one_of(
        depth.map(lambda n: "[" * n + "]" * n),
        depth.map(lambda n: "{a: " * n + "1" + "}" * n),
        depth.map(lambda n: "".join(f"{'  ' * i}k:\n" for i in range(n)) + "  " * n + "v\n"),
        depth.map(lambda n: "- " * n + "x"),
    )


def _huge() -> SearchStrategy[str]:
    # Just over the size limit: enough to be refused, small enough to be fast.
    extra = st.integers(1, 64 * 1024)
    return st.one_of(
        extra.map(lambda n: "descriptions: [" + "x" * (DEFAULT_MAX_DETAILS_BYTES + n) + "]"),
        extra.map(lambda n: "# " + "é" * ((DEFAULT_MAX_DETAILS_BYTES + n) // 2)),
    )


def _not_a_mapping() -> SearchStrategy[str]:
    """Top-level scalars and lists: wrong for any model that is a mapping."""
    scalar = st.one_of(
        st.integers(*_INT64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.text(_TEXT, min_size=1, max_size=_MAX_TEXT),
    )
    value = st.one_of(scalar, st.lists(scalar, max_size=3))
    return _rendered(value)


def _kinds(t: mi.Type) -> set[str]:
    """What kinds of YAML value a type accepts: 'str', 'int', ..., or 'any'."""
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        return set().union(*(_kinds(member) for member in t.types))
    if isinstance(t, mi.AnyType | mi.CustomType):
        return {"any"}
    if isinstance(t, mi.NoneType):
        return {"null"}
    if isinstance(t, mi.BoolType):
        return {"bool"}
    if isinstance(t, mi.IntType):
        return {"int"}
    if isinstance(t, mi.FloatType):
        return {"int", "float"}
    if isinstance(t, mi.StrType | mi.DateTimeType | mi.DateType | mi.UUIDType | mi.DecimalType):
        return {"str"}
    if isinstance(t, mi.LiteralType | mi.EnumType):
        values = t.values if isinstance(t, mi.LiteralType) else [m.value for m in t.cls]
        return {"int" if isinstance(v, int) else "str" for v in values}
    if (
        isinstance(t, mi.ListType | mi.VarTupleType | mi.TupleType | mi.SetType | mi.FrozenSetType)
        or (isinstance(t, mi.StructType) and t.array_like)
        or isinstance(t, mi.NamedTupleType)
    ):
        return {"list"}
    if isinstance(t, mi.DictType | mi.StructType | mi.DataclassType | mi.TypedDictType):
        return {"map"}
    return {"any"}


_BY_KIND: dict[str, SearchStrategy[Any]] = {
    "null": st.none(),
    "bool": st.booleans(),
    "int": st.integers(-1000, 1000),
    "float": st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    "str": st.text(_TEXT, max_size=_MAX_TEXT),
    "list": st.lists(st.integers(), max_size=2),
    "map": st.dictionaries(st.sampled_from(["x", "y"]), st.integers(), max_size=2),
}


def _wrong_types(model: Any) -> SearchStrategy[str] | None:
    """A mapping that gives one of the model's keys a value of a kind it does not take."""
    t = mi.type_info(model)
    while isinstance(t, mi.Metadata):
        t = t.type
    if not isinstance(t, mi.StructType | mi.DataclassType | mi.TypedDictType) or (
        isinstance(t, mi.StructType) and t.array_like
    ):
        return None
    choices: list[SearchStrategy[dict[str, Any]]] = []
    for field in t.fields:
        accepted = _kinds(field.type)
        if "any" in accepted:
            continue
        wrong = [s for kind, s in _BY_KIND.items() if kind not in accepted]
        choices.append(st.dictionaries(st.just(field.encode_name), st.one_of(wrong), min_size=1))
    if not choices:
        return None
    return _rendered(st.one_of(choices))


def hostile_details(model: Any = None) -> SearchStrategy[str]:
    """`discoveryDetails` text a handler must refuse (INVALID_ARGUMENT), quickly.

    Not YAML, empty, several documents, nested past the depth limit, alias
    bombs, just over the size limit, a scalar or list where a mapping belongs;
    with `model`, also a mapping that gives one of its keys a value of the wrong
    type. `decode_details` refuses all of them for a mapping model with a
    required key (such as debugEcho's).
    """
    parts = [
        st.sampled_from(_NOT_YAML),
        st.sampled_from(_EMPTY),
        _deeply_nested(),
        _alias_bombs(),
        _huge(),
        _not_a_mapping(),
    ]
    if model is not None:
        wrong = _wrong_types(model)
        if wrong is not None:
            parts.append(wrong)
    return st.one_of(parts)


# --- filters -----------------------------------------------------------------------


def _patterns(match: str) -> SearchStrategy[str]:
    word = st.text(_TEXT, max_size=12)
    if match == "exact":
        return word
    if match == "glob":
        piece = st.one_of(
            st.text(st.characters(codec="utf-8", exclude_characters="*?[]"), max_size=6),
            st.sampled_from(["*", "?", "[0-9]", "[!a]"]),
        )
        return st.lists(piece, max_size=4).map("".join)
    piece = st.one_of(
        st.text(_TEXT, max_size=6).map(re.escape),
        st.sampled_from([".*", ".", "[0-9]+", "(a|b)", "\\d", "x?"]),
    )
    return st.lists(piece, max_size=4).map("".join).filter(lambda p: len(p) <= MAX_PATTERN_LENGTH)


def filter_lists(
    *,
    match: MatchMode | None = None,
    max_items: int = 4,
) -> SearchStrategy[FilterList]:
    """Valid `FilterList`s: Include or Exclude, exact (Akri's) or our glob and regex."""
    modes: list[MatchMode] = ["exact", "glob", "regex"]
    matches = st.just(match) if match is not None else st.sampled_from(modes)

    @st.composite
    def build(draw: st.DrawFn) -> FilterList:
        mode = draw(matches)
        items = draw(st.lists(_patterns(mode), max_size=max_items))
        action = draw(st.sampled_from(list(FilterAction)))
        return FilterList(items=items, action=action, match=mode)

    return build()
