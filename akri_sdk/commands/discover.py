"""`akri-dh discover NAME`: run one handler in-process and show what it finds.

Standard library only at module level: every `akri-dh` start imports this.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

__all__ = ["configure_parser", "parse_properties", "read_details", "run"]

MAX_DETAILS_BYTES = 16 * 1024 * 1024  # the SDK server's request limit
_PROPERTY_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")

DESCRIPTION = """\
Serve one handler in this process, call Discover once the way the Agent does,
print the devices of the first snapshot and exit (or keep printing with --watch).
A handler that refuses the request prints its INVALID_ARGUMENT message; exit 1."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("name", metavar="NAME", help="handler name, e.g. debugEcho")
    parser.add_argument(
        "--details",
        default="",
        metavar="FILE|YAML",
        help="discoveryDetails: a file to read, '-' for stdin, or the YAML itself (default '')",
    )
    parser.add_argument(
        "--property",
        dest="properties",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="a discoveryProperty; without '=' it has no value; repeatable",
    )
    parser.add_argument(
        "--property-file",
        dest="property_files",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a discoveryProperty read from a file (keeps secrets off the command line)",
    )
    parser.add_argument("--watch", action="store_true", help="keep printing each new snapshot")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the first snapshot (default 30)",
    )
    parser.add_argument("--log-level", default="error", help="handler log level (default error)")


def read_details(value: str) -> str:
    """`--details`: stdin for '-', a file's text if the path exists, else the text itself."""
    if value == "-":
        return sys.stdin.read(MAX_DETAILS_BYTES)
    path = Path(value)
    if "\n" not in value and path.is_file():
        with path.open(encoding="utf-8") as stream:
            return stream.read(MAX_DETAILS_BYTES)
    return value


def _checked_name(name: str) -> str:
    if not _PROPERTY_NAME.fullmatch(name):
        raise ValueError(f"property name {name!r} must match ^[_A-Za-z][_A-Za-z0-9]*$")
    return name


def parse_properties(pairs: list[str], files: list[str]) -> dict[str, bytes | None]:
    """`--property` and `--property-file` values as the DiscoverRequest map."""
    properties: dict[str, bytes | None] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        properties[_checked_name(name)] = value.encode() if sep else None
    for pair in files:
        name, sep, path = pair.partition("=")
        if not sep or not path:
            raise ValueError(f"--property-file needs NAME=PATH, got {pair!r}")
        properties[_checked_name(name)] = Path(path).read_bytes()
    return properties


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        details = read_details(args.details)
        properties = parse_properties(args.properties, args.property_files)
    except (OSError, ValueError) as error:
        print(f"akri-dh discover: {error}", file=sys.stderr)
        return 2
    try:
        from akri_sdk.local_agent.oneshot import DiscoverOptions, run_discover
    except ImportError as error:
        print(
            f"akri-dh discover needs the testing extra (pip install 'akri-sdk[testing]'): {error}",
            file=sys.stderr,
        )
        return 2
    from akri_sdk.logs import configure_logging
    from akri_sdk.plugins import load_registry

    configure_logging(args.log_level)
    handler = load_registry().get(args.name)()
    options = DiscoverOptions(
        details=details,
        properties=properties,
        json=args.json,
        watch=args.watch,
        seconds=args.seconds,
        timeout=args.timeout,
    )
    return run_discover(handler, options)
