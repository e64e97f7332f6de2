"""A print host without a printer, for the embedded demo and tests.

A "print" takes ``estimated seconds / speed`` of wall time (capped), the estimate read from the slicer's
comments in the G-code. Its state lives in ``host.json`` in the host's directory and is computed from the
wall clock, so a new process (an agent restarted after a kill) finds the print still running or finished,
as a real printer keeps printing while its agent restarts.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from services.factory_agent.print_hosts import HostState, HostStatus, PrintHostBusy
from slicer_adapters.gcode import (
    CURA_HEADER_BYTES,
    PRUSASLICER_FOOTER_BYTES,
    parse_prusaslicer_footer,
    read_head,
    read_tail,
)

# CuraEngine writes its estimate in the header: ";TIME:1234" (seconds).
_CURA_TIME = re.compile(r"^;TIME:(\d+(?:\.\d+)?)\s*$", re.MULTILINE)
STATE_FILE = "host.json"


def estimated_seconds(path: Path) -> float | None:
    """The print time the slicer wrote into a G-code file (PrusaSlicer's footer or Cura's header)."""
    footer = parse_prusaslicer_footer(read_tail(path, PRUSASLICER_FOOTER_BYTES))
    if footer.print_seconds is not None:
        return footer.print_seconds
    match = _CURA_TIME.search(read_head(path, CURA_HEADER_BYTES))
    return float(match.group(1)) if match else None


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class _Print(BaseModel):
    name: str
    started_at: float  # wall clock, seconds since the epoch: meaningful to another process
    duration: float
    fails_at: float | None = None  # seconds after the start
    cancelled_at: float | None = None

    def outcome(self, now: float) -> Outcome | None:
        """How the print ended by ``now``; None while it runs."""
        if self.cancelled_at is not None:
            return Outcome.CANCELLED
        if self.fails_at is not None and now >= self.started_at + self.fails_at:
            return Outcome.FAILED
        if now >= self.started_at + self.duration:
            return Outcome.DONE
        return None


class _HostFile(BaseModel):
    current: _Print | None = None
    # The outcome of each file's last print, for files no longer current.
    history: dict[str, Outcome] = Field(default_factory=dict)


class SimulatedPrintHost:
    """Prints nothing, in real time.

    Args:
        directory: where ``host.json`` lives; the same directory means the same printer.
        speed: how many times faster than the estimate a print runs.
        default_seconds: the estimate of a file without one.
        max_seconds: no print takes longer than this (after ``speed``).
        fail_after_fraction: every print started by this object fails after this fraction of its duration.
        clock: wall-clock seconds since the epoch.
    """

    def __init__(
        self,
        directory: Path,
        *,
        speed: float = 1.0,
        default_seconds: float = 60.0,
        max_seconds: float | None = None,
        fail_after_fraction: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._path = directory / STATE_FILE
        self._speed = speed
        self._default_seconds = default_seconds
        self._max_seconds = max_seconds
        self._fail_after_fraction = fail_after_fraction
        self._clock = clock
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return f"simulated {self._path.parent}"

    async def status(self, name: str | None = None) -> HostStatus:
        state = self._load()
        now = self._clock()
        current = state.current
        if current is not None and name in (None, current.name):
            return _status_of(current, now)
        if name is None:
            return HostStatus(HostState.IDLE, None, None)
        outcome = state.history.get(name)
        return HostStatus(HostState.IDLE, name, None) if outcome is None else _ended(name, outcome)

    async def start(self, name: str, path: Path) -> None:
        state = self._load()
        now = self._clock()
        current = state.current
        if current is not None:
            outcome = current.outcome(now)
            if outcome is None:
                raise PrintHostBusy(f"{current.name} is printing")
            state.history[current.name] = outcome
        estimate = estimated_seconds(path)
        duration = (self._default_seconds if estimate is None else estimate) / self._speed
        if self._max_seconds is not None:
            duration = min(duration, self._max_seconds)
        fails_at = None if self._fail_after_fraction is None else duration * self._fail_after_fraction
        state.current = _Print(name=name, started_at=now, duration=duration, fails_at=fails_at)
        # A file printed again is current, not history.
        state.history.pop(name, None)
        self._save(state)

    async def cancel(self) -> None:
        state = self._load()
        now = self._clock()
        if state.current is None or state.current.outcome(now) is not None:
            return
        state.current.cancelled_at = now
        self._save(state)

    async def aclose(self) -> None:
        """Nothing to release: the state is on disk."""

    def _load(self) -> _HostFile:
        try:
            return _HostFile.model_validate_json(self._path.read_bytes())
        except FileNotFoundError:
            return _HostFile()

    def _save(self, state: _HostFile) -> None:
        # Replace, never rewrite in place: another process reading at the same moment sees old or new.
        partial = self._path.with_name(f".{self._path.name}.{os.getpid()}")
        partial.write_text(state.model_dump_json(indent=1))
        os.replace(partial, self._path)


def _status_of(current: _Print, now: float) -> HostStatus:
    outcome = current.outcome(now)
    if outcome is not None:
        return _ended(current.name, outcome)
    # Running means now < started_at + duration, so the duration is positive here.
    progress = min(100.0, 100.0 * (now - current.started_at) / current.duration)
    return HostStatus(HostState.PRINTING, current.name, progress, "printing")


def _ended(name: str, outcome: Outcome) -> HostStatus:
    match outcome:
        case Outcome.DONE:
            return HostStatus(HostState.DONE, name, 100.0)
        case Outcome.FAILED:
            return HostStatus(HostState.FAILED, name, None, "print failed")
        case Outcome.CANCELLED:
            return HostStatus(HostState.FAILED, name, None, "cancelled", cancelled=True)
