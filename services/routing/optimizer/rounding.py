"""Rounding the LP relaxation into a plan."""

from __future__ import annotations

import numpy as np

from services.routing.optimizer.problem import FloatArray
from services.routing.optimizer.search import Search


def round_relaxation(search: Search, x: FloatArray) -> None:
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
