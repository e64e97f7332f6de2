"""What the agent does next with the job it holds, given what the print host says: pure, so that the
reconciliation after a restart and the normal course of a print are one rule, tested without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.factory_agent.journal import Phase
from services.factory_agent.print_hosts import HostState, HostStatus
from services.printing.schemas import FailReason, PrinterState

# A print the host forgets right after accepting it is most likely a status read between two of the host's
# own steps (OctoPrint writes a file's history a moment after the printer is free): look again before failing.
VANISHED_GRACE_S = 10.0


class Action(StrEnum):
    START = "start"  # download if needed, check the lease, start it on the host
    WATCH = "watch"  # it is printing: keep heartbeating
    WAIT = "wait"  # the host cannot tell or cannot print now: keep the lease and look again
    COMPLETE = "complete"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    reason: FailReason | None = None  # for FAIL
    message: str = ""
    retry_here: bool = True  # for FAIL: whether printing it again at this site makes sense


def next_step(phase: Phase, status: HostStatus, *, trouble_for: float, grace_s: float) -> Step:
    """The next step for a job in ``phase`` whose host file has ``status``.

    Args:
        phase: how far the agent got with the job (from its journal).
        status: the host's answer for the job's file.
        trouble_for: how long, in seconds, the job has made no headway (waiting, or failing to start).
        grace_s: how long to wait for a host that is offline, in error or busy with another print before
            giving back a job not started yet.
    """
    if status.state in (HostState.PRINTING, HostState.PAUSED):
        return Step(Action.WATCH)
    if status.state is HostState.DONE:
        return Step(Action.COMPLETE)
    if status.state is HostState.FAILED:
        reason = FailReason.CANCELLED_ON_PRINTER if status.cancelled else FailReason.PRINT_FAILED
        return Step(Action.FAIL, reason, status.message)
    if status.state is HostState.ERROR and phase is Phase.STARTED:
        # Our print was under way and the printer is in error: the print is over.
        return Step(Action.FAIL, FailReason.PRINTER_ERROR, status.message)
    if status.state is HostState.OFFLINE and phase is Phase.STARTED:
        # An unreachable host may well be printing still: giving the job back could print it twice. Hold it;
        # the heartbeats say the printer is in error.
        return Step(Action.WAIT, message=status.message)
    if status.state in (HostState.ERROR, HostState.OFFLINE):
        if trouble_for >= grace_s:
            message = f"the print host was {status.state} for {trouble_for:.0f} s: {status.message}"
            return Step(Action.FAIL, FailReason.PRINTER_ERROR, message)
        return Step(Action.WAIT, message=status.message)
    # IDLE: the host never printed the file, or has forgotten it.
    if phase is Phase.STARTED:
        if trouble_for >= VANISHED_GRACE_S:
            return Step(Action.FAIL, FailReason.PRINT_FAILED, "the print host has no record of the print")
        return Step(Action.WAIT, message="the print host does not know the print")
    if trouble_for >= grace_s:
        message = f"the print host could not start it for {trouble_for:.0f} s"
        return Step(Action.FAIL, FailReason.PRINTER_ERROR, message)
    return Step(Action.START)


def printer_state(status: HostStatus) -> PrinterState:
    """The heartbeat's ``printer_state`` for what the host says of the job's file."""
    match status.state:
        case HostState.IDLE:
            return PrinterState.PREPARING
        case HostState.PRINTING:
            return PrinterState.PRINTING
        case HostState.PAUSED:
            return PrinterState.PAUSED
        case HostState.DONE:
            return PrinterState.FINISHING
        case HostState.FAILED:
            return PrinterState.IDLE
        case HostState.ERROR | HostState.OFFLINE:
            return PrinterState.ERROR
