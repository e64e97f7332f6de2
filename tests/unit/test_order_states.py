"""The order life cycle: the main line only moves forward, detours end before printing, ends are ends."""

from __future__ import annotations

import itertools

import pytest

from services.orders.states import (
    MAIN_LINE,
    PRINT_LOST,
    TERMINAL,
    TRANSITIONS,
    UNSTARTED,
    InvalidTransition,
    OrderStatus,
    check_move,
)

PRINTING_OR_LATER = set(MAIN_LINE[MAIN_LINE.index(OrderStatus.PRINTING) :])
PRINTED_OR_LATER = set(MAIN_LINE[MAIN_LINE.index(OrderStatus.PRINTED) :])


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(OrderStatus, OrderStatus)))
def test_never_backwards(current: OrderStatus, target: OrderStatus) -> None:
    if target not in TRANSITIONS[current]:
        with pytest.raises(InvalidTransition):
            check_move(current, target)
        return
    check_move(current, target)
    assert current not in TERMINAL
    # The one self-loop: an order re-routed again before its new printer started preparing.
    assert target != current or current is OrderStatus.REROUTED
    if current in MAIN_LINE and target in MAIN_LINE and current is not OrderStatus.PRINTING:
        assert MAIN_LINE.index(target) > MAIN_LINE.index(current)
    if current is OrderStatus.PRINTING:
        # A lost print is the one way back: printed again here, or elsewhere.
        assert target in {OrderStatus.PRINTED, OrderStatus.FAILED} | PRINT_LOST
    if current in PRINTED_OR_LATER:
        # Once printed nothing before it comes back, and no detour opens.
        assert target in PRINTED_OR_LATER | {OrderStatus.FAILED}


def test_the_main_line_is_walkable_and_detours_are_pre_print_only() -> None:
    for current, target in itertools.pairwise(MAIN_LINE):
        check_move(current, target)
    for detour in (OrderStatus.AT_RISK, OrderStatus.REROUTED, OrderStatus.CANCELLED):
        sources = {s for s, targets in TRANSITIONS.items() if detour in targets}
        assert sources <= UNSTARTED | {OrderStatus.RECEIVED, OrderStatus.PRINTING}
    # From printing only a lost print goes back, never a cancel or an SLA detour.
    assert {t for t in TRANSITIONS[OrderStatus.PRINTING] if t not in MAIN_LINE} == {
        OrderStatus.FAILED,
        OrderStatus.REROUTED,
    }
    # A re-routed order is prepared again for its new printer.
    check_move(OrderStatus.REROUTED, OrderStatus.PREPARING)
    check_move(OrderStatus.AT_RISK, OrderStatus.REROUTED)
    with pytest.raises(InvalidTransition):
        check_move(OrderStatus.PRINTING, OrderStatus.CANCELLED)
