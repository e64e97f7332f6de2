"""The API fuzzed against its own OpenAPI document with schemathesis, every check on.

The app is served on a loopback port and holds real data (``test_cross_tenant.make_tenants``: an
organization with a checked part, a printed and shipped order, a prepared one, a webhook endpoint). Then
schemathesis runs as the CLI does (its engine: examples, coverage, fuzzing and stateful phases) once per role,
each run covering the operations that role may call: an operator's key, a technician's, a factory's and a
partner's. The technician's run holds a second organization's technician as a peer, so schemathesis's own
object-level authorization check replays the first one's reads as the second (``test_cross_tenant`` is the
exhaustive version of that).

A failed check is a bug, in the code or in the OpenAPI document: the API answers bad input with a 4xx and a
machine-readable error (``services/api/errors.py``), never a 500, and says in its document everything it
answers. The few checks that cannot apply to an operation are switched off for that operation alone, each
with its reason (``NOT_APPLICABLE``).

Issue 14's hostile classes are generated for every operation too (``hostile_fuzzing.Hostile``: control
characters, non-finite and huge numbers, deep nesting, oversized bodies, mutated into a fixed share of the
cases), and must be answered with a 4xx in the error shape (the ``hostile_input_is_refused`` check). A fifth
run, "partner webhook", fuzzes the signed webhook routes with every request signed for the bytes it sends
(``hostile_fuzzing.SignedRoutes``), so that the bodies reach the decoder and the model behind the signature.
The counts (requests, hostile requests by class, server errors) print with the other chaos and fuzz counts.

Bounded for CI: a fixed seed, derandomized generation, a few examples per operation in the fuzzing phase, and
the coverage phase once per request shape (``Identity.walked_already``, ``PHASE_SETTINGS``): about 3,500
requests (about 600 of them hostile), 45-60 s on two cores. PostgreSQL only: fuzzing looks for answers the
API gives, not for differences between backends, which the rest of the suite runs on both.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.engine import events, from_schema
from schemathesis.schemas import BaseSchema

from services.api.app import create_app
from services.api.background import serve_in_background
from services.config import Settings
from services.couriers.registry import KARRIO_PARTNER
from services.webhooks.outbound import service as notifications
from services.webhooks.outbound import ssrf
from tests import tally
from tests.builders import bearer
from tests.e2e import hostile_fuzzing as hostile
from tests.e2e.test_cross_tenant import Route, Tenants, make_tenants, routes
from tests.tally import Tally

SEED = 20260307
# Fuzzing phase only; the coverage phase sends what the schema's boundaries call for regardless.
MAX_EXAMPLES = 5
# A request slower than this on loopback with a small database is a hang (a lock wait, a long poll).
MAX_RESPONSE_TIME_S = 10.0
# The smallest body caps the settings allow: an oversized body costs the run little.
JSON_CAP = 64 * 1024
WEBHOOK_CAP = 4096
# schemathesis's defaults for these checks' expected statuses.
NEGATIVE_REJECTION = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]
MISSING_HEADER_REJECTION = ["400", "401", "403", "406", "415", "422"]
SIGNED_WEBHOOKS = frozenset({("POST", "/webhooks/partners/{partner}"), ("POST", "/webhooks/karrio")})

# Checks switched off per operation, each with the reason it cannot apply there. positive_data_acceptance
# expects every schema-valid request to succeed (or answer 401/403/404/409); these operations refuse some
# schema-valid requests by design, on grounds no JSON Schema can state.
NOT_APPLICABLE: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/orders"): {
        "positive_data_acceptance": "an order needs a site that can make the part by the SLA or need_by, in "
        "the future (422 sla_unachievable, no_capable_site, need_by_in_past, material_not_allowed)",
    },
    ("GET", "/orders"): {"positive_data_acceptance": "a cursor must be an order of the caller's (422)"},
    ("GET", "/parts"): {"positive_data_acceptance": "a cursor must be one the API issued (422)"},
    ("GET", "/webhook-endpoints/{endpoint_id}/deliveries"): {
        "positive_data_acceptance": "a cursor must be a delivery of the endpoint's (422)",
    },
    ("POST", "/sites"): {
        "positive_data_acceptance": "cross-field rules: intervals open before they close, loaded materials "
        "are supported ones, an IANA time zone name (422)",
    },
    ("PUT", "/sites/{site_id}"): {"positive_data_acceptance": "as POST /sites"},
    ("POST", "/webhook-endpoints"): {
        "positive_data_acceptance": "a URL must resolve to a public address, and an operator must name the "
        "organization (422 webhook_target_forbidden, organization_required)",
    },
    ("POST", "/webhooks/partners/{partner}"): {
        "positive_data_acceptance": "a request is accepted only when signed with the partner's secret, "
        "within 5 minutes (400, 401)",
    },
    ("POST", "/webhooks/karrio"): {
        "positive_data_acceptance": "a request is accepted only with the subscription's secret (401)",
    },
    ("POST", "/parts/{part_id}/revisions"): {
        "positive_data_acceptance": "the file must be an STL, OBJ or 3MF model, told by its content; the "
        "schema's any bytes mostly are none (415 unsupported_model_format)",
    },
    ("GET", "/orders/{order_id}/shipment"): {
        "ensure_resource_availability": "an order has a shipment once it is printed; a new one's answers 404",
    },
    ("GET", "/orders/{order_id}/shipment/label"): {
        "ensure_resource_availability": "as GET /orders/{order_id}/shipment",
    },
    ("POST", "/factory/jobs/{job_id}/complete"): {
        "positive_data_acceptance": "a QA check that did not pass is refused (422 qa_check_failed): the "
        "print failed, and /fail says so",
    },
}
# The same, signed (the signature is no longer the reason).
SIGNED_NOT_APPLICABLE: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/webhooks/partners/{partner}"): {
        "positive_data_acceptance": "an object key with a control character is refused (400 "
        "webhook_payload_invalid), which no JSON Schema pattern can state (patterns constrain values)",
    },
    ("POST", "/webhooks/karrio"): {
        "positive_data_acceptance": "the body is documented as any object: Karrio's event shape is Karrio's, "
        "checked on receipt (422 webhook_payload_invalid)",
    },
}
# Per-operation phase settings, each with its reason.
PHASE_SETTINGS: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    ("PUT", "/sites/{site_id}"): (
        {"coverage": {"enabled": False}},
        "its body is POST /sites's (SiteIn), every boundary of which coverage walks there (~700 requests)",
    ),
    ("DELETE", "/keys/{key_id}"): (
        {
            "stateful": {"enabled": False},
            **{
                phase: {"extra-data-sources": {"responses": False}}
                for phase in ("examples", "coverage", "fuzzing")
            },
        },
        "ids taken from GET /keys include the run's own key: revoked, the rest of the run would answer 401 "
        "(made-up ids still reach the route)",
    ),
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Private webhook targets: org A's endpoint is on loopback (make_tenants). No worker runs once the fuzzing
    # starts, so nothing is ever delivered to the endpoints the fuzzer registers.
    # No long polls: a claim answers at once (204), so a fuzzed wait_seconds cannot stall the run.
    return settings.model_copy(
        update={
            "webhooks_allow_private_targets": True,
            "factory_claim_max_wait_s": 0,
            "max_json_body_bytes": JSON_CAP,
            "webhook_max_body_bytes": WEBHOOK_CAP,
        }
    )


async def _no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError(f"{host}: no name resolution in tests")


@pytest.fixture
async def served(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The API on a loopback port. Webhook URLs the fuzzer makes up never reach a DNS server: a host name
    is refused as unresolvable (IP literals need no resolution)."""
    monkeypatch.setattr(notifications, "check_target", functools.partial(ssrf.check_target, resolve=_no_dns))
    async with serve_in_background(settings, settings.redis_url) as base_url:
        yield base_url


@dataclass(frozen=True)
class Identity:
    """A run's credentials, and which operations it fuzzes with which phases."""

    name: str
    auth: dict[str, Any]  # schemathesis's `auth` config
    operations: frozenset[tuple[str, str]]
    # Coverage-phase cases are mostly validation, the same for every role: a role whose operations an
    # earlier run walked already takes the other phases only (its own ids, its own scope) there.
    walked_already: frozenset[tuple[str, str]] = frozenset()
    # Stateful testing chains operations by their links; a run of one operation has none to chain.
    stateful: bool = True
    # The signed webhook routes' run: every case re-signed (``hostile.SignedRoutes``), the partner route's
    # {partner} the partner's slug.
    signed: hostile.SignedRoutes | None = None
    partner_slug: str = ""

    def not_applicable(self) -> dict[tuple[str, str], dict[str, str]]:
        return NOT_APPLICABLE if self.signed is None else {**NOT_APPLICABLE, **SIGNED_NOT_APPLICABLE}


@dataclass
class Run:
    """What one schemathesis run sent and found."""

    identity: str
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    passed: int = 0
    server_errors: int = 0
    # hostile class -> requests sent with it (``hostile.Hostile``)
    hostile: dict[str, int] = field(default_factory=lambda: dict.fromkeys(hostile.CLASSES, 0))
    # (operation, class) of every hostile request sent
    hostile_operations: set[tuple[str, str]] = field(default_factory=set)
    # (operation, check, first line of the failure) -> status, title and a curl line to reproduce it
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, event: events.ScenarioFinished, mutated: dict[str, str]) -> None:
        recorder = event.recorder
        if event.label:
            self.operations.add(event.label)
        for case_id, interaction in recorder.interactions.items():
            self.requests += 1
            kind = mutated.get(case_id)
            if kind is not None:
                self.hostile[kind] += 1
                node = recorder.cases.get(case_id)
                label = node.value.operation.label if node is not None else (event.label or "?")
                self.hostile_operations.add((label, kind))
            status = interaction.response.status_code if interaction.response is not None else None
            if status is not None and status >= 500:
                self.server_errors += 1
            failed = [check for check in recorder.checks.get(case_id, []) if check.failure_info is not None]
            for check in failed:
                assert check.failure_info is not None
                failure = check.failure_info.failure
                message = next(iter(failure.message.splitlines()), "")
                key = (failure.operation or event.label or "?", check.name, message)
                self.failures.setdefault(
                    key, f"{status} {failure.title}\n    {check.failure_info.code_sample}"
                )
            if status is not None and not failed:
                self.passed += 1


def _config(base_url: str, identity: Identity) -> schemathesis.Config:
    # Operations are named as in "GET /orders": separate method and path filters would match either.
    checks_off = [
        {"include-name": f"{method} {path}", "checks": {name: {"enabled": False} for name in checks}}
        for (method, path), checks in identity.not_applicable().items()
    ]
    phases = {operation: dict(settings) for operation, (settings, _) in PHASE_SETTINGS.items()}
    for operation in identity.walked_already:
        phases.setdefault(operation, {}).setdefault("coverage", {})["enabled"] = False
    phases_set = [
        {"include-name": f"{method} {path}", "phases": settings}
        for (method, path), settings in phases.items()
    ]
    # The partner route's {partner} is the partner whose secret signs (``identity.signed``).
    slug = [
        {
            "include-name": "POST /webhooks/partners/{partner}",
            "parameters": {"path.partner": identity.partner_slug},
        }
    ]
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            # Report every failure of an operation, not only its first.
            "continue-on-failure": True,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            # A body past the cap is refused as too large (413) whatever else is wrong with the request.
            "checks": {
                "max_response_time": MAX_RESPONSE_TIME_S,
                "negative_data_rejection": {"expected-statuses": [*NEGATIVE_REJECTION, "413"]},
                "missing_required_header": {"expected-statuses": [*MISSING_HEADER_REJECTION, "413"]},
            },
            # Stateful links from its dependency analysis follow nullable id fields too: a key's
            # `"site_id": null` became PATCH /sites/None/status, a request no schema allows, which
            # positive_data_acceptance then takes for a valid one refused (422). The other phases keep the
            # check on every operation but those in NOT_APPLICABLE.
            "phases": {
                "stateful": {
                    "enabled": identity.stateful,
                    "checks": {"positive_data_acceptance": {"enabled": False}},
                }
            },
            "auth": identity.auth,
            "operations": checks_off + phases_set + (slug if identity.partner_slug else []),
        }
    )


def _fuzz(openapi: dict[str, Any], base_url: str, identity: Identity) -> Run:
    """One schemathesis run (blocking: run it in a thread while the served app answers)."""
    loaded: BaseSchema = schemathesis.openapi.from_dict(openapi, config=_config(base_url, identity))
    mutations = hostile.Hostile(hostile.shapes(openapi, json_cap=JSON_CAP, webhook_cap=WEBHOOK_CAP))
    loaded.hooks.register_hook_with_name(mutations.map_case, "map_case")
    loaded.hooks.register_hook_with_name(mutations.filter_failure, "filter_failure")
    if identity.signed is not None:
        loaded.auth.providers.append(identity.signed)
    # An exclusion: an inclusion would be OR-ed with the one the loader makes of the config (all operations).
    schema = loaded.exclude(
        lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) not in identity.operations
    )
    _assert_every_check_is_on(schema, identity)
    run = Run(identity.name)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            run.add(event, mutations.mutated)
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.phase} {event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            run.errors += [f"{f.operation}: {f.title}: {f.message}" for f in event.failures]
    return run


def _assert_every_check_is_on(schema: Any, identity: Identity) -> None:
    """Every check schemathesis has (max_response_time too, which it runs only when given a limit) is on for
    every operation, but for the exclusions in NOT_APPLICABLE: "all checks" stays all when schemathesis
    adds one."""
    load_all_checks()
    names = {*CHECKS.get_all_names(), "max_response_time"}
    assert len(names) >= 15, names
    assert hostile.hostile_input_is_refused.__name__ in names, names
    for result in schema.get_all_operations():
        operation = result.ok()
        config = schema.config.checks_config_for(operation=operation)
        off = {name for name in names if not config.get_by_name(name=name).enabled}
        not_applicable = identity.not_applicable().get((operation.method.upper(), operation.path), {})
        assert off == set(not_applicable), operation.label


def _wfc_peers(tmp_path: Path, tenants: Tenants) -> dict[str, Any]:
    """Both organizations' technicians as a Web Fuzzing Commons auth document: A's makes the requests, B's
    is its peer, as whom schemathesis's object_level_authorization check replays A's reads (with a single
    identity that check has no one to replay them as)."""
    document = {
        "auth": [
            {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}]}
            for name, token in (("tech-a", tenants.tech_a), ("tech-b", tenants.tech_b))
        ]
    }
    path = tmp_path / "wfc-auth.json"
    path.write_text(json.dumps(document))
    return {"wfc": {"path": str(path), "user": "tech-a", "peers": ["tech-a", "tech-b"]}}


async def signers(client: httpx.AsyncClient, tenants: Tenants) -> hostile.SignedRoutes:
    """A webhook secret for A's partner (``partner-1``); Karrio's partner, with the secret its route takes."""
    partner_id = tenants.path_values["partner_id"][0]
    issued = await client.post(
        f"/partners/{partner_id}/webhook-secrets", json={}, headers=bearer(tenants.admin)
    )
    karrio = await client.post(
        "/partners", json={"name": "Karrio", "slug": KARRIO_PARTNER}, headers=bearer(tenants.admin)
    )
    assert karrio.status_code == 201, karrio.text
    karrio_secret = f"karrio-fuzz-{SEED}"
    given = await client.post(
        f"/partners/{karrio.json()['id']}/webhook-secrets",
        json={"secret": karrio_secret},
        headers=bearer(tenants.admin),
    )
    assert issued.status_code == given.status_code == 201, (issued.text, given.text)
    return hostile.SignedRoutes(
        partner=hostile.WebhookSigner(issued.json()["secret"]), karrio=hostile.KarrioSecret(karrio_secret)
    )


def identities(
    tenants: Tenants, every: list[Route], tmp_path: Path, signed: hostile.SignedRoutes
) -> list[Identity]:
    """Each role fuzzes the operations it may call. Those without an API key (health, signed webhooks) go
    with the operator's run, whose key they do not look at; the signed webhook routes have a run of their
    own besides, signed (``hostile.SignedRoutes``), so that the bodies reach what is behind the signature."""

    def callable_by(role: str) -> frozenset[tuple[str, str]]:
        return frozenset((r.method, r.path) for r in every if r.roles is not None and role in r.roles)

    public = frozenset((r.method, r.path) for r in every if r.roles is None)
    admin = callable_by("admin") | public
    return [
        Identity("admin", {"openapi": {"HTTPBearer": {"bearer": tenants.admin}}}, admin),
        Identity("technician", _wfc_peers(tmp_path, tenants), callable_by("technician"), admin),
        Identity(
            "factory", {"openapi": {"HTTPBearer": {"bearer": tenants.factory}}}, callable_by("factory"), admin
        ),
        Identity(
            "partner",
            {"openapi": {"HTTPBearer": {"bearer": tenants.partner}}},
            callable_by("partner"),
            admin,
            stateful=len(callable_by("partner")) > 1,
        ),
        Identity(
            "partner webhook",
            {},
            SIGNED_WEBHOOKS,
            stateful=False,
            signed=signed,
            partner_slug=tenants.path_values["partner"][0],
        ),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True)
async def test_the_api_keeps_its_openapi_contract_under_fuzzing(
    client: httpx.AsyncClient, settings: Settings, served: str, tmp_path: Path
) -> None:
    tenants = await make_tenants(client, settings)
    openapi = (await client.get("/openapi.json")).json()
    every = routes(openapi)
    signed = await signers(client, tenants)
    runs = [
        await asyncio.to_thread(_fuzz, openapi, served, identity)
        for identity in identities(tenants, every, tmp_path, signed)
    ]

    tallies = [
        tally.record(
            Tally(
                scenario=f"fuzz: schemathesis as {run.identity}",
                attempted=run.requests,
                ok=run.passed,
                figures={
                    "server_errors": run.server_errors,
                    "failures": len(run.failures),
                    "operations": len(run.operations),
                    "hostile": sum(run.hostile.values()),
                    **{f"hostile {kind}": count for kind, count in run.hostile.items()},
                    **({"signed": signed.signed} if run.identity == "partner webhook" else {}),
                },
            )
        )
        for run in runs
    ]
    found = [
        f"[{run.identity}] {operation}: {check}: {message} ({repro})"
        for run in runs
        for (operation, check, message), repro in run.failures.items()
    ]
    assert found == [], "\n".join(found)
    assert [f"[{run.identity}] {error}" for run in runs for error in run.errors] == []
    assert sum(run.server_errors for run in runs) == 0
    for counts in tallies:
        counts.assert_nothing_lost()  # every request answered, every answer passed every check
    fuzzed = set().union(*(run.operations for run in runs))
    assert fuzzed >= {f"{r.method} {r.path}" for r in every}, "operations no run fuzzed"
    # Every operation was sent every hostile class it can carry, the signed routes signed too.
    shapes = hostile.shapes(openapi, json_cap=JSON_CAP, webhook_cap=WEBHOOK_CAP)
    sent = set().union(*(run.hostile_operations for run in runs))
    wanted = {(label, kind) for label, shape in shapes.items() for kind in shape.classes}
    assert sorted(wanted - sent) == [], "hostile classes an operation was never sent"
    webhook_run = next(run for run in runs if run.identity == "partner webhook")
    assert {(f"{m} {p}", kind) for m, p in SIGNED_WEBHOOKS for kind in hostile.CLASSES} <= (
        webhook_run.hostile_operations
    )
    # The runs' keys still work: none revoked its own key half-way, which would have left the rest of its
    # requests answering 401 and hidden what they should have found.
    for token in (tenants.admin, tenants.tech_a, tenants.factory, tenants.partner):
        assert (await client.get("/me", headers=bearer(token))).status_code == 200, token


def test_every_documented_error_is_the_one_error_shape() -> None:
    """The fuzzer holds answers to the document; a 4xx documented with FastAPI's default
    `HTTPValidationError` (whose fields are all optional) would let any error body through unchecked. A
    route with parameters documents its 422 with `error_responses(422)`."""
    openapi = create_app(Settings()).openapi()
    wrong = [
        f"{method.upper()} {path} {status}"
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
        if status[0] in "45"
        and response.get("content", {}).get("application/json", {}).get("schema")
        != {"$ref": "#/components/schemas/ErrorResponse"}
    ]
    assert wrong == []
