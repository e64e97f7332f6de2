"""What HiGHS solves: the MILP, the LP relaxation (full or over a subset of columns) and the bounds."""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse as scipy_sparse  # type: ignore[import-untyped]
from scipy.optimize import Bounds, LinearConstraint, linprog, milp  # type: ignore[import-untyped]

from services.routing.optimizer.model import Model, compile_model
from services.routing.optimizer.problem import FloatArray, IntArray, Problem

# HiGHS rejects a zero time limit; a millisecond lets it return at once with whatever it has.
_MIN_SOLVER_SECONDS = 1e-3


def milp_choice(model: Model, time_limit_s: float | None) -> tuple[list[int], bool] | None:
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


def cheap_columns(model: Model, per_job: int, choice: list[int]) -> IntArray:
    """Each job's ``per_job`` cheapest variables and the variables of ``choice``."""
    keep = np.zeros(model.n_vars, dtype=bool)
    for vs in model.job_vars:
        keep[vs[:per_job]] = True
    keep[[v for v in choice if v >= 0]] = True
    return np.nonzero(keep)[0]


def relaxation(
    model: Model, time_limit_s: float, columns: IntArray | None = None
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


def placement_bound(problem: Problem, *, time_limit_s: float | None = None) -> float:
    """An upper bound on how many jobs any plan can place: the LP relaxation's maximum (take its floor).

    Returns ``nan`` if HiGHS did not finish within ``time_limit_s``.
    """
    model = compile_model(problem)
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
    model = compile_model(problem)
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
