"""Where a parcel is, from the set of its tracking events: a pure fold, so the answer never depends on the
order in which webhooks arrived.

Events are taken in the order they happened (``occurred_at``; at the same instant, the further step first
is the later one). The main line only moves forward: a ``picked_up`` that arrives after ``in_transit`` (a
late or replayed webhook) changes nothing. ``delivered`` ends it. An exception (delivery failed, held,
returning to the sender, cancelled) holds until the parcel moves on the main line again; ``unknown`` says
nothing and is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.couriers.ports import TrackingStatus

T = TrackingStatus
MAIN_LINE = (T.PENDING, T.PICKED_UP, T.IN_TRANSIT, T.OUT_FOR_DELIVERY, T.DELIVERED)
_RANK = {status: rank for rank, status in enumerate(MAIN_LINE)}
# Problems an operator has to look at: the customer is not getting the part as things stand.
NEEDS_ATTENTION = frozenset({T.DELIVERY_FAILED, T.RETURN_TO_SENDER, T.CANCELLED})
# Ties at one instant: a main-line step before an exception raised at the same moment.
_TIE = {**_RANK, T.ON_HOLD: 10, T.DELIVERY_FAILED: 11, T.RETURN_TO_SENDER: 12, T.CANCELLED: 13, T.UNKNOWN: -1}


@dataclass(frozen=True, slots=True)
class Observed:
    status: TrackingStatus
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class ParcelState:
    status: TrackingStatus  # the main-line step reached, or the exception that holds it
    furthest: TrackingStatus  # the furthest main-line step ever reported
    picked_up_at: datetime | None
    delivered_at: datetime | None

    @property
    def picked_up(self) -> bool:
        return _RANK[self.furthest] >= _RANK[T.PICKED_UP]


def fold(events: Iterable[Observed]) -> ParcelState:
    status = furthest = T.PENDING
    picked_up_at = delivered_at = None
    for event in sorted(events, key=lambda e: (e.occurred_at, _TIE[e.status], e.status.value)):
        if status is T.DELIVERED:
            break
        if event.status in _RANK:
            if _RANK[event.status] > _RANK[T.PENDING] and picked_up_at is None:
                picked_up_at = event.occurred_at
            if _RANK[event.status] >= _RANK[furthest]:
                furthest = event.status
            # Moving again clears an exception; an older step never moves the parcel back.
            status = furthest
            if status is T.DELIVERED:
                delivered_at = event.occurred_at
        elif event.status is not T.UNKNOWN:
            status = event.status
    return ParcelState(status=status, furthest=furthest, picked_up_at=picked_up_at, delivered_at=delivered_at)
