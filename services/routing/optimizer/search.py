"""A mutable plan over the model's variables, and the greedy fill that builds one job at a time."""

from __future__ import annotations

import math

from services.routing.optimizer.model import Model
from services.routing.optimizer.problem import TOLERANCE_HOURS

# Gains below this are float noise, not improvements (costs are currency units or hours times a weight).
EPSILON_COST = 1e-9


class Search:
    """A mutable plan over the model's variables, for the greedy, the LP rounding and the local search.

    Plain Python lists rather than numpy arrays: the loops touch a few numbers at a time, where list
    indexing is several times faster than numpy's per-call overhead. ``total`` is the plan's objective
    (penalties included), kept up to date by ``place`` and ``unplace``.
    """

    def __init__(self, model: Model) -> None:
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
        if self.total < self.best_total - EPSILON_COST:
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
            if self.cost[w] >= cost_i - EPSILON_COST:
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
                    if self.insert(k) and self.total < before - EPSILON_COST:
                        return True
                    self.unplace(k)
                    self.unplace(i)
                self.place(v_i)
                self.place(v_k)
        return False


def greedy(search: Search) -> None:
    jobs = search.model.problem.jobs
    for j in sorted(range(len(jobs)), key=lambda j: (jobs[j].need_by_hours, jobs[j].job_id)):
        search.insert(j)
