"""Batch re-optimiser: re-assign not-yet-started print jobs across printers. Pure: numpy and scipy only.

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

Solvers, all returning a ``Plan`` (``validate_plan`` checks one):
    ``solve_exact``   the MILP with HiGHS (``scipy.optimize.milp``), optionally time-limited.
    ``solve_greedy``  jobs by need-by time, each to its cheapest slot with room: the online router's way.
    ``solve``         what the platform runs within a time limit (the MILP for small models): the LP
                      relaxation (over each job's cheapest variables on large models), LP-guided rounding,
                      ejection chains that place more jobs, then threshold-accepting ruin-and-recreate and
                      ejection passes; never worse than the greedy.
``moves`` turns a plan into the re-assignments worth making against the status quo, in groups that keep
every printer within capacity.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import sparse as scipy_sparse  # type: ignore[import-untyped]
from scipy.optimize import Bounds, LinearConstraint, linprog, milp  # type: ignore[import-untyped]
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]

__all__ = [
    "TOLERANCE_HOURS",
    "Job",
    "Move",
    "Option",
    "Plan",
    "Printer",
    "Problem",
    "bucket_ends",
    "cost_bound",
    "job_costs",
    "moves",
    "placement_bound",
    "solve",
    "solve_exact",
    "solve_greedy",
    "status_quo",
    "unplaced_penalty_of",
    "validate_plan",
]

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
class Printer:
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
    number of time buckets per printer in the queueing approximation (see the module docstring).

    Raises:
        ValueError: on duplicate ids, an option naming an unknown printer (or the wrong site), two options
            of one job on one printer, or negative / non-finite figures.
    """

    jobs: tuple[Job, ...]
    printers: tuple[Printer, ...]
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
    computed from it (see the module docstring). ``cost`` is ``transit_cost + lateness_weight *
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


def unplaced_penalty_of(problem: Problem) -> float:
    """The per-job penalty the solvers use: the problem's own, or one that makes placing jobs come first.

    The default is 1 + the sum over jobs of the job's dearest placement (transit plus weighted lateness at
    the end of the horizon, on the worst printer it fits on). No plan's transit and lateness can exceed that
    sum, so any plan that places one job more costs less than any plan that places one fewer.
    """
    if problem.unplaced_penalty is not None:
        return problem.unplaced_penalty
    return _default_penalty(problem, *_option_arrays(problem))


def _print_deadline(job: Job, option: Option) -> float:
    """The latest end of the print (hours from now) that still delivers by the job's need-by time."""
    return job.need_by_hours - (option.delivery_hours_if_started_now - option.print_hours)


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
            targets[option.printer_id].append(max(_print_deadline(job, option), option.print_hours))
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
class _Model:
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


def _compile(problem: Problem) -> _Model:
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
    return _Model(
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
    print hours, transit cost and print deadline (``_print_deadline``)."""
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
            opt_deadline.append(_print_deadline(job, option))
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


def _plan(model: _Model, choice: Iterable[int], *, started: float, optimal: bool, method: str) -> Plan:
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


class _Search:
    """A mutable plan over the model's variables, for the greedy, the LP rounding and the local search.

    Plain Python lists rather than numpy arrays: the loops touch a few numbers at a time, where list
    indexing is several times faster than numpy's per-call overhead. ``total`` is the plan's objective
    (penalties included), kept up to date by ``place`` and ``unplace``.
    """

    def __init__(self, model: _Model) -> None:
        self.model = model
        self.penalty = model.penalty
        self.slack: list[float] = model.rhs.tolist()
        # room[r]: the least slack over row r and the later rows of its printer, i.e. the most print hours
        # that fit in bucket r's position. A variable fits iff room[its first row] >= its hours: one lookup.
        self.room: list[float] = list(self.slack)
        self.choice: list[int] = [-1] * model.n_jobs
        self.hours: list[float] = model.var_hours.tolist()
        self.cost: list[float] = model.var_cost.tolist()
        self.lo: list[int] = model.var_row_lo.tolist()
        self.hi: list[int] = model.var_row_hi.tolist()
        self.first: list[int] = model.var_row_first.tolist()
        self.job: list[int] = model.var_job.tolist()
        self.printer: list[int] = model.var_printer.tolist()
        self.job_vars: list[list[int]] = [vs.tolist() for vs in model.job_vars]
        # Each job's variables by LP reduced cost when known (cost plus the LP's price of the capacity they
        # use), else by cost: the order "priced" insertion tries them in.
        self.priced_vars: list[list[int]] = self.job_vars
        self.tables: _RuinTables | None = None  # built by the first ``_ruin_and_recreate``
        # The best plan seen: the local search may accept slightly worse rounds (``_ruin_and_recreate``).
        self.best_total = math.inf
        self.best_choice: list[int] = []
        # Ruin-and-recreate accepts a round up to this much worse, falling to 0 at the local search's end:
        # (worsening allowed at the start, local search start, local search end).
        self.threshold: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.on_printer: list[set[int]] = [set() for _ in model.printer_ids]
        self.unplaced: set[int] = {j for j in range(model.n_jobs) if self.job_vars[j]}
        self.total = self.penalty * model.n_jobs
        for v in {self.first[v]: v for v in range(len(self.hours))}.values():
            self._refresh(v)

    def remember(self) -> None:
        """Keep the current plan as the best one if it is better."""
        if self.total < self.best_total - _EPSILON_COST:
            self.best_total = self.total
            self.best_choice = list(self.choice)

    def _refresh(self, v: int) -> None:
        """Compute ``room`` over the rows of v's printer from their slack."""
        slack, room = self.slack, self.room
        least = math.inf
        for r in range(self.hi[v] - 1, self.first[v] - 1, -1):
            if slack[r] < least:
                least = slack[r]
            room[r] = least

    def fits(self, v: int) -> bool:
        return self.room[self.lo[v]] >= self.hours[v] - TOLERANCE_HOURS

    def _take(self, v: int, hours: float) -> None:
        """Take ``hours`` from the rows v loads (negative hours give them back), keeping ``room`` exact."""
        slack, room = self.slack, self.room
        lo = self.lo[v]
        # Rows lo.. all change by the same hours, so their room (a least slack among them) does too,
        # exactly: float subtraction is monotonic. Only the rows before lo need their least slack recomputed.
        for r in range(lo, self.hi[v]):
            slack[r] -= hours
            room[r] -= hours
        least = room[lo]
        for r in range(lo - 1, self.first[v] - 1, -1):
            if slack[r] < least:
                least = slack[r]
            room[r] = least

    def place(self, v: int) -> None:
        self._take(v, self.hours[v])
        j = self.job[v]
        self.choice[j] = v
        self.on_printer[self.printer[v]].add(j)
        self.unplaced.discard(j)
        self.total += self.cost[v] - self.penalty

    def unplace(self, j: int) -> int:
        """Take a job out (if placed); returns the variable it had, or -1."""
        v = self.choice[j]
        if v >= 0:
            self._take(v, -self.hours[v])
            self.choice[j] = -1
            self.on_printer[self.printer[v]].discard(j)
            self.unplaced.add(j)
            self.total -= self.cost[v] - self.penalty
        return v

    def load(self, choice: list[int]) -> None:
        for j in range(len(self.choice)):
            self.unplace(j)
        for v in choice:
            if v >= 0:
                self.place(v)

    def insert(self, j: int, order: list[list[int]] | None = None) -> bool:
        """Place an unplaced job in the first variable that fits, cheapest first (or in ``order``)."""
        room, lo, hours = self.room, self.lo, self.hours
        for v in (order or self.job_vars)[j]:
            if room[lo[v]] >= hours[v] - TOLERANCE_HOURS:
                self.place(v)
                return True
        return False

    def insert_tightest(self, j: int) -> bool:
        """Place an unplaced job where it leaves its printer the least free time (best fit), the cheaper
        among equals: packing tightly keeps the larger gaps for the jobs still to come."""
        best = -1
        best_left = math.inf
        for v in self.job_vars[j]:
            if self.room[self.lo[v]] >= self.hours[v] - TOLERANCE_HOURS:
                left = self.slack[self.hi[v] - 1] - self.hours[v]
                if left < best_left - TOLERANCE_HOURS:
                    best, best_left = v, left
        if best >= 0:
            self.place(best)
        return best >= 0

    def make_room(self, u: int, depth: int = 1, chain: set[int] | None = None) -> bool:
        """Place unplaced job u by moving jobs out of its way: an ejection chain of up to ``depth`` jobs.

        For each printer u could use (its variables cheapest first), each job k there whose removal would
        make room for u is taken out, u goes to its cheapest fit, and k to its cheapest fit anywhere, else
        (while ``depth`` allows) to a place another job is moved out of, and so on. Jobs already moved in
        the chain are not moved again. Keeps the first chain that places every job it moved; one placed job
        more always lowers the objective (the penalty outweighs any cost). Returns whether it found one;
        if not, the plan is unchanged.
        """
        room, lo, hours, choice = self.room, self.lo, self.hours, self.choice
        chain = chain if chain is not None else set()
        chain.add(u)
        tried: set[int] = set()
        for w in self.job_vars[u]:
            q = self.printer[w]
            if q in tried:
                continue
            tried.add(q)
            for k in tuple(self.on_printer[q]):
                v_k = choice[k]
                if k in chain or hours[v_k] + room[lo[w]] < hours[w] - TOLERANCE_HOURS:
                    continue  # moved already, or taking k out could not make room for u here
                self.unplace(k)
                placed = self.insert(u)
                if placed and (self.insert(k) or (depth > 1 and self.make_room(k, depth - 1, chain))):
                    return True
                if placed:
                    self.unplace(u)
                self.place(v_k)
        chain.discard(u)
        return False

    def eject(self, i: int) -> bool:
        """Move job i to a cheaper variable, directly or by moving a job on that printer to its cheapest fit.

        Tries i's variables cheaper than its current one (on another printer or in an earlier bucket of its
        own), cheapest first: alone, then against each job on that printer, and keeps the first combination
        that lowers the objective. Returns whether it found one.
        """
        v_i = self.choice[i]
        if v_i < 0:
            return False
        cost_i = self.cost[v_i]
        for w in self.job_vars[i]:
            if self.cost[w] >= cost_i - _EPSILON_COST:
                return False
            self.unplace(i)
            if self.fits(w):  # room for it as it is: a plain relocation (another printer, or earlier here)
                self.place(w)
                return True
            self.place(v_i)
            for k in tuple(self.on_printer[self.printer[w]]):
                if k == i:
                    continue
                before = self.total
                v_k = self.unplace(k)
                self.unplace(i)
                if self.fits(w):
                    self.place(w)
                    if self.insert(k) and self.total < before - _EPSILON_COST:
                        return True
                    self.unplace(k)
                    self.unplace(i)
                self.place(v_i)
                self.place(v_k)
        return False


# Gains below this are float noise, not improvements (costs are currency units or hours times a weight).
_EPSILON_COST = 1e-9


def solve_greedy(problem: Problem) -> Plan:
    """The nearest-with-capacity baseline: jobs by need-by time, each to its cheapest slot with room left.

    "Cheapest" is the model's cost (transit plus weighted lateness) of an option in the earliest bucket
    that still has room for it, so a job whose near printer is full goes to the next cheapest one, and a job
    that finds no room anywhere stays unplaced. This is what routing orders one at a time would do.
    """
    started = time.perf_counter()
    model = _compile(problem)
    search = _Search(model)
    _greedy(search)
    return _plan(model, search.choice, started=started, optimal=False, method="greedy")


def _greedy(search: _Search) -> None:
    jobs = search.model.problem.jobs
    for j in sorted(range(len(jobs)), key=lambda j: (jobs[j].need_by_hours, jobs[j].job_id)):
        search.insert(j)


# HiGHS rejects a zero time limit; a millisecond lets it return at once with whatever it has.
_MIN_SOLVER_SECONDS = 1e-3


def _milp(model: _Model, time_limit_s: float | None) -> tuple[list[int], bool] | None:
    """The MILP's plan (a chosen variable per job, -1 for none) and whether it is proved optimal; None if
    HiGHS found no plan in time."""
    # mip_rel_gap 0: HiGHS measures the gap relative to an objective that includes the penalties, so its
    # default (1e-4) would accept plans worse by a sizeable share of one penalty; its absolute gap (default
    # 1e-6) is then the stopping rule.
    options: dict[str, float] = {"mip_rel_gap": 0.0}
    if time_limit_s is not None:
        options["time_limit"] = max(time_limit_s, _MIN_SOLVER_SECONDS)
    result = milp(
        model.objective(),
        integrality=np.ones(model.n_vars),
        bounds=Bounds(0.0, 1.0),
        constraints=LinearConstraint(model.matrix(), -np.inf, model.row_upper()),
        options=options,
    )
    if result.x is None:
        return None
    choice = [-1] * model.n_jobs
    for v in np.nonzero(result.x > 0.5)[0].tolist():  # integral up to HiGHS' 1e-6 integrality tolerance
        choice[int(model.var_job[v])] = v
    return choice, result.status == 0


def solve_exact(problem: Problem, *, time_limit_s: float | None = None) -> Plan:
    """The model solved as a MILP by HiGHS (``scipy.optimize.milp``): optimal unless time runs out.

    Args:
        problem: the jobs, printers and prices.
        time_limit_s: HiGHS' time limit; ``None`` for none.

    Returns:
        The plan, ``optimal`` when HiGHS proved it (``method="milp"``). When the limit stops HiGHS first,
        its best plan so far (``"milp-incumbent"``, possibly worse than the greedy's), or the greedy plan
        (``"greedy"``) if it had none.
    """
    started = time.perf_counter()
    model = _compile(problem)
    if model.n_vars == 0:
        return _plan(model, [-1] * model.n_jobs, started=started, optimal=True, method="milp")
    found = _milp(model, time_limit_s)
    if found is None:
        search = _Search(model)
        _greedy(search)
        return _plan(model, search.choice, started=started, optimal=False, method="greedy")
    choice, optimal = found
    return _plan(
        model, choice, started=started, optimal=optimal, method="milp" if optimal else "milp-incumbent"
    )


def _cheap_columns(model: _Model, per_job: int, choice: list[int]) -> IntArray:
    """Each job's ``per_job`` cheapest variables and the variables of ``choice``."""
    keep = np.zeros(model.n_vars, dtype=bool)
    for vs in model.job_vars:
        keep[vs[:per_job]] = True
    keep[[v for v in choice if v >= 0]] = True
    return np.nonzero(keep)[0]


def _relaxation(
    model: _Model, time_limit_s: float, columns: IntArray | None = None
) -> tuple[FloatArray, FloatArray] | None:
    """The LP relaxation's solution and reduced costs, or None if HiGHS did not finish in time.

    With ``columns``, the LP over those variables only; the others get x = 0 and their reduced cost from
    the restricted LP's prices."""
    objective, matrix = model.objective(), model.matrix()
    if columns is not None:
        objective, matrix = objective[columns], matrix[:, columns]
    result = linprog(
        objective,
        A_ub=matrix,
        b_ub=model.row_upper(),
        bounds=(0.0, 1.0),
        method="highs",
        options={"time_limit": max(time_limit_s, _MIN_SOLVER_SECONDS)},
    )
    if result.status != 0 or result.x is None:
        return None
    if columns is None:
        # A variable's reduced cost is on its lower bound's marginal when it sits at 0, on its upper bound's
        # when at 1 (the other is 0).
        reduced = np.asarray(result.lower.marginals) + np.asarray(result.upper.marginals)
        return np.asarray(result.x), reduced
    x = np.zeros(model.n_vars)
    x[columns] = result.x
    # Reduced costs from the row prices (<= 0 for <= rows): c - A^T y.
    reduced = model.objective() - model.matrix().T @ np.asarray(result.ineqlin.marginals)
    return x, np.asarray(reduced)


def _round(search: _Search, x: FloatArray) -> None:
    """LP-guided construction: keep what the LP set to 1, then place the others by LP weight.

    Jobs the LP placed with the most weight go first, each into its largest-share variable that still
    fits, else its cheapest one that fits.
    """
    model = search.model
    for v in np.nonzero(x > 1.0 - _INTEGRAL)[0].tolist():
        if search.fits(v):
            search.place(v)
    mass = np.bincount(model.var_job, weights=x, minlength=model.n_jobs)
    for j in sorted(search.unplaced, key=lambda j: (-mass[j], j)):
        shares = sorted((v for v in search.job_vars[j] if x[v] > _INTEGRAL), key=lambda v: -x[v])
        favourite = next((v for v in shares if search.fits(v)), -1)
        if favourite >= 0:
            search.place(favourite)
        else:
            search.insert(j)


# LP values within this of 0 or 1 are taken as integral (HiGHS' primal feasibility tolerance is 1e-7).
_INTEGRAL = 1e-6


class _RuinTables:
    """What ``_ruin_and_recreate`` looks up, built once per search (it runs once per cycle)."""

    def __init__(self, search: _Search) -> None:
        self.printers_of_job = [sorted({search.printer[v] for v in vs}) for vs in search.job_vars]
        self.candidates_of_printer: list[list[int]] = [[] for _ in search.model.printer_ids]
        for j, printers in enumerate(self.printers_of_job):
            for p in printers:
                self.candidates_of_printer[p].append(j)
        self.placeable = [j for j, printers in enumerate(self.printers_of_job) if printers]
        self.shortest = [min((search.hours[v] for v in vs), default=0.0) for vs in search.job_vars]
        self.need_by = [job.need_by_hours for job in search.model.problem.jobs]


def _ruin_and_recreate(search: _Search, deadline: float, rng: random.Random) -> None:
    """Large-neighbourhood search: empty a few related printers, re-insert, keep it unless it is worse.

    Each round picks an unplaced job (most of the time, while there are any) or a random one, takes up to
    ``_RUIN_PRINTERS`` of the printers it could use, unplaces every job on them and re-inserts those jobs
    and the unplaced jobs that could use them. Re-insertion is one of: tightest fit, shortest job first
    (packs more jobs: the first goal); cheapest fit in need-by or random order; LP-priced fit (cheapest by
    reduced cost, which charges the capacity a job takes at the LP's price for it) in either order. A round
    is kept when the objective gets worse by no more than the search's threshold (``_Search.threshold``,
    falling to 0): equal moves let the search drift across plateaus, which is how it finds room for one
    more job, and slightly worse ones let it leave a local optimum. Better plans are remembered.
    """
    if search.tables is None:
        search.tables = _RuinTables(search)
    tables = search.tables
    printers_of_job, candidates_of_printer = tables.printers_of_job, tables.candidates_of_printer
    placeable, shortest, need_by = tables.placeable, tables.shortest, tables.need_by
    if not placeable:
        return
    rounds = 0
    worse_by, begun, end = search.threshold
    allowed = _EPSILON_COST
    while rounds % _DEADLINE_EVERY or (now := time.perf_counter()) < deadline:
        if rounds % _DEADLINE_EVERY == 0 and end > begun:
            allowed = worse_by * max(0.0, (end - now) / (end - begun)) + _EPSILON_COST
        rounds += 1
        unplaced = search.unplaced
        seed = (
            rng.choice(tuple(unplaced))
            if unplaced and rng.random() < _AIM_AT_UNPLACED
            else rng.choice(placeable)
        )
        printers = printers_of_job[seed]
        if len(printers) > _RUIN_PRINTERS:
            printers = rng.sample(printers, _RUIN_PRINTERS)
        before = search.total
        removed: list[int] = []
        for p in printers:
            for j in tuple(search.on_printer[p]):
                removed.append(search.unplace(j))
        again = [search.job[v] for v in removed]
        again.extend({j for p in printers for j in candidates_of_printer[p] if j in unplaced} - set(again))
        if rng.random() < _PACK_SHARE:
            again.sort(key=shortest.__getitem__)
            inserted = [j for j in again if search.insert_tightest(j)]
        else:
            if rng.random() < 0.5:  # a coin toss between the two orders
                again.sort(key=need_by.__getitem__)
            else:
                rng.shuffle(again)
            order = search.priced_vars if rng.random() < _PRICED_SHARE else search.job_vars
            inserted = [j for j in again if search.insert(j, order)]
        if search.total > before + allowed:
            for j in inserted:
                search.unplace(j)
            for v in removed:
                search.place(v)
        elif search.total < search.best_total - _EPSILON_COST:
            search.remember()


def _eject_passes(search: _Search, deadline: float, rng: random.Random) -> None:
    """``_Search.eject`` over every placed job, in random order, until a pass finds nothing or time is up."""
    order = list(range(len(search.choice)))
    improved = True
    while improved:
        improved = False
        rng.shuffle(order)
        for n, i in enumerate(order):
            if n % _DEADLINE_EVERY == 0 and time.perf_counter() >= deadline:
                return
            improved = search.eject(i) or improved


# Local search tuning, set on the benchmark instances (tests/benchmarks/bench_optimizer.py); within the
# ranges tried (ruin 2-4 printers, pack share 0-0.5, priced share 0-1, eject share 0-0.5, 1-3 cycles) the
# results moved by less than their run-to-run noise, except where noted.
_RUIN_PRINTERS = 2  # printers emptied per round: 3-4 did no better, and their rounds cost more
_AIM_AT_UNPLACED = 0.7  # share of rounds aimed at an unplaced job while there is one
_PACK_SHARE = 0.3  # rounds that re-insert tightest-first: 0 places 2-5 jobs fewer, 0.5 costs ~2 % more
_PRICED_SHARE = 0.5  # of the other rounds, those that insert by LP reduced cost
_EJECT_SHARE = 0.3  # of each cycle, the time for ejection passes: they cut the cost ~5 % at 1,000 jobs
# Ejection chains for placement first (``_fill``: one pass per depth up to ``_CHAIN_DEPTH``, within
# ``_FILL_SHARE`` of the time); then cycles of shallower chains, ruin-and-recreate and ejection passes until
# the deadline, the first ``_CYCLES`` sharing the time, cycles that stop early (nothing left to eject)
# handing theirs on. Chains place 15-40 jobs more than the LP rounding on the 1,000-job benchmark models,
# in ~0.1-0.3 s; depth 5 found 1-3 more than depth 4.
_CYCLES = 3
_CHAIN_DEPTH = 5
_CYCLE_CHAIN_DEPTH = 3
_FILL_SHARE = 0.4
# Ruin-and-recreate accepts a round that is worse by up to _THRESHOLD x the jobs' mean cheapest cost at the
# start of the local search, falling linearly to 0 at its end (threshold accepting; the best plan is kept).
# 2 placed 1-2 jobs more per 1,000-job model than 0-0.5, at ~2 % more cost, and cut the 50-job models' gap
# to the optimum from ~7 % to ~4 %; 8 was worse again.
_THRESHOLD = 2.0
_DEADLINE_EVERY = 16  # rounds between clock reads (a round takes ~0.05-0.3 ms)


def _fill(search: _Search, deadline: float, max_depth: int) -> None:
    """Ejection chains for placement: one pass of ``_Search.make_room`` over the unplaced jobs at each
    depth from 1 (one job moved) to ``max_depth``, until time is up. Deeper passes cost more (depth 4 on a
    tight 1,000-job model: ~0.1-0.2 s) and find what the shallower ones could not."""
    for depth in range(1, max_depth + 1):
        for u in sorted(search.unplaced):
            if time.perf_counter() >= deadline:
                return
            if search.choice[u] < 0:
                search.make_room(u, depth)


def _local_search(search: _Search, end: float, rng: random.Random) -> None:
    """Ejection chains for placement, then cycles of chains, ruin-and-recreate and ejection passes until
    ``end``; ends on the best plan seen (ruin-and-recreate may accept worse ones, see ``_THRESHOLD``)."""
    _fill(search, time.perf_counter() + (end - time.perf_counter()) * _FILL_SHARE, _CHAIN_DEPTH)
    search.remember()
    cheapest = [search.cost[vs[0]] for vs in search.job_vars if vs]
    worse_by = _THRESHOLD * sum(cheapest) / max(1, len(cheapest))
    search.threshold = (worse_by, time.perf_counter(), end)
    cycle = 0
    while time.perf_counter() < end:  # cycles that stop early (nothing left to do) hand on their time
        stop = time.perf_counter() + (end - time.perf_counter()) / max(1, _CYCLES - cycle)
        cycle += 1
        _fill(search, time.perf_counter() + (stop - time.perf_counter()) * _FILL_SHARE, _CYCLE_CHAIN_DEPTH)
        _ruin_and_recreate(search, stop - (stop - time.perf_counter()) * _EJECT_SHARE, rng)
        _eject_passes(search, stop, rng)
        search.remember()
    if search.best_total < search.total - _EPSILON_COST:
        search.load(search.best_choice)


def solve(problem: Problem, *, time_limit_s: float = 1.0, seed: int = 0) -> Plan:
    """The solver the platform uses: LP-guided rounding and local search within ``time_limit_s``.

    Steps: the greedy plan (the fallback: the result is never worse than it); for small models (at most
    ``_EXACT_VARIABLES`` variables) the MILP with part of the budget, returned at once if proved optimal;
    the LP relaxation (HiGHS, at most ``_LP_SHARE`` of the budget; above ``_FULL_LP_VARIABLES`` variables
    only over each job's ``_LP_COLUMNS`` cheapest ones and the greedy's, which HiGHS solves several times
    faster, the others priced by its row duals); the LP-guided rounding of ``_round``; then
    ``_local_search``: ejection chains for placement, and cycles of chains, ruin-and-recreate and ejection
    passes until the deadline. The best plan found is returned; it is always valid, and ``optimal`` only
    when the MILP proved it.

    Args:
        problem: the jobs, printers and prices.
        time_limit_s: wall-clock budget, model building included.
        seed: seeds the local search's random choices (how far it gets still depends on the clock).
    """
    started = time.perf_counter()
    end = started + time_limit_s - _RESERVE_SECONDS
    model = _compile(problem)
    search = _Search(model)
    _greedy(search)
    found: list[tuple[float, list[int], str]] = [(search.total, list(search.choice), "greedy")]
    if 0 < model.n_vars <= _EXACT_VARIABLES:
        exact = _milp(model, (end - time.perf_counter()) * _EXACT_SHARE)
        if exact is not None:
            choice, optimal = exact
            if optimal:
                return _plan(model, choice, started=started, optimal=True, method="milp")
            search.load(choice)
            found.append((search.total, choice, "milp-incumbent"))
    if model.n_vars:
        columns = (
            _cheap_columns(model, _LP_COLUMNS, found[0][1]) if model.n_vars > _FULL_LP_VARIABLES else None
        )
        relaxed = _relaxation(model, (end - time.perf_counter()) * _LP_SHARE, columns)
        search.load(found[0][1])
        method = "local-search"
        if relaxed is not None:
            x, reduced = relaxed
            search.priced_vars = [sorted(vs, key=lambda v: reduced[v]) for vs in search.job_vars]
            search.load([-1] * model.n_jobs)
            _round(search, x)
            method = "lp-round"
        rng = random.Random(seed)  # noqa: S311 (search diversification, not secrets)
        _local_search(search, end, rng)
        found.append((search.total, list(search.choice), method))
    _, choice, method = min(found, key=lambda item: item[0])  # the first of equals: the greedy
    return _plan(model, choice, started=started, optimal=False, method=method)


_EXACT_VARIABLES = 300  # up to ~40 jobs with a few options: HiGHS often proves these within the budget
_EXACT_SHARE = 0.5  # of the budget, for the MILP on a small model; the local search gets the rest
_LP_SHARE = 0.5  # of what is left, at most, for the LP relaxation (1,000 jobs: ~0.1-0.2 s, see _LP_COLUMNS)
# The LP over each job's 5 cheapest variables (and the greedy's) on models above 4,000 variables: ~0.15 s
# against 0.3-1.1 s for the full LP of a 1,000-job benchmark model (31,000 variables) on a loaded 2-core
# box, where the full LP often missed its share of the 1 s budget; 3 and 8 did no better than 5.
_LP_COLUMNS = 5
_FULL_LP_VARIABLES = 4000
_RESERVE_SECONDS = 0.01  # kept back for building the plan after the search stops


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
        late += max(0.0, finish - _print_deadline(job, option))
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
        late = max(0.0, finish - _print_deadline(job, option))
        costs[job.job_id] = option.transit_cost + problem.lateness_weight * late
    return costs


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


def placement_bound(problem: Problem, *, time_limit_s: float | None = None) -> float:
    """An upper bound on how many jobs any plan can place: the LP relaxation's maximum (take its floor).

    Returns ``nan`` if HiGHS did not finish within ``time_limit_s``.
    """
    model = _compile(problem)
    if model.n_vars == 0:
        return 0.0
    result = linprog(
        -np.ones(model.n_vars),
        A_ub=model.matrix(),
        b_ub=model.row_upper(),
        bounds=(0.0, 1.0),
        method="highs",
        options={} if time_limit_s is None else {"time_limit": max(time_limit_s, _MIN_SOLVER_SECONDS)},
    )
    return -float(result.fun) if result.status == 0 else math.nan


def cost_bound(problem: Problem, *, placed: int, time_limit_s: float | None = None) -> float:
    """A lower bound on the transit plus weighted lateness of any plan placing at least ``placed`` jobs.

    The LP relaxation with that many jobs required; ``inf`` when no plan can place that many (by the LP),
    ``nan`` if HiGHS did not finish within ``time_limit_s``. With a plan's own count, ``plan.cost -
    penalty * unplaced`` over this bound bounds the plan's optimality gap among plans placing as many.
    """
    model = _compile(problem)
    if placed <= 0 or model.n_vars == 0:
        return 0.0 if placed <= 0 else math.inf
    matrix = scipy_sparse.vstack([model.matrix(), -np.ones((1, model.n_vars))]).tocsr()
    result = linprog(
        model.var_cost,
        A_ub=matrix,
        b_ub=np.concatenate([model.row_upper(), [-float(placed)]]),
        bounds=(0.0, 1.0),
        method="highs",
        options={} if time_limit_s is None else {"time_limit": max(time_limit_s, _MIN_SOLVER_SECONDS)},
    )
    if result.status == 2:  # infeasible
        return math.inf
    return float(result.fun) if result.status == 0 else math.nan
