"""Structured logs: one JSON object per line, carrying the ids of what is being worked on.

A request (API) or a job (worker) opens a log context; code that learns which order it is about adds the
order's id with ``bind``. Every record logged inside that request or job then carries the ids, so one
order's story can be followed across API replicas and workers with a single query on ``order_id``.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

# One mutable dict per request or job: ids bound deep inside (a service) are seen by whoever logs later in
# the same request (the access log line), which a ContextVar set deeper down would not be.
_IDS: ContextVar[dict[str, str] | None] = ContextVar("spareflow_log_ids", default=None)
# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


@contextmanager
def log_context(**ids: str) -> Iterator[dict[str, str]]:
    """Open a context of its own (a request, a job) with these ids."""
    token = _IDS.set(dict(ids))
    try:
        yield _IDS.get() or {}
    finally:
        _IDS.reset(token)


def enter_log_context(**ids: str) -> None:
    """Open a context of its own for the rest of the current task (arq runs each job in a task of its own)."""
    _IDS.set(dict(ids))


def bind(**ids: object) -> None:
    """Add ids to the current request's or job's context (no-op outside one)."""
    current = _IDS.get()
    if current is not None:
        current.update({key: str(value) for key, value in ids.items() if value is not None})


def current_ids() -> dict[str, str]:
    return dict(_IDS.get() or {})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **current_ids(),
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = current_ids()
        line = super().format(record)
        return f"{line} [{' '.join(f'{k}={v}' for k, v in ids.items())}]" if ids else line


def configure_logging(level: str, fmt: Literal["text", "json"]) -> None:
    """Send every logger (ours, uvicorn's, arq's) through one handler on stderr in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq"):
        # Their own handlers (uvicorn installs some) would print every line a second time, unformatted.
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
