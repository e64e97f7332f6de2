"""The print-host port: what the agent needs from the software that drives a printer, in our words.

Adapters: ``octoprint.OctoPrintHost`` (OctoPrint's REST API) and ``simulated.SimulatedPrintHost`` (the demo
and tests). Both pass ``tests/contract/test_print_hosts.py``.

Errors:

PrintHostError(code, message, retryable)
└── PrintHostBusy   printer_busy: another print is running or paused; retryable once it ends

Codes of PrintHostError itself: host_unreachable, printer_not_ready (offline or in error), not_started (the
host stored the file but did not start it) and host_error for a 5xx or an unexpected answer are retryable;
unauthorized, file_rejected and host_error for another 4xx are permanent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class HostState(StrEnum):
    """What became of a file on the host: the current print, or the file's last one."""

    IDLE = "idle"  # nothing selected, or the file was never started
    PRINTING = "printing"  # includes starting, finishing and cancelling: the printer is busy with it
    PAUSED = "paused"
    DONE = "done"  # the file's last print succeeded
    FAILED = "failed"  # the file's last print failed or was cancelled
    ERROR = "error"  # the printer or its host is in an error state
    OFFLINE = "offline"  # the host is unreachable or the printer disconnected


@dataclass(frozen=True, slots=True)
class HostStatus:
    state: HostState
    file: str | None
    progress: float | None  # percent, 0-100; None when the host does not say
    message: str = ""
    # True when the host knows the failed print was cancelled (someone pressed cancel); False when it failed
    # otherwise or the host cannot tell.
    cancelled: bool = False

    @property
    def busy(self) -> bool:
        """Whether the printer is taken by a print (so a new one cannot start)."""
        return self.state in (HostState.PRINTING, HostState.PAUSED)


class PrintHostError(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


class PrintHostBusy(PrintHostError):
    def __init__(self, message: str) -> None:
        super().__init__("printer_busy", message, retryable=True)


class PrintHost(Protocol):
    """A printer behind its host software, one print at a time.

    File names are the agent's: ``"{job_id}-{fence}.gcode"``, so a file on the host names the lease it was
    printed under, and the agent can ask what became of it after a restart.
    """

    @property
    def name(self) -> str:
        """What the host is, for logs and completion notes (``"octoprint http://..."``)."""
        ...

    async def status(self, name: str | None = None) -> HostStatus:
        """The state of the print of file ``name``, or of the selected file when ``name`` is None.

        When ``name`` is the file being printed, its live state and progress; otherwise what the host
        remembers of its last print (``done``/``failed``), or ``idle`` for a file it never printed. ``error``
        and ``offline`` are reported when the printer is in that state and the host has no finished print of
        ``name`` to report instead.

        Raises:
            PrintHostError: the host refused the request (``unauthorized``) or answered with a server error.
                An unreachable host is not an error: it is ``offline``.
        """
        ...

    async def start(self, name: str, path: Path) -> None:
        """Upload the G-code at ``path`` as ``name`` and start printing it.

        Raises:
            PrintHostBusy: a print is running or paused.
            PrintHostError: the host is unreachable or the printer not ready (retryable), or the host
                refused the file or the credentials (permanent).
        """
        ...

    async def cancel(self) -> None:
        """Cancel the running or paused print; nothing happens when there is none.

        Raises:
            PrintHostError: the host is unreachable (retryable) or refused the request.
        """
        ...

    async def aclose(self) -> None: ...
