"""Logging set-up for Puente's commands, and the context every log line can carry.

`PUENTE_LOG_FORMAT=json` writes one JSON object per line (time, level, logger, message,
and the request id, workspace id and webhook event id when known) for a log collector;
the default is the plain text line people read in a terminal.

The context lives in a context variable holding a small dict: a request's middleware
opens it and whoever learns the workspace later (the session's scope, in a dependency
that runs in a thread pool with a copy of the context) fills the same dict in.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("request_id", "workspace_id", "event_id")

_context: ContextVar[dict[str, Any] | None] = ContextVar("puente_log_context", default=None)


@contextmanager
def log_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """Lines logged inside carry `fields` (on top of the enclosing context's)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield _context.get() or {}
    finally:
        _context.reset(token)


def note_workspace(workspace_id: int) -> None:
    """The current request or job turned out to be about this workspace."""
    fields = _context.get()
    if fields is not None:
        fields["workspace_id"] = workspace_id


class ContextFilter(logging.Filter):
    """Copies the context onto each record, in the thread that logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get()
        for name in FIELDS:
            setattr(record, name, fields.get(name) if fields else None)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def make_handler(log_format: str, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    return handler


def setup_logging(level: str, log_format: str) -> None:
    """Configure the root logger for a `puente` command (replacing earlier handlers)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(log_format))
    root.setLevel(level.upper())
    # Alembic announces each of its plugins whenever the schema is checked at start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
