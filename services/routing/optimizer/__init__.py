"""Batch re-optimiser: re-assign not-yet-started print jobs across printers. Pure: numpy and scipy only.

``problem`` holds what goes in and comes out (jobs, printers, plans, moves) and checks a plan; ``model``
the queueing model (time buckets, the assignment MILP); ``solvers`` the three ways to solve it, built on
``highs`` (the MILP and the LP relaxation), ``rounding``, ``search`` (a mutable plan and the greedy) and
``local_search``; ``moves`` turns a plan into the re-assignments worth making against the status quo.
"""

from services.routing.optimizer.highs import cost_bound, placement_bound
from services.routing.optimizer.model import bucket_ends, unplaced_penalty_of
from services.routing.optimizer.moves import moves, status_quo
from services.routing.optimizer.problem import (
    TOLERANCE_HOURS,
    Job,
    Move,
    Option,
    Plan,
    PrinterCapacity,
    Problem,
    job_costs,
    validate_plan,
)
from services.routing.optimizer.solvers import solve, solve_exact, solve_greedy

__all__ = [
    "TOLERANCE_HOURS",
    "Job",
    "Move",
    "Option",
    "Plan",
    "PrinterCapacity",
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
