"""Where a parcel is depends on the set of its tracking events, never on the order they arrived in; the
main line never moves back, and delivered is final."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.couriers.ports import TrackingStatus
from services.shipping.tracking import MAIN_LINE, Observed, fold

T = TrackingStatus
START = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
events = st.lists(
    st.builds(
        Observed,
        status=st.sampled_from(list(TrackingStatus)),
        occurred_at=st.integers(min_value=0, max_value=48 * 60).map(lambda m: START + timedelta(minutes=m)),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(observed=events, data=st.data())
def test_arrival_order_does_not_matter(observed: list[Observed], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(observed))
    assert fold(shuffled) == fold(observed)
    # A replayed event changes nothing either.
    assert fold([*observed, *observed[:3]]) == fold(observed)


@settings(max_examples=300, deadline=None)
@given(observed=events, late=events)
def test_more_events_never_move_the_main_line_back(observed: list[Observed], late: list[Observed]) -> None:
    before, after = fold(observed), fold([*observed, *late])
    assert MAIN_LINE.index(after.furthest) >= MAIN_LINE.index(before.furthest)
    if before.status is T.DELIVERED:
        assert after.status is T.DELIVERED
        assert after.delivered_at is not None
        assert before.delivered_at is not None
        assert after.delivered_at <= before.delivered_at


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def test_a_late_pickup_report_does_not_undo_transit() -> None:
    state = fold([Observed(T.IN_TRANSIT, at(30)), Observed(T.PICKED_UP, at(10))])
    assert state.status is T.IN_TRANSIT
    assert state.picked_up
    assert state.picked_up_at == at(10)


def test_an_exception_holds_until_the_parcel_moves_again() -> None:
    failed = [Observed(T.OUT_FOR_DELIVERY, at(60)), Observed(T.DELIVERY_FAILED, at(90))]
    assert fold(failed).status is T.DELIVERY_FAILED
    assert fold([*failed, Observed(T.OUT_FOR_DELIVERY, at(24 * 60))]).status is T.OUT_FOR_DELIVERY
    delivered = fold([*failed, Observed(T.DELIVERED, at(25 * 60)), Observed(T.RETURN_TO_SENDER, at(26 * 60))])
    assert delivered.status is T.DELIVERED
    assert delivered.delivered_at == at(25 * 60)


def test_unknown_says_nothing_and_transit_implies_pickup() -> None:
    state = fold([Observed(T.UNKNOWN, at(5)), Observed(T.IN_TRANSIT, at(20)), Observed(T.UNKNOWN, at(40))])
    assert state.status is T.IN_TRANSIT
    assert state.picked_up_at == at(20)
    assert fold([]).status is T.PENDING
    assert not fold([Observed(T.PENDING, at(1))]).picked_up
