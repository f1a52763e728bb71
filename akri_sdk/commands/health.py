"""`akri-dh health NAME...`: an exec probe for images without an HTTP port.

Asks each handler's own socket for the standard gRPC health status. Exit 0 when
every handler is SERVING (or, with --liveness, merely answers), 1 when one is
NOT_SERVING, 2 when one cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys

SERVING = 1
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME", help="handler names to check")
    parser.add_argument(
        "--directory", help="socket directory (default: $DISCOVERY_HANDLERS_DIRECTORY)"
    )
    parser.add_argument(
        "--address", help="HOST:PORT of a handler in network mode (instead of its socket)"
    )
    parser.add_argument(
        "--liveness", action="store_true", help="only check that the handler answers"
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per check")


def _target(args: argparse.Namespace, name: str) -> str:
    if args.address:
        return str(args.address)
    directory = args.directory or os.environ.get("DISCOVERY_HANDLERS_DIRECTORY") or "/var/lib/akri"
    return f"unix:{os.path.join(directory, name + '.sock')}"


def _check(target: str, name: str, timeout: float) -> int | str:
    """The handler's status code, or why it could not be asked."""
    import grpc

    from akri_sdk.health import HEALTH_SERVICE

    request = b"\x0a" + bytes((len(name.encode()),)) + name.encode()
    options = [("grpc.default_authority", "localhost"), ("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(target, options=options) as channel:
        check = channel.unary_unary(f"/{HEALTH_SERVICE}/Check")
        try:
            response: bytes = check(request, timeout=timeout)
        except grpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"
    return response[1] if len(response) >= 2 and response[0] == 0x08 else 0


def run(args: argparse.Namespace) -> int:
    worst = 0
    for name in args.names:
        if len(name.encode()) > 127:
            print(f"{name}: name too long", file=sys.stderr)
            return 2
        result = _check(_target(args, name), name, args.timeout)
        if isinstance(result, str):
            print(f"{name}: unreachable ({result})")
            worst = max(worst, 2)
            continue
        print(f"{name}: {STATUS_NAMES.get(result, result)}")
        if result != SERVING and not args.liveness:
            worst = max(worst, 1)
    return worst
