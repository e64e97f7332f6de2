"""Pure SLA routing: which site and printer make a part, and when it is delivered. No I/O, no clock.

Timeline of one quote (all aware UTC datetimes; local time only inside the calendars)::

    now -> start -> print_end -> ready_at -> pickup_at -> delivery_at
      queue_wait  printing   post_processing courier_wait  transit

- ``start``: the first instant the printer is free for the whole print *and* the site is open: a print (and
  any material changeover before it) must be started by staff, then runs unattended through closed hours.
- ``ready_at``: post-processing and QA progress only while the site is open.
- ``pickup_at``: the first courier cut-off at or after ``ready_at``.
- ``delivery_at``: ``pickup_at`` + the site's transit rule for the service level and distance.
The caller reserves exactly ``[start, print_end)`` on ``printer_id``.

Material policy: a printer with one of the acceptable materials loaded prints it as is; one that only
supports it prints after ``MATERIAL_CHANGEOVER`` (swap, purge, calibrate), which is part of the reservation
and of ``breakdown.printing``. Copies of an order print on one printer, one after the other.

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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TypeAlias
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from services.routing.geo import GeoPoint, SphereIndex, haversine_km

# Swapping a spool on an FDM printer: unload, load, purge and a first-layer check take 15-30 min; we
# promise the slow end. Reserved on the printer like printing.
MATERIAL_CHANGEOVER = timedelta(minutes=30)
# What one hour earlier is worth against courier cost (in the transit model's currency) once the SLA is
# met: a product setting, a parameter of route().
VALUE_OF_HOUR = 1.0
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
# Local days whose UTC windows or cut-offs a calendar memoises (a few weeks of look-ups) before starting over.
_CALENDAR_MEMO_DAYS = 64
_DAY = timedelta(days=1)
_MIDNIGHT = time(0)

Window: TypeAlias = tuple[time, time]  # local (open, close)
Interval: TypeAlias = tuple[datetime, datetime]  # [start, end), aware
Size: TypeAlias = tuple[float, float, float]  # mm


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def _local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    # fold=0 (PEP 495): an ambiguous autumn wall time is its first occurrence; a wall time inside the spring
    # gap is read with the offset before the change (02:30 on the Berlin spring-forward night = 03:30 CEST).
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _since_midnight(at: time, *, closing: bool = False) -> timedelta:
    if closing and at == _MIDNIGHT:
        return _DAY  # a closing time of 00:00 is midnight at the end of the day
    return timedelta(hours=at.hour, minutes=at.minute, seconds=at.second, microseconds=at.microsecond)


# --- calendars -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Opening hours in an IANA time zone: ``days[weekday]`` (0 = Monday) lists local ``(open, close)``.

    A close of 00:00 is midnight at the end of that day. Windows within a day are sorted and disjoint; the
    site opens at least once a week. Methods take aware datetimes in any zone and return aware UTC ones,
    and do their arithmetic in UTC, so a day with a DST change is 23 or 25 hours long as it should be.

    Raises:
        ValueError: not 7 days, unsorted or overlapping windows, never open, or an unknown time zone.
    """

    tz: str
    days: tuple[tuple[Window, ...], ...]
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _always: bool = field(init=False, repr=False, compare=False)
    # A memo of derived values, not state: equality, hashing and every answer ignore it.
    _utc_days: dict[date, tuple[Interval, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.tz))
        object.__setattr__(self, "_utc_days", {})
        object.__setattr__(self, "days", tuple(tuple(windows) for windows in self.days))
        if len(self.days) != 7:
            raise ValueError(f"opening hours need 7 weekdays, got {len(self.days)}")
        for weekday, windows in enumerate(self.days):
            previous_close = timedelta(0)
            for open_, close in windows:
                opens, closes = _since_midnight(open_), _since_midnight(close, closing=True)
                if opens < previous_close or closes <= opens or open_.tzinfo or close.tzinfo:
                    raise ValueError(f"weekday {weekday}: windows must be naive, sorted and disjoint")
                previous_close = closes
        if not any(self.days):
            raise ValueError("a site must open at least once a week")
        always = all(windows == ((_MIDNIGHT, _MIDNIGHT),) for windows in self.days)
        object.__setattr__(self, "_always", always)

    @classmethod
    def always_open(cls, tz: str = "UTC") -> WeeklyHours:
        return cls(tz, (((_MIDNIGHT, _MIDNIGHT),),) * 7)

    @classmethod
    def daily(cls, tz: str, open_: time, close: time, weekdays: Iterable[int] = range(5)) -> WeeklyHours:
        """The same window on the given weekdays (default Monday to Friday), closed on the others."""
        chosen = set(weekdays)
        return cls(tz, tuple(((open_, close),) if day in chosen else () for day in range(7)))

    def _utc_windows(self, day: date) -> tuple[Interval, ...]:
        """A local day's windows in UTC, memoised: routing asks about the same few days again and again."""
        cached = self._utc_days.get(day)
        if cached is None:
            windows: list[Interval] = []
            for open_, close in self.days[day.weekday()]:
                start = _local_to_utc(day, open_, self._zone)
                end = _local_to_utc(day + _DAY if close == _MIDNIGHT else day, close, self._zone)
                # A window edge inside a DST gap can map past the next edge: clip, so windows never overlap.
                if windows and start < windows[-1][1]:
                    start = windows[-1][1]
                if end > start:
                    windows.append((start, end))
            cached = tuple(windows)
            if len(self._utc_days) >= _CALENDAR_MEMO_DAYS:
                self._utc_days.clear()
            self._utc_days[day] = cached
        return cached

    def _windows(self, at: datetime) -> Iterator[Interval]:
        """Opening windows in UTC, in order, from the one containing or following ``at``; endless."""
        # From the day before: a window's UTC end can fall on the next local day only at midnight, but
        # starting a day early costs little and needs no reasoning about odd zones.
        day = at.astimezone(self._zone).date() - _DAY
        while True:
            for start, end in self._utc_windows(day):
                if end > at:
                    yield start, end
            day += _DAY

    def _first_window(self, at: datetime) -> Interval:
        return next(self._windows(at))

    def is_open(self, at: datetime) -> bool:
        _require_aware("at", at)
        if self._always:
            return True
        start, _ = self._first_window(at)
        return start <= at

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself (in UTC) if the site is open then, else the next opening."""
        _require_aware("at", at)
        if self._always:
            return at.astimezone(UTC)
        start, _ = self._first_window(at)
        return max(start, at).astimezone(UTC)

    def add_open_minutes(self, start: datetime, minutes: float) -> datetime:
        """When work of ``minutes`` that progresses only while the site is open, begun at ``start``, ends.

        Zero minutes end at ``start`` even when closed; work that ends exactly at closing time ends then.
        """
        _require_aware("start", start)
        if minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        at, remaining = start.astimezone(UTC), timedelta(minutes=minutes)
        if not remaining or self._always:
            return at + remaining
        for window_start, window_end in self._windows(at):
            begin = max(window_start, at)
            if remaining <= window_end - begin:
                return begin + remaining
            remaining -= window_end - begin
        raise AssertionError("unreachable: _windows is endless")


@dataclass(frozen=True, slots=True)
class CourierCutoffs:
    """Local courier pickup cut-off times per weekday (0 = Monday), in an IANA time zone.

    Raises:
        ValueError: not 7 days, no cut-off in the week, or an unknown time zone.
    """

    tz: str
    days: tuple[tuple[time, ...], ...]
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _utc_days: dict[date, tuple[datetime, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.tz))
        object.__setattr__(self, "_utc_days", {})
        if len(self.days) != 7 or not any(self.days):
            raise ValueError("cut-offs need 7 weekdays and at least one pickup a week")
        object.__setattr__(self, "days", tuple(tuple(sorted(times)) for times in self.days))

    @classmethod
    def daily(cls, tz: str, cutoff: time, weekdays: Iterable[int] = range(5)) -> CourierCutoffs:
        chosen = set(weekdays)
        return cls(tz, tuple((cutoff,) if day in chosen else () for day in range(7)))

    def next_pickup(self, ready_at: datetime) -> datetime:
        """The first cut-off at or after ``ready_at`` (a parcel ready at 16:00 makes the 16:00 pickup)."""
        _require_aware("ready_at", ready_at)
        day = ready_at.astimezone(self._zone).date()
        # Eight days: the week holds a cut-off, and today's may already have passed.
        for offset in range(8):
            current = day + offset * _DAY
            pickups = self._utc_days.get(current)
            if pickups is None:
                # sorted(): a cut-off inside a DST gap maps past the next one (see _local_to_utc).
                pickups = tuple(
                    sorted(
                        _local_to_utc(current, cutoff, self._zone) for cutoff in self.days[current.weekday()]
                    )
                )
                if len(self._utc_days) >= _CALENDAR_MEMO_DAYS:
                    self._utc_days.clear()
                self._utc_days[current] = pickups
            for pickup in pickups:
                if pickup >= ready_at:
                    return pickup
        raise AssertionError("unreachable: a week holds a cut-off")


@dataclass(frozen=True, slots=True)
class TransitRule:
    """One service level: ``fixed_hours + distance / speed_kmh``, offered up to ``max_km`` (None: any)."""

    level: str
    fixed_hours: float
    speed_kmh: float
    max_km: float | None = None
    fixed_cost: float = 0.0
    cost_per_km: float = 0.0

    def __post_init__(self) -> None:
        if self.fixed_hours < 0 or self.speed_kmh <= 0 or self.fixed_cost < 0 or self.cost_per_km < 0:
            raise ValueError(f"transit rule {self.level!r}: negative hours or cost, or speed <= 0")

    def offers(self, distance_km: float) -> bool:
        return self.max_km is None or distance_km <= self.max_km

    def duration(self, distance_km: float) -> timedelta:
        return timedelta(hours=self.fixed_hours + distance_km / self.speed_kmh)

    def cost(self, distance_km: float) -> float:
        return self.fixed_cost + self.cost_per_km * distance_km


@dataclass(frozen=True, slots=True)
class TransitModel:
    """A site's courier offer: one rule per service level."""

    rules: tuple[TransitRule, ...]
    _by_level: Mapping[str, TransitRule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_level = {rule.level: rule for rule in self.rules}
        if len(by_level) != len(self.rules):
            raise ValueError("one transit rule per service level")
        object.__setattr__(self, "_by_level", MappingProxyType(by_level))

    def rule(self, level: str) -> TransitRule | None:
        return self._by_level.get(level)

    def transit(self, distance_km: float, level: str) -> timedelta | None:
        """Door-to-door time after pickup; None when the level is not offered at that distance."""
        rule = self._by_level.get(level)
        return rule.duration(distance_km) if rule is not None and rule.offers(distance_km) else None

    def cost(self, distance_km: float, level: str) -> float | None:
        rule = self._by_level.get(level)
        return rule.cost(distance_km) if rule is not None and rule.offers(distance_km) else None


# --- sites and demand ----------------------------------------------------------------------------------


def _check_size(name: str, size: Size) -> None:
    if len(size) != 3 or not all(side > 0 for side in size):
        raise ValueError(f"{name} must be three positive lengths in mm, got {size!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PrinterState:
    """A printer and its busy intervals: sorted, non-overlapping, half-open ``[start, end)``."""

    printer_id: str
    process: str
    materials_loaded: frozenset[str]
    materials_supported: frozenset[str]
    build_volume_mm: Size
    profile_key: str
    reservations: tuple[Interval, ...] = ()

    def __post_init__(self) -> None:
        _check_size("build_volume_mm", self.build_volume_mm)
        if not self.materials_loaded <= self.materials_supported:
            raise ValueError(f"printer {self.printer_id}: a loaded material must be supported")
        previous_end: datetime | None = None
        for start, end in self.reservations:
            _require_aware("reservation", start)
            _require_aware("reservation", end)
            if end <= start or (previous_end is not None and start < previous_end):
                raise ValueError(f"printer {self.printer_id}: reservations must be sorted and disjoint")
            previous_end = end


class SiteStatus(StrEnum):
    ONLINE = "online"
    PAUSED = "paused"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteState:
    """A microfactory as routing sees it. ``qualified_revisions`` None: no qualification gate."""

    site_id: str
    name: str
    location: GeoPoint
    hours: WeeklyHours
    cutoffs: CourierCutoffs
    transit: TransitModel
    post_processing_minutes: int
    status: SiteStatus
    printers: tuple[PrinterState, ...]
    qualified_revisions: frozenset[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", SiteStatus(self.status))
        if self.post_processing_minutes < 0:
            raise ValueError(f"site {self.site_id}: post_processing_minutes must be >= 0")
        if len({printer.printer_id for printer in self.printers}) != len(self.printers):
            raise ValueError(f"site {self.site_id}: printer ids must be unique")


@dataclass(frozen=True, slots=True, kw_only=True)
class Demand:
    """What to make, how many, where to and by when.

    ``materials``: any of them is acceptable. ``part_size_mm``: the bounding box; the part may be rotated.
    ``print_minutes``: minutes for ONE copy per printer ``profile_key``; a printer whose key is missing
    cannot be estimated and is skipped. Datetimes are stored in UTC.
    """

    revision_id: str
    process: str
    materials: frozenset[str]
    part_size_mm: Size
    quantity: int
    destination: GeoPoint
    need_by: datetime
    now: datetime
    service_levels: tuple[str, ...] = ("express", "standard")
    print_minutes: Mapping[str, float]

    def __post_init__(self) -> None:
        _require_aware("need_by", self.need_by)
        _require_aware("now", self.now)
        _check_size("part_size_mm", self.part_size_mm)
        if self.quantity < 1:
            raise ValueError(f"quantity must be >= 1, got {self.quantity}")
        if not self.materials or not self.service_levels:
            raise ValueError("a demand needs at least one material and one service level")
        if not all(0 < minutes < math.inf for minutes in self.print_minutes.values()):
            raise ValueError("print minutes must be positive and finite")
        object.__setattr__(self, "need_by", self.need_by.astimezone(UTC))
        object.__setattr__(self, "now", self.now.astimezone(UTC))
        object.__setattr__(self, "print_minutes", MappingProxyType(dict(self.print_minutes)))


# --- results -------------------------------------------------------------------------------------------


class RejectionReason(StrEnum):
    OFFLINE = "offline"
    PAUSED = "paused"
    NOT_QUALIFIED = "not_qualified"
    NO_TRANSIT = "no_transit"  # no requested service level reaches that far (max_km)
    NO_PRINTERS = "no_printers"
    PROCESS_MISMATCH = "process_mismatch"
    MATERIAL_UNAVAILABLE = "material_unavailable"  # neither loaded nor supported
    PART_TOO_LARGE = "part_too_large"
    NO_ESTIMATE = "no_estimate"  # no print minutes for the printer's profile
    SLA_MISSED = "sla_missed"  # the site's best delivery is after need_by


class LostBecause(StrEnum):
    SLA_MISSED = "sla_missed"
    LATER_DELIVERY = "later_delivery"
    HIGHER_COST = "higher_cost"
    TIE_BREAK = "tie_break"  # same delivery and cost: ids decided


@dataclass(frozen=True, slots=True)
class Rejection:
    site_id: str
    printer_id: str | None  # None: the whole site
    reason: RejectionReason
    delivery_at: datetime | None = None  # set for sla_missed


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Where the time goes; the five parts add up exactly to ``delivery_at - now``."""

    queue_wait: timedelta
    printing: timedelta  # includes MATERIAL_CHANGEOVER when the quote needs one
    post_processing: timedelta
    courier_wait: timedelta
    transit: timedelta

    @property
    def total(self) -> timedelta:
        return self.queue_wait + self.printing + self.post_processing + self.courier_wait + self.transit


@dataclass(frozen=True, slots=True)
class Quote:
    """One way to make and ship the demand. Reserve ``[start, print_end)`` on ``printer_id``."""

    site_id: str
    printer_id: str
    service_level: str
    material: str
    changeover: bool
    start: datetime
    print_end: datetime
    ready_at: datetime
    pickup_at: datetime
    delivery_at: datetime
    distance_km: float
    cost: float
    on_time: bool
    breakdown: Breakdown
    lost_because: LostBecause | None = None  # set on alternatives


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    best: Quote | None  # None: nothing meets the SLA and late promises were not accepted
    alternatives: list[Quote]  # the next best sites, each with lost_because
    rejections: list[Rejection]  # nearest first, at most REJECTION_LIMIT
    earliest: Quote | None  # the earliest delivery found, even if late (see the module docstring)
    sites_evaluated: int  # looked at (filters and bound)
    sites_quoted: int  # whose printer slots were searched


# --- printer slots -------------------------------------------------------------------------------------


def earliest_start(
    printer: PrinterState, hours: WeeklyHours, *, not_before: datetime, duration: timedelta
) -> datetime:
    """The earliest ``t >= not_before`` with the site open at ``t`` and ``[t, t + duration)`` free.

    Returns:
        An aware UTC datetime. Printing may run through closed hours; only its start needs staff.
    """
    reservations = printer.reservations
    start = hours.next_open(not_before)
    # The first reservation that ends after start; earlier ones cannot collide.
    i = bisect.bisect_right(reservations, start, key=lambda busy: busy[1])
    while i < len(reservations):
        busy_start, busy_end = reservations[i]
        if busy_end > start:
            if busy_start >= start + duration:
                break  # the gap before this reservation is long enough
            # Collides: the next candidate is the first open instant after it (which may pass others).
            start = hours.next_open(busy_end)
        i += 1
    return start


def after_print(site: SiteState, print_end: datetime) -> tuple[datetime, datetime]:
    """When a print that ends at ``print_end`` is ready (post-processing in opening hours) and picked up."""
    ready_at = site.hours.add_open_minutes(print_end, site.post_processing_minutes)
    return ready_at, site.cutoffs.next_pickup(ready_at)


def free_quotes(
    demand: Demand, site: SiteState, distance_km: float, *, value_of_hour: float = VALUE_OF_HOUR
) -> list[Quote]:
    """Each capable printer's best quote as if it had nothing reserved: the batch re-optimiser's options
    (it schedules the queues itself). Empty when the site cannot make the part at all."""
    screened = _screen_site(demand, site, distance_km)
    if isinstance(screened, Rejection):
        return []
    plans, _ = _screen_printers(demand, site)

    # Ranked as ``route`` ranks: on time by cost plus the value of the hours to the door, else earliest.
    def rank(c: _Candidate) -> tuple[int, float, datetime]:
        if c.delivery_at > demand.need_by:
            return (1, 0.0, c.delivery_at)
        score = c.offer.cost + value_of_hour * (c.delivery_at - demand.now).total_seconds() / 3600
        return (0, score, c.delivery_at)

    quotes: list[Quote] = []
    for plan in plans:
        free = replace(plan, printer=replace(plan.printer, reservations=()))
        best = min(_candidates(demand, site, screened, [free]), key=rank)
        quotes.append(_quote(demand, site, distance_km, best))
    return quotes


# --- routing -------------------------------------------------------------------------------------------


def _fits(part: Size, volume: Size) -> bool:
    # The part may be rotated: sorted sides against sorted sides is the axis-aligned test for boxes.
    return all(side <= room for side, room in zip(sorted(part), sorted(volume), strict=True))


@dataclass(frozen=True, slots=True)
class _Plan:
    """A printer that can make the part: with which material, and how long it is reserved."""

    printer: PrinterState
    material: str
    changeover: bool
    duration: timedelta


@dataclass(frozen=True, slots=True)
class _Offer:
    """A service level the site's courier offers at this distance."""

    level: str
    transit: timedelta
    cost: float


@dataclass(frozen=True, slots=True)
class _Candidate:
    """One printer x service level before it becomes a Quote (only the few shown become one)."""

    plan: _Plan
    offer: _Offer
    start: datetime
    ready_at: datetime
    pickup_at: datetime
    delivery_at: datetime


def _printer_plan(demand: Demand, printer: PrinterState) -> _Plan | RejectionReason:
    if printer.process != demand.process:
        return RejectionReason.PROCESS_MISMATCH
    loaded = demand.materials & printer.materials_loaded
    materials = loaded or demand.materials & printer.materials_supported
    if not materials:
        return RejectionReason.MATERIAL_UNAVAILABLE
    if not _fits(demand.part_size_mm, printer.build_volume_mm):
        return RejectionReason.PART_TOO_LARGE
    minutes = demand.print_minutes.get(printer.profile_key)
    if minutes is None:
        return RejectionReason.NO_ESTIMATE
    duration = timedelta(minutes=minutes * demand.quantity)
    if not loaded:
        duration += MATERIAL_CHANGEOVER
    return _Plan(printer, min(materials), not loaded, duration)  # min(): deterministic among acceptable ones


def _screen_site(demand: Demand, site: SiteState, distance_km: float) -> Rejection | list[_Offer]:
    """The site-wide filters: why the site cannot quote, or the service levels it offers at that distance."""
    sid = site.site_id
    if site.status is not SiteStatus.ONLINE:
        return Rejection(sid, None, RejectionReason(site.status.value))
    if site.qualified_revisions is not None and demand.revision_id not in site.qualified_revisions:
        return Rejection(sid, None, RejectionReason.NOT_QUALIFIED)
    if not site.printers:
        return Rejection(sid, None, RejectionReason.NO_PRINTERS)
    offers = [
        _Offer(level, rule.duration(distance_km), rule.cost(distance_km))
        for level in demand.service_levels
        if (rule := site.transit.rule(level)) is not None and rule.offers(distance_km)
    ]
    return offers or Rejection(sid, None, RejectionReason.NO_TRANSIT)


def _screen_printers(demand: Demand, site: SiteState) -> tuple[list[_Plan], list[Rejection]]:
    """The printer filters: the capable printers, and why each other printer cannot make the part."""
    plans, rejections = [], []
    for printer in site.printers:
        plan = _printer_plan(demand, printer)
        if isinstance(plan, _Plan):
            plans.append(plan)
        else:
            rejections.append(Rejection(site.site_id, printer.printer_id, plan))
    return plans, rejections


def _candidates(
    demand: Demand, site: SiteState, offers: list[_Offer], plans: list[_Plan]
) -> list[_Candidate]:
    found: list[_Candidate] = []
    for plan in plans:
        start = earliest_start(plan.printer, site.hours, not_before=demand.now, duration=plan.duration)
        ready_at, pickup_at = after_print(site, start + plan.duration)
        found.extend(
            _Candidate(plan, offer, start, ready_at, pickup_at, pickup_at + offer.transit) for offer in offers
        )
    return found


def _quote(demand: Demand, site: SiteState, distance_km: float, candidate: _Candidate) -> Quote:
    plan, now = candidate.plan, demand.now
    print_end = candidate.start + plan.duration
    return Quote(
        site_id=site.site_id,
        printer_id=plan.printer.printer_id,
        service_level=candidate.offer.level,
        material=plan.material,
        changeover=plan.changeover,
        start=candidate.start,
        print_end=print_end,
        ready_at=candidate.ready_at,
        pickup_at=candidate.pickup_at,
        delivery_at=candidate.delivery_at,
        distance_km=distance_km,
        cost=candidate.offer.cost,
        on_time=candidate.delivery_at <= demand.need_by,
        breakdown=Breakdown(
            queue_wait=candidate.start - now,
            printing=plan.duration,
            post_processing=candidate.ready_at - print_end,
            courier_wait=candidate.pickup_at - candidate.ready_at,
            transit=candidate.offer.transit,
        ),
    )


# (class, score or delivery, delivery or cost, cost, site, printer, level): on time (0) before late (1).
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
        self.on_time: list[tuple[_RankKey, SiteState, float, _Candidate]] = []
        self.late: list[tuple[_RankKey, SiteState, float, _Candidate]] = []
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
        offers = _screen_site(demand, site, distance_km)
        if isinstance(offers, Rejection):
            self.outcomes.append(offers)
            return
        if prune and not self._may_enter_by_cutoff(site, offers):
            return
        plans, rejections = _screen_printers(demand, site)
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
        candidates = _candidates(demand, site, offers, plans)
        keyed = [(self.rank_key(site, candidate), candidate) for candidate in candidates]
        key, best = min(keyed, key=lambda pair: pair[0])
        ranking = self.on_time if key[0] == 0 else self.late
        bisect.insort(ranking, (key, site, distance_km, best), key=lambda entry: entry[0])
        del ranking[self.keep :]
        if key[0] == 1:
            self.outcomes.append(_quote(demand, site, distance_km, best))
        first = min(candidates, key=lambda c: _earliest_key(site, c))
        if self.earliest is None or _earliest_key(site, first) < self.earliest[0]:
            self.earliest = (_earliest_key(site, first), _quote(demand, site, distance_km, first))

    def _may_enter_by_cutoff(self, site: SiteState, offers: list[_Offer]) -> bool:
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

    def rank_key(self, site: SiteState, candidate: _Candidate) -> _RankKey:
        delivery, cost = candidate.delivery_at.timestamp(), candidate.offer.cost
        ids = (site.site_id, candidate.plan.printer.printer_id, candidate.offer.level)
        if delivery <= self.need_ts:
            return (0, self.score(cost, delivery), delivery, cost, *ids)
        return (1, delivery, cost, 0.0, *ids)

    def decision(self, *, accept_late: bool) -> RoutingDecision:
        # Both lists hold up to keep entries; the decision shows keep in all (best + alternatives).
        ranked = [
            _quote(self.demand, site, km, candidate)
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


def _earliest_key(site: SiteState, candidate: _Candidate) -> tuple[datetime, float, str, str, str]:
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
