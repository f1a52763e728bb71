"""Logging set-up for handler processes: plain or JSON lines, level from the env.

`AKRI_LOG_LEVEL` (debug, info, warning, error; default info) and
`AKRI_LOG_FORMAT` (plain or json; default plain). Context such as the handler,
task and stream travels in `extra` and is printed in both formats.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, TextIO

__all__ = ["JsonFormatter", "PlainFormatter", "configure_logging"]

CONTEXT_FIELDS = ("handler", "task", "stream", "configuration")
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED}


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        context = " ".join(
            f"{key}={record.__dict__[key]}" for key in CONTEXT_FIELDS if key in record.__dict__
        )
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {record.name}: "
        line += record.getMessage()
        if context:
            line += f" [{context}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extras become fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(
    level: str | None = None, fmt: str | None = None, stream: TextIO | None = None
) -> None:
    level_name = (level or os.environ.get("AKRI_LOG_LEVEL") or "info").upper()
    if level_name not in logging.getLevelNamesMapping():
        raise ValueError(
            f"AKRI_LOG_LEVEL must be debug, info, warning or error, got {level_name!r}"
        )
    format_name = (fmt or os.environ.get("AKRI_LOG_FORMAT") or "plain").lower()
    if format_name not in ("plain", "json"):
        raise ValueError(f"AKRI_LOG_FORMAT must be plain or json, got {format_name!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if format_name == "json" else PlainFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level_name)
    # grpc's own logger is chatty at debug and never about our handlers.
    logging.getLogger("grpc").setLevel(max(logging.INFO, root.level))
