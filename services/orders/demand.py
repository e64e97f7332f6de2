"""What an order asks of routing: its part's size and print minutes per printer profile, where and by when."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from parts_catalog.models import PartRevision
from parts_catalog.reports import PartFacts
from services.orders.models import Order
from services.printing.service import PrintingService
from services.routing.demand import Demand
from services.routing.geo import GeoPoint
from services.routing.snapshot import PrinterInfo, Snapshot
from slicer_adapters.estimator.model import estimate
from slicer_adapters.models import MeshStats


def _mesh_stats(facts: PartFacts) -> MeshStats:
    return MeshStats(
        volume_mm3=facts.volume_mm3,
        area_up_mm2=facts.area_up_mm2,
        area_down_mm2=facts.area_down_mm2,
        area_side_mm2=facts.area_side_mm2,
        size_mm=facts.size,
    )


async def print_minutes(
    printing: PrintingService, revision: PartRevision, printers: Iterable[PrinterInfo]
) -> dict[str, float]:
    """Minutes for one copy per printer profile: the slice cache's figure, else the built-in estimate from
    the geometry report's facts."""
    specs = {info.profile_key: info.spec for info in printers}
    if not specs:
        return {}
    sliced = await printing.cached_print_seconds(revision, list(specs))
    stats = _mesh_stats(PartFacts.of(revision))
    minutes: dict[str, float] = {}
    for key, spec in specs.items():
        seconds = sliced.get(key) or estimate(stats, spec.profile).print_seconds
        if seconds > 0:
            minutes[key] = seconds / 60
    return minutes


def demand_for(
    order: Order,
    revision: PartRevision,
    snapshot: Snapshot,
    *,
    now: datetime,
    print_minutes: Mapping[str, float],
) -> Demand:
    size = PartFacts.of(revision).size
    return Demand(
        revision_id=str(revision.id),
        process=order.process.value,
        materials=frozenset(m.casefold() for m in order.materials),
        # A flat model is rejected by the check; the floor only keeps the arithmetic defined.
        part_size_mm=(max(size[0], 0.01), max(size[1], 0.01), max(size[2], 0.01)),
        quantity=order.quantity,
        destination=GeoPoint(order.destination_lat, order.destination_lon),
        need_by=order.need_by,
        now=now,
        service_levels=snapshot.service_levels or ("standard",),
        print_minutes=print_minutes,
    )
