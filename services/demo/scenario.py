"""The demo's fixed cast: two customer organizations, the demo printer, four microfactories and two depots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.factories.schemas import WEEKDAYS
from services.routing.geo import GeoPoint, haversine_km

CUSTOMER = ("northwind-rail", "Northwind Rail Maintenance")
OTHER_CUSTOMER = ("southwind-bottling", "Southwind Bottling")

# A common i3-style FDM printer: 250 x 210 x 210 mm bed, 0.4 mm nozzle, PLA at 0.2 mm layers.
DEMO_PRINTER: dict[str, Any] = {
    "name": "demo-i3-01",
    "build_volume": {"x_mm": 250, "y_mm": 210, "z_mm": 210},
    "profile": {"name": "pla-0.2-normal"},
}


@dataclass(frozen=True, slots=True)
class DemoSite:
    slug: str
    name: str
    at: tuple[float, float]  # latitude, longitude
    post_processing_minutes: int = 30


# Open around the clock with an 18:00 courier pickup every day: where an order goes, and whether it is on
# time, then does not depend on the weekday or the time of day the demo runs.
ALWAYS_OPEN = {day: [{"open": "00:00", "close": "00:00"}] for day in WEEKDAYS}
DAILY_PICKUP = dict.fromkeys(WEEKDAYS, "18:00")
# Four sites, not more: an order shows its best three alternatives, and the slow lab must be among them
# for the urgent order. The Norderstedt lab QAs every part for two days: the nearest site to the
# Norderstedt depot, but too slow for any deadline within two days.
DEMO_SITES = (
    DemoSite("hamburg", "Hamburg Harbour Print Hub", (53.5461, 9.9661)),
    DemoSite(
        "norderstedt-qa", "Norderstedt Certified QA Lab", (53.7064, 9.9920), post_processing_minutes=2880
    ),
    DemoSite("bremen", "Bremen Port Workshop", (53.0793, 8.8017)),
    DemoSite("munich", "Munich Rail Depot Workshop", (48.1351, 11.5820)),
)


@dataclass(frozen=True, slots=True)
class DemoDepot:
    city: str
    at: tuple[float, float]
    street: str
    postal_code: str


HAMBURG_DEPOT = DemoDepot("Hamburg", (53.5511, 9.9937), "Werkstrasse 1", "20095")
NORDERSTEDT_DEPOT = DemoDepot("Norderstedt", (53.6990, 10.0100), "Industriestrasse 7", "22844")


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_km(GeoPoint(*a), GeoPoint(*b))


def nearest(depot: DemoDepot) -> DemoSite:
    return min(DEMO_SITES, key=lambda site: km(site.at, depot.at))
