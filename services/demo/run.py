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

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.config import Settings
from services.demo.catalog import revision_statuses, upload_catalog, wait_for_checks
from services.demo.ordering import place_orders
from services.demo.preparation import PrintJobs, prepare_all
from services.demo.printing import print_orders
from services.demo.report import Outcome, closing_line, scrape_metrics, summary, timelines
from services.demo.scenario import CUSTOMER, DEMO_PRINTER, OTHER_CUSTOMER
from services.demo.searching import check_tenancy, search_catalog
from services.demo.setup import bootstrap_admin, migrate, organization, platform, technician_client
from services.demo.shipping import forged_webhook, ship_orders
from services.demo.sites import set_up_sites
from services.demo.support import Say

__all__ = ["Echo", "run_demo"]

Echo = Callable[[str], None] | None


@dataclass(slots=True)
class _Stopwatch:
    """Milliseconds by stage, in the order the stages ran."""

    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, key: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.timings[key] = (time.perf_counter() - started) * 1000

    def stop(self) -> float:
        self.timings["total_ms"] = (time.perf_counter() - self.started) * 1000
        return self.timings["total_ms"]


@dataclass(frozen=True, slots=True)
class _Run:
    settings: Settings
    base_url: str
    admin: httpx.AsyncClient
    say: Say
    clock: _Stopwatch


async def run_demo(settings: Settings, *, redis_url: str, echo: Echo = print) -> dict[str, Any]:
    say = echo or (lambda _: None)
    clock = _Stopwatch()
    with clock.stage("migrate_ms"):
        await migrate(settings)
    say(f"Spareflow demo  data: {settings.data_dir.resolve()}  database: {settings.resolved_database_url}")

    admin_token = await bootstrap_admin(settings)
    async with platform(settings, redis_url, admin_token) as (base_url, admin):
        say(f"API listening on {base_url} (OpenAPI docs at {base_url}/docs)")
        outcome = await _stages(_Run(settings, base_url, admin, say, clock))

    total_ms = clock.stop()
    result = summary(outcome, clock.timings)
    say(closing_line(outcome, total_ms))
    return result


async def _stages(run: _Run) -> Outcome:
    org = await organization(run.admin, *CUSTOMER)
    other = await organization(run.admin, *OTHER_CUSTOMER)
    jobs = await _catalog(run, org)
    tech = await technician_client(run.admin, org["id"])
    outsider = await technician_client(run.admin, other["id"])
    async with tech, outsider:
        return await _as_technician(run, tech, outsider, jobs)


async def _catalog(run: _Run, org: dict[str, Any]) -> PrintJobs:
    """Upload the parts, wait for their geometry checks, prepare each for the demo printer."""
    run.say(f"\nCatalog for {org['name']}:")
    uploaded, run.clock.timings["upload_ms_max"] = await upload_catalog(run.admin, org["id"], run.say)
    with run.clock.stage("checks_ms"):
        run.say("\nGeometry checks (worker):")
        checked = await wait_for_checks(run.admin, uploaded, run.say)
    with run.clock.stage("preparation_ms"):
        run.say(f"\nPrint preparation for {DEMO_PRINTER['name']} (orient, slice):")
        return await prepare_all(run.admin, checked, run.say)


async def _as_technician(
    run: _Run, tech: httpx.AsyncClient, outsider: httpx.AsyncClient, jobs: PrintJobs
) -> Outcome:
    """Search, check tenancy, order, print, ship, and report, as the customer's technician sees it."""
    searches = await search_catalog(tech)
    run.say("\nSearches as a Northwind technician: " + ", ".join(f"{k}={v}" for k, v in searches.items()))
    tenancy = await check_tenancy(tech, outsider, run.say)
    with run.clock.stage("orders_ms"):
        cancelled = await set_up_sites(run.admin, tech, run.say)
        orders = {**await place_orders(tech, run.say), "cancelled_from_earlier_runs": cancelled}
    with run.clock.stage("printing_ms"):
        agents = run.settings.data_dir / "agents"
        printing = await print_orders(run.admin, tech, run.base_url, orders, agents, run.say)
    with run.clock.stage("shipping_ms"):
        shipping = await ship_orders(tech, printing["orders"], orders, run.say)
    forged = await forged_webhook(run.admin, run.say)
    await timelines(tech, orders, list(printing["orders"]), run.say)
    metrics = await scrape_metrics(run.admin, run.say)
    statuses = await revision_statuses(tech)
    return Outcome(searches, tenancy, orders, printing, shipping, forged, metrics, statuses, jobs)
