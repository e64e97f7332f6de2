"""Builders for test data, through the public API wherever one exists."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from parts_catalog.sqltypes import utcnow
from services.accounts.models import Role
from services.accounts.service import AccountsService
from services.api.app import create_app
from services.config import Settings
from services.db import create_engine, session_factory, transaction
from services.demo.meshes import DEMO_PARTS, export_model
from services.fulfilment.repository import FactoryJobRepository
from services.printing.models import PrintJobLease
from tests.workers import run_worker_until_idle


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An unauthenticated client of a fresh app (one API process, over ASGI)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://spareflow.test") as http:
            yield http


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a plain asyncpg DSN, for the tests' own connections outside any pool."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_admin_token(settings: Settings) -> str:
    """The bootstrap key, issued the way `spareflow keys create --role admin` does."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            return (await AccountsService(session).issue_key(Role.ADMIN, name="test admin")).token
    finally:
        await engine.dispose()


async def make_account(
    client: httpx.AsyncClient, admin: str, kind: str, *, slug: str | None = None
) -> dict[str, Any]:
    slug = slug or f"{kind[:4]}-{uuid.uuid4().hex[:8]}"
    response = await client.post(f"/{kind}", json={"slug": slug, "name": slug.title()}, headers=bearer(admin))
    assert response.status_code == 201, response.text
    return dict(response.json())


def site_body(slug: str, **overrides: Any) -> dict[str, Any]:
    """A small FDM microfactory in Hamburg with one printer, as an operator would register it."""
    return {
        "slug": slug,
        "name": slug.replace("-", " ").title(),
        "latitude": 53.5511,
        "longitude": 9.9937,
        "timezone": "Europe/Berlin",
        "printers": [
            {
                "key": "mk4-01",
                "model": "i3 MK4-class",
                "build_volume": {"x_mm": 250, "y_mm": 210, "z_mm": 220},
                "materials_supported": ["PLA", "PETG", "ASA"],
                "materials_loaded": ["PETG"],
            }
        ],
        **overrides,
    }


async def make_site(
    client: httpx.AsyncClient, admin: str, slug: str | None = None, **overrides: Any
) -> dict[str, Any]:
    body = site_body(slug or f"site-{uuid.uuid4().hex[:8]}", **overrides)
    response = await client.post("/sites", json=body, headers=bearer(admin))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def make_key(client: httpx.AsyncClient, admin: str, role: str, **owner: str) -> str:
    response = await client.post("/keys", json={"role": role, **owner}, headers=bearer(admin))
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def make_part(
    client: httpx.AsyncClient,
    admin: str,
    *,
    organization_id: str,
    part_number: str | None = None,
    name: str = "Mounting bracket",
    description: str = "Holds the proximity sensor on the conveyor frame.",
    equipment_models: tuple[str, ...] = ("Tarnwell CM-3",),
) -> dict[str, Any]:
    body = {
        "organization_id": organization_id,
        "part_number": part_number or f"SF-{uuid.uuid4().hex[:6].upper()}",
        "name": name,
        "description": description,
        "process": "fdm",
        "materials": ["PETG"],
        "equipment_models": list(equipment_models),
    }
    response = await client.post("/parts", json=body, headers=bearer(admin))
    assert response.status_code == 201, response.text
    return dict(response.json())


def model_bytes(file_format: str = "stl-binary", index: int = 0) -> bytes:
    """A generated part's model in the given format (the project's own meshes, no third-party files)."""
    return export_model(DEMO_PARTS[index].build(), file_format)


async def upload(
    client: httpx.AsyncClient, token: str, part_id: str, data: bytes, filename: str = "part.stl", **extra: str
) -> httpx.Response:
    return await client.post(
        f"/parts/{part_id}/revisions",
        files={"file": (filename, data, "application/octet-stream")},
        data=extra,
        headers=bearer(token),
    )


@dataclass(frozen=True)
class World:
    """One operator, two customer organizations with a technician each, a site, a partner, and a part."""

    admin: str
    org_a: dict[str, Any]
    org_b: dict[str, Any]
    tech_a: str
    tech_b: str
    factory: str
    partner: str
    partner_id: str
    part_a: dict[str, Any]
    revision_a: dict[str, Any]
    print_job: dict[str, Any]
    site: dict[str, Any]

    def token(self, role: str) -> str:
        return {
            "admin": self.admin,
            "technician": self.tech_a,
            "factory": self.factory,
            "partner": self.partner,
        }[role]


async def make_world(client: httpx.AsyncClient, settings: Settings) -> World:
    admin = await make_admin_token(settings)
    org_a = await make_account(client, admin, "organizations", slug="org-a")
    org_b = await make_account(client, admin, "organizations", slug="org-b")
    site = await make_site(client, admin, "site-1")
    partner = await make_account(client, admin, "partners", slug="partner-1")
    part_a = await make_part(client, admin, organization_id=org_a["id"], part_number="A-100")
    response = await upload(client, admin, part_a["id"], model_bytes())
    assert response.status_code == 202, response.text
    return World(
        admin=admin,
        org_a=org_a,
        org_b=org_b,
        tech_a=await make_key(client, admin, "technician", organization_id=org_a["id"]),
        tech_b=await make_key(client, admin, "technician", organization_id=org_b["id"]),
        factory=await make_key(client, admin, "factory", site_id=site["id"]),
        partner=await make_key(client, admin, "partner", partner_id=partner["id"]),
        partner_id=partner["id"],
        part_a=part_a,
        revision_a=response.json(),
        print_job=await make_print_job(client, admin, response.json()["id"]),
        site=site,
    )


DEMO_PRINTER = {"name": "test-i3", "build_volume": {"x_mm": 250, "y_mm": 210, "z_mm": 210}}


async def make_print_job(
    client: httpx.AsyncClient, admin: str, revision_id: str, printer: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = {"revision_id": revision_id, "printer": printer or DEMO_PRINTER}
    response = await client.post("/print-jobs", json=body, headers=bearer(admin))
    assert response.status_code == 202, response.text
    return dict(response.json())


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Sites that work around the clock with a courier pickup every day: promises in tests then do not depend
# on the weekday the suite runs on.
ALWAYS_OPEN = {day: [{"open": "00:00", "close": "00:00"}] for day in WEEKDAYS}


def daily_pickup(hours_from_now: float = 3) -> dict[str, str]:
    """A courier pickup every day, three hours from now (UTC). With a fixed hour, an order placed shortly
    before it would miss that day's pickup and the test's promises would hinge on when the suite runs."""
    at = (utcnow() + timedelta(hours=hours_from_now)).strftime("%H:%M")
    return dict.fromkeys(WEEKDAYS, at)


HAMBURG = (53.5511, 9.9937)
BREMEN = (53.0793, 8.8017)
MUNICH = (48.1351, 11.5820)
NORDERSTEDT = (53.6990, 10.0100)


def factory_body(slug: str, at: tuple[float, float], **overrides: Any) -> dict[str, Any]:
    """A round-the-clock FDM site at ``at`` (lat, lon), one printer with PETG loaded."""
    defaults = {"timezone": "UTC", "opening_hours": ALWAYS_OPEN, "courier_cutoffs": daily_pickup()}
    return site_body(slug, latitude=at[0], longitude=at[1], **{**defaults, **overrides})


async def make_factory(
    client: httpx.AsyncClient, admin: str, slug: str, at: tuple[float, float], **overrides: Any
) -> dict[str, Any]:
    response = await client.post("/sites", json=factory_body(slug, at, **overrides), headers=bearer(admin))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def make_orderable_part(
    client: httpx.AsyncClient, admin: str, settings: Settings, *, organization_id: str, part_number: str
) -> dict[str, Any]:
    """A part whose model passed the geometry check (the real worker runs it)."""
    part = await make_part(client, admin, organization_id=organization_id, part_number=part_number)
    response = await upload(client, admin, part["id"], model_bytes())
    assert response.status_code == 202, response.text
    await run_worker_until_idle(settings)
    revision = await client.get(
        f"/parts/{part['id']}/revisions/{response.json()['id']}", headers=bearer(admin)
    )
    assert revision.json()["status"] == "ready", revision.text
    return part


async def make_shop(
    client: httpx.AsyncClient,
    settings: Settings,
    sites: dict[str, tuple[float, float]],
    *,
    organization: str = "acme",
    part_number: str = "BR-1",
    **site_overrides: Any,
) -> dict[str, Any]:
    """An operator, an organization with a technician and a checked part, and round-the-clock sites.

    Returns ``admin``, ``org``, ``part``, ``tech`` and each site by its slug.
    """
    admin = await make_admin_token(settings)
    org = await make_account(client, admin, "organizations", slug=organization)
    part = await make_orderable_part(
        client, admin, settings, organization_id=org["id"], part_number=part_number
    )
    made = {slug: await make_factory(client, admin, slug, at, **site_overrides) for slug, at in sites.items()}
    tech = await make_key(client, admin, "technician", organization_id=org["id"])
    return {"admin": admin, "org": org, "part": part, "tech": tech, **made}


def order_body(part_number: str, at: tuple[float, float] = HAMBURG, **overrides: Any) -> dict[str, Any]:
    return {
        "part_number": part_number,
        "quantity": 1,
        "destination": {
            "latitude": at[0],
            "longitude": at[1],
            "address": {
                "lines": ["Werkstrasse 1"],
                "city": "Hamburg",
                "postal_code": "20095",
                "country": "DE",
            },
            "contact": {"name": "Ada Field", "phone": "+49 40 123456", "email": "ada@example.com"},
        },
        "sla": "48h",
        **overrides,
    }


async def place_order(
    client: httpx.AsyncClient, token: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {**bearer(token), "Idempotency-Key": key or str(uuid.uuid4())}
    return await client.post("/orders", json=body, headers=headers)


async def lease_log(settings: Settings, *job_ids: str) -> dict[str, list[PrintJobLease]]:
    """Every lease of these print jobs, in fence order (the audit table has no API)."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            repo = FactoryJobRepository(session)
            return {job_id: list(await repo.leases_of(uuid.UUID(job_id))) for job_id in job_ids}
    finally:
        await engine.dispose()


async def lease_outcomes(settings: Settings, job_id: str) -> list[tuple[int, str | None]]:
    """``(fence, outcome)`` of each lease of the job."""
    return [(lease.fence, lease.outcome) for lease in (await lease_log(settings, job_id))[job_id]]


async def get_json(client: httpx.AsyncClient, token: str, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=bearer(token))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def printed_order(
    client: httpx.AsyncClient, settings: Settings, shop: dict[str, Any], at: tuple[float, float] = NORDERSTEDT
) -> dict[str, Any]:
    """An order to ``at``, prepared by the worker and printed at the shop's Hamburg site through the factory
    API (claim, complete); returns the order as placed."""
    placed = await place_order(client, shop["tech"], order_body("BR-1", at))
    assert placed.status_code == 201, placed.text
    await run_worker_until_idle(settings)
    key = await make_key(client, shop["admin"], "factory", site_id=shop["hamburg"]["id"])
    claimed = await client.post("/factory/jobs/claim", json={}, headers=bearer(key))
    assert claimed.status_code == 200, claimed.text
    job, token = claimed.json()["job"], claimed.json()["lease"]["token"]
    assert job["order_id"] == placed.json()["id"]
    body = {"token": token, "part_weight_g": 12.5}
    done = await client.post(f"/factory/jobs/{job['id']}/complete", json=body, headers=bearer(key))
    assert done.status_code == 200, done.text
    return dict(placed.json())
