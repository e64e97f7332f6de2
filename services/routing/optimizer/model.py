"""The queueing model the solvers share: time buckets per printer and the assignment MILP over them.

Data. Job j needs its part by ``need_by`` n_j (hours from now). Each option o of j is a printer p(o) that
can make it, with print hours h_o, queue-free delivery d_o (hours from now if p(o) started j now: print,
post-processing, courier wait, transit) and transit cost t_o. Printer p has C_p free machine hours.

Queueing: time buckets. A job's delivery depends on the work ahead of it on its printer. Ordering
variables would need big-M constraints (a weak LP, hopeless at 1,000 jobs), and charging every job with
its printer's whole load treats every job as the last one. Instead each printer's free hours are cut at
bucket ends 0 < E_p1 < ... < E_pK = C_p (``bucket_ends``), and a job is assigned to an (option, bucket)
pair: a promise that its print ends by the bucket's end. If, for every k, the print hours in buckets 1..k
of p fit in E_pk, printing p's jobs bucket by bucket (any order inside a bucket) keeps every promise; the
last bucket's row is the capacity. The job starts at the latest at E_pk - h_o and everything after the
print shifts with the start (courier cut-offs are approximated by that shift), so its delivery estimate
is d_o + E_pk - h_o and its lateness L_ok = max(0, E_pk - D_o), with D_o = n_j - (d_o - h_o) the latest
print end that still arrives in time. This overestimates lateness (a promise, not a forecast) by less
than one bucket, and the ends sit on quantiles of the deadlines D of the options on each printer, so a
job whose deadline is an end can be exactly on time. Why this one: every cost is a constant, so the model
is a pure assignment problem whose LP relaxation is strong and fast to solve.

Model (the MILP ``solve_exact`` hands to HiGHS):
    variables    x_ok in {0, 1} for each option o and bucket k of its printer
    constraints  sum over o of j, k of x_ok <= 1                          (each job at most once)
                 sum over o on p, k' <= k of h_o x_ok' <= E_pk            (each printer p, each bucket k)
    objective    min sum (t_o + w L_ok) x_ok + U (number of jobs - sum x_ok)
with w the lateness weight and U the unplaced penalty, by default 1 + the sum over jobs of their dearest
placement (``unplaced_penalty_of``): larger than any plan's transit and lateness, so an optimal plan
places as many jobs as any plan can. Pruned before solving: x_ok when h_o > E_pk (never fits), and x_ok
when bucket k+1 costs the same (it dominates: same cost, one constraint fewer).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]

from services.routing.optimizer.problem import (
    TOLERANCE_HOURS,
    FloatArray,
    IntArray,
    Plan,
    Problem,
    print_deadline,
)


def unplaced_penalty_of(problem: Problem) -> float:
    """The per-job penalty the solvers use: the problem's own, or one that makes placing jobs come first.

    The default is 1 + the sum over jobs of the job's dearest placement (transit plus weighted lateness at
    the end of the horizon, on the worst printer it fits on). No plan's transit and lateness can exceed that
    sum, so any plan that places one job more costs less than any plan that places one fewer.
    """
    if problem.unplaced_penalty is not None:
        return problem.unplaced_penalty
    return _default_penalty(problem, *_option_arrays(problem))


def bucket_ends(problem: Problem) -> dict[str, tuple[float, ...]]:
    """Each printer's bucket ends: increasing, the last one its capacity (see the module docstring).

    The inner ends are quantiles of the print ends the options on the printer aim for: their deadline
    D = need_by - (delivery - print), raised to the print's own length when the job is late anyway (it can
    at best end after its own print) and left out when it is at or past the capacity (on time anywhere).
    An end on a job's deadline lets it be exactly on time; one on a late job's own length lets it be late
    by no more than it has to.
    """
    targets: dict[str, list[float]] = {printer.printer_id: [] for printer in problem.printers}
    for job in problem.jobs:
        for option in job.options:
            targets[option.printer_id].append(max(print_deadline(job, option), option.print_hours))
    ends: dict[str, tuple[float, ...]] = {}
    for printer in problem.printers:
        capacity = printer.capacity_hours
        inner = [t for t in targets[printer.printer_id] if t < capacity - TOLERANCE_HOURS]
        cuts: list[float] = []
        if problem.buckets > 1 and inner:
            levels = np.arange(1, problem.buckets) / problem.buckets
            # inverted_cdf picks actual targets rather than points between them: an end on a job's target is
            # what lets that job meet it.
            cuts = sorted({float(q) for q in np.quantile(inner, levels, method="inverted_cdf")})
        ends[printer.printer_id] = (*cuts, capacity)
    return ends


@dataclass(frozen=True, slots=True)
class Model:
    """The compiled model: one variable per (option, bucket) left after pruning; rows: jobs, then buckets."""

    problem: Problem
    penalty: float
    printer_ids: tuple[str, ...]
    rhs: FloatArray  # capacity rows, printer after printer: the bucket ends
    var_job: IntArray
    var_printer: IntArray
    var_hours: FloatArray
    var_transit: FloatArray
    var_late: FloatArray
    var_cost: FloatArray
    var_finish: FloatArray
    var_row_lo: IntArray  # the capacity rows [lo, hi) a variable loads: its bucket and every later one
    var_row_hi: IntArray  # (hi: one past the printer's last row)
    var_row_first: IntArray  # the printer's first row
    job_vars: tuple[IntArray, ...]  # each job's variables by increasing cost
    _matrix: list[csr_matrix] = field(default_factory=list, repr=False, compare=False)  # built once, lazily

    @property
    def n_jobs(self) -> int:
        return len(self.problem.jobs)

    @property
    def n_vars(self) -> int:
        return len(self.var_job)

    def matrix(self) -> csr_matrix:
        """Rows 0..n_jobs-1: sum of a job's variables (<= 1); then one cumulative row per bucket."""
        if not self._matrix:
            n_vars = self.n_vars
            spans = self.var_row_hi - self.var_row_lo
            columns = np.concatenate([np.arange(n_vars), np.repeat(np.arange(n_vars), spans)])
            # Row r of a variable's span: lo + (position inside the span), computed without a Python loop.
            offsets = np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
            rows = np.concatenate([self.var_job, self.n_jobs + np.repeat(self.var_row_lo, spans) + offsets])
            values = np.concatenate([np.ones(n_vars), np.repeat(self.var_hours, spans)])
            shape = (self.n_jobs + len(self.rhs), n_vars)
            self._matrix.append(csr_matrix((values, (rows, columns)), shape=shape))
        return self._matrix[0]

    def row_upper(self) -> FloatArray:
        return np.concatenate([np.ones(self.n_jobs), self.rhs])

    def objective(self) -> FloatArray:
        """Costs with the penalty folded in: placing a job saves its penalty (the constant n*U is dropped)."""
        return self.var_cost - self.penalty


def compile_model(problem: Problem) -> Model:
    ends_by_id = bucket_ends(problem)
    ends = [ends_by_id[printer.printer_id] for printer in problem.printers]
    counts = np.array([len(e) for e in ends], dtype=np.int64)
    row_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    width = int(counts.max()) if len(counts) else 1
    padded = np.full((len(ends), width + 1), np.inf)  # one spare column: "the next end" of the last bucket
    for i, e in enumerate(ends):
        padded[i, : len(e)] = e

    o_job, o_printer, o_hours, o_transit, o_deadline = _option_arrays(problem)
    if problem.unplaced_penalty is None:
        penalty = _default_penalty(problem, o_job, o_printer, o_hours, o_transit, o_deadline)
    else:
        penalty = problem.unplaced_penalty

    picked: list[IntArray] = []
    buckets: list[IntArray] = []
    for k in range(width):
        end = padded[o_printer, k]
        following = padded[o_printer, k + 1]
        # Keep (option, k) when the print fits in the bucket at all and bucket k+1 would be later (dearer);
        # an equal-cost next bucket dominates it: same cost, one constraint fewer.
        exists = counts[o_printer] > k
        keep = np.nonzero(exists & (o_hours <= end + TOLERANCE_HOURS) & (following > o_deadline))[0]
        picked.append(keep)
        buckets.append(np.full(len(keep), k, dtype=np.int64))
    var_option = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    var_bucket = np.concatenate(buckets) if buckets else np.zeros(0, dtype=np.int64)
    var_printer = o_printer[var_option]
    var_finish = padded[var_printer, var_bucket]
    var_late = np.maximum(0.0, var_finish - o_deadline[var_option])
    var_transit = o_transit[var_option]
    var_cost = var_transit + problem.lateness_weight * var_late
    var_job = o_job[var_option]
    order = np.lexsort((var_cost, var_job))  # jobs together, each job's variables cheapest first
    splits = np.searchsorted(var_job[order], np.arange(1, len(problem.jobs)))
    job_vars = tuple(np.split(order, splits)) if len(problem.jobs) else ()
    return Model(
        problem=problem,
        penalty=penalty,
        printer_ids=tuple(printer.printer_id for printer in problem.printers),
        rhs=np.array([end for e in ends for end in e], dtype=np.float64),
        var_job=var_job,
        var_printer=var_printer,
        var_hours=o_hours[var_option],
        var_transit=var_transit,
        var_late=var_late,
        var_cost=var_cost,
        var_finish=var_finish,
        var_row_lo=row_start[var_printer] + var_bucket,
        var_row_hi=row_start[var_printer] + counts[var_printer],
        var_row_first=row_start[var_printer],
        job_vars=job_vars,
    )


def _option_arrays(problem: Problem) -> tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray]:
    """Every option of every job, job after job: its job, its printer's index in ``problem.printers``, its
    print hours, transit cost and print deadline (``print_deadline``)."""
    printer_index = {printer.printer_id: i for i, printer in enumerate(problem.printers)}
    opt_job: list[int] = []
    opt_printer: list[int] = []
    opt_hours: list[float] = []
    opt_transit: list[float] = []
    opt_deadline: list[float] = []
    for j, job in enumerate(problem.jobs):
        for option in job.options:
            opt_job.append(j)
            opt_printer.append(printer_index[option.printer_id])
            opt_hours.append(option.print_hours)
            opt_transit.append(option.transit_cost)
            opt_deadline.append(print_deadline(job, option))
    return (
        np.array(opt_job, dtype=np.int64),
        np.array(opt_printer, dtype=np.int64),
        np.array(opt_hours, dtype=np.float64),
        np.array(opt_transit, dtype=np.float64),
        np.array(opt_deadline, dtype=np.float64),
    )


def _default_penalty(
    problem: Problem,
    o_job: IntArray,
    o_printer: IntArray,
    o_hours: FloatArray,
    o_transit: FloatArray,
    o_deadline: FloatArray,
) -> float:
    """``unplaced_penalty_of``'s default, from the option arrays (``_option_arrays``)."""
    capacity = np.array([printer.capacity_hours for printer in problem.printers], dtype=np.float64)
    o_capacity = capacity[o_printer] if len(o_printer) else np.zeros(0)
    value = o_transit + problem.lateness_weight * np.maximum(0.0, o_capacity - o_deadline)
    value = np.where(o_hours <= o_capacity + TOLERANCE_HOURS, value, 0.0)
    dearest = np.zeros(len(problem.jobs))
    np.maximum.at(dearest, o_job, value)
    total = 0.0
    for d in dearest.tolist():  # left to right, job by job
        total += d
    return 1.0 + total


def plan_of(model: Model, choice: Iterable[int], *, started: float, optimal: bool, method: str) -> Plan:
    problem = model.problem
    assignments: dict[str, str | None] = {}
    finish: dict[str, float] = {}
    transit = late = 0.0
    unplaced = 0
    for job, v in zip(problem.jobs, choice, strict=True):
        if v < 0:
            assignments[job.job_id] = None
            unplaced += 1
            continue
        assignments[job.job_id] = model.printer_ids[model.var_printer[v]]
        finish[job.job_id] = float(model.var_finish[v])
        transit += float(model.var_transit[v])
        late += float(model.var_late[v])
    return Plan(
        assignments=assignments,
        finish_by_hours=finish,
        cost=transit + problem.lateness_weight * late + model.penalty * unplaced,
        transit_cost=transit,
        lateness_hours=late,
        unplaced=unplaced,
        unplaced_penalty=model.penalty,
        solve_seconds=time.perf_counter() - started,
        optimal=optimal,
        method=method,
    )
