"""The print job life cycle as a pure state machine: which status may follow which, and nothing else.

Main line::

    waiting_geometry -> ready -> claimed -> printing -> done

``waiting_geometry``: the model is checked, repaired and sliced for the job's printer. ``ready``: its site's
agent may claim it. ``claimed``: an agent holds the lease and is starting; ``printing`` once the printer
reports it under way. A site may complete a claimed job without reporting printing in between (a fast print
between two heartbeats).

A print that is lost before it finished (the agent failed it and may retry here, or its lease ran out)
returns the job to ``ready``, to be claimed again: the lease's fence tells the claims apart. ``failed``
parks a job with its reason (its preparation failed, its model was rejected, it failed too often at its
site); ``cancelled`` withdraws one whose order was cancelled or moved before printing began. ``done``,
``failed`` and ``cancelled`` end it. Every status change goes through ``move``; ``test_print_job_states``
walks every pair.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.errors import Conflict
from services.printing.models import PrintJobStatus

J = PrintJobStatus

TRANSITIONS: dict[PrintJobStatus, frozenset[PrintJobStatus]] = {
    J.WAITING_GEOMETRY: frozenset({J.READY, J.FAILED, J.CANCELLED}),
    J.READY: frozenset({J.CLAIMED, J.CANCELLED}),
    J.CLAIMED: frozenset({J.PRINTING, J.DONE, J.READY, J.FAILED}),
    J.PRINTING: frozenset({J.DONE, J.READY, J.FAILED}),
    J.DONE: frozenset(),
    J.FAILED: frozenset(),
    J.CANCELLED: frozenset(),
}
TERMINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)


class InvalidJobTransition(Conflict):
    code = "invalid_print_job_transition"


class HasStatus(Protocol):
    status: PrintJobStatus
    updated_at: datetime


def can_move(current: PrintJobStatus, target: PrintJobStatus) -> bool:
    return target in TRANSITIONS[current]


def move(job: HasStatus, target: PrintJobStatus, *, at: datetime) -> None:
    """Set the job's status, or raise InvalidJobTransition (409) when ``target`` may not follow it."""
    if not can_move(job.status, target):
        raise InvalidJobTransition(
            f"a print job that is {job.status} cannot become {target}",
            details={"from": job.status.value, "to": target.value},
        )
    job.status = target
    job.updated_at = at
