"""Read Akri Configuration, Secret and ConfigMap manifests from local YAML files.

Validation follows what the cluster would enforce: the Configuration CRD and the
Agent's Rust types (spec §6.1: property names, exactly one of value/valueFrom,
exactly one key reference, `name` and `key` required, `capacity` an i32) and the
API server's rules for Secrets and ConfigMaps (key names, base64, no key in both
`data` and `binaryData`). A mistake is cheaper to see here than after
`kubectl apply`. Every problem is reported with its file and document, and all
problems of a run at once; `ManifestError` is the only exception that leaves.

Input is bounded: a size limit per file and a nesting limit per document.
Aliases are allowed (Kubernetes accepts them) and harmless here, because nothing
walks a document beyond the fields it validates, and messages never echo values.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from akri_sdk.local_agent.model import (
    DEFAULT_NAMESPACE,
    ConfigMapObject,
    Configuration,
    DiscoveryProperty,
    KeyRef,
    Manifests,
    Origin,
    RefKind,
    SecretObject,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "ManifestError",
    "load_manifests",
    "manifest_files",
    "parse_manifests",
]

MAX_FILE_BYTES = 8 * 1024 * 1024  # several objects at the API server's ~1.5 MB each
MAX_DEPTH = 64  # a brokerPodSpec nests about 15 deep
SUFFIXES = (".yaml", ".yml", ".json")

AKRI_API_VERSION = "akri.sh/v0"
_PROPERTY_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")  # the CRD's pattern (spec §3.2)
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_NAMESPACE = re.compile(_DNS_LABEL)
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]+")  # Secret and ConfigMap keys
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1


class ManifestError(ValueError):
    """Manifests that the cluster would refuse, or that cannot be read.

    `problems` holds one line per problem, each starting with file and document.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class _Invalid(Exception):
    """One problem at a field path inside a document."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)


# --- YAML ------------------------------------------------------------------------


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader with a nesting limit and duplicate keys refused.

    The pure-Python loader, because its composer is recursive (a deep enough
    document would otherwise end in RecursionError, or in libyaml's C stack)
    and can be hooked. Duplicate keys are refused as kubectl refuses them.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, f"nesting deeper than {MAX_DEPTH} levels", mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in seen:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping",
                            node.start_mark,
                            f"found duplicate key {key_node.value[:60]!r}",
                            key_node.start_mark,
                        )
                    seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _documents(text: str) -> Iterator[object]:
    loader = _ManifestLoader(text)
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            yield loader.get_data()
    finally:
        loader.dispose()


def _yaml_problem(error: Exception) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"invalid YAML{where}: {error.problem or error.context}"
    if isinstance(error, RecursionError):
        return f"invalid YAML: nested too deeply (limit {MAX_DEPTH})"
    # A scalar that matched a YAML type but does not convert, e.g. 2001-13-01. The
    # error's text may quote the scalar, which may be a secret: leave it out.
    return "invalid YAML: a value does not convert to its type (a date such as 2001-13-01?)"


# --- field helpers ----------------------------------------------------------------


def _describe(value: object) -> str:
    """A value's YAML type, never the value itself (it may be a secret)."""
    if isinstance(value, bool):
        return "a boolean (quote it to make it a string)"
    if isinstance(value, int | float):
        return "a number (quote it to make it a string)"
    if isinstance(value, date):
        return "a date (quote it to make it a string)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bytes):
        return "binary data"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _mapping(value: object, path: str, *, nullable: bool = True) -> Mapping[Any, Any]:
    if value is None and nullable:
        return {}
    if not isinstance(value, Mapping):
        raise _Invalid(path, f"must be a mapping, got {_describe(value)}")
    return value


def _string(m: Mapping[Any, Any], key: str, path: str, default: str | None = None) -> str:
    value = m.get(key)
    if value is None:
        if default is None:
            raise _Invalid(_join(path, key), "is required")
        return default
    if not isinstance(value, str):
        raise _Invalid(_join(path, key), f"must be a string, got {_describe(value)}")
    return value


def _string_map(value: object, path: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, item in _mapping(value, path).items():
        if not isinstance(key, str):
            raise _Invalid(path, f"keys must be strings, got {_describe(key)}")
        if not isinstance(item, str):
            raise _Invalid(_join(path, key), f"must be a string, got {_describe(item)}")
        result[key] = item
    return result


def _data_keys(mapping: Mapping[str, object], path: str) -> None:
    for key in mapping:
        if (
            len(key) > 253
            or not _DATA_KEY.fullmatch(key)
            or key in (".", "..")
            or key.startswith("..")
        ):
            raise _Invalid(
                _join(path, key),
                "is not a valid key: use letters, digits, '-', '_' and '.' "
                "(at most 253, not '.', '..' or starting with '..')",
            )


def _base64_map(value: object, path: str) -> dict[str, bytes]:
    result: dict[str, bytes] = {}
    for key, text in _string_map(value, path).items():
        try:
            # Go's base64 decoder, which the API server uses, skips line breaks.
            compact = text.replace("\r", "").replace("\n", "")
            result[key] = base64.b64decode(compact.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise _Invalid(_join(path, key), "is not valid base64") from None
    return result


# --- objects ----------------------------------------------------------------------


def _metadata(document: Mapping[Any, Any]) -> tuple[str, str]:
    metadata = _mapping(document.get("metadata"), "metadata", nullable=False)
    name = _string(metadata, "name", "metadata")
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise _Invalid(
            "metadata.name",
            "must be a DNS subdomain: lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253",
        )
    namespace = _string(metadata, "namespace", "metadata", default=DEFAULT_NAMESPACE)
    if len(namespace) > 63 or not _NAMESPACE.fullmatch(namespace):
        raise _Invalid(
            "metadata.namespace",
            "must be a DNS label: lowercase letters, digits and '-', at most 63",
        )
    return name, namespace


def _key_ref(value: object, path: str, kind: RefKind) -> KeyRef:
    ref = _mapping(value, path, nullable=False)
    name = _string(ref, "name", path)
    if not name:
        raise _Invalid(_join(path, "name"), "must not be empty")
    key = _string(ref, "key", path)
    namespace = _string(ref, "namespace", path, default=DEFAULT_NAMESPACE)
    optional = ref.get("optional", False)
    if optional is None:
        optional = False
    if not isinstance(optional, bool):
        raise _Invalid(_join(path, "optional"), f"must be true or false, got {_describe(optional)}")
    return KeyRef(kind, name, key, namespace, optional)


def _property(value: object, path: str) -> DiscoveryProperty:
    entry = _mapping(value, path, nullable=False)
    name = _string(entry, "name", path)
    if not _PROPERTY_NAME.fullmatch(name):
        raise _Invalid(
            _join(path, "name"),
            f"{name[:80]!r} must match ^[_A-Za-z][_A-Za-z0-9]*$ (it becomes an "
            "environment variable name)",
        )
    has_value = entry.get("value") is not None
    has_value_from = entry.get("valueFrom") is not None
    if has_value == has_value_from:
        given = "both are given" if has_value else "neither is given"
        raise _Invalid(path, f"needs exactly one of value or valueFrom; {given}")
    if has_value:
        return DiscoveryProperty(name, value=_string(entry, "value", path))
    source_path = _join(path, "valueFrom")
    source = _mapping(entry["valueFrom"], source_path, nullable=False)
    refs = [k for k in ("secretKeyRef", "configMapKeyRef") if source.get(k) is not None]
    if len(refs) != 1:
        given = "both are given" if refs else "neither is given"
        raise _Invalid(
            source_path, f"needs exactly one of secretKeyRef or configMapKeyRef; {given}"
        )
    kind: RefKind = "Secret" if refs[0] == "secretKeyRef" else "ConfigMap"
    return DiscoveryProperty(
        name, value_from=_key_ref(source[refs[0]], _join(source_path, refs[0]), kind)
    )


def _configuration(document: Mapping[Any, Any], origin: Origin) -> Configuration:
    name, namespace = _metadata(document)
    spec = _mapping(document.get("spec"), "spec", nullable=False)
    handler_path = "spec.discoveryHandler"
    handler = _mapping(spec.get("discoveryHandler"), handler_path, nullable=False)
    handler_name = _string(handler, "name", handler_path)
    if not handler_name:
        raise _Invalid(_join(handler_path, "name"), "must not be empty")
    details = handler.get("discoveryDetails")
    if isinstance(details, Mapping | list):
        raise _Invalid(
            _join(handler_path, "discoveryDetails"),
            f"must be a string, got {_describe(details)}; the handler's YAML goes inside "
            "a string: write `discoveryDetails: |` and indent the YAML below it",
        )
    details_text = _string(handler, "discoveryDetails", handler_path, default="")
    properties_path = _join(handler_path, "discoveryProperties")
    raw_properties = handler.get("discoveryProperties")
    if raw_properties is None:
        raw_properties = []
    if not isinstance(raw_properties, list):
        raise _Invalid(properties_path, f"must be a list, got {_describe(raw_properties)}")
    properties = tuple(
        _property(item, _join(properties_path, index)) for index, item in enumerate(raw_properties)
    )
    names = [p.name for p in properties]
    for index, property_name in enumerate(names):
        if property_name in names[:index]:
            raise _Invalid(
                _join(properties_path, index),
                f"property {property_name!r} is listed twice",
            )
    capacity = spec.get("capacity", 1)
    if capacity is None:
        capacity = 1
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise _Invalid("spec.capacity", f"must be an integer, got {_describe(capacity)}")
    if not _I32_MIN <= capacity <= _I32_MAX:
        raise _Invalid("spec.capacity", "must fit in a 32-bit signed integer")
    broker_properties = _string_map(spec.get("brokerProperties"), "spec.brokerProperties")
    return Configuration(
        name=name,
        handler=handler_name,
        namespace=namespace,
        details=details_text,
        properties=properties,
        capacity=capacity,
        broker_properties=broker_properties,
        origin=origin,
    )


def _secret(document: Mapping[Any, Any], origin: Origin) -> SecretObject:
    name, namespace = _metadata(document)
    data = _base64_map(document.get("data"), "data")
    _data_keys(data, "data")
    string_data = _string_map(document.get("stringData"), "stringData")
    _data_keys(string_data, "stringData")
    # The API server merges stringData into data on write, stringData winning.
    merged = {**data, **{key: text.encode() for key, text in string_data.items()}}
    return SecretObject(name, namespace, merged, origin)


def _config_map(document: Mapping[Any, Any], origin: Origin) -> ConfigMapObject:
    name, namespace = _metadata(document)
    data = _string_map(document.get("data"), "data")
    _data_keys(data, "data")
    binary = _base64_map(document.get("binaryData"), "binaryData")
    _data_keys(binary, "binaryData")
    for key in binary:
        if key in data:
            raise _Invalid(_join("binaryData", key), "is also in data; the API server refuses that")
    return ConfigMapObject(name, namespace, data, binary, origin)


# --- documents and files ----------------------------------------------------------


def _label(document: Mapping[Any, Any]) -> str:
    """`Kind name` for messages, from whatever the document holds."""
    kind = document.get("kind")
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    parts = [kind[:60] if isinstance(kind, str) else "object"]
    if isinstance(name, str):
        parts.append(name[:60])
    return " ".join(parts)


class _Collector:
    """Adds documents to a Manifests, keeping the problems instead of stopping."""

    def __init__(self, into: Manifests) -> None:
        self.manifests = into
        self.problems: list[str] = []

    def document(self, document: object, origin: Origin, *, in_list: bool = False) -> None:
        if document is None:
            return  # an empty document, e.g. after a trailing `---`
        if not isinstance(document, Mapping):
            self.problems.append(
                f"{origin}: a manifest must be a mapping with apiVersion and kind, "
                f"got {_describe(document)}"
            )
            return
        try:
            self._typed(document, origin, in_list)
        except _Invalid as problem:
            self.problems.append(f"{origin} ({_label(document)}): {problem}")

    def _typed(self, document: Mapping[Any, Any], origin: Origin, in_list: bool) -> None:
        api_version = _string(document, "apiVersion", "")
        kind = _string(document, "kind", "")
        if api_version == "v1" and kind == "List" and not in_list:
            items = document.get("items")
            if items is None:
                items = []
            if not isinstance(items, list):
                raise _Invalid("items", f"must be a list, got {_describe(items)}")
            for index, item in enumerate(items):
                self.document(item, Origin(origin.file, origin.document, index), in_list=True)
            return
        if kind == "Configuration" and api_version.startswith("akri.sh/"):
            if api_version != AKRI_API_VERSION:
                raise _Invalid("apiVersion", f"must be {AKRI_API_VERSION}")
            self._add_configuration(_configuration(document, origin))
        elif api_version == "v1" and kind == "Secret":
            secret = _secret(document, origin)
            self._add_object(self.manifests.secrets, secret, kind)
        elif api_version == "v1" and kind == "ConfigMap":
            config_map = _config_map(document, origin)
            self._add_object(self.manifests.config_maps, config_map, kind)
        else:
            self.manifests.ignored.append(f"{origin}: {api_version[:60]} {_label(document)}")

    def _add_configuration(self, configuration: Configuration) -> None:
        for first in self.manifests.configurations:
            if first.name == configuration.name:
                # The Agent keys discovery requests by name alone (spec §3.1).
                raise _Invalid(
                    "metadata.name",
                    f"a Configuration named {configuration.name!r} is already defined at "
                    f"{first.origin}; the Agent tells Configurations apart by name alone, "
                    "even across namespaces",
                )
        self.manifests.configurations.append(configuration)

    def _add_object(
        self,
        table: dict[tuple[str, str], Any],
        item: SecretObject | ConfigMapObject,
        kind: str,
    ) -> None:
        key = (item.namespace, item.name)
        if key in table:
            raise _Invalid(
                "metadata.name",
                f"{kind} {item.namespace}/{item.name} is already defined at {table[key].origin}",
            )
        table[key] = item

    def text(self, text: str, source: str) -> None:
        index = 0
        try:
            for index, document in enumerate(_documents(text), start=1):
                self.document(document, Origin(source, index))
        except (yaml.YAMLError, ValueError, ArithmeticError, RecursionError) as error:
            self.problems.append(f"{source}, document {index + 1}: {_yaml_problem(error)}")


def parse_manifests(
    text: str, source: str = "<string>", into: Manifests | None = None
) -> Manifests:
    """Parse one YAML stream; ManifestError lists every problem in it."""
    collector = _Collector(into if into is not None else Manifests())
    collector.text(text, source)
    if collector.problems:
        raise ManifestError(collector.problems)
    return collector.manifests


def manifest_files(paths: Iterable[str | Path]) -> list[str]:
    """Expand directories (their *.yaml, *.yml and *.json, sorted, not recursive)."""
    files: list[str] = []
    for path in paths:
        candidate = Path(path)
        if str(path) != "-" and candidate.is_dir():
            files.extend(
                str(child)
                for child in sorted(candidate.iterdir())
                if child.suffix in SUFFIXES and child.is_file()
            )
        else:
            files.append(str(path))
    return files


def _read(file: str) -> str:
    if file == "-":
        data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    else:
        with open(file, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text (byte {error.start})") from None


def load_manifests(paths: Iterable[str | Path]) -> Manifests:
    """Read manifest files and directories ("-" is standard input)."""
    collector = _Collector(Manifests())
    for file in manifest_files(paths):
        source = "<stdin>" if file == "-" else file
        try:
            text = _read(file)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            collector.problems.append(f"{source}: cannot read: {reason}")
            continue
        collector.text(text, source)
    if collector.problems:
        raise ManifestError(collector.problems)
    return collector.manifests
