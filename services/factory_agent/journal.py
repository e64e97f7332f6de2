"""The job an agent holds, on disk: what a restarted agent reconciles with its print host first.

One agent per state directory (an exclusive lock), one job at a time: ``job.json`` while a job is held.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ValidationError

from services.printing.schemas import ArtifactOut

JOB_FILE = "job.json"
LOCK_FILE = "agent.lock"


class Phase(StrEnum):
    # Leased, not started yet. The host may have started it all the same, if the agent died between asking
    # and hearing back: the host's status of the file tells.
    CLAIMED = "claimed"
    STARTED = "started"  # the host accepted the print


class JobRecord(BaseModel):
    job_id: uuid.UUID
    token: str
    fence: int
    lease_seconds: float
    phase: Phase
    gcode: ArtifactOut
    filament_g: float | None  # the slicer's estimate, reported as the part's weight

    @property
    def host_file(self) -> str:
        """The file's name on the print host: it names the lease it is printed under."""
        return host_file_name(self.job_id, self.fence)


def host_file_name(job_id: uuid.UUID, fence: int) -> str:
    return f"{job_id}-{fence}.gcode"


class StateDirLocked(Exception):
    """Another agent runs with the same state directory."""


class JournalUnreadable(Exception):
    """The job record cannot be read; an operator must look (a print may be running for it)."""


class Journal:
    """``job.json`` in ``state_dir``, written atomically (a crash leaves the old record or the new one)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._path = state_dir / JOB_FILE

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state directory for as long as the block runs.

        Raises:
            StateDirLocked: another agent holds it; two agents on one record would both act on its job.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / LOCK_FILE).open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise StateDirLocked(f"another agent is using {self.state_dir}") from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self) -> JobRecord | None:
        """The held job, if any.

        Raises:
            JournalUnreadable: the file is there but is not a job record.
        """
        try:
            return JobRecord.model_validate_json(self._path.read_bytes())
        except FileNotFoundError:
            return None
        except ValidationError as exc:
            raise JournalUnreadable(f"{self._path} is not a job record: {exc}") from exc

    def save(self, record: JobRecord) -> None:
        partial = self._path.with_name(f".{JOB_FILE}.partial")
        with partial.open("w") as handle:
            handle.write(record.model_dump_json(indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self._path)

    def clear(self) -> None:
        self._path.unlink(missing_ok=True)
