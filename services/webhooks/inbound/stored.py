"""The tracking update an inbound webhook carries, in the form it is stored in and applied from.

On receipt, an event is read into our ``Tracking`` (``PartnerEvent.tracking`` or Karrio's
``parse_webhook``) and then into ``StoredTracking``, which holds it to what the shipping tables can take;
an event that does not fit is refused before it is acknowledged. The worker applies the stored form, so
what it applies is exactly what was checked, whichever route or parser it came through.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, StringConstraints

from services.couriers.ports import Tracking, TrackingEvent, TrackingStatus


def _in_utc(moment: datetime) -> datetime:
    # Times are stored in UTC (``UTCDateTime``); an instant within a day of year 1 or 9999 given in another
    # zone has no UTC datetime, and would fail every attempt to store it.
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the instant lies outside the years 1 to 9999 in UTC") from None


UTCMoment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class StoredEvent(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    status: TrackingStatus
    occurred_at: UTCMoment
    description: str = ""
    location: str = ""
    courier_code: str = ""


class StoredTracking(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    # As long as ``Shipment.tracking_number`` can be: a longer one names no shipment of ours.
    tracking_number: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    status: TrackingStatus
    events: tuple[StoredEvent, ...] = ()
    estimated_delivery_at: UTCMoment | None = None

    @classmethod
    def of(cls, tracking: Tracking) -> StoredTracking:
        """Raises:
        pydantic.ValidationError: the tracking holds what the shipping tables cannot."""
        return cls.model_validate(tracking, from_attributes=True)

    def tracking(self) -> Tracking:
        return Tracking(
            tracking_number=self.tracking_number,
            status=self.status,
            events=tuple(
                TrackingEvent(
                    status=e.status,
                    occurred_at=e.occurred_at,
                    description=e.description,
                    location=e.location,
                    courier_code=e.courier_code,
                )
                for e in self.events
            ),
            estimated_delivery_at=self.estimated_delivery_at,
        )
