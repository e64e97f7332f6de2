"""Routing a demand: ranking the sites' quotes and the nearest-first search over a ``SiteIndex``.

Ranking: quotes that meet the SLA (``delivery_at <= need_by``) come first, ordered by
``score = cost + value_of_hour * hours from now to delivery`` (cost is the courier's: fixed + per km). Once
the SLA is met, cost decides and an earlier arrival is worth ``value_of_hour`` per hour, so the router picks
the nearest site and cheapest level that keep the promise, not express for every order. Late quotes follow,
earliest delivery first. Ties break on delivery, cost, then ids, so the order is total and deterministic.
Each site contributes its best quote; the decision shows the best and the next ``max_alternatives``.

Search bound (``SiteIndex``): sites are visited nearest-first, and the search keeps the top
``keep = 1 + max_alternatives`` on-time and late site quotes. A site could still enter while a bound on its
quotes is (on time and scoring within the top ``keep``) or (fewer than ``keep`` are on time and it delivers
no later than the ``keep``-th late one). The bounds, valid because queue wait >= 0, the print takes at least
``quantity * min(print_minutes)``, post-processing takes at least its minutes, and cut-off look-ups and
transit grow with time and distance::

    ready   >= now + quantity * min(print_minutes) + post_processing_minutes
    pickup  >= the first cut-off at or after that ready time
    delivery >= pickup + fixed_hours + d / speed_kmh        cost >= fixed_cost + d * cost_per_km

- Global (where to stop): with the extremes over all online sites (least fixed hours and cost, fastest
  speed, cheapest km, earliest cut-off of any time zone, least post-processing). It grows with d, so the
  first site that fails it ends the search: no farther site can enter. A level's largest ``max_km`` ends it
  too.
- Per site (which to quote): with the site's own couriers and calendar, then with its opening hours and
  capable printers; only survivors get the printer slot search.
Best and alternatives are then those of an exhaustive search (``route`` over a plain list, as the tests
check). Once the global bound says no farther site can meet the SLA, the search for the earliest late
deliveries quotes at most ``LATE_SEARCH_MAX_SITES`` more sites: late alternatives may then differ from an
exhaustive search in rare cases. ``earliest`` is exact whenever no site meets the SLA (within that cap);
otherwise it is the earliest among the sites quoted.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, time, timedelta
from types import MappingProxyType
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from services.factories.schemas import SiteStatus
from services.routing.calendars import CourierCutoffs
from services.routing.candidates import (
    VALUE_OF_HOUR,
    Candidate,
    Offer,
    screen_printers,
    screen_site,
    site_candidates,
    to_quote,
)
from services.routing.demand import Demand
from services.routing.geo import GeoPoint, SphereIndex, haversine_km
from services.routing.quotes import LostBecause, Quote, Rejection, RejectionReason, RoutingDecision
from services.routing.sites import SiteState
from services.routing.slots import after_print

# Rejections listed per decision: the nearest few explain "why not the site next door"; more is noise.
REJECTION_LIMIT = 10
# Sites visited after the bound shows none farther can meet the SLA, while looking for the earliest late
# deliveries: without a cap an unachievable demand would scan every site within the courier's reach.
LATE_SEARCH_MAX_SITES = 100
# Above this many time zones the global bound skips the cut-off term (it costs one look-up per zone).
_ZONE_CUTOFFS_LIMIT = 64
# Index distances come from chords, quotes from haversine_km: they differ in the last bits. One metre of
# slack keeps the bound a true lower bound.
_BOUND_SLACK_KM = 1e-3
_BOUND_SLACK_S = 1e-3  # and a millisecond for float timestamps against microsecond datetimes


_RankKey: TypeAlias = tuple[int, float, float, float, str, str, str]


class SiteIndex:
    """Immutable nearest-first index over sites, with per-site arrays for the search bounds.

    Cheap to build (one k-d tree and one pass over the sites); rebuild it when sites change.

    Raises:
        ValueError: duplicate site ids.
    """

    __slots__ = (
        "_calendar",
        "_calendars",
        "_extremes",
        "_level_rows",
        "_min_post_minutes",
        "_rules",
        "_sites",
        "_sphere",
        "_zone_cutoffs",
    )

    def __init__(self, sites: Iterable[SiteState]) -> None:
        self._sites = tuple(sites)
        count = len(self._sites)
        if len({site.site_id for site in self._sites}) != count:
            raise ValueError("site ids must be unique")
        self._sphere = SphereIndex([site.location for site in self._sites])
        # Offline and paused sites never quote, so they need not weaken the bounds.
        online = [i for i, site in enumerate(self._sites) if site.status is SiteStatus.ONLINE]
        self._min_post_minutes = min((self._sites[i].post_processing_minutes for i in online), default=0)
        levels = sorted({rule.level for i in online for rule in self._sites[i].transit.rules})
        self._level_rows = MappingProxyType({level: row for row, level in enumerate(levels)})
        # _rules[field, level, site], fields as in _RULE_FIELDS. A level a site does not offer (or a site
        # that is not online) has reach -1, so no distance passes; its other fields stay 0.
        entries = [
            (
                self._level_rows[rule.level],
                i,
                rule.fixed_hours,
                1 / rule.speed_kmh,
                rule.fixed_cost,
                rule.cost_per_km,
                math.inf if rule.max_km is None else rule.max_km,
            )
            for i in online
            for rule in self._sites[i].transit.rules
        ]
        self._rules = np.zeros((len(_RULE_FIELDS), len(levels), count))
        self._rules[_REACH] = -1.0
        if entries:
            table = np.array(entries, dtype=np.float64)
            rows, columns = table[:, 0].astype(np.intp), table[:, 1].astype(np.intp)
            self._rules[:, rows, columns] = table[:, 2:].T
        # The most favourable figures per level over all sites that offer it: the global bound.
        offered = self._rules[_REACH] >= 0
        self._extremes = np.array([
            np.where(offered, self._rules[_FIXED_HOURS], np.inf).min(axis=1, initial=np.inf),
            np.where(offered, self._rules[_HOURS_PER_KM], np.inf).min(axis=1, initial=np.inf),  # fastest
            np.where(offered, self._rules[_FIXED_COST], np.inf).min(axis=1, initial=np.inf),
            np.where(offered, self._rules[_COST_PER_KM], np.inf).min(axis=1, initial=np.inf),
            self._rules[_REACH].max(axis=1, initial=-1.0),
        ])  # fmt: skip
        # Equal calendars (same zone and cut-offs) share one entry: one look-up per decision each.
        calendars: dict[CourierCutoffs, int] = {}
        self._calendar = np.fromiter(
            (calendars.setdefault(site.cutoffs, len(calendars)) for site in self._sites), np.intp, count
        )
        self._calendars = tuple(calendars)
        # One calendar per time zone holding every cut-off of its online sites: the earliest pickup among
        # them is no later than any site's.
        by_zone: dict[str, list[set[time]]] = {}
        for c in sorted(set(self._calendar[online].tolist())):
            cutoffs = self._calendars[c]
            days = by_zone.setdefault(cutoffs.tz, [set() for _ in range(7)])
            for weekday, times in enumerate(cutoffs.days):
                days[weekday].update(times)
        self._zone_cutoffs = (
            tuple(CourierCutoffs(tz, tuple(tuple(day) for day in days)) for tz, days in by_zone.items())
            if len(by_zone) <= _ZONE_CUTOFFS_LIMIT
            else ()
        )

    @property
    def sites(self) -> tuple[SiteState, ...]:
        return self._sites

    def __len__(self) -> int:
        return len(self._sites)

    def nearest(self, point: GeoPoint) -> Iterator[tuple[float, SiteState]]:
        """``(km, site)`` nearest first; km from the index (use ``haversine_km`` for exact figures)."""
        for position, km in self._sphere.nearest(point):
            yield km, self._sites[position]

    def _search(self, search: _Search, exclude: frozenset[str]) -> None:
        """Feed ``search`` the sites that could enter its decision, nearest first, until none farther can.

        Per chunk of neighbours, two vectorised lower bounds on (delivery, cost) per service level: the
        global one (any site that far or farther) says where to stop, the per-site one (its own couriers
        and calendar) which sites to visit. The arrays use the thresholds at the start of the chunk, which
        only tighten as sites are visited, so they never drop a site the decision would contain; the global
        bound is checked again with the current thresholds before each visit, to stop as early as possible.
        """
        demand = search.demand
        rows = np.array(
            [self._level_rows[level] for level in demand.service_levels if level in self._level_rows], np.intp
        )
        extremes = self._extremes[:, rows, np.newaxis]  # (field, level, 1): broadcasts over a chunk
        printing = demand.quantity * min(demand.print_minutes.values(), default=0.0)
        ready = demand.now + timedelta(minutes=printing + self._min_post_minutes)
        earliest_pickup = min((c.next_pickup(ready) for c in self._zone_cutoffs), default=ready).timestamp()
        pickups = np.full(len(self._calendars), np.nan)  # per calendar, filled on first use
        for positions, index_km in self._sphere.nearest_chunks(demand.destination):
            km = np.maximum(index_km - _BOUND_SLACK_KM, 0.0)
            # Global bound (level x site): the first site that fails it ends the search.
            reach = km <= extremes[_REACH]
            delivery, cost = earliest_pickup + _transit_seconds(extremes, km), _cost(extremes, km)
            enter = (reach & search.could_enter(delivery, cost)).any(axis=0)
            stop = len(km) if enter.all() else int(np.argmin(enter))
            if not (search.on_time or search.late):  # the nearest few explain a failure (see below)
                stop = max(stop, min(len(km), REJECTION_LIMIT - search.evaluated))
            late_only = ~(reach & (delivery <= search.need_ts)).any(axis=0)
            # Per-site bound: which of the sites before the stop to visit.
            positions, km = positions[:stop], km[:stop]
            calendar = self._calendar[positions]
            for c in np.unique(calendar[np.isnan(pickups[calendar])]).tolist():
                pickups[c] = self._calendars[c].next_pickup(ready).timestamp()
            rules = self._rules[:, rows[:, np.newaxis], positions]  # (field, level, site)
            site_delivery = pickups[calendar] + _transit_seconds(rules, km)
            worth = ((km <= rules[_REACH]) & search.could_enter(site_delivery, _cost(rules, km))).any(axis=0)
            # Until something quotes, the nearest few are visited anyway: their rejections explain why.
            candidates = worth.copy()
            if not (search.on_time or search.late):
                candidates[: max(0, REJECTION_LIMIT - search.evaluated)] = True
            for j in np.flatnonzero(candidates).tolist():
                site = self._sites[positions[j]]
                if search.on_time or search.late or search.evaluated >= REJECTION_LIMIT:  # not explaining
                    if not worth[j]:
                        continue
                    # The global bound with the thresholds as they are now: stop as soon as it fails.
                    farther = zip(
                        reach[:, j].tolist(), delivery[:, j].tolist(), cost[:, j].tolist(), strict=True
                    )
                    if not any(passes and search.may_enter(at, price) for passes, at, price in farther):
                        return
                    if late_only[j]:
                        if search.late_only_visits >= LATE_SEARCH_MAX_SITES:
                            return
                        search.late_only_visits += 1
                if site.site_id not in exclude:
                    search.visit(site, haversine_km(demand.destination, site.location), prune=True)
            if stop < len(enter):
                return


# The fields of SiteIndex._rules and of its extremes.
_RULE_FIELDS = (_FIXED_HOURS, _HOURS_PER_KM, _FIXED_COST, _COST_PER_KM, _REACH) = range(5)


def _transit_seconds(rules: npt.NDArray[np.float64], km: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A lower bound on transit seconds (level x site); the slack absorbs microsecond rounding."""
    seconds: npt.NDArray[np.float64] = (rules[_FIXED_HOURS] + km * rules[_HOURS_PER_KM]) * 3600
    return seconds - _BOUND_SLACK_S


def _cost(rules: npt.NDArray[np.float64], km: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A lower bound on courier cost (level x site)."""
    cost: npt.NDArray[np.float64] = rules[_FIXED_COST] + km * rules[_COST_PER_KM]
    return cost


class _Search:
    """One decision in progress: the top quotes so far, and what the sites visited said."""

    def __init__(self, demand: Demand, *, keep: int, value_of_hour: float) -> None:
        self.demand, self.keep, self.value_of_hour = demand, keep, value_of_hour
        self.now_ts, self.need_ts = demand.now.timestamp(), demand.need_by.timestamp()
        # Best first, at most keep each: site-best candidates with the site and its distance.
        self.on_time: list[tuple[_RankKey, SiteState, float, Candidate]] = []
        self.late: list[tuple[_RankKey, SiteState, float, Candidate]] = []
        self.earliest: tuple[tuple[datetime, float, str, str, str], Quote] | None = None
        self.outcomes: list[Rejection | Quote] = []  # per site: its rejections, or its best quote if late
        self.evaluated = self.quoted = self.late_only_visits = 0
        self.pickups: dict[tuple[int, float], datetime] = {}

    def score(self, cost: float, delivery_ts: float) -> float:
        return cost + self.value_of_hour * (delivery_ts - self.now_ts) / 3600

    def may_enter(self, delivery_ts: float, cost: float) -> bool:
        """Whether a quote delivering no earlier and costing no less could still enter the decision."""
        if delivery_ts <= self.need_ts and (
            len(self.on_time) < self.keep or self.score(cost, delivery_ts) <= self.on_time[-1][0][1]
        ):
            return True
        return len(self.on_time) < self.keep and (
            len(self.late) < self.keep or delivery_ts <= self.late[-1][0][1]
        )

    def could_enter(
        self, delivery: npt.NDArray[np.float64], cost: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        """``may_enter`` over arrays of delivery (timestamp) and cost bounds."""
        on_time: npt.NDArray[np.bool_] = delivery <= self.need_ts
        if len(self.on_time) >= self.keep:
            return on_time & (
                cost + self.value_of_hour * (delivery - self.now_ts) / 3600 <= self.on_time[-1][0][1]
            )
        if len(self.late) < self.keep:
            return np.ones_like(on_time)
        return on_time | (delivery <= self.late[-1][0][1])

    def visit(self, site: SiteState, distance_km: float, *, prune: bool) -> None:
        """Quote the site, unless ``prune`` and its own lower bounds show it cannot enter the decision."""
        self.evaluated += 1
        demand = self.demand
        offers = screen_site(demand, site, distance_km)
        if isinstance(offers, Rejection):
            self.outcomes.append(offers)
            return
        if prune and not self._may_enter_by_cutoff(site, offers):
            return
        plans, rejections = screen_printers(demand, site)
        if not plans:
            self.outcomes.extend(rejections)
            return
        if prune:
            # Tighter, still before any slot search: the fastest plan on a free printer, in opening hours.
            shortest = min(plan.duration for plan in plans)
            _, pickup = after_print(site, site.hours.next_open(demand.now) + shortest)
            if not any(self.may_enter((pickup + o.transit).timestamp(), o.cost) for o in offers):
                return
        self.quoted += 1
        candidates = site_candidates(demand, site, offers, plans)
        keyed = [(self.rank_key(site, candidate), candidate) for candidate in candidates]
        key, best = min(keyed, key=lambda pair: pair[0])
        ranking = self.on_time if key[0] == 0 else self.late
        bisect.insort(ranking, (key, site, distance_km, best), key=lambda entry: entry[0])
        del ranking[self.keep :]
        if key[0] == 1:
            self.outcomes.append(to_quote(demand, site, distance_km, best))
        first = min(candidates, key=lambda c: _earliest_key(site, c))
        if self.earliest is None or _earliest_key(site, first) < self.earliest[0]:
            self.earliest = (_earliest_key(site, first), to_quote(demand, site, distance_km, first))

    def _may_enter_by_cutoff(self, site: SiteState, offers: list[Offer]) -> bool:
        """A cheap bound: printing at the site's fastest estimate and post-processing without a break,
        then its next cut-off (memoised per calendar and offset: neighbouring sites often share both)."""
        demand = self.demand
        estimates = [demand.print_minutes.get(printer.profile_key) for printer in site.printers]
        known = [minutes for minutes in estimates if minutes is not None]
        if not known:
            return True  # the printer filters will say why it cannot quote
        offset = demand.quantity * min(known) + site.post_processing_minutes
        key = (id(site.cutoffs), offset)
        pickup = self.pickups.get(key)
        if pickup is None:
            pickup = self.pickups[key] = site.cutoffs.next_pickup(demand.now + timedelta(minutes=offset))
        return any(self.may_enter((pickup + offer.transit).timestamp(), offer.cost) for offer in offers)

    def rank_key(self, site: SiteState, candidate: Candidate) -> _RankKey:
        delivery, cost = candidate.delivery_at.timestamp(), candidate.offer.cost
        ids = (site.site_id, candidate.plan.printer.printer_id, candidate.offer.level)
        if delivery <= self.need_ts:
            return (0, self.score(cost, delivery), delivery, cost, *ids)
        return (1, delivery, cost, 0.0, *ids)

    def decision(self, *, accept_late: bool) -> RoutingDecision:
        # Both lists hold up to keep entries; the decision shows keep in all (best + alternatives).
        ranked = [
            to_quote(self.demand, site, km, candidate)
            for _, site, km, candidate in (self.on_time + self.late)[: self.keep]
        ]
        best = ranked[0] if ranked and (ranked[0].on_time or accept_late) else None
        alternatives = [_why_lost(quote, best, self.value_of_hour) for quote in ranked[1:]] if best else []
        rejections = [
            outcome
            if isinstance(outcome, Rejection)
            else Rejection(
                outcome.site_id, outcome.printer_id, RejectionReason.SLA_MISSED, outcome.delivery_at
            )
            for outcome in self.outcomes
            if best is None or not (isinstance(outcome, Quote) and outcome.site_id == best.site_id)
        ]
        earliest = self.earliest[1] if self.earliest else None
        return RoutingDecision(
            best, alternatives, rejections[:REJECTION_LIMIT], earliest, self.evaluated, self.quoted
        )


def _earliest_key(site: SiteState, candidate: Candidate) -> tuple[datetime, float, str, str, str]:
    ids = (site.site_id, candidate.plan.printer.printer_id, candidate.offer.level)
    return (candidate.delivery_at, candidate.offer.cost, *ids)


def _why_lost(quote: Quote, best: Quote, value_of_hour: float) -> Quote:
    if best.on_time and not quote.on_time:
        reason = LostBecause.SLA_MISSED
    else:
        # On time, the score is cost + value_of_hour * hours: name the term that lost more. Late, the
        # ranking is delivery first.
        weight = value_of_hour if best.on_time else 1.0
        later = weight * (quote.delivery_at - best.delivery_at).total_seconds() / 3600
        pricier = quote.cost - best.cost if best.on_time else 0.0
        if later > 0 and later >= pricier:
            reason = LostBecause.LATER_DELIVERY
        elif quote.cost > best.cost:
            reason = LostBecause.HIGHER_COST
        else:
            reason = LostBecause.TIE_BREAK
    return replace(quote, lost_because=reason)


def route(
    demand: Demand,
    sites: SiteIndex | Sequence[SiteState],
    *,
    max_alternatives: int = 3,
    accept_late: bool = False,
    exclude: frozenset[str] = frozenset(),
    value_of_hour: float = VALUE_OF_HOUR,
) -> RoutingDecision:
    """Choose the site, printer and service level for a demand (ranking and bound: module docstring).

    Args:
        demand: what, how many, where to, by when, and print minutes per printer profile.
        sites: a ``SiteIndex`` (nearest-first with the search bound) or a plain sequence (every site is
            quoted: the exhaustive reference, fine for a handful).
        max_alternatives: how many runner-up sites to show, each with ``lost_because``.
        accept_late: when no site meets ``need_by``, return the earliest delivery as ``best``.
        exclude: site ids to skip entirely (re-routing away from a site).
        value_of_hour: what one hour earlier is worth against courier cost once the SLA is met.

    Returns:
        The decision. ``best`` None with ``earliest`` set means the SLA is unachievable.

    Raises:
        ValueError: a negative ``max_alternatives`` or ``value_of_hour``.
    """
    if max_alternatives < 0 or value_of_hour < 0:
        raise ValueError("max_alternatives and value_of_hour must be >= 0")
    search = _Search(demand, keep=1 + max_alternatives, value_of_hour=value_of_hour)
    if isinstance(sites, SiteIndex):
        sites._search(search, exclude)
    else:
        by_distance = sorted(
            ((haversine_km(demand.destination, site.location), site) for site in sites),
            key=lambda pair: (pair[0], pair[1].site_id),
        )
        for km, site in by_distance:
            if site.site_id not in exclude:
                search.visit(site, km, prune=False)
    return search.decision(accept_late=accept_late)
