"""Decode a Configuration's `discoveryDetails` into a handler's typed model.

The Agent copies `spec.discoveryHandler.discoveryDetails` verbatim, and Rust
handlers read it with serde_yaml, so we accept YAML (and JSON, which is YAML) and
resolve plain scalars the way serde_yaml 0.9 does: YAML 1.2 core schema, where
`yes`, `on` and `2001-01-01` stay strings. The text comes from whoever may create
Configurations, so it is bounded: a size limit, a node limit after alias expansion
(alias bombs), a depth limit. Every failure is a `DetailsError` whose text is what
the operator reads in `kubectl describe` (spec §3.3): it names the key, what was
expected and what came.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Hashable
from typing import Any, ClassVar, TypeVar, overload

import msgspec
import msgspec.inspect as mi
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "DEFAULT_MAX_DETAILS_BYTES",
    "DEFAULT_MAX_YAML_NODES",
    "DetailsError",
    "check_details_size",
    "decode_details",
    "details_schema",
    "load_yaml",
]

T = TypeVar("T")

DEFAULT_MAX_DETAILS_BYTES = 256 * 1024
DEFAULT_MAX_YAML_NODES = 100_000
# serde_yaml's recursion limit; also keeps PyYAML's recursive composer and
# msgspec well inside Python's stack.
_MAX_DEPTH = 128
_EXCERPT_CHARS = 60


class DetailsError(ValueError):
    """Bad discoveryDetails/discoveryProperties.

    `str(err)` is the message the SDK sends with gRPC INVALID_ARGUMENT, so it must
    be self-explanatory for a cluster operator reading `kubectl describe`.
    """

    path: str | None

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


# --- YAML 1.2 core schema, as serde_yaml 0.9 applies it ---------------------------

_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"

_NULL = re.compile(r"(?:~|null|Null|NULL|)\Z")
_BOOL = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
# The core schema's int is `[-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+`. serde_yaml
# also takes `0b`, a sign before a radix prefix, and keeps `0755` (leading zero,
# digits only) a string, as the JSON schema does; we follow serde_yaml.
_INT = re.compile(r"[-+]?(?:0x[0-9a-fA-F]+|0o[0-7]+|0b[01]+|0|[1-9][0-9]*)\Z")
# The core float, minus digits-only text (an int above, or a leading-zero string).
_FLOAT = re.compile(
    r"""[-+]?(?:
        \.[0-9]+(?:[eE][-+]?[0-9]+)?
      | [0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?
      | [0-9]+[eE][-+]?[0-9]+
      | \.(?:inf|Inf|INF)
    )\Z
    | \.(?:nan|NaN|NAN)\Z""",
    re.VERBOSE,
)
_DECIMAL = re.compile(r"[-+]?[0-9]+\Z")
_TRUE = frozenset({"true", "True", "TRUE"})
_INT_MAX = 1 << 128  # serde_yaml reads integers as u128 at most ...
_INT_MIN = -(1 << 127)  # ... and i128 at least; beyond that, a float or a string.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _core_schema_resolvers() -> dict[str | None, list[tuple[str, re.Pattern[str]]]]:
    """A fresh implicit-resolver table, so SafeLoader's YAML 1.1 table stays untouched."""
    table: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}
    for tag, regexp, first in (
        (_NULL_TAG, _NULL, ["~", "n", "N", ""]),
        (_BOOL_TAG, _BOOL, list("tTfF")),
        (_INT_TAG, _INT, list("-+0123456789")),
        (_FLOAT_TAG, _FLOAT, list("-+.0123456789")),
    ):
        for char in first:
            table.setdefault(char, []).append((tag, regexp))
    return table


def _too_many_nodes(max_nodes: int) -> DetailsError:
    return DetailsError(
        f"discoveryDetails holds more than {max_nodes} values once YAML aliases are "
        "expanded; the limit protects the handler from alias bombs"
    )


def _mark_text(mark: yaml.Mark | None) -> str:
    return "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"


class _DetailsLoader(yaml.SafeLoader):
    """SafeLoader (pure Python, so composing can be hooked) with YAML 1.2 scalars.

    Also: no `<<` merge keys (serde_yaml has none), duplicate keys refused
    (serde refuses duplicate fields), anchors may be redefined (YAML 1.2), only
    the core tags, and a depth limit while composing.
    """

    yaml_implicit_resolvers = _core_schema_resolvers()

    def __init__(self, text: str, max_nodes: int) -> None:
        super().__init__(text)
        self._depth = 0
        self._nodes = 0
        self._max_nodes = max_nodes

    # PyYAML scans every open flow level's possible simple key on every token,
    # so deep flow nesting costs O(depth) per token (a 1 MiB document of
    # 120-deep `[[[...]]]` took 27 s). Keys are inserted oldest first and go
    # stale oldest first, so looking at the oldest ones is enough.

    def next_possible_simple_key(self) -> int | None:
        for key in self.possible_simple_keys.values():
            return int(key.token_number)
        return None

    def stale_possible_simple_keys(self) -> None:
        keys = self.possible_simple_keys
        while keys:
            level = next(iter(keys))
            key = keys[level]
            if key.line == self.line and self.index - key.index <= 1024:
                return
            if key.required:
                raise yaml.scanner.ScannerError(
                    "while scanning a simple key",
                    key.mark,
                    "could not find expected ':'",
                    self.get_mark(),
                )
            del keys[level]

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        if self._depth >= _MAX_DEPTH:
            where = _mark_text(event.start_mark)
            raise DetailsError(f"discoveryDetails nests deeper than {_MAX_DEPTH} levels{where}")
        if not isinstance(event, yaml.AliasEvent):
            # Too many nodes even before aliases are expanded: stop parsing now.
            self._nodes += 1
            if self._nodes > self._max_nodes:
                raise _too_many_nodes(self._max_nodes)
            anchor = event.anchor
            if anchor is not None:
                self.anchors.pop(anchor, None)  # YAML 1.2 lets a later anchor replace one
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_scalar(self, node: ScalarNode | MappingNode) -> str:
        value = super().construct_scalar(node)
        if _SURROGATE.search(value) is None:
            return value
        # PyYAML decodes a JSON-style `\ud83d\ude00` escape pair into two
        # surrogates; join them, and refuse a lone one (it cannot be encoded).
        try:
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unpaired UTF-16 surrogate escape", node.start_mark
            ) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if not isinstance(node, MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {node.id}", node.start_mark
            )
        mapping: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    None, None, "found a list or mapping used as a key", key_node.start_mark
                )
            if key in mapping:
                raise yaml.constructor.ConstructorError(
                    None, None, f"found duplicate key {_excerpt(key)}", key_node.start_mark
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_core_bool(self, node: ScalarNode) -> bool:
        text = self.construct_scalar(node)
        if _BOOL.match(text) is None:
            raise yaml.constructor.ConstructorError(
                None, None, f"{_excerpt(text)} is not a boolean", node.start_mark
            )
        return text in _TRUE

    def construct_core_int(self, node: ScalarNode) -> int | float | str:
        text = self.construct_scalar(node)
        if _INT.match(text) is None:
            raise yaml.constructor.ConstructorError(
                None, None, f"{_excerpt(text)} is not an integer", node.start_mark
            )
        try:
            value: int | None = int(text, 0)
        except ValueError:  # more decimal digits than Python converts
            value = None
        if value is not None and _INT_MIN <= value < _INT_MAX:
            return value
        if text.lstrip("+-")[:2] in ("0x", "0o", "0b"):
            return text
        number = float(text)
        return number if math.isfinite(number) else text

    def construct_core_float(self, node: ScalarNode) -> float | str:
        text = self.construct_scalar(node)
        if _FLOAT.match(text) is None and _DECIMAL.match(text) is None:  # `!!float 5` is fine
            raise yaml.constructor.ConstructorError(
                None, None, f"{_excerpt(text)} is not a number", node.start_mark
            )
        if text.lstrip("+-").startswith((".i", ".I", ".n", ".N")):
            return float(text.replace(".", "", 1))  # `-.inf` -> float("-inf")
        number = float(text)
        # serde_yaml keeps a float that overflows (`1e400`) as a string.
        return number if math.isfinite(number) else text

    def construct_unsupported(self, node: Node) -> Any:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise yaml.constructor.ConstructorError(
            None, None, f"found unsupported tag {tag}", node.start_mark
        )

    yaml_constructors: ClassVar[dict[str | None, Any]] = {
        _NULL_TAG: yaml.SafeLoader.construct_yaml_null,
        _BOOL_TAG: construct_core_bool,
        _INT_TAG: construct_core_int,
        _FLOAT_TAG: construct_core_float,
        _STR_TAG: yaml.SafeLoader.construct_yaml_str,
        _SEQ_TAG: yaml.SafeLoader.construct_yaml_seq,
        _MAP_TAG: yaml.SafeLoader.construct_yaml_map,
        None: construct_unsupported,
    }


# --- loading ---------------------------------------------------------------------


def _size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} bytes"


def check_details_size(text: str, max_bytes: int) -> None:
    if len(text) * 4 <= max_bytes:  # no UTF-8 character is longer than 4 bytes
        return
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= max_bytes:
        return
    actual, limit = _size_text(size), _size_text(max_bytes)
    if actual == limit:
        actual, limit = f"{size} bytes", f"{max_bytes} bytes"
    raise DetailsError(f"discoveryDetails is {actual}; the limit is {limit}")


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_expansion(root: Node, max_nodes: int) -> None:
    """Refuse alias bombs and cycles before any Python object is built.

    Counts the nodes of the tree that aliases expand to, memoised per node, so
    the check is linear in the composed graph even when the expansion is not.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, height)
    open_nodes: set[int] = set()  # nodes whose subtree is being walked: ancestors
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            count, height = 1, 1
            for child in _children(node):
                child_count, child_height = sizes[id(child)]
                count += child_count
                height = max(height, child_height + 1)
            if count > max_nodes:
                raise _too_many_nodes(max_nodes)
            if height > _MAX_DEPTH:
                raise DetailsError(
                    f"discoveryDetails nests deeper than {_MAX_DEPTH} levels once YAML "
                    "aliases are expanded"
                )
            sizes[key] = (count, height)
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise DetailsError(
                    "discoveryDetails has a recursive YAML alias: the node"
                    f"{_mark_text(child.start_mark)} contains an alias to itself"
                )
            if id(child) not in sizes:
                stack.append((child, False))


def _line_at(text: str, index: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _yaml_error(err: yaml.YAMLError, text: str) -> DetailsError:
    if isinstance(err, yaml.reader.ReaderError):
        line, column = _line_at(text, err.position)
        char = err.character
        code = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        return DetailsError(
            f"discoveryDetails is not valid YAML: character {code} at line {line}, "
            f"column {column} is not allowed (YAML forbids most control characters)"
        )
    if isinstance(err, yaml.MarkedYAMLError):
        problem, mark = err.problem, err.problem_mark
        if problem is None:
            problem, mark = err.context, err.context_mark
        message = f"discoveryDetails is not valid YAML: {problem}{_mark_text(mark)}"
        if err.problem is not None and err.context is not None:
            message += f" ({err.context}{_mark_text(err.context_mark)})"
        if mark is not None:
            lines = text.splitlines()
            if mark.line < len(lines) and lines[mark.line].strip():
                message += f"; the line reads {_excerpt(lines[mark.line].strip())}"
        return DetailsError(message)
    return DetailsError(f"discoveryDetails is not valid YAML: {err}")


def load_yaml(
    text: str,
    *,
    max_bytes: int = DEFAULT_MAX_DETAILS_BYTES,
    max_nodes: int = DEFAULT_MAX_YAML_NODES,
) -> object:
    """Parse one YAML document with YAML 1.2 scalars; None for an empty text.

    Raises DetailsError for oversized text, syntax errors, several documents,
    alias bombs, recursive aliases and excessive nesting.
    """
    check_details_size(text, max_bytes)
    if not text.strip(" \t\r\n\ufeff"):
        return None  # PyYAML, like libyaml, trips over a tab on an otherwise blank line
    try:
        loader = _DetailsLoader(text, max_nodes)
    except yaml.YAMLError as err:
        raise _yaml_error(err, text) from None
    try:
        loader.get_event()  # type: ignore[no-untyped-call]  # StreamStart
        if loader.check_event(yaml.StreamEndEvent):
            return None
        node = loader.compose_document()
        if not loader.check_event(yaml.StreamEndEvent):
            second = loader.get_event()  # type: ignore[no-untyped-call]
            raise DetailsError(
                "discoveryDetails holds more than one YAML document (another starts"
                f"{_mark_text(second.start_mark)}); expected exactly one"
            )
        if node is None:
            return None
        _check_expansion(node, max_nodes)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise _yaml_error(err, text) from None
    except RecursionError:
        raise DetailsError(f"discoveryDetails nests too deeply (limit {_MAX_DEPTH})") from None
    finally:
        loader.dispose()


# --- converting to the model -------------------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = _EXCERPT_CHARS
_repr.maxother = _EXCERPT_CHARS
_repr.maxlevel = 2
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 4


def _excerpt(value: object) -> str:
    """A short repr: enough to recognise the value in the Configuration."""
    text = _repr.repr(value)
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 3] + "..."


# msgspec's names for what it expected and got, in words YAML writers use.
_TYPE_WORDS = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "null": "null",
    "array": "list",
    "object": "mapping",
}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    for cls, word in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, cls):
            return word
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _words(msgspec_types: str) -> str:
    """`array | null` -> `list or null`."""
    names = [name.strip() for name in msgspec_types.split("|")]
    return " or ".join(_TYPE_WORDS.get(name, name) for name in names)


_VALIDATION = re.compile(
    r"(?P<body>.*?)(?: - at `(?P<where>[^`]*)`(?: in `(?P<container>[^`]*)`)?)?", re.DOTALL
)
_EXPECTED = re.compile(
    r"Expected `(?P<types>[^`]*)`(?P<rest>.*?)(?:, got (?:`(?P<got>[^`]*)`|\S+))?", re.DOTALL
)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]*)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]*)`")
_ENUM = re.compile(r"Invalid enum value (?P<value>.*)", re.DOTALL)
_SEGMENT = re.compile(r"\.(?P<key>[^.\[]+)|\[(?P<index>[0-9]+)\]|(?P<any>\[\.\.\.\])")

_Segment = tuple[str, str | int | None]  # ("key", name) | ("index", n) | ("any", None)


def _segments(path: str) -> list[_Segment] | None:
    """msgspec's `$.a[0].b` as segments; `[...]` is some value of a mapping."""
    if not path.startswith("$"):
        return None
    segments: list[_Segment] = []
    position = 1
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None:
            return None
        if match["key"] is not None:
            segments.append(("key", match["key"]))
        elif match["index"] is not None:
            segments.append(("index", int(match["index"])))
        else:
            segments.append(("any", None))
        position = match.end()
    return segments


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _key_path(key: object) -> str:
    """A mapping key as a path segment: `.name`, or `['odd key']` / `[5]`."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f".{key}"
    return f"[{_excerpt(key)}]"


def _candidates(data: object, segments: list[_Segment]) -> list[tuple[str, object]]:
    """The values a msgspec path may point at, with their concrete paths."""
    found: list[tuple[str, object]] = [("$", data)]
    for kind, arg in segments:
        following: list[tuple[str, object]] = []
        for path, value in found:
            if kind == "key" and isinstance(value, dict) and arg in value:
                following.append((f"{path}.{arg}", value[arg]))
            elif kind == "index" and isinstance(value, list) and isinstance(arg, int):
                if arg < len(value):
                    following.append((f"{path}[{arg}]", value[arg]))
            elif kind == "any" and isinstance(value, dict):
                following.extend((path + _key_path(k), v) for k, v in value.items())
        found = following
    return found


def _type_at(model: Any, segments: list[_Segment]) -> mi.Type | None:
    """The msgspec type a path leads to in the model, when it can be told."""
    try:
        current: mi.Type = mi.type_info(model)
    except Exception:  # an unusual model: do without
        return None
    for kind, arg in segments:
        following: mi.Type | None = None
        for member in _members(current):
            if kind == "key" and isinstance(
                member, (mi.StructType, mi.DataclassType, mi.TypedDictType)
            ):
                for field in member.fields:
                    if field.encode_name == arg:
                        following = field.type
            elif kind == "any" and isinstance(member, mi.DictType):
                following = member.value_type
            elif kind == "index" and isinstance(
                member, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)
            ):
                following = member.item_type
            if following is not None:
                break
        if following is None:
            return None
        current = following
    return current


def _members(t: mi.Type) -> list[mi.Type]:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        return [m for member in t.types for m in _members(member)]
    return [t]


def _choices(t: mi.Type) -> list[object]:
    values: list[object] = []
    for member in _members(t):
        if isinstance(member, mi.LiteralType):
            values.extend(member.values)
        elif isinstance(member, mi.EnumType):
            values.extend(item.value for item in member.cls)
    return values


def _describe(t: mi.Type) -> str:
    """What a model expects, in a phrase: `a mapping with keys: a (required), b`."""
    phrases: list[str] = []
    for member in _members(t):
        if isinstance(member, (mi.StructType, mi.DataclassType, mi.TypedDictType)):
            keys = [f.encode_name + (" (required)" if f.required else "") for f in member.fields]
            phrases.append("a mapping with keys: " + ", ".join(keys) if keys else "a mapping")
        elif isinstance(member, (mi.DictType, mi.FrozenDictType)):
            phrases.append("a mapping")
        elif isinstance(member, (mi.ListType, mi.VarTupleType, mi.TupleType, mi.SetType)):
            phrases.append("a list")
        elif isinstance(member, mi.StrType):
            phrases.append("a string")
        elif isinstance(member, mi.IntType):
            phrases.append("an integer")
        elif isinstance(member, mi.FloatType):
            phrases.append("a number")
        elif isinstance(member, mi.BoolType):
            phrases.append("a boolean")
        elif isinstance(member, (mi.LiteralType, mi.EnumType)):
            phrases.append("one of " + ", ".join(_excerpt(v) for v in _choices(member)))
        else:
            phrases.append(f"a value of type {type(member).__name__.removesuffix('Type')}")
    return " or ".join(dict.fromkeys(phrases))


def _pick(
    candidates: list[tuple[str, object]], accept: Callable[[object], bool] | None = None
) -> tuple[str, object] | tuple[None, None]:
    """The candidate an error is about: the only one, or the first `accept` takes.

    msgspec checks mapping values in order and stops at the first bad one, so
    the first candidate that fits the error is the one it means.
    """
    if accept is not None:
        for candidate in candidates:
            if accept(candidate[1]):
                return candidate
    if len(candidates) == 1:
        return candidates[0]
    return None, None


def _validation_error(err: msgspec.ValidationError, data: object, model: Any) -> DetailsError:
    """Reword msgspec's message for an operator, showing the value that came."""
    whole = _VALIDATION.fullmatch(str(err))
    assert whole is not None  # the pattern matches any text
    body, where = whole["body"], whole["where"] or "$"
    if whole["container"] is not None and where == "key":
        return _key_error(body, whole["container"], data)
    segments = _segments(where)
    candidates = _candidates(data, segments) if segments is not None else []

    if (missing := _MISSING.fullmatch(body)) is not None:
        field = missing["field"]
        path, _ = _pick(candidates, lambda v: isinstance(v, dict) and field not in v)
        shown = path or where
        return DetailsError(
            f"discoveryDetails: missing required key `{field}` at {shown}", path=shown
        )

    if (unknown := _UNKNOWN.fullmatch(body)) is not None:  # forbid_unknown_fields=True
        path, _ = _pick(candidates)
        shown = path or where
        return DetailsError(
            f"discoveryDetails: unknown key `{unknown['field']}` at {shown}", path=shown
        )

    if (expected := _EXPECTED.fullmatch(body)) is not None:
        wanted = _words(expected["types"]) + expected["rest"]
        got = _TYPE_WORDS.get(expected["got"] or "")
        path, value = _pick(candidates, (lambda v: _kind(v) == got) if got else None)
        fallback = f", got {got}" if got else ""
    elif (enum := _ENUM.fullmatch(body)) is not None:
        target = _type_at(model, segments) if segments is not None else None
        choices = _choices(target) if target is not None else []
        wanted = "one of " + ", ".join(map(_excerpt, choices)) if choices else "a valid value"
        path, value = _pick(candidates, lambda v: _excerpt(v) == enum["value"])
        fallback = f", got {enum['value']}"
    else:
        # A model's own check (__post_init__), or a constraint msgspec words itself.
        path, _ = _pick(candidates)
        shown = path or where
        return DetailsError(f"discoveryDetails: invalid value at {shown}: {body}", path=shown)

    shown = path or where
    got_text = f", got {_kind(value)} {_excerpt(value)}" if path is not None else fallback
    return DetailsError(f"discoveryDetails: expected {wanted} at {shown}{got_text}", path=shown)


def _key_error(body: str, container: str, data: object) -> DetailsError:
    """A mapping key of the wrong type: msgspec says `... - at `key` in `$.m``."""
    expected = _EXPECTED.fullmatch(body)
    wanted = _words(expected["types"]) + expected["rest"] if expected else "a different key"
    got = _TYPE_WORDS.get(expected["got"] or "") if expected else None
    segments = _segments(container)
    path, mapping = _pick(_candidates(data, segments)) if segments is not None else (None, None)
    shown = path or container
    message = f"discoveryDetails: expected {wanted} as a key at {shown}"
    if isinstance(mapping, dict):
        bad = [key for key in mapping if (_kind(key) == got if got else not isinstance(key, str))]
        if bad:
            message += f", got {_kind(bad[0])} {_excerpt(bad[0])}"
    return DetailsError(message, path=shown)


def _empty_error(model: Any) -> DetailsError:
    try:
        wanted = _describe(mi.type_info(model))
    except Exception:  # an unusual model: do without
        wanted = "a value"
    return DetailsError(f"discoveryDetails is empty; expected {wanted}", path="$")


@overload
def decode_details(
    text: str, model: type[T], *, max_bytes: int = ..., max_nodes: int = ...
) -> T: ...
@overload
def decode_details(text: str, model: Any, *, max_bytes: int = ..., max_nodes: int = ...) -> Any: ...
def decode_details(
    text: str,
    model: Any,
    *,
    max_bytes: int = DEFAULT_MAX_DETAILS_BYTES,
    max_nodes: int = DEFAULT_MAX_YAML_NODES,
) -> Any:
    """Parse `discoveryDetails` and convert it to `model`; raises only DetailsError.

    Types are strict, as serde is in Rust handlers (`"5"` is not an integer);
    unknown keys are ignored, as no Akri handler denies them. Empty text or a bare
    `null` is refused unless the model accepts None.
    """
    try:
        data = load_yaml(text, max_bytes=max_bytes, max_nodes=max_nodes)
    except DetailsError:
        raise
    except Exception as err:  # a parser bug must still reach the operator as a bad request
        raise DetailsError(
            f"discoveryDetails could not be parsed: {type(err).__name__}: {err}"
        ) from err
    try:
        return msgspec.convert(data, type=model, strict=True)
    except msgspec.ValidationError as err:
        if data is None:
            raise _empty_error(model) from None
        try:
            reworded = _validation_error(err, data, model)
        except Exception:  # rewording is a courtesy; msgspec's own text still names the path
            reworded = DetailsError(f"discoveryDetails: {err}")
        raise reworded from None
    except RecursionError:
        raise DetailsError(f"discoveryDetails nests too deeply (limit {_MAX_DEPTH})") from None
    except Exception as err:  # a bug in the handler's model, not in the Configuration
        raise DetailsError(
            "discoveryDetails could not be checked: the handler's details model raised "
            f"{type(err).__name__}: {err}"
        ) from err


def details_schema(model: Any) -> dict[str, Any]:
    """The JSON Schema of a details model, for `akri-dh schema NAME` and editors."""
    return msgspec.json.schema(model)
