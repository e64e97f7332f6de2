"""The re-assignments worth making: a plan's changes against the status quo, in groups that keep every
printer within capacity."""

from __future__ import annotations

from services.routing.optimizer.model import unplaced_penalty_of
from services.routing.optimizer.problem import Job, Move, Plan, Problem, job_costs
from services.routing.optimizer.solvers import solve


def status_quo(problem: Problem, *, time_limit_s: float = 1.0, unplaced_penalty: float | None = None) -> Plan:
    """The best plan that leaves every job where it is: each job may only use its current printer.

    A job whose current printer is gone (not among its options) or that no longer fits there is unplaced.
    ``unplaced_penalty`` defaults to the full problem's, so the costs compare with its plans.
    """
    kept = tuple(
        Job(
            job_id=job.job_id,
            current_assignment=job.current_assignment,
            need_by_hours=job.need_by_hours,
            options=tuple(o for o in job.options if o.printer_id == job.current_assignment),
        )
        for job in problem.jobs
    )
    penalty = unplaced_penalty if unplaced_penalty is not None else unplaced_penalty_of(problem)
    restricted = Problem(
        jobs=kept,
        printers=problem.printers,
        lateness_weight=problem.lateness_weight,
        unplaced_penalty=penalty,
        buckets=problem.buckets,
    )
    return solve(restricted, time_limit_s=time_limit_s)


def moves(plan: Plan, problem: Problem, *, min_improvement: float, time_limit_s: float = 1.0) -> list[Move]:
    """The re-assignments worth making: the plan's changes whose gain beats ``min_improvement`` per move.

    Gain is measured against the status quo (``status_quo``: every job on its current printer, scheduled
    as well as possible there). A job's own gain is its cost term there minus its cost term in the plan.
    Moves depend on each other through the printers they share (one job leaves a printer so another can
    take its place), so they are grouped: two moves are in one group when they touch a common printer,
    transitively. A group's gain is the sum of the own gains of its jobs and of the jobs staying on its
    printers (their lateness changes with the queue); it is applied as a whole, and only if its gain
    exceeds ``min_improvement`` times its number of moves. Each move's ``gain`` is its group's gain shared
    equally among the group's moves, so every move returned carries a gain above the threshold and the
    gains add up to the improvement of applying them all. Applying whole groups keeps every printer within
    capacity: a printer a group touches ends with exactly its jobs in the plan, any other printer with
    exactly its current jobs.

    Args:
        plan: a plan for ``problem`` (from ``solve``, ``solve_exact`` or ``solve_greedy``).
        problem: the jobs (none has started: a started job is not in a re-optimisation) and printers.
        min_improvement: the cost a move must save, in objective units, to be worth the churn.
        time_limit_s: budget for computing the status quo.
    """
    before = job_costs(
        problem, status_quo(problem, time_limit_s=time_limit_s, unplaced_penalty=plan.unplaced_penalty)
    )
    after = job_costs(problem, plan)
    gain = {job.job_id: before[job.job_id] - after[job.job_id] for job in problem.jobs}
    moved = [job for job in problem.jobs if plan.assignments[job.job_id] != job.current_assignment]
    # Union-find over printers (and one private node per job for "no printer"): a move joins its two ends.
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def node(printer_id: str | None, job_id: str) -> str:
        return f"printer:{printer_id}" if printer_id is not None else f"none:{job_id}"

    for job in moved:
        a = root(node(job.current_assignment, job.job_id))
        b = root(node(plan.assignments[job.job_id], job.job_id))
        parent[a] = b
    groups: dict[str, list[Job]] = {}
    for job in moved:
        groups.setdefault(root(node(job.current_assignment, job.job_id)), []).append(job)
    stayers: dict[str, float] = {}
    for job in problem.jobs:
        printer_id = plan.assignments[job.job_id]
        if (
            printer_id is not None
            and printer_id == job.current_assignment
            and f"printer:{printer_id}" in parent
        ):
            key = root(f"printer:{printer_id}")
            stayers[key] = stayers.get(key, 0.0) + gain[job.job_id]
    result: list[Move] = []
    for key, members in sorted(groups.items(), key=lambda item: item[1][0].job_id):
        total = sum(gain[job.job_id] for job in members) + stayers.get(key, 0.0)
        if total <= min_improvement * len(members):
            continue
        number = len({move.group for move in result})
        result.extend(
            Move(
                job_id=job.job_id,
                from_printer=job.current_assignment,
                to_printer=plan.assignments[job.job_id],
                gain=total / len(members),
                group=number,
            )
            for job in members
        )
    return result
