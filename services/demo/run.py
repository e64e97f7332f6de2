"""``spareflow demo``: the platform end to end on embedded defaults, through its real HTTP API.

It migrates the database, starts the API on a loopback port and a worker, generates a catalog of spare
parts, uploads them, lets the worker check (and if needed repair) each model, prepares each for a demo
printer (orientation and slicing: PrusaSlicer when installed, else the built-in estimator), searches the
parts back as a technician, checks that another organization sees none of them, registers microfactories
around Hamburg (and one in Munich), places orders as the technician to show SLA routing (a normal order, one
the deadline sends past the nearest site, one no site can make in time), and returns a summary.
Re-running it on the same data directory adds new revisions (each model file is stored once), updates the
sites and cancels the previous run's open orders first, so that every run routes against free printers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from parts_catalog.formats import ModelFormat
from services.accounts.models import Role
from services.accounts.service import AccountsService
from services.api.background import serve_in_background
from services.config import Settings
from services.couriers.registry import LOCAL_PARTNER
from services.db import create_engine, session_factory, transaction
from services.demo.meshes import DEMO_PARTS, DemoPart, export_model
from services.factories.schemas import WEEKDAYS
from services.factory_agent.agent import FactoryAgent
from services.factory_agent.client import FactoryApiClient
from services.factory_agent.events import EventLog
from services.factory_agent.simulated import SimulatedPrintHost
from services.migrate import upgrade
from services.orders.states import UNSTARTED
from services.routing.geo import GeoPoint, haversine_km
from services.signing import new_secret, sign
from services.workers.settings import build_worker

Echo = Callable[[str], None] | None

_CUSTOMER = ("northwind-rail", "Northwind Rail Maintenance")
_WAIT_S = 300.0
# Simulated prints: a demo part's hour of printing passes in a few seconds.
_SIM_SPEED = 2000.0
_SIM_MAX_S = 4.0
# Four hours a second: a next-day standard parcel (18 h and more) arrives in about five seconds.
_COURIER_SPEED = 4 * 3600.0
_PRINTED = frozenset({"printed", "shipped", "delivered"})
# A common i3-style FDM printer: 250 x 210 x 210 mm bed, 0.4 mm nozzle, PLA at 0.2 mm layers.
DEMO_PRINTER: dict[str, Any] = {
    "name": "demo-i3-01",
    "build_volume": {"x_mm": 250, "y_mm": 210, "z_mm": 210},
    "profile": {"name": "pla-0.2-normal"},
}
_OTHER_CUSTOMER = ("southwind-bottling", "Southwind Bottling")


@dataclass(frozen=True, slots=True)
class DemoSite:
    slug: str
    name: str
    at: tuple[float, float]  # latitude, longitude
    post_processing_minutes: int = 30


# Open around the clock with an 18:00 courier pickup every day: where an order goes, and whether it is on
# time, then does not depend on the weekday or the time of day the demo runs.
_ALWAYS_OPEN = {day: [{"open": "00:00", "close": "00:00"}] for day in WEEKDAYS}
_DAILY_PICKUP = dict.fromkeys(WEEKDAYS, "18:00")
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


_HAMBURG_DEPOT = DemoDepot("Hamburg", (53.5511, 9.9937), "Werkstrasse 1", "20095")
_NORDERSTEDT_DEPOT = DemoDepot("Norderstedt", (53.6990, 10.0100), "Industriestrasse 7", "22844")
_BREAKDOWN = (
    ("queue", "queue_wait_seconds"),
    ("print", "print_seconds"),
    ("post-processing", "post_processing_seconds"),
    ("courier wait", "courier_wait_seconds"),
    ("transit", "transit_seconds"),
)


class DemoFailed(RuntimeError):
    pass


async def _bootstrap_admin(settings: Settings) -> str:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            issued = await AccountsService(session).issue_key(Role.ADMIN, name="demo bootstrap")
    finally:
        await engine.dispose()
    return issued.token


def _ok(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        raise DemoFailed(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()


async def _organization(client: httpx.AsyncClient, slug: str, name: str) -> dict[str, Any]:
    existing = [o for o in _ok(await client.get("/organizations"), 200) if o["slug"] == slug]
    if existing:
        return dict(existing[0])
    return dict(_ok(await client.post("/organizations", json={"slug": slug, "name": name}), 201))


async def _technician_client(admin: httpx.AsyncClient, org_id: str) -> httpx.AsyncClient:
    issued = _ok(
        await admin.post("/keys", json={"role": "technician", "organization_id": org_id, "name": "demo"}), 201
    )
    return httpx.AsyncClient(base_url=admin.base_url, headers={"Authorization": f"Bearer {issued['token']}"})


async def _ensure_part(admin: httpx.AsyncClient, org_id: str, part: DemoPart) -> dict[str, Any]:
    params = {"part_number": part.part_number, "organization_id": org_id}
    found = [
        p
        for p in _ok(await admin.get("/parts", params=params), 200)["items"]
        if p["part_number"] == part.part_number
    ]
    if found:
        return dict(found[0])
    body = {
        "organization_id": org_id,
        "part_number": part.part_number,
        "name": part.name,
        "description": part.description,
        "process": part.process,
        "materials": list(part.materials),
        "equipment_models": list(part.equipment_models),
    }
    return dict(_ok(await admin.post("/parts", json=body), 201))


async def _upload(
    admin: httpx.AsyncClient, part_id: str, demo_part: DemoPart
) -> tuple[dict[str, Any], float]:
    mesh = await asyncio.to_thread(demo_part.build)
    data = await asyncio.to_thread(export_model, mesh, demo_part.file_format)
    filename = f"{demo_part.part_number}.{ModelFormat(demo_part.file_format).extension}"
    started = time.perf_counter()
    response = await admin.post(
        f"/parts/{part_id}/revisions",
        files={"file": (filename, data, "application/octet-stream")},
        data={"note": "generated by spareflow demo"},
    )
    return _ok(response, 202), (time.perf_counter() - started) * 1000


async def _searches(tech: httpx.AsyncClient) -> dict[str, int]:
    shared = Counter(m for p in DEMO_PARTS for m in p.equipment_models).most_common(1)[0][0]
    queries: dict[str, dict[str, str | int]] = {
        "by_part_number": {"part_number": DEMO_PARTS[0].part_number},
        "by_text": {"q": "gear"},
        f"by_equipment:{shared}": {"equipment_model": shared},
        "all": {"limit": 100},
    }
    return {
        name: len(_ok(await tech.get("/parts", params=params), 200)["items"])
        for name, params in queries.items()
    }


@asynccontextmanager
async def _worker(settings: Settings, redis_url: str) -> AsyncIterator[None]:
    worker = build_worker(settings, redis_url, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        await worker.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def _factory_agents(admin: httpx.AsyncClient, base_url: str, state_root: Path) -> AsyncIterator[int]:
    """A simulated factory agent for every printer of every demo site, each with its site's own factory
    key (revoked afterwards). Their JSON logs go to ``agent.log`` in each agent's state directory."""
    sites = {s["slug"]: s for s in _ok(await admin.get("/sites"), 200)}
    stop = asyncio.Event()
    tasks, closers, keys = [], [], []
    async with contextlib.AsyncExitStack() as stack:
        for demo_site in DEMO_SITES:
            site = sites[demo_site.slug]
            issued = _ok(
                await admin.post(
                    "/keys", json={"role": "factory", "site_id": site["id"], "name": "demo agent"}
                ),
                201,
            )
            keys.append(issued["key_id"])
            for printer in site["printers"]:
                state = state_root / demo_site.slug / printer["key"]
                state.mkdir(parents=True, exist_ok=True)
                log = stack.enter_context((state / "agent.log").open("a", encoding="utf-8"))
                client = FactoryApiClient(base_url, issued["token"])
                host = SimulatedPrintHost(state / "printer", speed=_SIM_SPEED, max_seconds=_SIM_MAX_S)
                closers += [client.aclose, host.aclose]
                agent = FactoryAgent(
                    client,
                    host,
                    printer_id=uuid.UUID(printer["id"]),
                    materials=None,
                    state_dir=state,
                    log=EventLog(log),
                    claim_wait_s=1.0,
                    poll_s=0.25,
                )
                tasks.append(asyncio.create_task(agent.run(stop)))
        try:
            yield len(tasks)
        finally:
            stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for close in closers:
                await close()
            for key_id in keys:
                await admin.delete(f"/keys/{key_id}")
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise DemoFailed(f"a factory agent stopped with {failed[0]!r}")


async def _printing(
    admin: httpx.AsyncClient,
    tech: httpx.AsyncClient,
    base_url: str,
    orders: dict[str, Any],
    state_root: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Let the sites' agents print the placed orders; wait until each is printed."""
    printed = {}
    async with _factory_agents(admin, base_url, state_root) as agents:
        started = time.perf_counter()
        for key in ("normal", "sla_forced"):
            order_id = orders[key]["order_id"]
            # The courier may have the part already by the time we look.
            order = await _until(tech, f"/orders/{order_id}", lambda o: o["status"] in _PRINTED)
            events = _ok(await tech.get(f"/orders/{order_id}/events"), 200)
            weight = next(e for e in reversed(events) if e["kind"] == "printed")["data"].get("part_weight_g")
            where = order["routing"]["quote"]
            printed[key] = {
                "site": where["site_slug"],
                "printer": where["printer_key"],
                "status": order["status"],
            }
            say(
                f"  {key}: printed at {where['site_slug']} on {where['printer_key']} after "
                f"{time.perf_counter() - started:.1f} s (simulated"
                + (f", {weight:.1f} g)" if weight is not None else ")")
            )
    return {"agents": agents, "orders": printed}


async def _shipping(
    tech: httpx.AsyncClient, printed: dict[str, Any], orders: dict[str, Any], say: Callable[[str], None]
) -> dict[str, Any]:
    """Wait until every printed order is delivered; the worker books its courier and applies the courier's
    webhooks on its own."""
    shipped = {}
    for key in printed:
        order_id = orders[key]["order_id"]
        order = await _until(tech, f"/orders/{order_id}", lambda o: o["status"] == "delivered")
        shipment = _ok(await tech.get(f"/orders/{order_id}/shipment"), 200)
        label = await tech.get(f"/orders/{order_id}/shipment/label")
        if label.status_code != 200 or not label.content.startswith(b"%PDF"):
            raise DemoFailed(f"no shipping label for {key}: {label.status_code}")
        say(
            f"  {key}: {shipment['courier']} {shipment['service']} {shipment['tracking_number']} "
            f"({len(label.content)} B label): picked up {_when(shipment['picked_up_at'], '%H:%M:%S')}, "
            f"delivered {_when(shipment['delivered_at'], '%H:%M:%S')} UTC; "
            f"{len(shipment['events'])} tracking webhooks; order {order['status']}"
        )
        shipped[key] = {
            "courier": shipment["courier"],
            "tracking_number": shipment["tracking_number"],
            "tracking_events": [e["status"] for e in shipment["events"]],
            "status": order["status"],
        }
    return shipped


async def _forged_webhook(client: httpx.AsyncClient, say: Callable[[str], None]) -> str:
    """A tracking webhook signed with a key that is not the courier's: refused, stored nowhere, counted."""
    body = json.dumps({"tracking_number": "SFL-FORGED", "status": "delivered"}).encode()
    headers = sign([new_secret()], f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body)
    answer = await client.post(f"/webhooks/partners/{LOCAL_PARTNER}", content=body, headers=headers)
    code = answer.json()["error"]["code"] if answer.status_code >= 400 else "accepted"
    say(f"  a tracking webhook signed with the wrong key: {answer.status_code} {code}")
    if answer.status_code != 401:
        raise DemoFailed(f"a forged webhook was not refused: {answer.status_code}")
    return str(code)


# What the demo shows of /metrics: the series an operator watches first.
_SHOWN_METRICS = (
    "spareflow_orders",
    "spareflow_orders_sla_at_risk",
    "spareflow_routing_seconds_count",
    "spareflow_routing_seconds_sum",
    "spareflow_print_jobs",
    "spareflow_print_job_oldest_age_seconds",
    "spareflow_queue_jobs",
    "spareflow_queue_oldest_ready_age_seconds",
    "spareflow_lease_expiries_total",
    "spareflow_webhook_rejections_total",
    "spareflow_courier_errors_total",
)


async def _metrics(client: httpx.AsyncClient, say: Callable[[str], None]) -> dict[str, float]:
    """Scrape /metrics as Prometheus would; print (and return) the named series that have a value."""
    answer = await client.get("/metrics")
    samples = [s for f in text_string_to_metric_families(answer.text) for s in f.samples]
    shown = {}
    for sample in samples:
        if sample.name in _SHOWN_METRICS and (sample.value or not sample.labels):
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            shown[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    for series, value in shown.items():
        say(f"  {series} {value:g}")
    missing = sorted(set(_SHOWN_METRICS) - {s.name for s in samples})
    if missing:
        raise DemoFailed(f"/metrics lacks {', '.join(missing)}")
    return shown


async def _timeline(tech: httpx.AsyncClient, key: str, order_id: str, say: Callable[[str], None]) -> None:
    timeline = _ok(await tech.get(f"/orders/{order_id}/timeline"), 200)
    say(f"  {key} ({order_id}): {timeline['status']}")
    for entry in timeline["entries"]:
        say(f"    {_when(entry['at'], '%H:%M:%S')}  {entry['source']:<8} {entry['summary']}")


async def _until(
    client: httpx.AsyncClient, path: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + _WAIT_S
    while True:
        body = dict(_ok(await client.get(path), 200))
        if done(body):
            return body
        if time.monotonic() > deadline:
            raise DemoFailed(f"{path} still not done after {_WAIT_S:.0f} s: {body.get('status')}")
        await asyncio.sleep(0.2)


def _report_line(revision: dict[str, Any]) -> str:
    report = revision.get("geometry_report") or {}
    reasons = ", ".join(report.get("reasons", [])) or "clean"
    repair = report.get("repair")
    repaired = f"; repaired ({repair.get('verdict')})" if repair else ""
    facts = report.get("facts") or {}
    dims = " x ".join(f"{v:.0f}" for v in facts.get("size", []))
    return f"{report.get('verdict', '?')} ({reasons}{repaired}); {facts.get('faces', '?')} faces, {dims} mm"


async def _prepare(admin: httpx.AsyncClient, revision_id: str) -> dict[str, Any]:
    created = _ok(
        await admin.post("/print-jobs", json={"revision_id": revision_id, "printer": DEMO_PRINTER}), 202
    )
    return await _until(
        admin, f"/print-jobs/{created['id']}", lambda job: job["status"] != "waiting_geometry"
    )


def _site_body(site: DemoSite) -> dict[str, Any]:
    return {
        "slug": site.slug,
        "name": site.name,
        "latitude": site.at[0],
        "longitude": site.at[1],
        "timezone": "Europe/Berlin",
        "opening_hours": _ALWAYS_OPEN,
        "courier_cutoffs": _DAILY_PICKUP,
        "post_processing_minutes": site.post_processing_minutes,
        "printers": [
            {
                "key": "mk4-01",
                "model": "i3 MK4-class",
                # The demo printer's bed and profile: the orders' print jobs then come from the slice cache.
                "build_volume": DEMO_PRINTER["build_volume"],
                "profile": DEMO_PRINTER["profile"],
                "materials_supported": ["PLA", "PETG", "ASA"],
                "materials_loaded": ["PETG"],
            }
        ],
    }


async def _ensure_sites(admin: httpx.AsyncClient) -> list[tuple[DemoSite, str]]:
    """Register the demo sites, or bring them back to their demo definition when a run registered them."""
    existing = {s["slug"]: s["id"] for s in _ok(await admin.get("/sites"), 200)}
    done = []
    for site in DEMO_SITES:
        if site.slug in existing:
            _ok(await admin.put(f"/sites/{existing[site.slug]}", json=_site_body(site)), 200)
            done.append((site, "updated"))
        else:
            _ok(await admin.post("/sites", json=_site_body(site)), 201)
            done.append((site, "registered"))
    return done


def _site_line(site: DemoSite, action: str) -> str:
    km = _km(site.at, _HAMBURG_DEPOT.at)
    qa = _span(site.post_processing_minutes * 60)
    return f"  {site.slug:<15} {site.name:<30} {km:4.0f} km from Hamburg  post-processing {qa:>7}  {action}"


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_km(GeoPoint(*a), GeoPoint(*b))


def _nearest(depot: DemoDepot) -> DemoSite:
    return min(DEMO_SITES, key=lambda site: _km(site.at, depot.at))


async def _cancel_open_orders(tech: httpx.AsyncClient) -> int:
    """Cancel what an earlier run left holding printer slots, so that this run routes as the first did."""
    cancelled = 0
    for status in sorted(UNSTARTED):
        found = _ok(await tech.get("/orders", params={"status": status, "limit": 200}), 200)["items"]
        for order in found:
            body = {"reason": "spareflow demo re-run"}
            _ok(await tech.post(f"/orders/{order['id']}/cancel", json=body), 200)
            cancelled += 1
    return cancelled


def _order_body(part_number: str, depot: DemoDepot, **deadline: str) -> dict[str, Any]:
    return {
        "part_number": part_number,
        "quantity": 1,
        "destination": {
            "latitude": depot.at[0],
            "longitude": depot.at[1],
            "address": {
                "lines": [depot.street],
                "city": depot.city,
                "postal_code": depot.postal_code,
                "country": "DE",
            },
            "contact": {"name": "Ada Field", "phone": "+49 40 123456", "email": "ada@example.com"},
        },
        **deadline,
    }


async def _place(tech: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await tech.post("/orders", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})


def _hours_ahead(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def _when(value: str, fmt: str = "%a %d %b %H:%M UTC") -> str:
    return datetime.fromisoformat(value).astimezone(UTC).strftime(fmt)


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def _order_lines(order: dict[str, Any]) -> list[str]:
    quote = order["routing"]["quote"]
    b = quote["breakdown"]
    timing = " + ".join(f"{name} {_span(b[key])}" for name, key in _BREAKDOWN)
    lost = ", ".join(
        f"{a['site_slug']} {a['lost_because']} ({_when(a['delivery_at'], '%a %H:%M')})"
        for a in order["routing"]["alternatives"]
    )
    return [
        f"    -> {quote['site_slug']}/{quote['printer_key']}, {quote['distance_km']:.0f} km by "
        f"{quote['service_level']} courier: delivery {_when(quote['delivery_at'])}, "
        f"{'on time' if quote['on_time'] else 'late'}; {order['status']}",
        f"       {timing} = {_span(b['total_seconds'])}",
        f"       lost: {lost or 'no other site'}",
    ]


def _order_summary(order: dict[str, Any], nearest: DemoSite) -> dict[str, Any]:
    quote = order["routing"]["quote"]
    return {
        "order_id": order["id"],
        "site": quote["site_slug"],
        "printer": quote["printer_key"],
        "nearest_site": nearest.slug,
        "promised_delivery_at": order["promised_delivery_at"],
        "on_time": quote["on_time"],
        "status": order["status"],
        "lost_because": {a["site_slug"]: a["lost_because"] for a in order["routing"]["alternatives"]},
    }


async def _orders(tech: httpx.AsyncClient, say: Callable[[str], None]) -> dict[str, Any]:
    """Three orders for the first demo part: normal, forced past the nearest site by its deadline, and
    impossible in time. Waits until the placed ones' print jobs are prepared (from the slice cache)."""
    part = DEMO_PARTS[0]
    placed: dict[str, tuple[dict[str, Any], DemoSite]] = {}
    for key, label, depot, deadline in (
        ("normal", "SLA 48 h", _HAMBURG_DEPOT, {"sla": "48h"}),
        ("sla_forced", "needed in 30 h", _NORDERSTEDT_DEPOT, {"need_by": _hours_ahead(30)}),
    ):
        nearest = _nearest(depot)
        where = f"nearest site: {nearest.slug}, {_km(nearest.at, depot.at):.0f} km"
        say(f"  {key}: {part.part_number} to {depot.city}, {label} ({where})")
        created = _ok(await _place(tech, _order_body(part.part_number, depot, **deadline)), 201)
        order = await _until(
            tech, f"/orders/{created['id']}", lambda o: o["status"] not in ("routed", "preparing")
        )
        placed[key] = (order, nearest)
        for line in _order_lines(order):
            say(line)

    say(f"  unachievable: {part.part_number} to {_HAMBURG_DEPOT.city}, needed in 1 h")
    refused = await _place(tech, _order_body(part.part_number, _HAMBURG_DEPOT, need_by=_hours_ahead(1)))
    if refused.status_code != 422:
        raise DemoFailed(f"an order due in 1 h was not refused: {refused.status_code} {refused.text}")
    error = refused.json()["error"]
    earliest = error["details"]["earliest"]
    say(
        f"    -> 422 {error['code']}: earliest {_when(earliest['delivery_at'])} from "
        f"{earliest['site_slug']} ({earliest['service_level']}); accept_late=true would take it"
    )
    return {
        **{key: _order_summary(order, nearest) for key, (order, nearest) in placed.items()},
        "unachievable": {
            "code": error["code"],
            "earliest_site": earliest["site_slug"],
            "earliest_delivery_at": earliest["delivery_at"],
            "service_level": earliest["service_level"],
        },
    }


async def _catalog(
    admin: httpx.AsyncClient, org_id: str, say: Callable[[str], None]
) -> tuple[list[tuple[DemoPart, dict[str, Any]]], float]:
    """Create the demo parts and upload a revision of each; the slowest upload's milliseconds."""
    upload_ms, uploaded = [], []
    for demo_part in DEMO_PARTS:
        part = await _ensure_part(admin, org_id, demo_part)
        revision, ms = await _upload(admin, part["id"], demo_part)
        upload_ms.append(ms)
        uploaded.append((demo_part, revision))
        say(
            f"  {demo_part.part_number:<12} {demo_part.name:<46} rev {revision['number']:>2} "
            f"{revision['format']:<10} {revision['size_bytes']:>8} B  {revision['status']}"
        )
    return uploaded, max(upload_ms)


async def _checks(
    admin: httpx.AsyncClient, uploaded: list[tuple[DemoPart, dict[str, Any]]], say: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Wait for the worker's geometry check of each uploaded revision."""
    checked = []
    for demo_part, revision in uploaded:
        path = f"/parts/{revision['part_id']}/revisions/{revision['id']}"
        done = await _until(admin, path, lambda r: r["status"] in ("ready", "rejected"))
        checked.append(done)
        say(f"  {demo_part.part_number:<12} {done['status']:<9} {_report_line(done)}")
    return checked


async def _preparations(
    admin: httpx.AsyncClient, checked: list[dict[str, Any]], say: Callable[[str], None]
) -> list[tuple[str, dict[str, Any]]]:
    """Prepare each ready revision for the demo printer: (part number, print job)."""
    jobs = []
    for demo_part, revision in zip(DEMO_PARTS, checked, strict=True):
        if revision["status"] != "ready":
            continue
        job = await _prepare(admin, revision["id"])
        jobs.append((demo_part.part_number, job))
        if job["status"] == "ready":
            cut = job["slice"]
            say(
                f"  {demo_part.part_number:<12} {cut['slicer']:<11} {cut['print_seconds'] / 60:6.1f} min "
                f"{cut['filament_g']:6.1f} g  {cut['layer_count']:4d} layers  "
                f"({job['orientation']['candidate']}, {job['orientation']['height_mm']:.1f} mm high)"
            )
        else:
            say(f"  {demo_part.part_number:<12} failed: {job['failure']['code']}")
    return jobs


async def _tenancy(
    tech: httpx.AsyncClient, outsider: httpx.AsyncClient, say: Callable[[str], None]
) -> tuple[int, int]:
    """What another organization's technician sees of the parts: (listed, status of a direct GET)."""
    outsider_sees = len(_ok(await outsider.get("/parts", params={"limit": 100}), 200)["items"])
    first = _ok(await tech.get("/parts", params={"part_number": DEMO_PARTS[0].part_number}), 200)["items"][0]
    outsider_get = (await outsider.get(f"/parts/{first['id']}")).status_code
    say(f"A Southwind technician sees {outsider_sees} of them; asks for one directly: {outsider_get}")
    if outsider_sees or outsider_get != 404:
        raise DemoFailed("tenancy leak: another organization can see Northwind's parts")
    return outsider_sees, outsider_get


async def _revision_statuses(tech: httpx.AsyncClient) -> Counter[str]:
    """How many of the organization's revisions are in each status."""
    statuses: Counter[str] = Counter()
    for item in _ok(await tech.get("/parts", params={"limit": 100}), 200)["items"]:
        for revision in _ok(await tech.get(f"/parts/{item['id']}/revisions"), 200):
            statuses[revision["status"]] += 1
    return statuses


async def run_demo(settings: Settings, *, redis_url: str, echo: Echo = print) -> dict[str, Any]:
    say = echo or (lambda _: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade(settings.resolved_database_url)
    timings["migrate_ms"] = (time.perf_counter() - started) * 1000
    say(f"Spareflow demo  data: {settings.data_dir.resolve()}  database: {settings.resolved_database_url}")

    admin_token = await _bootstrap_admin(settings)
    async with (
        serve_in_background(settings, redis_url) as base_url,
        # The worker's built-in courier posts its tracking webhooks to this API, and its parcels travel
        # four hours a second.
        _worker(
            settings.model_copy(
                update={"public_base_url": base_url, "local_courier_time_scale": _COURIER_SPEED}
            ),
            redis_url,
        ),
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
        ) as admin,
    ):
        say(f"API listening on {base_url} (OpenAPI docs at {base_url}/docs)")
        org = await _organization(admin, *_CUSTOMER)
        other = await _organization(admin, *_OTHER_CUSTOMER)

        say(f"\nCatalog for {org['name']}:")
        uploaded, timings["upload_ms_max"] = await _catalog(admin, org["id"], say)

        checked_at = time.perf_counter()
        say("\nGeometry checks (worker):")
        checked = await _checks(admin, uploaded, say)
        timings["checks_ms"] = (time.perf_counter() - checked_at) * 1000

        prepared_at = time.perf_counter()
        say(f"\nPrint preparation for {DEMO_PRINTER['name']} (orient, slice):")
        jobs = await _preparations(admin, checked, say)
        timings["preparation_ms"] = (time.perf_counter() - prepared_at) * 1000

        tech = await _technician_client(admin, org["id"])
        outsider = await _technician_client(admin, other["id"])
        async with tech, outsider:
            searches = await _searches(tech)
            say("\nSearches as a Northwind technician: " + ", ".join(f"{k}={v}" for k, v in searches.items()))
            outsider_sees, outsider_get = await _tenancy(tech, outsider, say)

            sited_at = time.perf_counter()
            say("\nMicrofactories (open around the clock, courier pickup daily at 18:00 Berlin time):")
            # First, as sites cannot drop printers that hold unstarted orders.
            cancelled = await _cancel_open_orders(tech)
            if cancelled:
                say(f"  (cancelled {cancelled} open orders of an earlier run: their printer slots are free)")
            for site, action in await _ensure_sites(admin):
                say(_site_line(site, action))
            say("\nOrders as a Northwind technician (SLA routing):")
            orders = {**await _orders(tech, say), "cancelled_from_earlier_runs": cancelled}
            timings["orders_ms"] = (time.perf_counter() - sited_at) * 1000

            printing_at = time.perf_counter()
            say("\nPrinting (a simulated factory agent per site claims, prints and completes its jobs):")
            printing = await _printing(admin, tech, base_url, orders, settings.data_dir / "agents", say)
            timings["printing_ms"] = (time.perf_counter() - printing_at) * 1000

            shipping_at = time.perf_counter()
            say(
                "\nShipping (the built-in courier, four hours a second; its tracking webhooks are signed and "
                "posted to the API):"
            )
            shipping = await _shipping(tech, printing["orders"], orders, say)
            timings["shipping_ms"] = (time.perf_counter() - shipping_at) * 1000
            forged = await _forged_webhook(admin, say)
            say("\nTimelines:")
            for key in printing["orders"]:
                await _timeline(tech, key, orders[key]["order_id"], say)

            say("\nMetrics (GET /metrics, as Prometheus scrapes it; non-zero series):")
            metrics = await _metrics(admin, say)

            statuses = await _revision_statuses(tech)
            revisions = statuses.total()

    timings["total_ms"] = (time.perf_counter() - started) * 1000
    summary = {
        "parts": searches["all"],
        "revisions": revisions,
        "revisions_by_status": dict(statuses),
        "searches": searches,
        "tenancy": {"other_org_sees": outsider_sees, "other_org_direct_get": outsider_get},
        "orders": orders,
        "printing": printing,
        "shipping": shipping,
        "forged_webhook": forged,
        "metrics": metrics,
        "print_jobs": dict(Counter(job["status"] for _, job in jobs)),
        "slicers": dict(Counter(job["slice"]["slicer"] for _, job in jobs if job["slice"])),
        "estimates": {
            number: {
                "print_minutes": round(job["slice"]["print_seconds"] / 60, 1),
                "filament_g": round(job["slice"]["filament_g"], 1),
            }
            for number, job in jobs
            if job["slice"]
        },
        "timings_ms": {k: round(v, 1) for k, v in timings.items()},
    }
    by_status = ", ".join(f"{count} {status}" for status, count in statuses.items())
    seconds = timings["total_ms"] / 1000
    say(f"\n{searches['all']} parts, {revisions} revisions ({by_status}) in {seconds:.1f} s")
    return summary
