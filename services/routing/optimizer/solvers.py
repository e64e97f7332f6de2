"""The three solvers, all returning a ``Plan`` (``validate_plan`` checks one).

``solve_exact``   the MILP with HiGHS (``scipy.optimize.milp``), optionally time-limited.
``solve_greedy``  jobs by need-by time, each to its cheapest slot with room: the online router's way.
``solve``         what the platform runs within a time limit (the MILP for small models): the LP
                  relaxation (over each job's cheapest variables on large models), LP-guided rounding,
                  ejection chains that place more jobs, then threshold-accepting ruin-and-recreate and
                  ejection passes; never worse than the greedy.
"""

from __future__ import annotations

import random
import time

from services.routing.optimizer.highs import cheap_columns, milp_choice, relaxation
from services.routing.optimizer.local_search import local_search
from services.routing.optimizer.model import compile_model, plan_of
from services.routing.optimizer.problem import Plan, Problem
from services.routing.optimizer.rounding import round_relaxation
from services.routing.optimizer.search import Search, greedy


def solve_greedy(problem: Problem) -> Plan:
    """The nearest-with-capacity baseline: jobs by need-by time, each to its cheapest slot with room left.

    "Cheapest" is the model's cost (transit plus weighted lateness) of an option in the earliest bucket
    that still has room for it, so a job whose near printer is full goes to the next cheapest one, and a job
    that finds no room anywhere stays unplaced. This is what routing orders one at a time would do.
    """
    started = time.perf_counter()
    model = compile_model(problem)
    search = Search(model)
    greedy(search)
    return plan_of(model, search.choice, started=started, optimal=False, method="greedy")


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
    model = compile_model(problem)
    if model.n_vars == 0:
        return plan_of(model, [-1] * model.n_jobs, started=started, optimal=True, method="milp")
    found = milp_choice(model, time_limit_s)
    if found is None:
        search = Search(model)
        greedy(search)
        return plan_of(model, search.choice, started=started, optimal=False, method="greedy")
    choice, optimal = found
    return plan_of(
        model, choice, started=started, optimal=optimal, method="milp" if optimal else "milp-incumbent"
    )


def solve(problem: Problem, *, time_limit_s: float = 1.0, seed: int = 0) -> Plan:
    """The solver the platform uses: LP-guided rounding and local search within ``time_limit_s``.

    Steps: the greedy plan (the fallback: the result is never worse than it); for small models (at most
    ``_EXACT_VARIABLES`` variables) the MILP with part of the budget, returned at once if proved optimal;
    the LP relaxation (HiGHS, at most ``_LP_SHARE`` of the budget; above ``_FULL_LP_VARIABLES`` variables
    only over each job's ``_LP_COLUMNS`` cheapest ones and the greedy's, which HiGHS solves several times
    faster, the others priced by its row duals); the LP-guided rounding of ``round_relaxation``; then
    ``local_search``: ejection chains for placement, and cycles of chains, ruin-and-recreate and ejection
    passes until the deadline. The best plan found is returned; it is always valid, and ``optimal`` only
    when the MILP proved it.

    Args:
        problem: the jobs, printers and prices.
        time_limit_s: wall-clock budget, model building included.
        seed: seeds the local search's random choices (how far it gets still depends on the clock).
    """
    started = time.perf_counter()
    end = started + time_limit_s - _RESERVE_SECONDS
    model = compile_model(problem)
    search = Search(model)
    greedy(search)
    found: list[tuple[float, list[int], str]] = [(search.total, list(search.choice), "greedy")]
    if 0 < model.n_vars <= _EXACT_VARIABLES:
        exact = milp_choice(model, (end - time.perf_counter()) * _EXACT_SHARE)
        if exact is not None:
            choice, optimal = exact
            if optimal:
                return plan_of(model, choice, started=started, optimal=True, method="milp")
            search.load(choice)
            found.append((search.total, choice, "milp-incumbent"))
    if model.n_vars:
        columns = (
            cheap_columns(model, _LP_COLUMNS, found[0][1]) if model.n_vars > _FULL_LP_VARIABLES else None
        )
        relaxed = relaxation(model, (end - time.perf_counter()) * _LP_SHARE, columns)
        search.load(found[0][1])
        method = "local-search"
        if relaxed is not None:
            x, reduced = relaxed
            search.priced_vars = [sorted(vs, key=lambda v: reduced[v]) for vs in search.job_vars]
            search.load([-1] * model.n_jobs)
            round_relaxation(search, x)
            method = "lp-round"
        rng = random.Random(seed)  # noqa: S311 (search diversification, not secrets)
        local_search(search, end, rng)
        found.append((search.total, list(search.choice), method))
    _, choice, method = min(found, key=lambda item: item[0])  # the first of equals: the greedy
    return plan_of(model, choice, started=started, optimal=False, method=method)


_EXACT_VARIABLES = 300  # up to ~40 jobs with a few options: HiGHS often proves these within the budget
_EXACT_SHARE = 0.5  # of the budget, for the MILP on a small model; the local search gets the rest
_LP_SHARE = 0.5  # of what is left, at most, for the LP relaxation (1,000 jobs: ~0.1-0.2 s, see _LP_COLUMNS)
# The LP over each job's 5 cheapest variables (and the greedy's) on models above 4,000 variables: ~0.15 s
# against 0.3-1.1 s for the full LP of a 1,000-job benchmark model (31,000 variables) on a loaded 2-core
# box, where the full LP often missed its share of the 1 s budget; 3 and 8 did no better than 5.
_LP_COLUMNS = 5
_FULL_LP_VARIABLES = 4000
_RESERVE_SECONDS = 0.01  # kept back for building the plan after the search stops
