"""`akri-dh agent`: manifests, discoveryProperties resolution (spec §3.2), events, the table,
the agent in-process against a served handler, and as a process with a real handler process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from io import StringIO
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from akri_sdk.device import Device, instance_name
from akri_sdk.handlers.debug_echo import DebugEcho
from akri_sdk.local_agent import events
from akri_sdk.local_agent.agent import LocalAgent, agent_backoff
from akri_sdk.local_agent.manifests import ManifestError, load_manifests, parse_manifests
from akri_sdk.local_agent.model import (
    ConfigMapObject,
    Configuration,
    DiscoveryProperty,
    KeyRef,
    Manifests,
    SecretObject,
)
from akri_sdk.local_agent.properties import (
    ChainedValues,
    DirectoryValues,
    ManifestValues,
    Missing,
    UnsolvablePropertyError,
    resolve_properties,
)
from akri_sdk.local_agent.table import CLEAR, LiveTable, render_status, truncate
from akri_sdk.local_agent.view import (
    AgentStatus,
    ConfigurationStatus,
    InstanceView,
    RegistrationView,
)
from akri_sdk.testing.fake_agent import FakeAgent

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
AKRI_DH = [sys.executable, "-m", "akri_sdk.cli"]
EXAMPLE_PASSWORD = "example-password-do-not-use"  # in examples/debug-echo-with-secret.yaml
DIR_PASSWORD = "s3cret-from-dir-Zq9"


def configuration_yaml(spec: str, name: str = "c", namespace: str | None = None) -> str:
    metadata = f"  name: {name}\n" + (f"  namespace: {namespace}\n" if namespace else "")
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"apiVersion: akri.sh/v0\nkind: Configuration\nmetadata:\n{metadata}spec:\n{body}\n"


def one_configuration(spec: str, **kwargs: str) -> Configuration:
    manifests = parse_manifests(configuration_yaml(spec, **kwargs))
    assert len(manifests.configurations) == 1
    return manifests.configurations[0]


def problems(text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        parse_manifests(text, "m.yaml")
    return str(caught.value)


# ---- manifests --------------------------------------------------------------------


def test_examples_parse() -> None:
    manifests = load_manifests([EXAMPLES])
    by_name = {c.name: c for c in manifests.configurations}
    assert set(by_name) == {"akri-debug-echo", "akri-debug-echo-secret", "akri-debug-echo-dir"}
    echo = by_name["akri-debug-echo"]
    assert echo.handler == "debugEcho"
    assert echo.details == 'descriptions:\n- "foo0"\n- "foo1"\n'
    assert echo.capacity == 2
    assert dict(echo.broker_properties) == {"RESOLUTION_WIDTH": "800", "RESOLUTION_HEIGHT": "600"}
    secret = manifests.secrets[("default", "debug-echo-credentials")]
    assert secret.data == {"password": EXAMPLE_PASSWORD.encode()}
    assert EXAMPLE_PASSWORD not in repr(secret) + repr(manifests)
    assert manifests.config_maps[("default", "debug-echo-settings")].data == {"region": "lab-1"}
    assert manifests.ignored == []


def test_defaults_follow_the_crd() -> None:
    configuration = one_configuration(
        """
        discoveryHandler:
          name: h
          discoveryProperties:
          - name: P
            valueFrom:
              secretKeyRef: {name: s, key: k}
        """,
        namespace="akri",
    )
    assert configuration.namespace == "akri"
    assert configuration.details == ""
    assert configuration.capacity == 1
    assert dict(configuration.broker_properties) == {}
    # The reference's namespace defaults to "default", not the Configuration's (spec §3.2).
    assert configuration.properties == (
        DiscoveryProperty("P", value_from=KeyRef("Secret", "s", "k", "default", False)),
    )


def test_several_documents_lists_and_other_kinds() -> None:
    text = (
        configuration_yaml("discoveryHandler: {name: h}", name="a")
        + "---\n"
        + "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
        + "---\n"
        + "apiVersion: v1\nkind: List\nitems:\n"
        + "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cm, namespace: ns}\n"
        + "  data: {k: v}\n"
        + "---\n"  # an empty document
    )
    manifests = parse_manifests(text, "m.yaml")
    assert [c.name for c in manifests.configurations] == ["a"]
    assert ("ns", "cm") in manifests.config_maps
    assert manifests.ignored == ["m.yaml, document 2: apps/v1 Deployment d"]


def test_secret_data_is_base64_and_string_data_wins() -> None:
    text = """\
apiVersion: v1
kind: Secret
metadata: {name: s}
data:
  binary: AP8=
  both: b2xk
stringData:
  both: new
"""
    secret = parse_manifests(text).secrets[("default", "s")]
    assert secret.data == {"binary": b"\x00\xff", "both": b"new"}


INVALID = [
    ("discoveryHandler: {}", "spec.discoveryHandler.name: is required"),
    ("discoveryHandler: {name: ''}", "spec.discoveryHandler.name: must not be empty"),
    ("capacity: 1", "spec.discoveryHandler: must be a mapping, got null"),
    (
        "discoveryHandler: {name: h, discoveryDetails: {descriptions: [a]}}",
        "write `discoveryDetails: |`",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: 1ABC, value: x}]}",
        "discoveryProperties[0].name: '1ABC' must match ^[_A-Za-z][_A-Za-z0-9]*$",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A-B, value: x}]}",
        "must match",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{value: x}]}",
        "discoveryProperties[0].name: is required",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A}]}",
        "exactly one of value or valueFrom; neither is given",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: "
        "[{name: A, value: x, valueFrom: {secretKeyRef: {name: s, key: k}}}]}",
        "exactly one of value or valueFrom; both are given",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A, valueFrom: {}}]}",
        "exactly one of secretKeyRef or configMapKeyRef; neither is given",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A, valueFrom: "
        "{fieldRef: {fieldPath: x}}}]}",
        "valueFrom: needs exactly one of secretKeyRef or configMapKeyRef; neither is given",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A, valueFrom: "
        "{secretKeyRef: {name: s, key: k}, configMapKeyRef: {name: c, key: k}}}]}",
        "both are given",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A, valueFrom: "
        "{secretKeyRef: {key: k}}}]}",
        "valueFrom.secretKeyRef.name: is required",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A, valueFrom: "
        "{configMapKeyRef: {name: c}}}]}",
        "valueFrom.configMapKeyRef.key: is required",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A, valueFrom: "
        "{secretKeyRef: {name: s, key: k, optional: maybe}}}]}",
        "optional: must be true or false",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A, value: 5}]}",
        "value: must be a string, got a number (quote it",
    ),
    (
        "discoveryHandler: {name: h, discoveryProperties: [{name: A, value: a}, "
        "{name: A, value: b}]}",
        "property 'A' is listed twice",
    ),
    ("discoveryHandler: {name: h, discoveryProperties: {A: b}}", "must be a list"),
    ("discoveryHandler: {name: h}\ncapacity: two", "spec.capacity: must be an integer"),
    ("discoveryHandler: {name: h}\ncapacity: 4294967296", "32-bit"),
    ("discoveryHandler: {name: h}\nbrokerProperties: {WIDTH: 800}", "brokerProperties.WIDTH"),
    ("discoveryHandler: {name: h}\nbrokerProperties: [a]", "must be a mapping"),
]


@pytest.mark.parametrize(("spec", "expected"), INVALID)
def test_configuration_validated_like_the_crd(spec: str, expected: str) -> None:
    message = problems(configuration_yaml(spec, name="bad"))
    assert message.startswith("m.yaml, document 1 (Configuration bad): "), message
    assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apiVersion: akri.sh/v0\nkind: Configuration\nspec: {}\n", "metadata: must be a mapping"),
        (configuration_yaml("discoveryHandler: {name: h}", name="Bad_Name"), "DNS subdomain"),
        (configuration_yaml("discoveryHandler: {name: h}", namespace="A"), "DNS label"),
        ("apiVersion: akri.sh/v1\nkind: Configuration\n", "apiVersion: must be akri.sh/v0"),
        ("kind: Configuration\n", "apiVersion: is required"),
        ("- a\n- b\n", "must be a mapping with apiVersion and kind, got a list"),
        ("a: [\n", "invalid YAML at line 2"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("x: 2001-13-01\n", "invalid YAML"),
        ("a: " + "[" * 80 + "]" * 80 + "\n", "nesting deeper than 64"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: a}\n"
            "binaryData: {k: YQ==}\n",
            "binaryData.k: is also in data",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: 1}\n", "data.k"),
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {'a/b': YQ==}\n", "valid key"),
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {'..k': YQ==}\n", "valid key"),
    ],
)
def test_manifest_problems_are_reported_with_file_and_document(text: str, expected: str) -> None:
    message = problems(text)
    assert message.startswith("m.yaml, document 1"), message
    assert expected in message


def test_bad_base64_is_reported_without_the_value() -> None:
    message = problems(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: not-base64-hunter2}\n"
    )
    assert "data.k: is not valid base64" in message
    assert "hunter2" not in message


def test_every_problem_is_reported_and_duplicates_refused(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text(configuration_yaml("discoveryHandler: {name: h}", name="same"))
    second = tmp_path / "b.yaml"
    second.write_text(
        configuration_yaml("discoveryHandler: {name: h}", name="same", namespace="other")
        + "---\n"
        + configuration_yaml("discoveryHandler: {}", name="broken")
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
    )
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ManifestError) as caught:
        load_manifests([tmp_path, missing])
    lines = caught.value.problems
    assert len(lines) == 4, lines
    assert lines[0].startswith(f"{second}, document 1 (Configuration same): ")
    assert f"already defined at {first}, document 1" in lines[0]
    assert "by name alone" in lines[0]
    assert lines[1].startswith(f"{second}, document 2 (Configuration broken)")
    assert lines[2].startswith(f"{second}, document 4 (Secret s)")
    assert lines[3] == f"{missing}: cannot read: No such file or directory"


YAMLISH = st.text(
    alphabet="abkind:Configuration-[]{}&*!|>'\"#\n ?,.0123456789\t%@`~\\", max_size=300
)
FIELD_NAMES = st.sampled_from(
    [
        "apiVersion", "kind", "metadata", "name", "namespace", "spec", "discoveryHandler",
        "discoveryDetails", "discoveryProperties", "value", "valueFrom", "secretKeyRef",
        "configMapKeyRef", "key", "optional", "capacity", "brokerProperties", "data",
        "stringData", "binaryData", "items", "x",
    ]
)  # fmt: skip
SCALARS = (
    st.sampled_from(
        ["akri.sh/v0", "v1", "Configuration", "Secret", "ConfigMap", "List", "h", "a-b", "YQ=="]
    )
    | st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(FIELD_NAMES, children),
    max_leaves=30,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes anything: reaches the deeper checks."""
    return st.one_of(valid, valid, valid, DOCUMENTS)


KEY_REFS = st.fixed_dictionaries(
    {"name": maybe(st.just("s")), "key": maybe(st.just("k"))},
    optional={"namespace": maybe(st.just("ns")), "optional": maybe(st.booleans())},
)
PROPERTIES = st.fixed_dictionaries(
    {"name": maybe(st.sampled_from(["P", "_p1", "1x", "a-b"]))},
    optional={
        "value": maybe(st.text(max_size=5)),
        "valueFrom": maybe(
            st.fixed_dictionaries(
                {}, optional={"secretKeyRef": maybe(KEY_REFS), "configMapKeyRef": maybe(KEY_REFS)}
            )
        ),
    },
)
NEAR_CONFIGURATIONS = st.fixed_dictionaries(
    {
        "apiVersion": st.just("akri.sh/v0"),
        "kind": st.just("Configuration"),
        "metadata": maybe(st.fixed_dictionaries({"name": maybe(st.just("c"))})),
        "spec": maybe(
            st.fixed_dictionaries(
                {
                    "discoveryHandler": maybe(
                        st.fixed_dictionaries(
                            {"name": maybe(st.just("h"))},
                            optional={
                                "discoveryDetails": maybe(st.text(max_size=5)),
                                "discoveryProperties": maybe(st.lists(maybe(PROPERTIES))),
                            },
                        )
                    )
                },
                optional={
                    "capacity": maybe(st.integers()),
                    "brokerProperties": maybe(st.dictionaries(st.text(max_size=3), DOCUMENTS)),
                },
            )
        ),
    }
)
NEAR_OBJECTS = st.fixed_dictionaries(
    {
        "apiVersion": st.just("v1"),
        "kind": st.sampled_from(["Secret", "ConfigMap", "List"]),
        "metadata": maybe(st.fixed_dictionaries({"name": maybe(st.just("o"))})),
    },
    optional={
        "data": maybe(st.dictionaries(st.sampled_from(["k", "..k", "a/b"]), DOCUMENTS)),
        "stringData": maybe(st.dictionaries(st.just("k"), DOCUMENTS)),
        "binaryData": maybe(st.dictionaries(st.just("k"), st.sampled_from(["YQ==", "!"]))),
        "items": maybe(st.lists(DOCUMENTS, max_size=3)),
    },
)


def parse_or_manifest_error(text: str) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifests(text)


@given(st.text(max_size=300) | YAMLISH)
def test_parser_raises_only_manifest_error_on_any_text(text: str) -> None:
    parse_or_manifest_error(text)


@settings(max_examples=200)
@given(st.lists(DOCUMENTS | NEAR_CONFIGURATIONS | NEAR_OBJECTS, min_size=1, max_size=3))
def test_parser_raises_only_manifest_error_on_any_structure(documents: list[object]) -> None:
    parse_or_manifest_error(yaml.safe_dump_all(documents))


# ---- discoveryProperties resolution (spec §3.2, row by row) -------------------------


def values(*objects: SecretObject | ConfigMapObject) -> ManifestValues:
    manifests = Manifests()
    for item in objects:
        if isinstance(item, SecretObject):
            manifests.secrets[(item.namespace, item.name)] = item
        else:
            manifests.config_maps[(item.namespace, item.name)] = item
    return ManifestValues(manifests)


def secret_ref(name: str = "s", key: str = "k", **kwargs: Any) -> KeyRef:
    return KeyRef("Secret", name, key, **kwargs)


def config_map_ref(name: str = "c", key: str = "k", **kwargs: Any) -> KeyRef:
    return KeyRef("ConfigMap", name, key, **kwargs)


def resolve_one(prop: DiscoveryProperty, *objects: SecretObject | ConfigMapObject) -> Any:
    return resolve_properties([prop], values(*objects))


def test_value_is_utf8_bytes() -> None:
    assert resolve_one(DiscoveryProperty("P", value="grüß")) == {"P": "grüß".encode()}


def test_value_wins_over_value_from() -> None:
    prop = DiscoveryProperty("P", value="literal", value_from=secret_ref())
    assert resolve_one(prop, SecretObject("s", data={"k": b"secret"})) == {"P": b"literal"}


def test_secret_key_ref_gives_the_decoded_bytes() -> None:
    secret = SecretObject("s", data={"k": b"\x00\xffraw"})
    assert resolve_one(DiscoveryProperty("P", value_from=secret_ref()), secret) == {
        "P": b"\x00\xffraw"
    }


def test_config_map_data_then_binary_data_and_data_wins() -> None:
    config_map = ConfigMapObject(
        "c", data={"both": "text", "text": "ü"}, binary_data={"both": b"bin", "bin": b"\x01"}
    )
    props = [
        DiscoveryProperty("TEXT", value_from=config_map_ref(key="text")),
        DiscoveryProperty("BIN", value_from=config_map_ref(key="bin")),
        DiscoveryProperty("BOTH", value_from=config_map_ref(key="both")),
    ]
    assert resolve_properties(props, values(config_map)) == {
        "TEXT": "ü".encode(),
        "BIN": b"\x01",
        "BOTH": b"text",
    }


def test_neither_value_nor_value_from_is_a_property_without_value() -> None:
    assert resolve_one(DiscoveryProperty("P")) == {"P": None}


@pytest.mark.parametrize("ref", [secret_ref(name="gone"), secret_ref(key="gone")])
def test_missing_optional_reference_is_left_out(ref: KeyRef) -> None:
    prop = DiscoveryProperty("P", value_from=KeyRef(ref.kind, ref.name, ref.key, optional=True))
    assert resolve_one(prop, SecretObject("s", data={"k": b"v"})) == {}


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        (secret_ref(name="gone"), "Secret default/gone not found"),
        (secret_ref(key="gone"), "Secret default/s has no key 'gone'"),
        (config_map_ref(name="gone"), "ConfigMap default/gone not found"),
        (config_map_ref(key="gone"), "ConfigMap default/c has no key 'gone'"),
    ],
)
def test_missing_required_reference_fails_the_request(ref: KeyRef, reason: str) -> None:
    objects = (SecretObject("s", data={"k": b"hunter2"}), ConfigMapObject("c", data={"k": "x"}))
    with pytest.raises(UnsolvablePropertyError) as caught:
        resolve_one(DiscoveryProperty("P", value_from=ref), *objects)
    assert str(caught.value) == f"discoveryProperty 'P': {reason} and the reference is not optional"


def test_namespace_defaults_to_default_not_the_configurations() -> None:
    secret = SecretObject("s", namespace="akri", data={"k": b"v"})
    with pytest.raises(UnsolvablePropertyError) as caught:
        resolve_one(DiscoveryProperty("P", value_from=secret_ref()), secret)
    assert "there is one in namespace akri" in str(caught.value)
    found = resolve_one(DiscoveryProperty("P", value_from=secret_ref(namespace="akri")), secret)
    assert found == {"P": b"v"}


def test_directory_values_are_mounted_volume_layout(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "k").write_bytes(b"\x00from-dir")
    (tmp_path / "s" / "..data").mkdir()
    (tmp_path / "outside").write_bytes(b"x")
    source = DirectoryValues(tmp_path, "Secret")
    assert source.lookup(secret_ref()) == b"\x00from-dir"
    # The namespace is not part of the layout.
    assert source.lookup(secret_ref(namespace="elsewhere")) == b"\x00from-dir"
    assert source.lookup(secret_ref(key="other")) is Missing.KEY
    assert source.lookup(secret_ref(key="..data")) is Missing.KEY
    assert source.lookup(secret_ref(name="other")) is Missing.OBJECT
    assert source.lookup(secret_ref(name="..", key="outside")) is Missing.OBJECT
    assert source.lookup(config_map_ref(name="s")) is Missing.OBJECT  # kinds stay apart


def test_manifests_answer_before_directories(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "k").write_bytes(b"dir")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "k").write_bytes(b"dir-t")
    chain = ChainedValues([values(SecretObject("s", data={})), DirectoryValues(tmp_path, "Secret")])
    props = [
        DiscoveryProperty("S", value_from=secret_ref(optional=True)),
        DiscoveryProperty("T", value_from=secret_ref(name="t")),
    ]
    # Secret s exists in the manifests (without the key): the directory is not asked.
    assert resolve_properties(props, chain) == {"T": b"dir-t"}


def test_unreadable_value_fails_even_when_optional(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "k").write_bytes(b"x" * (1024 * 1024 + 1))
    prop = DiscoveryProperty("P", value_from=secret_ref(optional=True))
    with pytest.raises(UnsolvablePropertyError, match="larger than"):
        resolve_properties([prop], DirectoryValues(tmp_path, "Secret"))


# ---- events and the table ------------------------------------------------------------


def view(configuration: Configuration, device_id: str, node: str = "n") -> InstanceView:
    device = Device(device_id, {"DESC": device_id, "CLASH": "device"})
    name = instance_name(configuration.name, device_id, node, True)
    return InstanceView.build(configuration, name, device, node, True)


def test_instance_properties_merge_configuration_wins() -> None:
    configuration = Configuration("c", "h", broker_properties={"CLASH": "config", "EXTRA": "1"})
    fields = view(configuration, "d").fields()
    assert fields["properties"] == {"CLASH": "config", "DESC": "d", "EXTRA": "1"}
    assert fields["instance"] == instance_name("c", "d", "n", True)
    assert fields["cdi_name"] == f"akri.sh/c={fields['instance'][2:]}"


def test_instance_events_removed_added_changed() -> None:
    configuration = Configuration("c", "h")
    a, b, c = view(configuration, "a"), view(configuration, "b"), view(configuration, "c")
    b2 = InstanceView.build(configuration, b.name, Device("b", {"DESC": "new"}), "n", True)
    before = {("c", a.name): a, ("c", b.name): b}
    after = {("c", b.name): b2, ("c", c.name): c}
    kinds = [(e.kind, e.fields["device_id"]) for e in events.instance_events(before, after)]
    assert kinds == [("instance_removed", "a"), ("instance_added", "c"), ("instance_changed", "b")]
    line = json.loads(events.instance_events({}, {("c", a.name): a})[0].to_json())
    assert list(line)[:2] == ["event", "ts"]


def sample_status() -> AgentStatus:
    configuration = Configuration("akri-debug-echo", "debugEcho", broker_properties={"W": "800"})
    return AgentStatus(
        node="n",
        directory="/tmp/akri",
        registrations=(RegistrationView("debugEcho", "/tmp/akri/debugEcho.sock", True),),
        configurations=(
            ConfigurationStatus("akri-debug-echo", "debugEcho", "discovering", 1),
            ConfigurationStatus("broken", "debugEcho", "error", 0, "Secret gone", 0.0),
        ),
        instances=(view(configuration, "foo0"),),
    )


def test_table_shows_handlers_states_errors_and_instances() -> None:
    text = render_status(sample_status())
    name = instance_name("akri-debug-echo", "foo0", "n", True)
    assert f"akri-debug-echo  {name}  foo0    CLASH=device, DESC=foo0, W=800  n" in text
    assert "discovering (1 stream)" in text
    assert "  broken: Secret gone" in text
    assert "debugEcho  yes     /tmp/akri/debugEcho.sock" in text


def test_long_properties_are_truncated_to_the_width() -> None:
    assert truncate("abcdef", 4) == "abc…"
    lines = render_status(sample_status(), width=60).splitlines()
    row = next(line for line in lines if "foo0" in line)
    assert "…" in row


@pytest.mark.parametrize("tty", [True, False])
def test_live_table_clears_only_a_terminal_and_only_redraws_changes(tty: bool) -> None:
    out = StringIO()
    table = LiveTable(out, tty=tty, clock=lambda: 0.0)
    table.show(sample_status())
    table.show(sample_status())
    text = out.getvalue()
    assert text.count("Local Akri Agent") == 1
    assert (CLEAR in text) is tty


def test_agent_backoff_doubles_from_one_second() -> None:
    assert [agent_backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]


# ---- the agent in-process, against a served debugEcho -----------------------------


@pytest.fixture
def availability(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "availability.txt"
    monkeypatch.setenv("DEBUG_ECHO_AVAILABILITY_FILE", str(path))
    monkeypatch.setenv("DEBUG_ECHO_INSTANCES_SHARED", "false")
    return path


class Recorder:
    """Collects the agent's events; `until` waits for a condition on them."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: events.Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: str, configuration: str | None = None) -> list[dict[str, Any]]:
        return [
            e.to_dict()
            for e in self.events
            if e.kind == kind and configuration in (None, e.fields.get("configuration"))
        ]


@pytest.fixture
async def local_agent(
    akri_dir: Path, tmp_path: Path, availability: Path, served: Any
) -> AsyncIterator[Callable[..., Any]]:
    """Starts a LocalAgent on a FakeAgent with DebugEcho served in this loop."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    fakes: list[FakeAgent] = []

    async def start(text: str, secrets: Path | None = None) -> tuple[FakeAgent, Recorder]:
        manifests = parse_manifests(text)
        sources: list[Any] = [ManifestValues(manifests)]
        if secrets is not None:
            sources.append(DirectoryValues(secrets, "Secret"))
        fake = FakeAgent(akri_dir, node_name="node-a")
        await fake.start()
        fakes.append(fake)
        recorder = Recorder()
        agent = LocalAgent(
            fake,
            manifests.configurations,
            ChainedValues(sources),
            on_event=recorder,
            backoff=lambda attempt: 0.05 * 2 ** (attempt - 1),
        )
        tasks.append(asyncio.create_task(agent.run(stop)))
        await served.start(DebugEcho())
        return fake, recorder

    yield start
    stop.set()
    for task in tasks:
        await task
    for fake in fakes:
        await fake.stop()


SECRET_MANIFESTS = (EXAMPLES / "debug-echo-with-secret.yaml").read_text()


async def test_resolved_properties_reach_the_handler(local_agent: Any) -> None:
    fake, recorder = await local_agent(SECRET_MANIFESTS)
    name = "akri-debug-echo-secret"
    await recorder.until(lambda: len(recorder.of("instance_added", name)) == 1)
    request = fake.streams(name)[0].request
    sent = {key: value.vec for key, value in request.discovery_properties.items()}
    # TOKEN's optional reference found nothing: left out, not sent empty.
    assert sent == {
        "USERNAME": b"admin",
        "PASSWORD": EXAMPLE_PASSWORD.encode(),
        "REGION": b"lab-1",
    }
    added = recorder.of("instance_added", name)
    assert [e["instance"] for e in added] == [instance_name(name, "bar0", "node-a", False)]
    assert added[0]["shared"] is False
    assert EXAMPLE_PASSWORD not in "".join(e.to_json() for e in recorder.events)


async def test_unsolvable_property_is_retried_with_backoff_until_it_resolves(
    local_agent: Any, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    text = (EXAMPLES / "debug-echo-secrets-dir.yaml").read_text()
    fake, recorder = await local_agent(text, secrets)
    name = "akri-debug-echo-dir"
    await recorder.until(lambda: len(recorder.of("configuration_error", name)) >= 2)
    first, second = recorder.of("configuration_error", name)[:2]
    assert first["reason"] == "unsolvable_property"
    assert first["code"] is None
    assert (first["attempt"], first["retry_in"]) == (1, 0.05)
    assert (second["attempt"], second["retry_in"]) == (2, 0.1)
    assert "Secret default/camera-credentials not found" in first["message"]
    (secrets / "camera-credentials").mkdir()
    (secrets / "camera-credentials" / "password").write_text(DIR_PASSWORD)
    await recorder.until(lambda: len(recorder.of("instance_added", name)) == 1)
    request = fake.streams(name)[-1].request
    assert request.discovery_properties["CAMERA_PASSWORD"].vec == DIR_PASSWORD.encode()


async def test_refused_details_are_a_configuration_error(local_agent: Any) -> None:
    text = configuration_yaml("discoveryHandler: {name: debugEcho, discoveryDetails: ''}", "bad")
    _, recorder = await local_agent(text)
    await recorder.until(lambda: len(recorder.of("configuration_error", "bad")) >= 2)
    error = recorder.of("configuration_error", "bad")[0]
    assert error["reason"] == "discover_failed"
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT.name
    assert "discoveryDetails is empty" in error["message"]
    assert recorder.of("stream_opened", "bad") == []


async def test_devices_going_and_coming_are_removed_and_added(
    local_agent: Any, availability: Path
) -> None:
    _, recorder = await local_agent((EXAMPLES / "debug-echo.yaml").read_text())
    name = "akri-debug-echo"
    await recorder.until(lambda: len(recorder.of("instance_added", name)) == 2)
    availability.write_text("OFFLINE")
    await recorder.until(lambda: len(recorder.of("instance_removed", name)) == 2)
    availability.write_text("ONLINE")
    await recorder.until(lambda: len(recorder.of("instance_added", name)) == 4)
    assert recorder.of("stream_opened", name)[0]["endpoint"].endswith("debugEcho.sock")
    assert recorder.of("registration")[0]["handler"] == "debugEcho"


# ---- `akri-dh agent` as a process ---------------------------------------------------


class Process:
    """A subprocess whose stdout lines are collected as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode())
            self._changed.set()
        self._changed.set()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    async def until(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15
    ) -> list[dict[str, Any]]:
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self.events()):
                    if self._reader.done():
                        raise AssertionError(f"exited; output:\n{''.join(self.lines)}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"not reached; output:\n{''.join(self.lines)}") from None
        return self.events()

    async def finish(self, timeout: float = 15) -> tuple[int, str]:
        assert self.process.stderr is not None
        stderr = await asyncio.wait_for(self.process.stderr.read(), timeout)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await self._reader
        return code, stderr.decode()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


@pytest.fixture
async def processes() -> AsyncIterator[Callable[..., Any]]:
    started: list[Process] = []

    # The agent's default directory comes from here; each test says what it wants.
    base = {k: v for k, v in os.environ.items() if k != "DISCOVERY_HANDLERS_DIRECTORY"}

    async def start(*args: str, env: dict[str, str] | None = None) -> Process:
        process = await asyncio.create_subprocess_exec(
            *AKRI_DH,
            *args,
            env={**base, "GRPC_VERBOSITY": "ERROR", **(env or {})},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        started.append(Process(process))
        return started[-1]

    yield start
    for process in started:
        await process.kill()


def kinds(events_: list[dict[str, Any]], kind: str, configuration: str) -> list[dict[str, Any]]:
    return [e for e in events_ if e["event"] == kind and e.get("configuration") == configuration]


@pytest.mark.slow
async def test_agent_process_with_a_handler_process(
    processes: Any, akri_dir: Path, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    availability = tmp_path / "availability.txt"
    agent = await processes(
        "agent",
        "-f", str(EXAMPLES / "debug-echo.yaml"),
        "-f", str(EXAMPLES / "debug-echo-with-secret.yaml"),
        "--filename", str(EXAMPLES / "debug-echo-secrets-dir.yaml"),
        "--secrets-dir", str(secrets),
        "--directory", str(akri_dir),
        "--node-name", "test-node",
        "--json",
        "--seconds", "60",
    )  # fmt: skip
    await agent.until(lambda e: any(x["event"] == "agent_started" for x in e))
    handler = await processes(
        "run",
        "debugEcho",
        env={
            "DISCOVERY_HANDLERS_DIRECTORY": str(akri_dir),
            "DEBUG_ECHO_AVAILABILITY_FILE": str(availability),
            "DEBUG_ECHO_INSTANCES_SHARED": "true",
        },
    )

    def instances(kind: str, configuration: str) -> Callable[[list[dict[str, Any]]], set[str]]:
        return lambda e: {x["instance"] for x in kinds(e, kind, configuration)}

    echo, secret, from_dir = "akri-debug-echo", "akri-debug-echo-secret", "akri-debug-echo-dir"
    expected = {instance_name(echo, d, "test-node", True) for d in ("foo0", "foo1")}
    seen = await agent.until(lambda e: instances("instance_added", echo)(e) == expected)
    seen = await agent.until(lambda e: len(kinds(e, "instance_added", secret)) == 1)
    added = kinds(seen, "instance_added", echo)[0]
    assert added["properties"] == {
        "DEBUG_ECHO_DESCRIPTION": added["device_id"],
        "RESOLUTION_WIDTH": "800",
        "RESOLUTION_HEIGHT": "600",
    }
    assert (added["shared"], added["nodes"], added["capacity"]) == (True, ["test-node"], 2)
    registration = next(x for x in seen if x["event"] == "registration")
    assert registration["endpoint"] == str(akri_dir / "debugEcho.sock")

    # The Secret behind akri-debug-echo-dir is missing: an error, the agent goes on.
    seen = await agent.until(lambda e: bool(kinds(e, "configuration_error", from_dir)))
    error = kinds(seen, "configuration_error", from_dir)[0]
    assert error["reason"] == "unsolvable_property"
    assert (error["attempt"], error["retry_in"]) == (1, 1.0)
    (secrets / "camera-credentials").mkdir()
    (secrets / "camera-credentials" / "password").write_text(DIR_PASSWORD)
    await agent.until(lambda e: bool(kinds(e, "instance_added", from_dir)))

    # Devices go and come back.
    availability.write_text("OFFLINE")
    await agent.until(lambda e: instances("instance_removed", echo)(e) == expected)
    availability.write_text("ONLINE")
    await agent.until(lambda e: len(kinds(e, "instance_added", echo)) == 4)

    agent.process.send_signal(signal.SIGTERM)
    code, stderr = await agent.finish()
    assert code == 0, stderr
    assert agent.events()[-1]["event"] == "agent_stopped"
    output = "".join(agent.lines) + stderr
    assert EXAMPLE_PASSWORD not in output
    assert DIR_PASSWORD not in output
    handler.process.send_signal(signal.SIGTERM)
    assert (await handler.finish())[0] == 0


@pytest.mark.slow
async def test_agent_table_with_an_in_process_handler(processes: Any, tmp_path: Path) -> None:
    agent = await processes(
        "agent",
        "-f", str(EXAMPLES / "debug-echo.yaml"),
        "--run", "debugEcho",
        "--node-name", "n",
        "--seconds", "2",
        env={"DEBUG_ECHO_AVAILABILITY_FILE": str(tmp_path / "none")},
    )  # fmt: skip
    code, stderr = await agent.finish()
    assert code == 0, stderr
    out = "".join(agent.lines)
    assert instance_name("akri-debug-echo", "foo0", "n", True) in out
    assert "discovering (1 stream)" in out
    assert CLEAR not in out  # not a terminal
    assert "export DISCOVERY_HANDLERS_DIRECTORY=/tmp/akri-agent-" in stderr
    directory = stderr.split("export DISCOVERY_HANDLERS_DIRECTORY=")[1].split()[0]
    assert not Path(directory).exists()  # the temporary directory is removed


async def test_agent_process_reports_manifest_errors(processes: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(configuration_yaml("discoveryHandler: {name: h}", name="ok") + "---\n- x\n")
    agent = await processes("agent", "-f", str(bad), "--json")
    code, stderr = await agent.finish()
    assert code == 2
    assert f"{bad}, document 2: a manifest must be a mapping" in stderr
    assert agent.lines == []
