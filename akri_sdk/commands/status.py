"""`akri-dh status`: what a running handler sees, from its health port's /status."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="the handler's health port (default: http://127.0.0.1:$AKRI_HEALTH_PORT)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON")
    parser.add_argument("--timeout", type=float, default=5.0)


def _render(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for handler in report["handlers"]:
        state = "READY" if handler["ready"] else "NOT READY"
        lines.append(
            f"{handler['handler']} ({'shared' if handler['shared'] else 'local'}) "
            f"{state}: {handler['reason']}; endpoint {handler['endpoint']}; "
            f"registrations {handler['registrations']}"
        )
        stats = handler["stats"]
        lines.append(
            f"  streams {len(handler['streams'])}, snapshots sent {stats['snapshots_sent']}, "
            f"details rejected {stats['details_rejected']}, "
            f"discovery errors {sum(stats['discovery_errors'].values())}"
        )
        for task in handler["tasks"]:
            error = f", last error: {task['last_error']}" if task["last_error"] else ""
            lines.append(
                f"  task {task['task']}: {len(task['devices'])} device(s), "
                f"{task['streams']} stream(s){error}"
            )
            lines.append(f"    details: {task['details']!r}")
            for device in task["devices"]:
                props = ", ".join(f"{k}={v}" for k, v in sorted(device["properties"].items()))
                lines.append(f"    - {device['id']}  {props}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.request

    url = args.url
    if not url:
        port = os.environ.get("AKRI_HEALTH_PORT")
        if not port:
            print("akri-dh status: give --url or set AKRI_HEALTH_PORT", file=sys.stderr)
            return 2
        url = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/status", timeout=args.timeout) as reply:
            report = json.load(reply)
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"akri-dh status: cannot read {url}/status: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else _render(report))
    return 0
