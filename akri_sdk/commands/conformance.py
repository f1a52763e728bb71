"""`akri-dh conformance [options] -- COMMAND...`: judge any handler from the outside.

Only the standard library at module level: every `akri-dh` start imports this
module to build its parser. The suite itself (grpcio, h2) loads in `run`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["UsageError", "configure_parser", "parse_properties", "run"]

# Akri's CRD pattern for discoveryProperties names (spec §3.2).
_PROPERTY_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad command-line input: reported on stderr, exit status 2."""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.usage = "%(prog)s [options] -- COMMAND..."
    parser.description = (
        "Start COMMAND with DISCOVERY_HANDLERS_DIRECTORY set to a temporary directory, play "
        "the Akri Agent, and check what the Agent depends on. One line per check, then "
        "'N passed, N failed'. Exit status 0 when every check passed, 1 otherwise, 2 for "
        "usage errors."
    )
    parser.epilog = (
        "example: akri-dh conformance --details 'descriptions: [foo0, foo1]' -- "
        "akri-dh run debugEcho"
    )
    details = parser.add_mutually_exclusive_group()
    details.add_argument(
        "--details", metavar="YAML", help="discoveryDetails the handler accepts (required)"
    )
    details.add_argument(
        "--details-file", metavar="FILE", help="read the discoveryDetails from FILE instead"
    )
    parser.add_argument(
        "--properties",
        "--property",
        dest="properties",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a discovery property to send (repeatable); NAME alone sends it without a value",
    )
    parser.add_argument("--name", help="the handler name the registration must carry")
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="bound on each wait for something that must happen (default 10)",
    )
    parser.add_argument(
        "--observe",
        type=_positive,
        default=2.0,
        metavar="SECONDS",
        help="length of each window in which nothing may happen (default 2)",
    )
    parser.add_argument(
        "--headers-within",
        type=_positive,
        default=1.0,
        metavar="SECONDS",
        help="response headers must come this fast (default 1)",
    )
    parser.add_argument(
        "--streams",
        type=_count,
        default=20,
        metavar="N",
        help="concurrent identical streams to open (default 20)",
    )
    parser.add_argument(
        "--show-output", action="store_true", help="pass the handler's output to stderr"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND",
        help="the handler command and its arguments",
    )


def parse_properties(items: Sequence[str]) -> dict[str, bytes | None]:
    """`NAME=VALUE` items as the Agent sends them: UTF-8 bytes, or None for a bare NAME."""
    properties: dict[str, bytes | None] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not _PROPERTY_NAME.fullmatch(key):
            raise UsageError(
                f"--properties {item!r}: the name must match [_A-Za-z][_A-Za-z0-9]* "
                "(Akri's rule for discoveryProperties)"
            )
        properties[key] = value.encode() if equals else None
    return properties


def _command(raw: Sequence[str]) -> list[str]:
    command = list(raw)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("no handler command: put it after '--'")
    return command


def _details(args: argparse.Namespace) -> str:
    if args.details is not None:
        return str(args.details)
    if args.details_file is None:
        raise UsageError("--details YAML or --details-file FILE is required")
    try:
        return Path(args.details_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--details-file: {error}") from None


def _printer(json_output: bool) -> Callable[[str], None]:
    if json_output:
        return lambda _line: None

    def out(line: str) -> None:
        print(line, flush=True)

    return out


def run(args: argparse.Namespace) -> int:
    try:
        command = _command(args.command)
        details = _details(args)
        properties = parse_properties(args.properties)
    except UsageError as error:
        print(f"akri-dh conformance: {error}", file=sys.stderr)
        return EXIT_USAGE
    import asyncio

    try:
        from akri_sdk.testing.conformance import run_conformance
    except ImportError as error:
        print(
            f"akri-dh conformance needs the testing extra (pip install 'akri-sdk[testing]'): "
            f"{error}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        report = asyncio.run(
            run_conformance(
                command,
                details=details,
                properties=properties,
                name=args.name,
                observe=args.observe,
                timeout=args.timeout,
                headers_within=args.headers_within,
                streams=args.streams,
                show_output=args.show_output,
                out=_printer(args.json),
            )
        )
    except KeyboardInterrupt:
        print("akri-dh conformance: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): the suite has cleaned up; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    if args.json:
        print(report.to_json())
    return EXIT_PASSED if report.ok else EXIT_FAILED
