"""Local search over a plan: ejection chains, ruin-and-recreate with threshold accepting, ejection passes."""

from __future__ import annotations

import random
import time

from services.routing.optimizer.search import EPSILON_COST, Search


class _RuinTables:
    """What ``_ruin_and_recreate`` looks up, built once per local search (it runs once per cycle)."""

    def __init__(self, search: Search) -> None:
        self.printers_of_job = [sorted({search.printer[v] for v in vs}) for vs in search.job_vars]
        self.candidates_of_printer: list[list[int]] = [[] for _ in search.model.printer_ids]
        for j, printers in enumerate(self.printers_of_job):
            for p in printers:
                self.candidates_of_printer[p].append(j)
        self.placeable = [j for j, printers in enumerate(self.printers_of_job) if printers]
        self.shortest = [min((search.hours[v] for v in vs), default=0.0) for vs in search.job_vars]
        self.need_by = [job.need_by_hours for job in search.model.problem.jobs]


def _ruin_and_recreate(search: Search, tables: _RuinTables, deadline: float, rng: random.Random) -> None:
    """Large-neighbourhood search: empty a few related printers, re-insert, keep it unless it is worse.

    Each round picks an unplaced job (most of the time, while there are any) or a random one, takes up to
    ``_RUIN_PRINTERS`` of the printers it could use, unplaces every job on them and re-inserts those jobs
    and the unplaced jobs that could use them. Re-insertion is one of: tightest fit, shortest job first
    (packs more jobs: the first goal); cheapest fit in need-by or random order; LP-priced fit (cheapest by
    reduced cost, which charges the capacity a job takes at the LP's price for it) in either order. A round
    is kept when the objective gets worse by no more than the search's threshold (``Search.threshold``,
    falling to 0): equal moves let the search drift across plateaus, which is how it finds room for one
    more job, and slightly worse ones let it leave a local optimum. Better plans are remembered.
    """
    printers_of_job, candidates_of_printer = tables.printers_of_job, tables.candidates_of_printer
    placeable, shortest, need_by = tables.placeable, tables.shortest, tables.need_by
    if not placeable:
        return
    rounds = 0
    worse_by, begun, end = search.threshold
    allowed = EPSILON_COST
    while rounds % _DEADLINE_EVERY or (now := time.perf_counter()) < deadline:
        if rounds % _DEADLINE_EVERY == 0 and end > begun:
            allowed = worse_by * max(0.0, (end - now) / (end - begun)) + EPSILON_COST
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
        elif search.total < search.best_total - EPSILON_COST:
            search.remember()


def _eject_passes(search: Search, deadline: float, rng: random.Random) -> None:
    """``Search.eject`` over every placed job, in random order, until a pass finds nothing or time is up."""
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


def _fill(search: Search, deadline: float, max_depth: int) -> None:
    """Ejection chains for placement: one pass of ``Search.make_room`` over the unplaced jobs at each
    depth from 1 (one job moved) to ``max_depth``, until time is up. Deeper passes cost more (depth 4 on a
    tight 1,000-job model: ~0.1-0.2 s) and find what the shallower ones could not."""
    for depth in range(1, max_depth + 1):
        for u in sorted(search.unplaced):
            if time.perf_counter() >= deadline:
                return
            if search.choice[u] < 0:
                search.make_room(u, depth)


def local_search(search: Search, end: float, rng: random.Random) -> None:
    """Ejection chains for placement, then cycles of chains, ruin-and-recreate and ejection passes until
    ``end``; ends on the best plan seen (ruin-and-recreate may accept worse ones, see ``_THRESHOLD``)."""
    _fill(search, time.perf_counter() + (end - time.perf_counter()) * _FILL_SHARE, _CHAIN_DEPTH)
    search.remember()
    cheapest = [search.cost[vs[0]] for vs in search.job_vars if vs]
    worse_by = _THRESHOLD * sum(cheapest) / max(1, len(cheapest))
    search.threshold = (worse_by, time.perf_counter(), end)
    cycle = 0
    tables: _RuinTables | None = None
    while time.perf_counter() < end:  # cycles that stop early (nothing left to do) hand on their time
        stop = time.perf_counter() + (end - time.perf_counter()) / max(1, _CYCLES - cycle)
        cycle += 1
        _fill(search, time.perf_counter() + (stop - time.perf_counter()) * _FILL_SHARE, _CYCLE_CHAIN_DEPTH)
        if tables is None:  # only once a cycle reaches it: a search out of time never pays for it
            tables = _RuinTables(search)
        _ruin_and_recreate(search, tables, stop - (stop - time.perf_counter()) * _EJECT_SHARE, rng)
        _eject_passes(search, stop, rng)
        search.remember()
    if search.best_total < search.total - EPSILON_COST:
        search.load(search.best_choice)
