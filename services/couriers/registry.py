"""The couriers a process can book with, built from the settings."""

from __future__ import annotations

from services.config import Settings
from services.couriers.ports import Courier, CourierRejected, CourierUnavailable
from services.couriers.providers.karrio.gateway import KarrioCourier
from services.couriers.providers.local.gateway import LocalCourier
from services.db import SessionFactory
from services.observability.metrics import COURIER_ERRORS

LOCAL_PARTNER = "local"  # the partner slug the built-in courier's webhooks come in as
KARRIO_PARTNER = "karrio"


class CourierNotConfigured(CourierRejected):
    code = "courier_not_configured"


class Couriers:
    def __init__(self, settings: Settings, sessions: SessionFactory, *, local_secret: str | None) -> None:
        self.local = LocalCourier(
            sessions,
            time_scale=settings.local_courier_time_scale,
            webhook_url=f"{settings.resolved_public_base_url}/webhooks/partners/{LOCAL_PARTNER}",
            webhook_secret=local_secret,
            max_attempts=settings.max_job_attempts,
        )
        self._couriers: dict[str, Courier] = {"local": self.local}
        if settings.karrio_url and settings.karrio_token:
            self._couriers["karrio"] = KarrioCourier(
                settings.karrio_url,
                settings.karrio_token.get_secret_value(),
                carrier_name=settings.karrio_carrier,
                timeout_s=settings.courier_timeout_s,
            )
        # Every series at 0 from the start: alerts on a rate need the series before the first error.
        for name in self._couriers:
            for code in (CourierUnavailable.code, CourierRejected.code):
                COURIER_ERRORS.labels(name, "book", code)

    def get(self, name: str) -> Courier:
        """Raises CourierNotConfigured (a permanent booking error) for a courier this process lacks."""
        courier = self._couriers.get(name)
        if courier is None:
            raise CourierNotConfigured(f"courier {name!r} is not configured (see SPAREFLOW_KARRIO_URL)")
        return courier

    async def aclose(self) -> None:
        for courier in self._couriers.values():
            await courier.aclose()
