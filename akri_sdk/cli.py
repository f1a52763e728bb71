"""The `akri-dh` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["main"]


def _cmd_run(args: argparse.Namespace) -> int:
    from akri_sdk.logs import configure_logging
    from akri_sdk.plugins import load_registry
    from akri_sdk.runtime import RuntimeConfig, run

    configure_logging(args.log_level, args.log_format)
    registry = load_registry()
    handlers = [registry.get(name)() for name in args.names]
    config = RuntimeConfig.from_env()
    if args.directory:
        config = dataclasses.replace(config, directory=Path(args.directory))
    run(*handlers, config=config)
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from akri_sdk.plugins import load_registry

    registry = load_registry()
    rows = []
    for info in registry.plugins.values():
        for name in info.handlers or [""]:
            handler = registry.handlers.get(name)
            rows.append(
                {
                    "plugin": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "handler": name or None,
                    "shared": getattr(handler, "shared", None) if handler else None,
                    "style": (
                        ("watch" if handler.is_event_driven() else "scan") if handler else None
                    ),
                }
            )
    for plugin, why in registry.failed.items():
        rows.append(
            {
                "plugin": plugin,
                "distribution": None,
                "version": None,
                "handler": None,
                "shared": None,
                "style": None,
                "error": why,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("PLUGIN", "DISTRIBUTION", "VERSION", "HANDLER", "STYLE")
    table = [header] + [
        (
            r["plugin"],
            r["distribution"] or "-",
            r["version"] or "-",
            r["handler"] or "-",
            r["style"] or ("FAILED" if r.get("error") else "-"),
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from akri_sdk.details import details_schema
    from akri_sdk.plugins import load_registry

    handler = load_registry().get(args.name)
    if handler.details is None:
        print(f"{args.name} takes no discoveryDetails model", file=sys.stderr)
        return 1
    print(json.dumps(details_schema(handler.details), indent=2))
    return 0


# (command, module, help). Each module in akri_sdk.commands defines
# `configure_parser(parser)` and `run(args) -> int`, and imports only the
# standard library at module level: every `akri-dh` start loads them all.
EXTERNAL_COMMANDS = (
    (
        "agent",
        "akri_sdk.commands.agent",
        "local Agent: apply Configuration manifests, show Instances",
    ),
    ("discover", "akri_sdk.commands.discover", "run one handler in-process and show what it finds"),
    ("conformance", "akri_sdk.commands.conformance", "judge any handler command from the outside"),
    ("health", "akri_sdk.commands.health", "exec probe: ask handlers' sockets for their health"),
    ("status", "akri_sdk.commands.status", "show what a running handler sees (its health port)"),
)


def _configure_external(module: str, parser: argparse.ArgumentParser) -> None:
    import importlib

    try:
        configure = importlib.import_module(module).configure_parser
    except ImportError:
        return  # an optional part that is not installed; `run` reports it
    configure(parser)


def _external(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        try:
            target = importlib.import_module(module)
        except ImportError as error:
            print(f"akri-dh: {module} is unavailable: {error}", file=sys.stderr)
            return 2
        result: int = target.run(args)
        return result

    return run


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from akri_sdk.demo import main as demo
    except ImportError as error:
        print(f"akri-dh demo needs the testing extra (pip install 'akri-sdk[testing]'): {error}")
        return 2
    return demo(seconds=args.seconds, toggle_every=args.toggle_every)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="akri-dh", description="Run and inspect Akri discovery handlers written in Python."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve handlers by name and register them with the Agent")
    run.add_argument("names", nargs="+", metavar="NAME", help="handler names, e.g. debugEcho")
    run.add_argument(
        "--directory",
        help="the Agent's directory (default: $DISCOVERY_HANDLERS_DIRECTORY or /var/lib/akri)",
    )
    run.add_argument("--log-level", help="debug, info, warning, error (default: $AKRI_LOG_LEVEL)")
    run.add_argument("--log-format", help="plain or json (default: $AKRI_LOG_FORMAT)")
    run.set_defaults(func=_cmd_run)

    plugins = sub.add_parser("plugins", help="list loaded plugins and their handlers")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(func=_cmd_plugins)

    schema = sub.add_parser("schema", help="print the JSON Schema of a handler's discoveryDetails")
    schema.add_argument("name", metavar="NAME")
    schema.set_defaults(func=_cmd_schema)
    # Commands implemented in their own modules, imported only when used.
    for name, module, summary in EXTERNAL_COMMANDS:
        command = sub.add_parser(name, help=summary)
        command.set_defaults(func=_external(module))
        _configure_external(module, command)

    demo = sub.add_parser("demo", help="live local demo: a local Agent with debugEcho")
    demo.add_argument("--seconds", type=float, help="stop after this many seconds")
    demo.add_argument(
        "--toggle-every", type=float, default=4.0, help="seconds between availability flips"
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from akri_sdk.plugins import PluginError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (PluginError, ValueError, RuntimeError) as error:
        print(f"akri-dh: {error}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
