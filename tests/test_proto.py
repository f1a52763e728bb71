"""The committed gencode must match proto/ (regenerated with grpcio-tools here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from akri_sdk._proto import discovery_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
PROTO = "akri_sdk/_proto/discovery.proto"


def test_generated_code_matches_proto(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(ROOT / "proto" / PROTO),
        ],
        check=True,
    )
    for name in ("discovery_pb2.py", "discovery_pb2.pyi"):
        committed = (ROOT / "akri_sdk/_proto" / name).read_text()
        fresh = (tmp_path / "akri_sdk/_proto" / name).read_text()
        assert committed == fresh, f"{name} drifted from proto/; run `make proto`"


def test_wire_contract_names_and_numbers() -> None:
    file = pb.DESCRIPTOR
    assert file.package == "v0"
    assert set(file.services_by_name) == {"Registration", "DiscoveryHandler"}
    register = file.services_by_name["Registration"].methods_by_name["RegisterDiscoveryHandler"]
    assert register.input_type.full_name == "v0.RegisterDiscoveryHandlerRequest"
    assert register.output_type.full_name == "v0.Empty"
    discover = file.services_by_name["DiscoveryHandler"].methods_by_name["Discover"]
    assert discover.server_streaming and not discover.client_streaming
    fields = {
        (m.name, f.name): f.number for m in file.message_types_by_name.values() for f in m.fields
    }
    assert fields == {
        ("RegisterDiscoveryHandlerRequest", "name"): 1,
        ("RegisterDiscoveryHandlerRequest", "endpoint"): 2,
        ("RegisterDiscoveryHandlerRequest", "endpoint_type"): 3,
        ("RegisterDiscoveryHandlerRequest", "shared"): 4,
        ("ByteData", "vec"): 1,
        ("DiscoverRequest", "discovery_details"): 1,
        ("DiscoverRequest", "discovery_properties"): 2,
        ("DiscoverResponse", "devices"): 1,
        ("Device", "id"): 1,
        ("Device", "properties"): 2,
        ("Device", "mounts"): 3,
        ("Device", "device_specs"): 4,
        ("Mount", "container_path"): 1,
        ("Mount", "host_path"): 2,
        ("Mount", "read_only"): 3,
        ("DeviceSpec", "container_path"): 1,
        ("DeviceSpec", "host_path"): 2,
        ("DeviceSpec", "permissions"): 3,
    }
    assert pb.ByteData.DESCRIPTOR.fields_by_name["vec"].has_presence
    enum = pb.RegisterDiscoveryHandlerRequest.EndpointType
    assert (enum.Value("UDS"), enum.Value("NETWORK")) == (0, 1)
