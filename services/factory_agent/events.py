"""The agent's log: one JSON object per line, ``{"ts", "event", ...}``, for people and for tests to read."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import TextIO


class EventLog:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._last: dict[str, float] = {}

    def emit(self, event: str, **fields: object) -> None:
        line = {"ts": datetime.now(UTC).isoformat(), "event": event, **fields}
        self._stream.write(json.dumps(line, default=str) + "\n")
        self._stream.flush()

    def throttled(self, key: str, every_s: float, event: str, **fields: object) -> None:
        """``emit``, at most once per ``every_s`` seconds for ``key`` (repeated heartbeats, outages)."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < every_s:
            return
        self._last[key] = now
        self.emit(event, **fields)

    def forget(self, key: str) -> None:
        """Let the next ``throttled`` call for ``key`` through (a new job, an outage that ended)."""
        self._last.pop(key, None)
