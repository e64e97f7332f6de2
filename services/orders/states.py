"""The order life cycle as a pure state machine: which status may follow which, and nothing else.

Main line, one way only::

    received -> routed -> preparing -> ready_for_print -> printing -> printed -> shipped -> delivered

Detours, open only until printing starts: ``at_risk`` (the current ETA passes the promise) and
``rerouted`` (moved to another printer, which must prepare the part again, so it continues with
``preparing``). ``failed`` and ``cancelled`` end an order; cancelling is possible until printing starts
(after that, material and machine time are spent).

``printing`` starts when a factory's agent claims the print job. One step back is allowed from there, and
only there: a print that is lost before it finished (the agent failed it or its lease ran out) returns the
order to ``ready_for_print`` to be printed again at the same site, or ``rerouted`` to another. Once the part
is ``printed`` no earlier status can come back: that is what "never backwards" means here, and
``test_order_states`` checks it for every pair.
"""

from __future__ import annotations

from enum import StrEnum

from services.errors import Conflict


class OrderStatus(StrEnum):
    RECEIVED = "received"
    ROUTED = "routed"
    PREPARING = "preparing"
    READY_FOR_PRINT = "ready_for_print"
    PRINTING = "printing"
    PRINTED = "printed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    AT_RISK = "at_risk"
    REROUTED = "rerouted"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = OrderStatus
MAIN_LINE: tuple[OrderStatus, ...] = (
    S.RECEIVED,
    S.ROUTED,
    S.PREPARING,
    S.READY_FOR_PRINT,
    S.PRINTING,
    S.PRINTED,
    S.SHIPPED,
    S.DELIVERED,
)
TERMINAL = frozenset({S.DELIVERED, S.FAILED, S.CANCELLED})
# Statuses in which the order holds a printer slot that has not started: it may be re-routed or cancelled.
UNSTARTED = frozenset({S.ROUTED, S.PREPARING, S.READY_FOR_PRINT, S.AT_RISK, S.REROUTED})
# A print that did not finish: the order's one way back (to be printed again).
PRINT_LOST = frozenset({S.READY_FOR_PRINT, S.REROUTED})

_PRE_PRINT_DETOURS = {S.AT_RISK, S.REROUTED, S.FAILED, S.CANCELLED}
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RECEIVED: frozenset({S.ROUTED, S.FAILED, S.CANCELLED}),
    S.ROUTED: frozenset({S.PREPARING, S.READY_FOR_PRINT, *_PRE_PRINT_DETOURS}),
    S.PREPARING: frozenset({S.READY_FOR_PRINT, *_PRE_PRINT_DETOURS}),
    S.READY_FOR_PRINT: frozenset({S.PRINTING, *_PRE_PRINT_DETOURS}),
    # Preparation progress does not clear the flag: only printing, a re-route or the end does.
    S.AT_RISK: frozenset({S.PRINTING, *_PRE_PRINT_DETOURS} - {S.AT_RISK}),
    S.REROUTED: frozenset({S.PREPARING, S.READY_FOR_PRINT, *_PRE_PRINT_DETOURS}),
    # A lost print: again at this site, or elsewhere (module docstring).
    S.PRINTING: frozenset({S.PRINTED, S.FAILED, S.READY_FOR_PRINT, S.REROUTED}),
    S.PRINTED: frozenset({S.SHIPPED, S.FAILED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.FAILED}),
    S.DELIVERED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


class InvalidTransition(Conflict):
    code = "invalid_order_transition"


def can_move(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


def check_move(current: OrderStatus, target: OrderStatus) -> None:
    """Raises InvalidTransition (409) unless ``target`` may follow ``current``."""
    if not can_move(current, target):
        raise InvalidTransition(
            f"an order that is {current} cannot become {target}",
            details={"status": current.value, "requested": target.value},
        )
