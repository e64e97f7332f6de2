"""The re-optimiser's inputs and answers: jobs, their options, printers, the problem, plans and moves;
what makes a plan valid and what each job costs in it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Hours of slack tolerated when checking a capacity or a promised finish: 1e-6 h is 3.6 ms, far below any
# print time, and above the rounding noise of summing a few hundred float print durations.
TOLERANCE_HOURS = 1e-6
DEFAULT_BUCKETS = 4


@dataclass(frozen=True, slots=True)
class Option:
    """One printer that can make a job.

    ``delivery_hours_if_started_now`` is the queue-free delivery estimate, in hours from now: print,
    post-processing, wait for the courier cut-off and transit, as if the printer started the job now.
    """

    printer_id: str
    site_id: str
    print_hours: float
    delivery_hours_if_started_now: float
    transit_cost: float


@dataclass(frozen=True, slots=True)
class Job:
    """A not-yet-started job (an order; its quantity is folded into each option's ``print_hours``)."""

    job_id: str
    current_assignment: str | None
    need_by_hours: float
    options: tuple[Option, ...]


@dataclass(frozen=True, slots=True)
class PrinterCapacity:
    """A printer and its free machine hours in the planning horizon (after started and pinned work)."""

    printer_id: str
    site_id: str
    capacity_hours: float


@dataclass(frozen=True, slots=True)
class Problem:
    """One re-optimisation: the jobs, the printers and the prices of lateness and of leaving a job out.

    ``lateness_weight`` is the cost of one hour of lateness in transit-cost units. ``unplaced_penalty`` is
    the cost of leaving one job unplaced; ``None`` (the default) uses a value larger than any plan's total
    transit and lateness cost, so that no saving ever justifies placing fewer jobs. ``buckets`` is the
    number of time buckets per printer in the queueing approximation (see the ``model`` module).

    Raises:
        ValueError: on duplicate ids, an option naming an unknown printer (or the wrong site), two options
            of one job on one printer, or negative / non-finite figures.
    """

    jobs: tuple[Job, ...]
    printers: tuple[PrinterCapacity, ...]
    lateness_weight: float = 1.0
    unplaced_penalty: float | None = None
    buckets: int = DEFAULT_BUCKETS

    def __post_init__(self) -> None:
        _check_problem(self)


@dataclass(frozen=True, slots=True)
class Plan:
    """An assignment of every job to a printer (or ``None``: unplaced) and what it costs.

    ``finish_by_hours`` holds, for each placed job, the promised latest end of its print (hours from now):
    printing each printer's jobs in increasing ``finish_by_hours`` meets every promise. Lateness is
    computed from it (see the ``model`` module). ``cost`` is ``transit_cost + lateness_weight *
    lateness_hours + unplaced_penalty * unplaced``; ``optimal`` says the solver proved it minimal.
    """

    assignments: dict[str, str | None]
    finish_by_hours: dict[str, float]
    cost: float
    transit_cost: float
    lateness_hours: float
    unplaced: int
    unplaced_penalty: float
    solve_seconds: float
    optimal: bool
    method: str

    @property
    def placed(self) -> int:
        return len(self.assignments) - self.unplaced


@dataclass(frozen=True, slots=True)
class Move:
    """Re-assign one job. Moves of one ``group`` share printers: apply all of them or none."""

    job_id: str
    from_printer: str | None
    to_printer: str | None
    gain: float
    group: int


def _check_problem(problem: Problem) -> None:
    if not (math.isfinite(problem.lateness_weight) and problem.lateness_weight >= 0):
        raise ValueError(f"lateness_weight must be finite and >= 0, not {problem.lateness_weight}")
    penalty = problem.unplaced_penalty
    if penalty is not None and not (math.isfinite(penalty) and penalty > 0):
        raise ValueError(f"unplaced_penalty must be finite and > 0, not {penalty}")
    if problem.buckets < 1:
        raise ValueError(f"buckets must be >= 1, not {problem.buckets}")
    sites: dict[str, str] = {}
    for printer in problem.printers:
        if printer.printer_id in sites:
            raise ValueError(f"duplicate printer {printer.printer_id!r}")
        if not (math.isfinite(printer.capacity_hours) and printer.capacity_hours >= 0):
            raise ValueError(f"printer {printer.printer_id!r}: capacity_hours must be finite and >= 0")
        sites[printer.printer_id] = printer.site_id
    seen: set[str] = set()
    for job in problem.jobs:
        if job.job_id in seen:
            raise ValueError(f"duplicate job {job.job_id!r}")
        seen.add(job.job_id)
        if not math.isfinite(job.need_by_hours):
            raise ValueError(f"job {job.job_id!r}: need_by_hours must be finite")
        printers_of_job: set[str] = set()
        for option in job.options:
            where = f"job {job.job_id!r}, printer {option.printer_id!r}"
            if option.printer_id not in sites:
                raise ValueError(f"{where}: unknown printer")
            if sites[option.printer_id] != option.site_id:
                raise ValueError(f"{where}: the printer is at site {sites[option.printer_id]!r}")
            if option.printer_id in printers_of_job:
                raise ValueError(f"{where}: two options on one printer")
            printers_of_job.add(option.printer_id)
            if not (math.isfinite(option.print_hours) and option.print_hours > 0):
                raise ValueError(f"{where}: print_hours must be finite and > 0")
            if not (
                math.isfinite(option.delivery_hours_if_started_now)
                and option.delivery_hours_if_started_now >= option.print_hours
            ):
                raise ValueError(f"{where}: delivery_hours_if_started_now must be finite and >= print_hours")
            if not (math.isfinite(option.transit_cost) and option.transit_cost >= 0):
                raise ValueError(f"{where}: transit_cost must be finite and >= 0")


def print_deadline(job: Job, option: Option) -> float:
    """The latest end of the print (hours from now) that still delivers by the job's need-by time."""
    return job.need_by_hours - (option.delivery_hours_if_started_now - option.print_hours)


def validate_plan(problem: Problem, plan: Plan) -> list[str]:
    """What is wrong with a plan: an empty list when it is valid.

    Valid: every job appears once, on one of its own options' printers or ``None``; each placed job has a
    promised finish, and printing each printer's jobs in increasing promised finish meets every promise
    and uses at most the printer's capacity; ``cost``, ``transit_cost``, ``lateness_hours`` and
    ``unplaced`` agree with the assignments (to 1e-6 relative).
    """
    errors: list[str] = []
    if set(plan.assignments) != {job.job_id for job in problem.jobs}:
        errors.append("the plan's jobs are not the problem's jobs")
        return errors
    capacity = {printer.printer_id: printer.capacity_hours for printer in problem.printers}
    queues: dict[str, list[tuple[float, float, str]]] = {p: [] for p in capacity}
    transit = late = 0.0
    unplaced = 0
    for job in problem.jobs:
        printer_id = plan.assignments[job.job_id]
        if printer_id is None:
            unplaced += 1
            if job.job_id in plan.finish_by_hours:
                errors.append(f"{job.job_id}: unplaced but given a finish time")
            continue
        option = next((o for o in job.options if o.printer_id == printer_id), None)
        if option is None:
            errors.append(f"{job.job_id}: {printer_id} is not one of its options")
            continue
        finish = plan.finish_by_hours.get(job.job_id)
        if finish is None:
            errors.append(f"{job.job_id}: placed without a finish time")
            continue
        queues[printer_id].append((finish, option.print_hours, job.job_id))
        transit += option.transit_cost
        late += max(0.0, finish - print_deadline(job, option))
    for printer_id, queue in queues.items():
        elapsed = 0.0
        for finish, hours, job_id in sorted(queue):
            elapsed += hours
            if elapsed > finish + TOLERANCE_HOURS:
                errors.append(f"{printer_id}: {job_id} cannot finish by {finish:.6f} h (at {elapsed:.6f} h)")
        if elapsed > capacity[printer_id] + TOLERANCE_HOURS:
            errors.append(f"{printer_id}: {elapsed:.6f} h assigned, capacity {capacity[printer_id]:.6f} h")
    cost = transit + problem.lateness_weight * late + plan.unplaced_penalty * unplaced
    for name, mine, theirs in (
        ("unplaced", float(unplaced), float(plan.unplaced)),
        ("transit_cost", transit, plan.transit_cost),
        ("lateness_hours", late, plan.lateness_hours),
        ("cost", cost, plan.cost),
    ):
        if not math.isclose(mine, theirs, rel_tol=1e-6, abs_tol=1e-6):
            errors.append(f"{name} is {theirs}, the assignments give {mine}")
    return errors


def job_costs(problem: Problem, plan: Plan) -> dict[str, float]:
    """Each job's own term of the plan's cost: transit plus weighted lateness, or the unplaced penalty."""
    costs: dict[str, float] = {}
    for job in problem.jobs:
        printer_id = plan.assignments.get(job.job_id)
        option = next((o for o in job.options if o.printer_id == printer_id), None)
        finish = plan.finish_by_hours.get(job.job_id)
        if option is None or finish is None:
            costs[job.job_id] = plan.unplaced_penalty
            continue
        late = max(0.0, finish - print_deadline(job, option))
        costs[job.job_id] = option.transit_cost + problem.lateness_weight * late
    return costs
