"""The batch re-optimiser on generated instances: solve() against the exact MILP, LP bounds and the greedy.

Run from the project root::

    .venv/bin/python tests/benchmarks/bench_optimizer.py [--seeds 1 2] [--ratios 0.9 0.95 1.0 1.05]
                                                         [--exact-seconds 60] [--long-seconds 20]

Instances (``generate``, seeded): 1,000 jobs and 100 sites with 1-3 printers each, in an 800 x 800 km
region. Each printer takes 2-3 of 4 materials and runs at 0.8-1.25x a reference speed. A job sits near a
random site (normal, sigma 80 km: technicians work near facilities), needs one material, prints for a
log-normal 3 h median (sigma 0.6, clipped to 0.5-16 h; quantity folded in) at the reference speed, and
is due at 24 h (60 %) or 48 h minus 0-8 h already elapsed. Its options are the capable printers at its 12
nearest sites. Delivery if started now: print + 1 h post-processing + the site's courier wait (0-6 h) +
2 h + distance / 70 km/h; transit cost 8 + 0.12 per km. Capacity: the printers share ``ratio`` x the demand
(each job's mean print hours over its options) in proportion to uniform(0.5, 1.5) weights, so regions are
unevenly tight. Lateness weight 10 per hour: an hour late costs about as much as 80 km more transit.

Printed per instance:
* the LP relaxation's bounds: at most ``floor(lp_max)`` jobs can be placed; ``lb(n)``, the least transit +
  lateness any plan placing n jobs can have;
* greedy, solve() (1 s), solve() with a long budget (best known), and solve_exact() with a generous time
  limit: placed jobs, service cost (transit + weighted lateness, penalties left out: they only count
  jobs), seconds, and whether HiGHS proved optimality.
* gaps of solve(): against the exact plan's service cost (when both place as many jobs) and against
  lb(placed) (an upper bound on solve()'s true gap among plans placing as many jobs).

Goals (issue 4): solve() within 2 % of the optimum, <= 1 s, never placing fewer jobs than the optimum.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from services.routing.optimizer import (
    Job,
    Option,
    Plan,
    PrinterCapacity,
    Problem,
    cost_bound,
    placement_bound,
    solve,
    solve_exact,
    solve_greedy,
    validate_plan,
)

JOBS = 1_000
SITES = 100
REGION_KM = 800.0
NEAREST_SITES = 12  # a job's capable printers within reach: the 12 nearest sites
MATERIALS = 4
LATENESS_WEIGHT = 10.0
GOAL_GAP = 0.02
GOAL_SECONDS = 1.0


def generate(seed: int, ratio: float, *, jobs: int = JOBS, sites: int = SITES) -> Problem:
    """A seeded instance whose printers' free hours add up to ``ratio`` x the jobs' print hours."""
    rng = np.random.default_rng(seed)
    site_xy = rng.uniform(0.0, REGION_KM, (sites, 2))
    courier_wait = rng.uniform(0.0, 6.0, sites)
    printers: list[tuple[str, int, set[int], float]] = []
    for s in range(sites):
        for k in range(int(rng.integers(1, 4))):
            materials = set(rng.choice(MATERIALS, size=int(rng.integers(2, 4)), replace=False).tolist())
            printers.append((f"s{s}-p{k}", s, materials, float(rng.uniform(0.8, 1.25))))
    job_xy = site_xy[rng.integers(0, sites, jobs)] + rng.normal(0.0, 80.0, (jobs, 2))
    material = rng.integers(0, MATERIALS, jobs)
    base_hours = np.clip(rng.lognormal(np.log(3.0), 0.6, jobs), 0.5, 16.0)
    need_by = np.where(rng.random(jobs) < 0.6, 24.0, 48.0) - rng.uniform(0.0, 8.0, jobs)
    out: list[Job] = []
    demand = 0.0
    for j in range(jobs):
        distance = np.hypot(*(site_xy - job_xy[j]).T)
        nearest = set(np.argsort(distance)[:NEAREST_SITES].tolist())
        options = []
        for printer_id, s, materials, speed in printers:
            if s in nearest and int(material[j]) in materials:
                hours = float(base_hours[j] * speed)
                delivery = hours + 1.0 + courier_wait[s] + 2.0 + distance[s] / 70.0
                cost = 8.0 + 0.12 * distance[s]
                options.append(Option(printer_id, f"s{s}", hours, float(delivery), float(cost)))
        if options:
            demand += float(np.mean([o.print_hours for o in options]))
        out.append(Job(f"j{j}", None, float(need_by[j]), tuple(options)))
    weights = rng.uniform(0.5, 1.5, len(printers))
    capacity = ratio * demand * weights / weights.sum()
    return Problem(
        jobs=tuple(out),
        printers=tuple(
            PrinterCapacity(p, f"s{s}", float(c)) for (p, s, _, _), c in zip(printers, capacity, strict=True)
        ),
        lateness_weight=LATENESS_WEIGHT,
    )


def service(plan: Plan) -> float:
    return plan.cost - plan.unplaced_penalty * plan.unplaced


def _row(name: str, plan: Plan, problem: Problem) -> str:
    errors = validate_plan(problem, plan)
    status = "valid" if not errors else f"INVALID ({len(errors)}: {errors[0]})"
    proved = "optimal" if plan.optimal else "not proved"
    return (
        f"  {name:<18} placed {plan.placed:>5}  service {service(plan):>10.1f}  "
        f"{plan.solve_seconds:>6.2f} s  {plan.method:<15} {proved:<11} {status}"
    )


def _gap(plan: Plan, reference: float) -> str:
    if not math.isfinite(reference) or reference <= 0:
        return "n/a"
    return f"{(service(plan) - reference) / reference:+.2%}"


def bench(seed: int, ratio: float, *, exact_seconds: float, long_seconds: float) -> None:
    problem = generate(seed, ratio)
    options = sum(len(job.options) for job in problem.jobs)
    size = f"{len(problem.jobs)} jobs, {len(problem.printers)} printers"
    print(f"seed {seed}, capacity {ratio:.0%} of demand: {size}")
    print(f"  options per job {options / len(problem.jobs):.1f}")
    lp_max = placement_bound(problem)
    print(f"  LP bound           placed <= {math.floor(lp_max + 1e-6)} (LP {lp_max:.2f})")

    greedy = solve_greedy(problem)
    fast = solve(problem, time_limit_s=GOAL_SECONDS)
    long = solve(problem, time_limit_s=long_seconds)
    exact = solve_exact(problem, time_limit_s=exact_seconds)
    for name, plan in (
        ("greedy", greedy),
        (f"solve {GOAL_SECONDS:g} s", fast),
        (f"solve {long_seconds:g} s", long),
        (f"exact {exact_seconds:g} s", exact),
    ):
        print(_row(name, plan, problem))

    bound = cost_bound(problem, placed=fast.placed)
    print(f"  LP bound           service >= {bound:.1f} for {fast.placed} placed")
    best = max((long, exact, fast), key=lambda p: (p.placed, -service(p)))
    same_count = [p for p in (exact, long) if p.placed == fast.placed]
    print(
        f"  solve {GOAL_SECONDS:g} s vs exact: placed {fast.placed - exact.placed:+d}, service "
        + (_gap(fast, service(exact)) if exact.placed == fast.placed else "n/a (different counts)")
    )
    print(
        f"  solve {GOAL_SECONDS:g} s vs best known ({best.method}, {best.solve_seconds:.0f} s): "
        f"placed {fast.placed - best.placed:+d}, service "
        + (_gap(fast, min(service(p) for p in same_count)) if same_count else "n/a (different counts)")
    )
    print(f"  solve {GOAL_SECONDS:g} s vs LP bound lb({fast.placed}): {_gap(fast, bound)} (at most)")
    print(
        f"  greedy vs solve: placed {greedy.placed - fast.placed:+d}, service {_gap(greedy, service(fast))}"
    )
    print(flush=True)


def bench_small(seeds: list[int], *, jobs: int, sites: int, ratio: float, exact_seconds: float) -> None:
    """Instances small enough for HiGHS to prove optimality: solve()'s gap to a known optimum."""
    print(f"{jobs} jobs x {sites} sites, capacity {ratio:.0%} of demand: solve() against the proved optimum")
    for seed in seeds:
        problem = generate(seed, ratio, jobs=jobs, sites=sites)
        exact = solve_exact(problem, time_limit_s=exact_seconds)
        fast = solve(problem, time_limit_s=GOAL_SECONDS)
        greedy = solve_greedy(problem)
        proved = "proved" if exact.optimal else "NOT proved"
        gap = _gap(fast, service(exact)) if fast.placed == exact.placed else "n/a"
        print(
            f"  seed {seed}: exact {proved} in {exact.solve_seconds:5.1f} s, placed {exact.placed}, service "
            f"{service(exact):8.1f} | solve placed {fast.placed - exact.placed:+d}, service {gap:>7} "
            f"({fast.method}, {fast.solve_seconds:.2f} s) | greedy placed {greedy.placed - exact.placed:+d}, "
            f"service {_gap(greedy, service(exact)) if greedy.placed == exact.placed else 'n/a'}"
        )
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.90, 0.95, 1.00, 1.05])
    parser.add_argument("--exact-seconds", type=float, default=60.0)
    parser.add_argument("--long-seconds", type=float, default=20.0)
    parser.add_argument("--small-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    started = time.perf_counter()
    if args.small_seeds:
        bench_small(args.small_seeds, jobs=50, sites=5, ratio=0.95, exact_seconds=args.exact_seconds)
    for seed in args.seeds:
        for ratio in args.ratios:
            bench(seed, ratio, exact_seconds=args.exact_seconds, long_seconds=args.long_seconds)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
