"""Structured logs: one JSON object per line (default) or readable text.

Every record carries the node's name and id, its current Raft term, and the request
id when it was logged while serving a request. Records logged as events pass
`extra={"event": "leader_changed", ...}`; the extra fields become JSON keys, so a
request's or an election's story can be rebuilt with a JSON filter.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TextIO

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FILE_MODE = 0o600
"""Logs name users and addresses (the audit log too): readable by their owner only."""

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "accord_request_id", default=None
)
"""The id of the request being served (set by the HTTP layer; follows its tasks)."""

# The attributes every LogRecord has; anything else was passed with `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "node",
    "node_id",
    "term",
    "request_id",
}


class NodeContext(logging.Filter):
    """Stamps each record with the node's identity, term and the current request."""

    def __init__(self, name: str, node_id: int, term: Callable[[], int] | None = None) -> None:
        super().__init__()
        self.node_name = name
        self.node_id = node_id
        self.term = term

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node_name
        record.node_id = self.node_id
        record.term = self.term() if self.term is not None else None
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "node": getattr(record, "node", None),
            "node_id": getattr(record, "node_id", None),
            "term": getattr(record, "term", None),
        }
        rid = getattr(record, "request_id", None)
        if rid is not None:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        line = (
            f"{_timestamp(record.created)} {getattr(record, 'node', '-')} "
            f"term={getattr(record, 'term', '-')} {record.levelname} {record.name}: "
            f"{record.getMessage()}"
        )
        if rid is not None:
            line += f" request={rid}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def configure_logging(
    log_format: str,
    level: str,
    context: NodeContext,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route the root logger to `stream` (stderr) in the chosen format; returns the
    handler (tests remove it again)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(context)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def open_log_file(path: Path) -> BinaryIO:
    """`path` opened to append, mode `LOG_FILE_MODE` whether new or made before (by an
    older version, or under a wider umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
    try:
        os.fchmod(fd, LOG_FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")
