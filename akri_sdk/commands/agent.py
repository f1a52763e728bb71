"""`akri-dh agent`: a local Agent for people. Reads Configuration manifests,
serves registrations, and shows the Instances handlers produce, live.

Standard library only at module level: every `akri-dh` start imports this.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

__all__ = ["configure_parser", "run"]

DESCRIPTION = """\
Play the Akri Agent on this machine, without a cluster. Reads akri.sh/v0
Configuration manifests (plus v1 Secrets and ConfigMaps for discoveryProperties),
serves handler registrations in a directory, opens Discover streams as the Agent
does, and shows the Instances it would create, updating as devices come and go.
Secret-backed values are resolved but never printed."""

EPILOG = """\
Handlers in other processes register when started with
DISCOVERY_HANDLERS_DIRECTORY set to the agent's directory, e.g.
  akri-dh agent -f examples/ --directory /tmp/akri &
  DISCOVERY_HANDLERS_DIRECTORY=/tmp/akri akri-dh run debugEcho
or in this process: akri-dh agent -f examples/ --run debugEcho

--secrets-dir DIR holds one folder per Secret and one file per key,
DIR/<secret name>/<key>, like a mounted Secret volume; the reference's namespace
is not used there. --configmaps-dir is the same for ConfigMaps. Secrets in
manifests are looked up first, by namespace ("default" unless the reference
names one, not the Configuration's namespace)."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        default=[],
        metavar="PATH",
        help="manifest file or directory (*.yaml, *.yml, *.json); '-' reads stdin; repeatable",
    )
    parser.add_argument(
        "--directory",
        help="where handlers register (default: $DISCOVERY_HANDLERS_DIRECTORY, "
        "else a new temporary directory, removed on exit)",
    )
    parser.add_argument(
        "--node-name",
        default=socket.gethostname(),
        help="node name hashed into local Instance names (default: this host's name)",
    )
    parser.add_argument(
        "--secrets-dir", metavar="DIR", help="Secret values as DIR/<name>/<key> files"
    )
    parser.add_argument(
        "--configmaps-dir", metavar="DIR", help="ConfigMap values as DIR/<name>/<key> files"
    )
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="NAME",
        help="also serve this handler (by plugin name) in this process; repeatable",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per event instead of a table"
    )
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--log-level", default="error", help="log level of in-process handlers (default error)"
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        from akri_sdk.local_agent.command import AgentOptions, run_agent
    except ImportError as error:
        print(
            f"akri-dh agent needs the testing extra (pip install 'akri-sdk[testing]'): {error}",
            file=sys.stderr,
        )
        return 2
    from akri_sdk.logs import configure_logging
    from akri_sdk.plugins import load_registry

    configure_logging(args.log_level)
    handlers = []
    if args.run:
        registry = load_registry()
        handlers = [registry.get(name)() for name in dict.fromkeys(args.run)]
    options = AgentOptions(
        files=args.files,
        directory=args.directory,
        node_name=args.node_name,
        secrets_dir=args.secrets_dir,
        configmaps_dir=args.configmaps_dir,
        json=args.json,
        seconds=args.seconds,
    )
    return run_agent(options, handlers)
