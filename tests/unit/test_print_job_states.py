"""The print job life cycle: every pair of statuses is allowed or refused as ``printing/states.py`` says,
the main line only moves forward, a lost print is the one way back, and the ends are ends."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.printing.models import LEASED, PrintJobStatus
from services.printing.states import TERMINAL, TRANSITIONS, InvalidJobTransition, move

J = PrintJobStatus
MAIN_LINE = (J.WAITING_GEOMETRY, J.READY, J.CLAIMED, J.PRINTING, J.DONE)
AT = datetime(2026, 12, 6, 12, tzinfo=UTC)


@dataclass
class Job:
    status: PrintJobStatus
    updated_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)


def test_every_status_has_a_row_and_the_ends_are_done_failed_cancelled() -> None:
    assert set(TRANSITIONS) == set(J)
    assert {J.DONE, J.FAILED, J.CANCELLED} == TERMINAL


@pytest.mark.parametrize(("current", "target"), list(itertools.product(J, J)))
def test_each_pair_is_allowed_or_refused_without_a_change(current: J, target: J) -> None:
    job = Job(current)
    if target not in TRANSITIONS[current]:
        with pytest.raises(InvalidJobTransition) as refused:
            move(job, target, at=AT)
        assert refused.value.status == 409
        assert (job.status, job.updated_at) == (current, Job(current).updated_at)
        return
    move(job, target, at=AT)
    assert (job.status, job.updated_at) == (target, AT)
    assert current not in TERMINAL
    assert target != current
    if current in LEASED and target is J.READY:
        return  # a lost print: the one way back, to be claimed again
    if target in MAIN_LINE:
        assert MAIN_LINE.index(target) > MAIN_LINE.index(current)


def test_the_main_line_is_walkable_and_only_a_held_lease_completes() -> None:
    job = Job(J.WAITING_GEOMETRY)
    for target in MAIN_LINE[1:]:
        move(job, target, at=AT)
    assert job.status is J.DONE
    assert {s for s, targets in TRANSITIONS.items() if J.DONE in targets} == set(LEASED)
    # Only a job nobody is printing yet can be withdrawn.
    assert {s for s, targets in TRANSITIONS.items() if J.CANCELLED in targets} == {
        J.WAITING_GEOMETRY,
        J.READY,
    }


def test_no_code_but_the_state_machine_writes_a_job_status() -> None:
    root = Path(__file__).resolve().parents[2] / "services"
    writes = re.compile(r"\bjob\.status\s*=[^=]|\.status\s*=\s*(J|PrintJobStatus)\.")
    offenders = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in root.rglob("*.py")
        if path != root / "printing" / "states.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if writes.search(line)
    ]
    assert offenders == []
