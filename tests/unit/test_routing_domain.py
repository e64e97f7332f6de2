"""The pure routing domain: calendars, transit, printer slots, capability filters, ranking and the index."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.factories.schemas import SiteStatus
from services.routing.calendars import CourierCutoffs, WeeklyHours
from services.routing.candidates import MATERIAL_CHANGEOVER
from services.routing.demand import Demand
from services.routing.geo import GeoPoint, SphereIndex, haversine_km
from services.routing.quotes import LostBecause, Quote, RejectionReason, RoutingDecision
from services.routing.search import SiteIndex, route
from services.routing.sites import RoutablePrinter, SiteState
from services.routing.slots import earliest_start
from services.routing.transit import TransitModel, TransitRule

BERLIN = "Europe/Berlin"
BERLIN_CENTRE = GeoPoint(52.52, 13.405)
HAMBURG = GeoPoint(53.551, 9.994)  # ~255 km from Berlin
MUNICH = GeoPoint(48.137, 11.575)  # ~505 km from Berlin
EXPRESS = TransitRule("express", fixed_hours=12, speed_kmh=80, max_km=800, fixed_cost=20, cost_per_km=0.5)
STANDARD = TransitRule("standard", fixed_hours=24, speed_kmh=60, fixed_cost=8, cost_per_km=0.2)
OFFICE_HOURS = WeeklyHours.daily(BERLIN, time(8), time(18))  # Monday to Friday


def local(text: str, tz: str = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_printer(
    printer_id: str = "p1",
    *,
    process: str = "fdm",
    loaded: Sequence[str] = ("PLA",),
    supported: Sequence[str] = ("PLA", "PETG"),
    volume: tuple[float, float, float] = (250, 210, 210),
    profile: str = "mk4",
    reservations: tuple[tuple[datetime, datetime], ...] = (),
) -> RoutablePrinter:
    return RoutablePrinter(
        printer_id=printer_id,
        process=process,
        materials_loaded=frozenset(loaded),
        materials_supported=frozenset(supported) | frozenset(loaded),
        build_volume_mm=volume,
        profile_key=profile,
        reservations=reservations,
    )


def make_site(
    site_id: str = "berlin",
    *,
    location: GeoPoint = BERLIN_CENTRE,
    hours: WeeklyHours | None = None,
    cutoffs: CourierCutoffs | None = None,
    rules: tuple[TransitRule, ...] = (EXPRESS, STANDARD),
    post_processing_minutes: int = 0,
    status: SiteStatus = SiteStatus.ONLINE,
    printers: tuple[RoutablePrinter, ...] | None = None,
    qualified: frozenset[str] | None = None,
) -> SiteState:
    return SiteState(
        site_id=site_id,
        name=site_id.title(),
        location=location,
        hours=hours or WeeklyHours.always_open(BERLIN),
        cutoffs=cutoffs or CourierCutoffs.daily(BERLIN, time(16), weekdays=range(7)),
        transit=TransitModel(rules),
        post_processing_minutes=post_processing_minutes,
        status=status,
        printers=(make_printer(),) if printers is None else printers,
        qualified_revisions=qualified,
    )


def make_demand(
    *,
    now: datetime = utc("2024-06-03T06:00"),  # a Monday
    need_by: datetime | None = None,
    destination: GeoPoint = BERLIN_CENTRE,
    quantity: int = 1,
    minutes: dict[str, float] | None = None,
    process: str = "fdm",
    materials: Sequence[str] = ("PLA",),
    size: tuple[float, float, float] = (50, 40, 30),
    levels: tuple[str, ...] = ("express", "standard"),
) -> Demand:
    return Demand(
        revision_id="rev-1",
        process=process,
        materials=frozenset(materials),
        part_size_mm=size,
        quantity=quantity,
        destination=destination,
        need_by=need_by or now + timedelta(hours=48),
        now=now,
        print_minutes={"mk4": 60} if minutes is None else minutes,
        service_levels=levels,
    )


def quote_datetimes(quote: Quote) -> list[datetime]:
    return [quote.start, quote.print_end, quote.ready_at, quote.pickup_at, quote.delivery_at]


# --- geometry ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lat", "lon"), [(90.5, 0), (-91, 0), (0, 180.1), (0, -181), (float("nan"), 0)])
def test_geopoint_rejects_coordinates_out_of_range(lat: float, lon: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        GeoPoint(lat, lon)


def test_haversine_berlin_to_munich() -> None:
    assert haversine_km(BERLIN_CENTRE, MUNICH) == pytest.approx(504.4, abs=1)


@given(
    st.lists(st.tuples(st.floats(-89, 89), st.floats(-180, 180)), min_size=1, max_size=80),
    st.tuples(st.floats(-89, 89), st.floats(-180, 180)),
)
def test_sphere_index_yields_every_point_nearest_first(
    points: list[tuple[float, float]], target: tuple[float, float]
) -> None:
    geo = [GeoPoint(lat, lon) for lat, lon in points]
    centre = GeoPoint(*target)
    visited = list(SphereIndex(geo).nearest(centre))
    assert sorted(position for position, _ in visited) == list(range(len(geo)))
    exact = [haversine_km(centre, geo[position]) for position, _ in visited]
    # Within a metre, the routing bound's slack: chord and haversine lose digits near the antipode.
    assert all(b >= a - 1e-3 for a, b in itertools.pairwise(exact))
    assert all(km == pytest.approx(e, abs=1e-3) for (_, km), e in zip(visited, exact, strict=True))


# --- opening hours -------------------------------------------------------------------------------------


def test_is_open_inside_the_window_only() -> None:
    assert OFFICE_HOURS.is_open(local("2024-06-03T08:00"))
    assert not OFFICE_HOURS.is_open(local("2024-06-03T18:00"))  # windows are half-open
    assert not OFFICE_HOURS.is_open(local("2024-06-08T12:00"))  # Saturday


def test_next_open_is_the_instant_itself_when_open() -> None:
    at = local("2024-06-03T12:34")
    assert OFFICE_HOURS.next_open(at) == at
    assert OFFICE_HOURS.next_open(at).tzinfo is UTC


def test_next_open_after_friday_closing_is_monday_morning() -> None:
    assert OFFICE_HOURS.next_open(local("2024-06-07T18:30")) == local("2024-06-10T08:00")


def test_add_open_minutes_pauses_over_the_night() -> None:
    # 17:00 + 3 h of open time: 1 h today, 2 h from 08:00 tomorrow.
    assert OFFICE_HOURS.add_open_minutes(local("2024-06-03T17:00"), 180) == local("2024-06-04T10:00")


def test_add_open_minutes_ending_exactly_at_closing_ends_then() -> None:
    assert OFFICE_HOURS.add_open_minutes(local("2024-06-03T17:00"), 60) == local("2024-06-03T18:00")


def test_add_zero_minutes_while_closed_returns_the_start() -> None:
    at = local("2024-06-08T12:00")
    assert OFFICE_HOURS.add_open_minutes(at, 0) == at


def test_add_open_minutes_across_spring_forward_opens_at_local_eight() -> None:
    daily = WeeklyHours.daily(BERLIN, time(8), time(18), weekdays=range(7))
    # Saturday 30 March 2024 08:00 CET: 10 h on Saturday, the last hour from 08:00 CEST on Sunday.
    end = daily.add_open_minutes(local("2024-03-30T08:00"), 11 * 60)
    assert end == local("2024-03-31T09:00")
    assert end == utc("2024-03-31T07:00")  # 09:00 CEST is UTC+2, not the +1 of the day before


@pytest.mark.parametrize(
    ("start", "expected_local", "elapsed_hours"),
    [
        ("2024-03-30T12:00", "2024-03-31T13:00", 24),  # spring forward: the local day has 23 h
        ("2024-10-26T12:00", "2024-10-27T11:00", 24),  # fall back: the local day has 25 h
    ],
)
def test_always_open_counts_real_hours_across_dst(
    start: str, expected_local: str, elapsed_hours: int
) -> None:
    hours = WeeklyHours.always_open(BERLIN)
    begin = local(start)
    end = hours.add_open_minutes(begin, elapsed_hours * 60)
    assert end == local(expected_local)
    assert end - begin == timedelta(hours=elapsed_hours)


def test_office_hours_across_fall_back_close_at_local_six() -> None:
    daily = WeeklyHours.daily(BERLIN, time(8), time(18), weekdays=range(7))
    # Saturday 26 October 2024 17:00 CEST + 2 h: 1 h Saturday, 1 h from 08:00 CET on Sunday (= 07:00 UTC).
    assert daily.add_open_minutes(local("2024-10-26T17:00"), 120) == utc("2024-10-27T08:00")


def test_opening_inside_the_spring_gap_uses_the_old_offset() -> None:
    night = WeeklyHours(BERLIN, tuple(((time(2, 30), time(6)),) for _ in range(7)))
    # 02:30 does not exist on 31 March 2024; read as 02:30 CET = 01:30 UTC = 03:30 CEST (PEP 495 fold=0).
    assert night.next_open(local("2024-03-31T00:00")) == utc("2024-03-31T01:30")


def test_windows_spanning_midnight_join_seamlessly() -> None:
    shifts = WeeklyHours(BERLIN, tuple(((time(0), time(6)), (time(20), time(0))) for _ in range(7)))
    assert shifts.add_open_minutes(local("2024-06-03T23:00"), 120) == local("2024-06-04T01:00")


@pytest.mark.parametrize(
    "days",
    [
        (((time(8), time(12)), (time(11), time(14))),) * 7,  # overlapping
        (((time(12), time(8)),),) * 7,  # closes before it opens
        ((),) * 7,  # never open
        (((time(8), time(12)),),) * 6,  # six days
    ],
)
def test_weekly_hours_reject_malformed_windows(days: tuple[tuple[tuple[time, time], ...], ...]) -> None:
    with pytest.raises(ValueError, match=r"weekday|week"):
        WeeklyHours(BERLIN, days)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE_HOURS.next_open(datetime(2024, 6, 3, 12))


# --- courier cut-offs and transit ----------------------------------------------------------------------


WEEKDAY_PICKUP = CourierCutoffs.daily(BERLIN, time(16))


def test_ready_after_friday_cutoff_ships_on_monday() -> None:
    assert WEEKDAY_PICKUP.next_pickup(local("2024-06-07T16:01")) == local("2024-06-10T16:00")


def test_ready_exactly_at_cutoff_makes_that_pickup() -> None:
    assert WEEKDAY_PICKUP.next_pickup(local("2024-06-07T16:00")) == local("2024-06-07T16:00")


def test_cutoff_follows_local_time_across_spring_forward() -> None:
    # Friday 29 March 16:01 CET -> Monday 1 April 16:00 CEST, which is 14:00 UTC.
    assert WEEKDAY_PICKUP.next_pickup(local("2024-03-29T16:01")) == utc("2024-04-01T14:00")


def test_transit_by_level_and_distance() -> None:
    model = TransitModel((EXPRESS, STANDARD))
    assert model.transit(400, "express") == timedelta(hours=12 + 5)
    assert model.transit(1200, "standard") == timedelta(hours=24 + 20)
    assert model.cost(400, "express") == 20 + 200


def test_transit_beyond_max_km_or_unknown_level_is_not_offered() -> None:
    model = TransitModel((EXPRESS, STANDARD))
    assert model.transit(800.5, "express") is None
    assert model.cost(800.5, "express") is None
    assert model.transit(10, "drone") is None


# --- printer slots -------------------------------------------------------------------------------------


def slot(reservations: tuple[tuple[datetime, datetime], ...], not_before: str, minutes: int) -> datetime:
    printer = make_printer(reservations=reservations)
    return earliest_start(
        printer, OFFICE_HOURS, not_before=local(not_before), duration=timedelta(minutes=minutes)
    )


def test_free_printer_starts_now_while_open() -> None:
    assert slot((), "2024-06-03T09:00", 60) == local("2024-06-03T09:00")


def test_print_may_run_past_closing_but_not_start_after_it() -> None:
    assert slot((), "2024-06-03T17:59", 600) == local("2024-06-03T17:59")
    assert slot((), "2024-06-03T18:00", 60) == local("2024-06-04T08:00")


def test_a_gap_too_short_is_skipped() -> None:
    busy = ((local("2024-06-03T10:00"), local("2024-06-03T12:00")),)
    assert slot(busy, "2024-06-03T09:00", 90) == local("2024-06-03T12:00")


def test_a_gap_long_enough_is_used_and_touching_is_no_overlap() -> None:
    busy = ((local("2024-06-03T10:00"), local("2024-06-03T12:00")),)
    assert slot(busy, "2024-06-03T09:00", 60) == local("2024-06-03T09:00")


def test_reservation_ending_after_closing_pushes_to_next_opening_and_past_more() -> None:
    busy = (
        (local("2024-06-03T09:00"), local("2024-06-03T19:00")),
        (local("2024-06-04T08:30"), local("2024-06-04T09:00")),  # leaves only 30 min at 08:00
        (local("2024-06-04T10:00"), local("2024-06-04T11:00")),
    )
    assert slot(busy, "2024-06-03T09:30", 45) == local("2024-06-04T09:00")
    assert slot(busy, "2024-06-03T09:30", 90) == local("2024-06-04T11:00")


# --- capability filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("site", "reason", "printer_id"),
    [
        (make_site(status=SiteStatus.OFFLINE), RejectionReason.OFFLINE, None),
        (make_site(status=SiteStatus.PAUSED), RejectionReason.PAUSED, None),
        (make_site(qualified=frozenset({"rev-0"})), RejectionReason.NOT_QUALIFIED, None),
        (
            make_site(location=GeoPoint(40.4, -3.7), rules=(EXPRESS,)),
            RejectionReason.NO_TRANSIT,
            None,
        ),  # Madrid
        (make_site(printers=()), RejectionReason.NO_PRINTERS, None),
        (make_site(printers=(make_printer(process="sla"),)), RejectionReason.PROCESS_MISMATCH, "p1"),
        (
            make_site(printers=(make_printer(loaded=(), supported=("ABS",)),)),
            RejectionReason.MATERIAL_UNAVAILABLE,
            "p1",
        ),
        (make_site(printers=(make_printer(volume=(25, 300, 300)),)), RejectionReason.PART_TOO_LARGE, "p1"),
        (make_site(printers=(make_printer(profile="x1c"),)), RejectionReason.NO_ESTIMATE, "p1"),
    ],
)
def test_each_filter_rejects_with_its_reason(
    site: SiteState, reason: RejectionReason, printer_id: str | None
) -> None:
    decision = route(make_demand(levels=("express",)), [site])
    assert route(make_demand(levels=("express",)), SiteIndex([site])) == decision
    assert decision.best is None
    assert decision.earliest is None
    assert [(r.site_id, r.printer_id, r.reason) for r in decision.rejections] == [
        (site.site_id, printer_id, reason)
    ]


def test_a_rotated_part_fits() -> None:
    site = make_site(printers=(make_printer(volume=(300, 60, 60)),))
    assert route(make_demand(size=(50, 250, 40)), [site]).best is not None


def test_a_material_only_supported_prints_after_a_changeover() -> None:
    site = make_site(printers=(make_printer(loaded=("PLA",), supported=("PETG",)),))
    best = route(make_demand(materials=("PETG",)), [site]).best
    assert best is not None
    assert (best.material, best.changeover) == ("PETG", True)
    assert best.breakdown.printing == timedelta(minutes=60) + MATERIAL_CHANGEOVER
    assert best.print_end - best.start == best.breakdown.printing


def test_a_loaded_material_is_preferred_to_a_changeover() -> None:
    changeover = make_printer("p1", loaded=("PETG",), supported=("PLA",))
    ready = make_printer("p2", loaded=("PLA",))
    best = route(make_demand(materials=("PLA", "PETG")), [make_site(printers=(changeover, ready))]).best
    assert best is not None
    assert best.printer_id == "p1"  # PETG is loaded there too: both acceptable, so no changeover
    assert not best.changeover


def test_quantity_multiplies_print_minutes() -> None:
    best = route(make_demand(quantity=3, minutes={"mk4": 40}), [make_site()]).best
    assert best is not None
    assert best.breakdown.printing == timedelta(minutes=120)


# --- ranking -------------------------------------------------------------------------------------------


def test_nearer_site_missing_the_sla_loses_to_a_farther_one_meeting_it() -> None:
    now = utc("2024-06-03T06:00")
    booked = ((now - timedelta(hours=1), now + timedelta(days=3)),)
    near = make_site("berlin", printers=(make_printer(reservations=booked),))
    far = make_site("munich", location=MUNICH)
    decision = route(make_demand(now=now, need_by=now + timedelta(hours=36)), [near, far])
    assert decision.best is not None
    assert decision.best.site_id == "munich"
    assert [(q.site_id, q.lost_because) for q in decision.alternatives] == [
        ("berlin", LostBecause.SLA_MISSED)
    ]
    missed = [r for r in decision.rejections if r.reason is RejectionReason.SLA_MISSED]
    assert [(r.site_id, r.delivery_at) for r in missed] == [("berlin", decision.alternatives[0].delivery_at)]


def test_standard_wins_when_on_time_and_express_when_only_it_is() -> None:
    # Berlin to Hamburg (~255 km): express costs ~148, standard ~59 and arrives ~16 h later.
    relaxed = route(make_demand(destination=HAMBURG, need_by=utc("2024-06-06T00:00")), [make_site()]).best
    urgent = route(make_demand(destination=HAMBURG, need_by=utc("2024-06-04T12:00")), [make_site()]).best
    assert relaxed is not None
    assert urgent is not None
    assert (relaxed.service_level, urgent.service_level) == ("standard", "express")


def test_alternatives_say_later_delivery_or_higher_cost() -> None:
    now = utc("2024-06-03T06:00")
    best = make_site("a")
    busy = make_site("b", printers=(make_printer(reservations=((now, now + timedelta(hours=12)),)),))
    pricey = make_site("c", rules=(replace(EXPRESS, fixed_cost=90), replace(STANDARD, fixed_cost=90)))
    decision = route(make_demand(now=now), [pricey, busy, best])
    assert decision.best is not None
    assert decision.best.site_id == "a"
    reasons = {q.site_id: q.lost_because for q in decision.alternatives}
    assert reasons == {"b": LostBecause.LATER_DELIVERY, "c": LostBecause.HIGHER_COST}


def test_unachievable_demand_has_no_best_but_an_earliest() -> None:
    now = utc("2024-06-03T06:00")
    decision = route(make_demand(now=now, need_by=now + timedelta(hours=6)), [make_site(), make_site("b")])
    assert decision.best is None
    assert decision.alternatives == []
    assert decision.earliest is not None
    assert decision.earliest.delivery_at > now + timedelta(hours=6)
    assert {r.reason for r in decision.rejections} == {RejectionReason.SLA_MISSED}


def test_accept_late_returns_the_earliest_as_best() -> None:
    now = utc("2024-06-03T06:00")
    demand = make_demand(now=now, need_by=now + timedelta(hours=6))
    decision = route(demand, [make_site(), make_site("far", location=MUNICH)], accept_late=True)
    assert decision.best is not None
    assert decision.best == decision.earliest
    assert not decision.best.on_time
    assert decision.alternatives[0].lost_because is LostBecause.LATER_DELIVERY
    assert all(r.site_id != decision.best.site_id for r in decision.rejections)


def test_excluded_sites_are_skipped() -> None:
    sites = [make_site("a"), make_site("b", location=HAMBURG)]
    best = route(make_demand(), SiteIndex(sites), exclude=frozenset({"a"})).best
    assert best is not None
    assert best.site_id == "b"


def test_site_index_quotes_only_the_neighbourhood_and_agrees_with_brute_force() -> None:
    # A 0.5 degree grid over Germany (~300 sites, ~40-55 km apart), all alike: only the nearest can win.
    grid = [
        make_site(f"g{i:03d}-{j:03d}", location=GeoPoint(47.5 + 0.5 * i, 6 + 0.5 * j))
        for i in range(15)
        for j in range(19)
    ]
    demand = make_demand(destination=BERLIN_CENTRE)
    fast, slow = route(demand, SiteIndex(grid)), route(demand, grid)
    assert fast.best == slow.best
    assert fast.alternatives == slow.alternatives
    assert fast.sites_quoted < 10 < len(grid) == slow.sites_quoted


def test_site_index_finds_a_far_site_whose_fast_courier_beats_near_slow_ones() -> None:
    # More near sites than the index's first chunk of neighbours, so that the global bound decides.
    slow = (TransitRule("standard", fixed_hours=10, speed_kmh=30),)
    fast = (TransitRule("standard", fixed_hours=2, speed_kmh=120),)
    near = [make_site(f"near{i}", location=GeoPoint(52.5 + 0.02 * i, 13.4), rules=slow) for i in range(20)]
    far = make_site("far", location=MUNICH, rules=fast)  # ~505 km: 2 + 4.2 h against 10 h and more
    demand = make_demand(need_by=utc("2024-06-03T07:00"), levels=("standard",))  # unachievable
    for where in (SiteIndex([*near, far]), [*near, far]):
        decision = route(demand, where, accept_late=True)
        assert decision.best is not None
        assert decision.best.site_id == "far"


def test_site_index_rejects_duplicate_ids_and_handles_no_sites() -> None:
    with pytest.raises(ValueError, match="unique"):
        SiteIndex([make_site("a"), make_site("a")])
    assert route(make_demand(), SiteIndex([])) == RoutingDecision(None, [], [], None, 0, 0)


# --- properties ----------------------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "Europe/Lisbon", "Europe/Helsinki", "America/New_York", "UTC"]
# Weeks with DST changes in Europe (31 March, 27 October 2024) and one without.
EPOCHS = [utc("2024-03-27T00:00"), utc("2024-10-23T00:00"), utc("2024-06-03T00:00")]


@st.composite
def printers(draw: st.DrawFn, printer_id: str, now: datetime) -> RoutablePrinter:
    reservations = []
    cursor = now - timedelta(hours=draw(st.integers(0, 12)))
    for _ in range(draw(st.integers(0, 4))):
        start = cursor + timedelta(minutes=draw(st.integers(0, 24 * 60)))
        cursor = start + timedelta(minutes=draw(st.integers(1, 30 * 60)))
        reservations.append((start, cursor))
    return make_printer(
        printer_id,
        # Mostly capable, so that most worlds have quotes to rank; every filter still shows up.
        process=draw(st.sampled_from(["fdm"] * 9 + ["sla"])),
        loaded=draw(st.sampled_from([("PLA",)] * 3 + [(), ("PETG",)])),
        supported=draw(st.sampled_from([(), ("PLA",), ("PLA", "PETG")])),
        volume=draw(st.sampled_from([(250, 210, 210)] * 3 + [(120, 120, 120), (40, 40, 40)])),
        profile=draw(st.sampled_from(["mk4"] * 3 + ["x1c", "form3"])),
        reservations=tuple(reservations),
    )


@st.composite
def transit_offers(draw: st.DrawFn) -> tuple[TransitRule, ...]:
    return tuple(
        TransitRule(
            level,
            fixed_hours=draw(st.floats(2, 30)),
            speed_kmh=draw(st.floats(30, 120)),
            max_km=draw(st.none() | st.floats(50, 1500)),
            fixed_cost=draw(st.floats(0, 50)),
            cost_per_km=draw(st.floats(0, 1)),
        )
        for level in draw(st.sampled_from([("express", "standard"), ("express",), ("standard",)]))
    )


@st.composite
def sites(
    draw: st.DrawFn, site_id: str, now: datetime, offers: Sequence[tuple[TransitRule, ...]]
) -> SiteState:
    tz = draw(st.sampled_from(ZONES))
    weekdays = draw(st.sets(st.integers(0, 6), min_size=1))
    if draw(st.booleans()):
        hours = WeeklyHours.always_open(tz)
    else:
        opens = draw(st.integers(0, 14))
        closes = time(0) if (end := draw(st.integers(opens + 1, 24))) == 24 else time(end)
        hours = WeeklyHours.daily(tz, time(opens, draw(st.sampled_from([0, 30]))), closes, weekdays)
    return make_site(
        site_id,
        location=GeoPoint(draw(st.floats(44, 56)), draw(st.floats(0, 20))),  # central Europe
        hours=hours,
        cutoffs=CourierCutoffs.daily(
            tz, time(draw(st.integers(8, 20))), draw(st.sets(st.integers(0, 6), min_size=1))
        ),
        rules=draw(st.sampled_from(offers)),
        post_processing_minutes=draw(st.integers(0, 600)),
        status=draw(st.sampled_from([SiteStatus.ONLINE] * 6 + [SiteStatus.PAUSED, SiteStatus.OFFLINE])),
        printers=tuple(draw(printers(f"{site_id}-p{i}", now)) for i in range(draw(st.integers(1, 3)))),
        qualified=draw(st.sampled_from([None] * 4 + [frozenset({"rev-1"}), frozenset({"rev-2"})])),
    )


@st.composite
def worlds(draw: st.DrawFn, min_sites: int = 1, max_sites: int = 12) -> tuple[Demand, list[SiteState]]:
    now = draw(st.sampled_from(EPOCHS)) + timedelta(minutes=draw(st.integers(0, 7 * 24 * 60)))
    # A few courier offers shared by the sites, as in a real network: the search bound can then prune.
    offers = draw(st.lists(transit_offers(), min_size=1, max_size=3))
    count = draw(st.integers(min_sites, max_sites))
    world = [draw(sites(f"s{i:02d}", now, offers)) for i in range(count)]
    demand = make_demand(
        now=now,
        need_by=now + timedelta(hours=draw(st.integers(6, 120))),
        destination=GeoPoint(draw(st.floats(44, 56)), draw(st.floats(0, 20))),
        quantity=draw(st.integers(1, 5)),
        minutes={"mk4": draw(st.floats(5, 600))}
        | draw(st.dictionaries(st.sampled_from(["x1c"]), st.floats(5, 600))),
        materials=draw(st.sampled_from([("PLA",), ("PETG",), ("PLA", "PETG")])),
        size=draw(st.sampled_from([(30, 30, 30), (100, 100, 50), (200, 100, 100)])),
    )
    return demand, world


# Generating a world dominates the run time (~50 ms for 30 sites): 100 examples keep the suite at seconds.
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(worlds(), st.booleans())
def test_breakdown_adds_up_and_slots_are_sound(
    world: tuple[Demand, list[SiteState]], accept_late: bool
) -> None:
    demand, all_sites = world
    decision = route(demand, all_sites, max_alternatives=10, accept_late=accept_late)
    quotes = [q for q in [decision.best, decision.earliest, *decision.alternatives] if q is not None]
    by_id = {(s.site_id, p.printer_id): (s, p) for s in all_sites for p in s.printers}
    for quote in quotes:
        assert quote.breakdown.total == quote.delivery_at - demand.now
        assert all(at.tzinfo is UTC for at in quote_datetimes(quote))
        assert demand.now <= quote.start <= quote.print_end <= quote.ready_at <= quote.pickup_at
        assert quote.print_end - quote.start == quote.breakdown.printing  # exactly what to reserve
        assert quote.on_time == (quote.delivery_at <= demand.need_by)
        site, printer = by_id[quote.site_id, quote.printer_id]
        assert site.hours.is_open(quote.start)
        assert all(end <= quote.start or quote.print_end <= start for start, end in printer.reservations)
    for rejection in decision.rejections:
        assert rejection.delivery_at is None or rejection.delivery_at.tzinfo is UTC
    if decision.best is not None:
        assert decision.earliest is not None
        assert decision.earliest.delivery_at <= decision.best.delivery_at
        ranked = [decision.best, *decision.alternatives]
        assert [q.on_time for q in ranked] == sorted((q.on_time for q in ranked), reverse=True)


@PROPERTY_SETTINGS
@given(
    worlds(min_sites=12, max_sites=40),  # often past the index's first chunk of 16 neighbours
    st.booleans(),
    st.integers(0, 3),
    st.sets(st.sampled_from(["s00", "s01", "s02"])),
)
def test_index_search_decides_like_brute_force(
    world: tuple[Demand, list[SiteState]], accept_late: bool, alternatives: int, exclude: set[str]
) -> None:
    demand, all_sites = world
    fast, slow = (
        route(
            demand, where, max_alternatives=alternatives, accept_late=accept_late, exclude=frozenset(exclude)
        )
        for where in (SiteIndex(all_sites), all_sites)
    )
    assert fast.best == slow.best
    assert fast.alternatives == slow.alternatives
    if fast.best is None or not fast.best.on_time:
        assert fast.earliest == slow.earliest
