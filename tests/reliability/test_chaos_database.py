"""Chaos: the API's database connections are dropped mid-run (issue 7, third scenario).

The real API serves on a loopback port. Technicians place a few hundred orders at once, each logical order
with its own ``Idempotency-Key`` and a reference of the client's in its address, read them back and cancel
some, while a chaos task terminates every database connection of the API (``pg_terminate_backend``) every
few hundred milliseconds. A connection dies wherever it is: in a routing query, holding a site's row lock,
in the middle of the commit (the answer is lost, the effects may or may not be there).

PostgreSQL only: it is the production database, and the one whose connections can be killed from outside
while the API holds them (a SQLite file has no server and no connections to drop).

The clients do what the README asks of a client: 503 ``database_unavailable`` (with ``Retry-After``) and
409 ``idempotency_key_in_flight`` are retried with the same key and body; anything else is counted as a
failure. Some first attempts are abandoned by their client after a moment (an answer lost in flight while
the request goes on in the server), and the API's lock timeout is shorter than a slow placement, so that
retries also meet requests still running and take over their keys. When the chaos has stopped, the API
and SQL must agree that:

1. every logical order exists exactly once, and every order a client was told about (201) is there;
2. nothing is half-written: one placement writes, in one transaction, the order (routed, with its site,
   printer and print job), its ``received`` and ``routed`` events, its printer reservation, its print job
   and its idempotency key's answer; a cancel releases the reservation, withdraws the print job and adds a
   ``cancelled`` event. Each is checked by a query that lists the orders breaking it;
3. no idempotency key is left claimed without an answer (a killed request's key became retryable);
4. no 5xx other than 503 ``database_unavailable``, no dropped HTTP connection, no other unexpected answer.

The counts go to ``tests/tally.py`` (printed at the end of the run); ``-s`` shows one line per run. The run
takes 7-12 s on a 2-core machine that other test runs keep busy, up to ~27 s when they load it heavily
(load average 5); the clients give up at 30 s, and a hard timeout ends the test at 40 s.

Two deterministic tests pin what the chaos hits only by luck: the connection dies inside COMMIT (a deferred
trigger terminates its own backend there), and the client gets 503 and its retry with the same key is
placed at once, not refused as in flight until the lock timeout; and a request that outlived its claim
(slower than the lock timeout, taken over by a retry) can neither answer nor release the key afterwards,
so that only one of the two places the order. A third: a database that is down altogether answers 503 too.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from parts_catalog.sqltypes import utcnow
from services.api.background import serve_in_background
from services.config import Settings
from services.db import APPLICATION_NAME, create_engine, session_factory
from services.idempotency.store import Claim, IdempotencyKeyInFlight, IdempotencyStore, StoredResponse
from tests import tally
from tests.builders import HAMBURG, app_client, asyncpg_dsn, bearer, make_key, make_shop, order_body
from tests.tally import Tally

pytestmark = [
    pytest.mark.slow,
    # The conftest's migrated, emptied database, on PostgreSQL only (see the module docstring).
    pytest.mark.parametrize("migrated_url", ["postgresql"], indirect=True),
]

SCENARIO = "chaos: drop API database connections"
TEST_TIMEOUT_S = 40.0
# Clients give up on an order after this long in the run, so that a system that never recovers fails with
# its counts rather than at the hard timeout.
CLIENT_DEADLINE_S = 30.0
TECHNICIANS = 5
ORDERS_PER_TECHNICIAN = 40
# Of the orders a technician placed, every READ_EVERY-th is read back, every LIST_EVERY-th placement is
# followed by a listing, and every CANCEL_EVERY-th order is cancelled again.
READ_EVERY = 3
LIST_EVERY = 10
CANCEL_EVERY = 8
# The chaos: a round of terminations every KILL_INTERVAL_S (jittered), at most KILL_ROUNDS of them, while
# the clients run. A placement takes 0.1-0.5 s on a busy machine: rounds much closer than that leave hardly
# any transaction alive, so that the run measures the machine more than the API. MIN_KILL_ROUNDS: fewer
# means the clients finished before the chaos bit (a fast machine gets through the orders in ~6 s).
KILL_INTERVAL_S = (0.2, 0.5)
KILL_ROUNDS = 25
MIN_KILL_ROUNDS = 5
# A share of first attempts at placing an order that the client abandons after a moment (its answer is lost
# in flight; the request goes on in the server) before it retries with the same key: the retry gets 409
# ``idempotency_key_in_flight`` or the stored answer (``Idempotent-Replayed``), never a second order.
ABANDON_SHARE = 0.15
ABANDON_AFTER_S = (0.01, 0.3)
# A key whose request died without releasing it may be taken over after this (the default is a minute).
# Shorter than a slow placement under the chaos, so that a retry also takes over keys whose first request
# is still running (an abandoned one): only one of the two may commit.
LOCK_TIMEOUT_S = 0.5
# The clients' backoff between retries. Retry-After says 1 s; the test compresses time and checks only that
# the header is there.
BACKOFF_S = (0.02, 0.12)
HTTP_TIMEOUT_S = 10.0
RETRYABLE = {503: "database_unavailable", 409: "idempotency_key_in_flight"}
# Two round-the-clock sites with eight printers each. A print of the part takes ~37 min, so the nearest site
# alone queues 200 orders within ~16 h and every order meets its 48 h SLA: a refusal (422) is an error of
# the run, never of capacity.
SITES = {"hamburg": HAMBURG, "altona": (53.5503, 9.9350)}
PRINTERS = [
    {
        "key": f"mk4-{n:02d}",
        "model": "i3 MK4-class",
        "build_volume": {"x_mm": 250, "y_mm": 210, "z_mm": 220},
        "materials_supported": ["PLA", "PETG", "ASA"],
        "materials_loaded": ["PETG"],
    }
    for n in range(8)
]


@pytest.fixture
def chaos_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"idempotency_lock_timeout_s": LOCK_TIMEOUT_S})


@dataclass
class Placement:
    """One logical order: one key, one reference, however many attempts it took."""

    ref: str
    key: str
    body: dict[str, Any]
    # Requests sent for it, retries and abandoned ones included.
    attempts: int = 0
    abandoned: int = 0
    # Order ids in the 201 answers it got (one, however often it was replayed).
    answered: set[str] = field(default_factory=set)
    replayed: int = 0
    cancelled: bool = False


@dataclass
class Ledger:
    """What the clients sent and were told. One event loop, so no locks."""

    placements: list[Placement] = field(default_factory=list)
    retryable: Counter[str] = field(default_factory=Counter)
    # Every answer that was neither success nor retryable: "<method> <path>: <status> <code>".
    unexpected: list[str] = field(default_factory=list)
    server_errors: int = 0
    transport_errors: int = 0
    reads: int = 0
    cancels_recovered: int = 0
    kill_rounds: int = 0
    connections_killed: int = 0

    def unexpected_answer(self, method: str, path: str, response: httpx.Response) -> None:
        if response.status_code >= 500:
            self.server_errors += 1
        self.unexpected.append(f"{method} {path}: {response.status_code} {_code(response)}")


def _code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


async def _send(
    http: httpx.AsyncClient,
    ledger: Ledger,
    method: str,
    path: str,
    *,
    deadline: float,
    rng: random.Random,
    json: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    placement: Placement | None = None,
) -> httpx.Response | None:
    """Send until the answer is neither retryable nor a dropped connection; None past the deadline.

    With a ``placement``, count its attempts, and abandon its first one after a moment at random."""
    while time.monotonic() < deadline:
        abandon = placement is not None and placement.attempts == 0 and rng.random() < ABANDON_SHARE
        if placement is not None:
            placement.attempts += 1
        try:
            async with asyncio.timeout(rng.uniform(*ABANDON_AFTER_S) if abandon else None):
                response = await http.request(method, path, json=json, headers=headers)
        except TimeoutError:
            assert placement is not None
            placement.abandoned += 1
            continue
        except httpx.TransportError as error:  # the HTTP server must never drop a client
            ledger.transport_errors += 1
            ledger.unexpected.append(f"{method} {path}: {type(error).__name__}")
        else:
            code = _code(response)
            retryable = code is not None and RETRYABLE.get(response.status_code) == code
            if retryable and response.status_code == 503 and "Retry-After" not in response.headers:
                ledger.unexpected.append(f"{method} {path}: 503 {code} without Retry-After")
            if not retryable:
                return response
            ledger.retryable[str(code)] += 1
        await asyncio.sleep(rng.uniform(*BACKOFF_S))
    ledger.unexpected.append(f"{method} {path}: gave up after {CLIENT_DEADLINE_S} s")
    return None


async def _place(
    http: httpx.AsyncClient,
    token: str,
    placement: Placement,
    ledger: Ledger,
    deadline: float,
    rng: random.Random,
) -> str | None:
    """Place one logical order with its one key; its id, or None if it never got a 201."""
    headers = {**bearer(token), "Idempotency-Key": placement.key}
    while time.monotonic() < deadline:
        response = await _send(
            http,
            ledger,
            "POST",
            "/orders",
            json=placement.body,
            headers=headers,
            deadline=deadline,
            rng=rng,
            placement=placement,
        )
        if response is None:
            return None
        if response.status_code == 201:
            placement.answered.add(response.json()["id"])
            placement.replayed += response.headers.get("Idempotent-Replayed") == "true"
            return str(response.json()["id"])
        ledger.unexpected_answer("POST", "/orders", response)
        if response.status_code < 500:
            return None  # a definite refusal: retrying the same request cannot change it
        # A 5xx leaves the outcome open: the same key and body find out (the failure is counted already).
    return None


async def _cancel(
    http: httpx.AsyncClient, token: str, order_id: str, ledger: Ledger, deadline: float, rng: random.Random
) -> bool:
    """Cancel; a 409 after a retry may mean that an earlier attempt's commit went through unanswered."""
    path = f"/orders/{order_id}/cancel"
    for _ in range(3):
        response = await _send(
            http,
            ledger,
            "POST",
            path,
            json={"reason": "chaos"},
            headers=bearer(token),
            deadline=deadline,
            rng=rng,
        )
        if response is None:
            return False
        if response.status_code == 200 and response.json()["status"] == "cancelled":
            return True
        if response.status_code == 409 and _code(response) == "invalid_order_transition":
            now = await _send(
                http, ledger, "GET", f"/orders/{order_id}", headers=bearer(token), deadline=deadline, rng=rng
            )
            if now is not None and now.status_code == 200 and now.json()["status"] == "cancelled":
                ledger.cancels_recovered += 1
                return True
        ledger.unexpected_answer("POST", path, response)
        if response.status_code < 500:
            return False
    return False


async def _read(
    http: httpx.AsyncClient, token: str, path: str, ledger: Ledger, deadline: float, rng: random.Random
) -> None:
    response = await _send(http, ledger, "GET", path, headers=bearer(token), deadline=deadline, rng=rng)
    ledger.reads += 1
    if response is not None and response.status_code != 200:
        ledger.unexpected_answer("GET", path, response)


async def _technician(
    base_url: str, token: str, placements: list[Placement], ledger: Ledger, deadline: float, seed: int
) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S) as http:
        for n, placement in enumerate(placements, start=1):
            order_id = await _place(http, token, placement, ledger, deadline, rng)
            if order_id is None:
                continue
            if n % READ_EVERY == 0:
                await _read(http, token, f"/orders/{order_id}", ledger, deadline, rng)
            if n % LIST_EVERY == 0:
                await _read(http, token, "/orders?limit=20", ledger, deadline, rng)
            if n % CANCEL_EVERY == 0:
                placement.cancelled = await _cancel(http, token, order_id, ledger, deadline, rng)


async def _chaos(url: str, stop: asyncio.Event, ledger: Ledger, rng: random.Random) -> None:
    """Terminate every connection of the API's pool, round after round, until told to stop."""
    killer = await asyncpg.connect(asyncpg_dsn(url), server_settings={"application_name": "spareflow-chaos"})
    try:
        while ledger.kill_rounds < KILL_ROUNDS:
            try:
                await asyncio.wait_for(stop.wait(), timeout=rng.uniform(*KILL_INTERVAL_S))
                return
            except TimeoutError:
                pass
            killed = await killer.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()",
                APPLICATION_NAME,
            )
            ledger.kill_rounds += 1
            ledger.connections_killed += int(killed)
    finally:
        await killer.close()


# Each query lists what breaks one invariant of a placement (or a cancel); all must come back empty.
HALF_WRITTEN = {
    "order without exactly one reservation": """
        SELECT o.id FROM orders o LEFT JOIN printer_reservation r ON r.order_id = o.id
        GROUP BY o.id HAVING count(r.id) <> 1""",
    "reservation not on the order's printer, or released iff not cancelled": """
        SELECT o.id FROM orders o JOIN printer_reservation r ON r.order_id = o.id
        WHERE r.printer_id IS DISTINCT FROM o.printer_id
           OR (r.released_at IS NULL) = (o.status = 'cancelled')""",
    "order without its print job, or a job elsewhere": """
        SELECT o.id FROM orders o LEFT JOIN print_job j ON j.id = o.print_job_id
        WHERE j.id IS NULL
           OR j.site_id IS DISTINCT FROM o.site_id OR j.printer_id IS DISTINCT FROM o.printer_id
           OR (j.status = 'cancelled') <> (o.status = 'cancelled')""",
    "print job of a site without its order": """
        SELECT j.id FROM print_job j
        WHERE j.site_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.print_job_id = j.id)""",
    "order not routed or cancelled": """
        SELECT id FROM orders WHERE status NOT IN ('routed', 'cancelled') OR site_id IS NULL
           OR printer_id IS NULL OR promised_delivery_at IS NULL OR routing IS NULL""",
    "events other than received, routed (and cancelled)": """
        SELECT o.id FROM orders o LEFT JOIN order_event e ON e.order_id = o.id
        GROUP BY o.id, o.status
        HAVING array_agg(e.kind ORDER BY e.id) IS DISTINCT FROM (CASE WHEN o.status = 'cancelled'
            THEN ARRAY['received', 'routed', 'cancelled'] ELSE ARRAY['received', 'routed'] END)::varchar[]""",
    "order that is no key's answer, or the answer of several": """
        SELECT o.id FROM orders o LEFT JOIN idempotency_key k ON k.response_body ->> 'id' = o.id::text
        GROUP BY o.id HAVING count(k.id) <> 1""",
    "answer naming no order": """
        SELECT k.key FROM idempotency_key k
        WHERE k.response_status IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.id::text = k.response_body ->> 'id')""",
}
KEYS_UNANSWERED = "SELECT key FROM idempotency_key WHERE response_status IS NULL"
ORDERS_BY_REF = "SELECT (address -> 'lines' ->> 1) AS ref, array_agg(id::text) FROM orders GROUP BY 1"


async def _database_view(settings: Settings) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Orders by client reference, what breaks each invariant, and the keys left without an answer."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            by_ref = {ref: list(ids) for ref, ids in (await conn.execute(sa.text(ORDERS_BY_REF))).all()}
            broken = {
                name: [str(row[0]) for row in (await conn.execute(sa.text(query))).all()]
                for name, query in HALF_WRITTEN.items()
            }
            unanswered = [str(row[0]) for row in (await conn.execute(sa.text(KEYS_UNANSWERED))).all()]
    finally:
        await engine.dispose()
    return by_ref, {name: ids for name, ids in broken.items() if ids}, unanswered


async def _api_view(base_url: str, token: str) -> dict[str, str]:
    """Every order the API lists (id -> status), page by page, with no chaos running."""
    seen: dict[str, str] = {}
    cursor: str | None = None
    async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S) as http:
        while True:
            params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
            response = await http.get("/orders", params=params, headers=bearer(token))
            assert response.status_code == 200, response.text
            page = response.json()
            seen.update({item["id"]: item["status"] for item in page["items"]})
            cursor = page["next_cursor"]
            if cursor is None:
                return seen


def _placements(technicians: int, per_technician: int) -> list[list[Placement]]:
    run = uuid.uuid4().hex[:6]
    batches = []
    for t in range(technicians):
        batch = []
        for n in range(per_technician):
            ref = f"ref {run}-{t}-{n}"
            body = order_body("BR-1")
            body["destination"]["address"]["lines"] = ["Werkstrasse 1", ref]
            batch.append(Placement(ref=ref, key=str(uuid.uuid4()), body=body))
        batches.append(batch)
    return batches


async def test_dropped_database_connections_lose_and_duplicate_nothing(
    client: httpx.AsyncClient, chaos_settings: Settings
) -> None:
    settings = chaos_settings
    started = time.monotonic()
    # Bounded: the clients give up at their deadline, this catches anything else that hangs.
    async with asyncio.timeout(TEST_TIMEOUT_S):
        shop = await make_shop(client, settings, SITES, printers=PRINTERS)
        org_id = shop["org"]["id"]
        tokens = [shop["tech"]] + [
            await make_key(client, shop["admin"], "technician", organization_id=org_id)
            for _ in range(TECHNICIANS - 1)
        ]
        batches = _placements(TECHNICIANS, ORDERS_PER_TECHNICIAN)
        ledger = Ledger(placements=[p for batch in batches for p in batch])
        set_up = time.monotonic() - started

        seed = random.randrange(2**32)
        async with serve_in_background(settings, settings.redis_url) as base_url:
            run_started = time.monotonic()
            deadline = run_started + CLIENT_DEADLINE_S
            stop = asyncio.Event()
            chaos = asyncio.create_task(
                _chaos(settings.resolved_database_url, stop, ledger, random.Random(seed))
            )
            try:
                async with asyncio.TaskGroup() as clients:
                    for n, (token, batch) in enumerate(zip(tokens, batches, strict=True)):
                        clients.create_task(
                            _technician(base_url, token, batch, ledger, deadline, seed + n + 1)
                        )
            finally:
                stop.set()
                await chaos
            ran = time.monotonic() - run_started
            listed = await _api_view(base_url, shop["tech"])

        by_ref, half_written, unanswered = await _database_view(settings)

    placements = ledger.placements
    answered = {p.ref: p.answered for p in placements}
    in_db = {order_id for ids in by_ref.values() for order_id in ids}
    # Lost: an order a client was told about (201) that is not there. A placement that never got its 201
    # (its client gave up at the deadline) is not lost, but it is not ok either: see "gave_up".
    lost = [p.ref for p in placements if not p.answered <= in_db]
    duplicated = [p.ref for p in placements if len(by_ref.get(p.ref, [])) > 1 or len(p.answered) > 1]
    ok = [p for p in placements if len(by_ref.get(p.ref, [])) == 1 and answered[p.ref] == set(by_ref[p.ref])]
    api_disagrees = sorted(set(listed) ^ in_db) + [
        p.ref
        for p in placements
        if p.answered and listed.get(next(iter(p.answered))) != ("cancelled" if p.cancelled else "routed")
    ]
    strangers = sorted(set(by_ref) - set(answered))
    half_written_count = sum(len(ids) for ids in half_written.values())
    recorded = tally.record(
        Tally(
            scenario=SCENARIO,
            attempted=len(placements),
            ok=len(ok),
            lost=len(lost),
            duplicated=len(duplicated),
            recovered=sum(1 for p in ok if p.attempts > 1),
            figures={
                "kill_rounds": ledger.kill_rounds,
                "connections_killed": ledger.connections_killed,
                "retryable_errors_seen": sum(ledger.retryable.values()),
                **{f"seen_{code}": n for code, n in sorted(ledger.retryable.items())},
                "gave_up": sum(1 for p in placements if not p.answered),
                "abandoned": sum(p.abandoned for p in placements),
                "replayed": sum(p.replayed for p in placements),
                "cancelled": sum(p.cancelled for p in placements),
                "cancels_recovered": ledger.cancels_recovered,
                "reads": ledger.reads,
                "server_errors": ledger.server_errors,
                "transport_errors": ledger.transport_errors,
                "unexpected": len(ledger.unexpected),
                "half_written": half_written_count,
                "keys_unanswered": len(unanswered),
                "api_disagrees": len(api_disagrees),
                "run_s": round(ran, 1),
                "setup_s": round(set_up, 1),
                "seed": seed,
            },
        )
    )
    print(f"\n{recorded.line()}")

    assert ledger.server_errors == 0, ledger.unexpected[:20]
    assert half_written_count == 0, half_written
    assert not ledger.unexpected, (len(ledger.unexpected), ledger.unexpected[:20])
    assert not unanswered, f"keys left claimed without an answer: {unanswered[:10]}"
    assert not strangers, f"orders no client placed: {strangers[:10]}"
    assert not api_disagrees, api_disagrees[:10]
    recorded.assert_nothing_lost()
    # The run proves something only if the chaos bit while the clients ran, and they came through it.
    assert ledger.kill_rounds >= MIN_KILL_ROUNDS, recorded.line()
    assert ledger.retryable["database_unavailable"] > 0, recorded.line()
    assert recorded.recovered > 0, recorded.line()


# At the placement's COMMIT (a deferred constraint trigger runs there), the backend of the first order
# marked "die at commit" terminates itself: the connection dies in the commit, which does not go through. A
# sequence counts, because it is the one thing a transaction that dies does not roll back.
DIE_AT_COMMIT = "die at commit"
INSTALL_DEATH = f"""
CREATE SEQUENCE chaos_commit_deaths;
CREATE FUNCTION chaos_die_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.address -> 'lines' ->> 1 = '{DIE_AT_COMMIT}' AND nextval('chaos_commit_deaths') = 1 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER chaos_die_at_commit AFTER INSERT ON orders DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION chaos_die_at_commit();
"""
# The database is the session's: leave it as it was found.
REMOVE_DEATH = """
DROP TRIGGER IF EXISTS chaos_die_at_commit ON orders;
DROP FUNCTION IF EXISTS chaos_die_at_commit();
DROP SEQUENCE IF EXISTS chaos_commit_deaths;
"""


async def test_a_connection_that_dies_in_the_commit_releases_the_key(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # The default lock timeout (a minute): a key left claimed by the dead commit would refuse the retry.
    assert settings.idempotency_lock_timeout_s >= 30
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    body = order_body("BR-1")
    body["destination"]["address"]["lines"] = ["Werkstrasse 1", DIE_AT_COMMIT]
    headers = {**bearer(shop["tech"]), "Idempotency-Key": str(uuid.uuid4())}
    admin = await asyncpg.connect(asyncpg_dsn(settings.resolved_database_url))
    try:
        await admin.execute(INSTALL_DEATH)
        died = await client.post("/orders", json=body, headers=headers)
        retried = await client.post("/orders", json=body, headers=headers)
        replayed = await client.post("/orders", json=body, headers=headers)
        deaths = await admin.fetchval("SELECT last_value FROM chaos_commit_deaths")
        placed = await admin.fetch(
            "SELECT id::text FROM orders WHERE address -> 'lines' ->> 1 = $1", DIE_AT_COMMIT
        )
    finally:
        await admin.execute(REMOVE_DEATH)
        await admin.close()

    assert deaths >= 1  # the trigger did fire
    assert (died.status_code, _code(died)) == (503, "database_unavailable"), died.text
    assert died.headers["Retry-After"] == "1"
    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert [row["id"] for row in placed] == [retried.json()["id"]] == [replayed.json()["id"]]


async def test_a_request_that_outlived_its_claim_cannot_answer_after_a_takeover(settings: Settings) -> None:
    lock_timeout = timedelta(seconds=LOCK_TIMEOUT_S)
    store = IdempotencyStore(retention=timedelta(hours=48), lock_timeout=lock_timeout)
    owner, key, request = "account:chaos", "outlived-key", "f" * 64
    first_at = utcnow()
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as slow:
            claim = await store.claim(slow, owner, key, request, now=first_at)
        assert isinstance(claim, Claim)  # a new key: claimed, no stored answer
        # The first request is still running past the lock timeout; the client's retry takes the key over.
        async with sessions() as retry:
            takeover = await store.claim(retry, owner, key, request, now=first_at + 2 * lock_timeout)
            assert takeover == claim  # the same key's record
            assert isinstance(takeover, Claim)
            # The slow request gets to its answer now: refused, so that its transaction rolls back; and its
            # release leaves the retry's claim alone.
            async with sessions() as slow:
                with pytest.raises(IdempotencyKeyInFlight):
                    await store.complete(slow, claim, 201, {"id": "slow"})
                await store.release(slow, claim)
            await store.complete(retry, takeover, 201, {"id": "retry"})
            await retry.commit()
        async with sessions() as later:
            again = await store.claim(later, owner, key, request, now=first_at + 3 * lock_timeout)
        assert again == StoredResponse(201, {"id": "retry"})
    finally:
        await engine.dispose()


async def test_an_unreachable_database_answers_503(settings: Settings) -> None:
    # A loopback port that is bound but not listening: connecting is refused, as with a server that is down.
    with socket.socket() as nobody:
        nobody.bind(("127.0.0.1", 0))
        assert settings.database_url is not None
        url = make_url(settings.database_url).set(port=nobody.getsockname()[1])
        down = settings.model_copy(update={"database_url": url.render_as_string(hide_password=False)})
        assert down.resolved_database_url == down.database_url
        async with app_client(down) as http:
            # A well-formed key, so that authenticating it needs the database.
            response = await http.get("/orders", headers=bearer(f"sf_{'0' * 12}_{'x' * 43}"))
    assert (response.status_code, _code(response)) == (503, "database_unavailable"), response.text
    assert response.headers["Retry-After"] == "1"
