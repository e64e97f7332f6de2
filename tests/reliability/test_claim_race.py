"""Twenty factory agents race over one site's print jobs for 1,000 claims: a Jepsen-style check of leases.

Each agent claims a job, then at random completes it, fails it (to be printed again at the site) or
abandons it (its lease runs out and another agent takes the job over), sometimes after one heartbeat. The
token of every abandoned lease is replayed once it has certainly run out. After the 1,000th claim the
agents complete whatever they claim until every job is done.

Then the lease log (``print_job_lease``) and the answers the agents got must tell one story:

1. no job lost: every job done, every order printed, nothing left ready or claimed;
2. at most one lease at a time: the log holds exactly the leases granted, each to the agent told so, with
   fences 1..k and no gaps; every lease ended, no later than the next one began (the server's clock); no
   token accepted in a call sent after a newer lease of its job was granted (the agents' clock);
3. exactly one completed lease per job, the last; every lease ended as its holder left it; every replayed
   token refused with 409 ``lease_lost``;
4. no 5xx, and no answer the API does not document for these calls.

The summary line (``-s``) counts what happened and each invariant's violations; a failure shows, for one
job per violated invariant, every call about it and its lease log.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.config import Settings
from services.printing.models import PrintJobLease
from tests.builders import (
    HAMBURG,
    app_client,
    bearer,
    lease_log,
    make_key,
    make_shop,
    order_body,
    place_order,
)
from tests.workers import run_worker_until_idle

pytestmark = pytest.mark.slow

AGENTS = 20
ORDERS = 120
# Claims in the race, before the drain. Measured on 2 cores, SQLite gets through them about as fast as
# PostgreSQL (~35 s), so both backends race over the same number.
CLAIMS = 1000
LEASE_SECONDS = 1.0
MAX_FAILURES_HERE = 20
# A claim's fate in the race: complete (adaptive, at most 30%, see ``Ledger.fate``), else fail and abandon
# 4:3 (40% and 30% of all claims when 30% complete).
MAX_COMPLETE, FAIL_SHARE = 0.3, 4 / 7
# Jobs kept undone until the race's last claim, so that there is always something to race over.
RESERVE = AGENTS // 2
HEARTBEAT_FIRST = 0.1
REPLAY = 0.2
# Bounds, so that the test cannot hang: the whole race, and how long agents keep polling while no claim
# succeeds before they give up (a job that never becomes claimable again is a lost job, reported as such).
HARD_TIMEOUT_S = 180.0
STALL_S = 5 * LEASE_SECONDS + 5
# A call that carries a lease's token.
TOKEN_CALLS = ("heartbeat", "complete", "fail")
# A lease's outcome in the log, by what its holder did with it (one refused while held ran out).
OUTCOME_OF = {"completed": "completed", "failed": "failed", "abandoned": "expired", "lost": "expired"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Leases short enough to lapse hundreds of times in the race; failures retried at the one site, never
    # re-routed away from it.
    return settings.model_copy(
        update={
            "factory_lease_seconds": LEASE_SECONDS,
            "factory_claim_poll_s": 0.1,
            "max_print_failures_per_site": MAX_FAILURES_HERE,
        }
    )


@dataclass(frozen=True, slots=True)
class Call:
    """One request an agent made, and its answer."""

    action: str  # claim | heartbeat | complete | fail
    status: int
    code: str | None  # the error's code, for a 4xx or 5xx
    reason: str | None  # why a lease was lost
    job_id: str | None
    fence: int | None
    replay: bool  # sent with the token of an abandoned lease that had run out
    sent: float  # time.monotonic()
    answered: float


@dataclass(slots=True)
class Held:
    """A lease as its agent knows it."""

    job_id: str
    fence: int
    token: str
    expires_at: datetime


@dataclass
class Ledger:
    """Everything the agents did and were told. Shared by all of them: one event loop, so no locks."""

    budget: int
    jobs: int
    calls: list[Call] = field(default_factory=list)
    # (job id, fence) -> the key id of the agent that was granted it.
    granted: dict[tuple[str, int], str] = field(default_factory=dict)
    granted_twice: list[tuple[str, int]] = field(default_factory=list)
    # (job id, fence) -> what its holder did: completed | failed | abandoned | lost (refused while held).
    fates: dict[tuple[str, int], str] = field(default_factory=dict)
    abandoned: list[Held] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    last_grant: float = field(default_factory=time.monotonic)

    @property
    def claims(self) -> int:
        return len(self.granted) + len(self.granted_twice)

    def fate(self, rng: random.Random, failures_here: int) -> str:
        """What to do with a claim. Completing ``(undone - RESERVE) / claims left`` of claims (at most 30%)
        makes the jobs last until the race's last claim, so that 120 jobs carry 1,000 claims (with a fixed
        30% they would all be done after ~400). A job is never failed into a re-route. After the race,
        every claim completes."""
        if self.claims >= self.budget:
            return "complete"
        undone = self.jobs - len(self.done)
        complete = min(MAX_COMPLETE, max(0.0, (undone - RESERVE) / (self.budget - self.claims)))
        roll = rng.random()
        if roll < complete:
            return "complete"
        if roll < complete + (1 - complete) * FAIL_SHARE and failures_here < MAX_FAILURES_HERE - 1:
            return "fail"
        return "abandon"

    async def send(
        self,
        http: httpx.AsyncClient,
        key: str,
        action: str,
        path: str,
        body: dict[str, Any],
        *,
        held: Held | None = None,
        replay: bool = False,
    ) -> httpx.Response:
        sent = time.monotonic()
        response = await http.post(path, json=body, headers=bearer(key))
        answered = time.monotonic()
        job_id, fence = (held.job_id, held.fence) if held else (None, None)
        code = reason = None
        if action == "claim" and response.status_code == 200:
            claimed = response.json()
            job_id, fence = claimed["job"]["id"], claimed["lease"]["fence"]
        elif response.status_code >= 400:
            try:
                error = response.json()["error"]
                code, reason = error.get("code"), (error.get("details") or {}).get("reason")
            except (ValueError, KeyError, TypeError, AttributeError):
                code = f"unparsed: {response.text[:200]}"
        self.calls.append(
            Call(action, response.status_code, code, reason, job_id, fence, replay, sent, answered)
        )
        return response


def _token_body(action: str, token: str, rng: random.Random) -> dict[str, Any]:
    if action == "heartbeat":
        return {"token": token, "progress": round(rng.uniform(0, 99), 1), "printer_state": "printing"}
    if action == "complete":
        return {"token": token, "part_weight_g": 12.5, "qa_checks": [{"name": "dimensions", "passed": True}]}
    return {"token": token, "reason": "print_failed", "retry_here": True}


def _lost(response: httpx.Response) -> bool:
    return response.status_code == 409 and response.json()["error"]["code"] == "lease_lost"


async def _replay(http: httpx.AsyncClient, key: str, ledger: Ledger, rng: random.Random) -> None:
    """Send a heartbeat, complete or fail with the token of the oldest abandoned lease, once it has run out
    (the agents and the server share a clock)."""
    if not ledger.abandoned or (datetime.now(UTC) - ledger.abandoned[0].expires_at).total_seconds() < 0.05:
        return
    held = ledger.abandoned.pop(0)
    action = rng.choice(TOKEN_CALLS)
    path = f"/factory/jobs/{held.job_id}/{action}"
    await ledger.send(http, key, action, path, _token_body(action, held.token, rng), held=held, replay=True)


async def _agent(http: httpx.AsyncClient, key: str, ledger: Ledger, rng: random.Random) -> None:
    key_id = key.split("_")[1]  # keys read sf_<key id>_<secret>
    while len(ledger.done) < ledger.jobs and time.monotonic() - ledger.last_grant < STALL_S:
        if rng.random() < REPLAY:
            await _replay(http, key, ledger, rng)
        response = await ledger.send(http, key, "claim", "/factory/jobs/claim", {"wait_seconds": 0})
        if response.status_code != 200:
            await asyncio.sleep(rng.uniform(0.05, 0.15))
            continue
        claimed = response.json()
        job, lease = claimed["job"], claimed["lease"]
        held = Held(job["id"], lease["fence"], lease["token"], datetime.fromisoformat(lease["expires_at"]))
        lease_id = (held.job_id, held.fence)
        if lease_id in ledger.granted:
            ledger.granted_twice.append(lease_id)
        else:
            ledger.granted[lease_id] = key_id
        ledger.last_grant = time.monotonic()
        fate = ledger.fate(rng, job["failures_here"])
        path = f"/factory/jobs/{held.job_id}"

        if rng.random() < HEARTBEAT_FIRST:
            body = _token_body("heartbeat", held.token, rng)
            beat = await ledger.send(http, key, "heartbeat", f"{path}/heartbeat", body, held=held)
            if beat.status_code != 200:
                ledger.fates[lease_id] = "lost" if _lost(beat) else f"heartbeat {beat.status_code}"
                continue
            held.expires_at = datetime.fromisoformat(beat.json()["lease"]["expires_at"])
        if fate == "abandon":
            ledger.fates[lease_id] = "abandoned"
            ledger.abandoned.append(held)
            continue
        answer = await ledger.send(
            http, key, fate, f"{path}/{fate}", _token_body(fate, held.token, rng), held=held
        )
        if answer.status_code == 200:
            ledger.fates[lease_id] = {"complete": "completed", "fail": "failed"}[fate]
            if fate == "complete":
                ledger.done.add(held.job_id)
        else:
            ledger.fates[lease_id] = "lost" if _lost(answer) else f"{fate} {answer.status_code}"


async def _race(apps: tuple[httpx.AsyncClient, ...], keys: list[str], ledger: Ledger, seed: int) -> None:
    async with asyncio.TaskGroup() as agents:
        for n, key in enumerate(keys):
            agents.create_task(_agent(apps[n % len(apps)], key, ledger, random.Random(seed + n)))
    # The tokens abandoned last are replayed now, on done jobs.
    rng = random.Random(seed)
    while ledger.abandoned:
        await asyncio.sleep(max(0.0, (ledger.abandoned[0].expires_at - datetime.now(UTC)).total_seconds()))
        await _replay(apps[0], keys[0], ledger, rng)


async def _prepared_shop(client: httpx.AsyncClient, settings: Settings) -> dict[str, Any]:
    """One round-the-clock site with ``ORDERS`` orders whose print jobs are ready, and ``AGENTS`` factory
    keys of it."""
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    site_id = shop["hamburg"]["id"]
    orders = []
    for _ in range(ORDERS):
        # One printer cannot print them all within the SLA: accept a late promise rather than be refused.
        response = await place_order(client, shop["tech"], order_body("BR-1", accept_late=True))
        assert response.status_code == 201, response.text
        assert response.json()["routing"]["quote"]["site_id"] == site_id
        orders.append(response.json())
    await run_worker_until_idle(settings)
    keys = [await make_key(client, shop["admin"], "factory", site_id=site_id) for _ in range(AGENTS)]
    listed = (await client.get("/factory/jobs", headers=bearer(keys[0]))).json()["items"]
    assert Counter(job["status"] for job in listed) == {"ready": ORDERS}
    jobs = {job["order_id"]: job["id"] for job in listed}
    assert set(jobs) == {order["id"] for order in orders}
    return {**shop, "orders": orders, "jobs": jobs, "keys": keys}


def _anomalies(
    ledger: Ledger,
    log: dict[str, list[PrintJobLease]],
    job_status: dict[str, str],
    order_status: dict[str, str],
) -> dict[str, list[str]]:
    """Each invariant the run broke, with the jobs (or calls) that show it."""
    found: dict[str, list[str]] = defaultdict(list)
    calls = ledger.calls
    # 1. No job lost.
    found["job not done"] = [j for j, status in job_status.items() if status != "done"]
    found["order not printed"] = [j for j, status in order_status.items() if status != "printed"]

    # 2. At most one lease at a time.
    logged = {(job_id, lease.fence): lease for job_id, leases in log.items() for lease in leases}
    found["lease granted twice"] = [j for j, _ in ledger.granted_twice]
    found["log differs from grants"] = [j for j, _ in set(logged) ^ set(ledger.granted)] + [
        j for (j, f), x in logged.items() if ledger.granted.get((j, f), x.claimed_by) != x.claimed_by
    ]
    for job_id, leases in log.items():
        if [x.fence for x in leases] != list(range(1, len(leases) + 1)):
            found["fence gap"].append(job_id)
        if any(x.ended_at is None for x in leases):
            found["lease never ended"].append(job_id)
        if any(x.ended_at is not None and x.ended_at < x.claimed_at for x in leases):
            found["lease ended before it began"].append(job_id)
        if any(a.ended_at is not None and a.ended_at > b.claimed_at for a, b in itertools.pairwise(leases)):
            found["lease ended after the next began (log clock)"].append(job_id)
    granted_at: dict[str, dict[int, float]] = defaultdict(dict)
    for c in calls:
        if c.action == "claim" and c.status == 200 and c.job_id is not None and c.fence is not None:
            granted_at[c.job_id][c.fence] = c.answered
    for c in calls:
        if c.action in TOKEN_CALLS and c.status == 200 and c.job_id is not None and c.fence is not None:
            fence = c.fence
            if any(f > fence and t < c.sent for f, t in granted_at[c.job_id].items()):
                found["token accepted after a newer lease was granted (agents' clock)"].append(c.job_id)

    # 3. Exactly one completed lease per job, the last; each lease ended as its holder left it; replayed
    # tokens refused.
    for job_id, leases in log.items():
        outcomes = [str(x.outcome) for x in leases]
        if outcomes.count("completed") != 1 or outcomes[-1:] != ["completed"]:
            found["not exactly one completed lease, the last"].append(job_id)
    completes = Counter(c.job_id for c in calls if c.action == "complete" and c.status == 200)
    found["completed twice"] = [j for j, n in completes.items() if j is not None and n > 1]
    found["lease outcome differs from its holder's account"] = [
        j for (j, f), fate in ledger.fates.items() if str(logged[(j, f)].outcome) != OUTCOME_OF.get(fate)
    ]
    found["replayed token not refused"] = [
        c.job_id or "" for c in calls if c.replay and (c.status != 409 or c.code != "lease_lost")
    ]

    # 4. No 5xx, and only documented answers.
    found["5xx"] = [f"{c.action} {c.job_id}: {c.status} {c.code}" for c in calls if c.status >= 500]
    found["unexpected answer"] = [
        f"{c.action} {c.job_id}: {c.status} {c.code}"
        for c in calls
        if c.status < 500
        and not (
            (c.action == "claim" and c.status in (200, 204))
            or (c.action in TOKEN_CALLS and (c.status == 200 or (c.status == 409 and c.code == "lease_lost")))
        )
    ]
    return {name: sorted(set(items)) for name, items in found.items() if items}


def _story(job_id: str, ledger: Ledger, log: dict[str, list[PrintJobLease]]) -> str:
    """Every call about a job and its lease log, for a failure's message."""
    t0 = ledger.calls[0].sent
    lines = [f"  job {job_id}:"]
    lines += [
        f"    {c.sent - t0:7.3f}..{c.answered - t0:7.3f}s {c.action} fence {c.fence} -> {c.status} "
        f"{c.code or ''} {c.reason or ''}{' (replay)' if c.replay else ''}"
        for c in ledger.calls
        if c.job_id == job_id
    ]
    lines += [
        f"    lease {x.fence} by {x.claimed_by}: {x.claimed_at.time()} .. "
        f"{x.ended_at.time() if x.ended_at else None} {x.outcome} {x.reason}; "
        f"its holder: {ledger.fates.get((job_id, x.fence))}"
        for x in log.get(job_id, [])
    ]
    return "\n".join(lines)


async def test_twenty_agents_race_over_a_thousand_claims(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    backend = "sqlite" if settings.resolved_database_url.startswith("sqlite") else "postgresql"
    started = time.monotonic()
    shop = await _prepared_shop(client, settings)
    set_up, started = time.monotonic() - started, time.monotonic()

    seed = random.randrange(2**32)
    ledger = Ledger(budget=CLAIMS, jobs=ORDERS)
    # Two API processes' worth of apps over the one database, the agents split between them.
    async with app_client(settings) as one, app_client(settings) as two:
        try:
            await asyncio.wait_for(_race((one, two), shop["keys"], ledger, seed), timeout=HARD_TIMEOUT_S)
        except TimeoutError:
            pytest.fail(
                f"the race did not end within {HARD_TIMEOUT_S} s: {ledger.claims} claims, seed {seed}"
            )
    raced = time.monotonic() - started

    job_ids = list(shop["jobs"].values())
    log = await lease_log(settings, *job_ids)
    tech, factory = bearer(shop["tech"]), bearer(shop["keys"][0])
    order_status, job_status = {}, {}
    for order in shop["orders"]:
        response = await client.get(f"/orders/{order['id']}", headers=tech)
        assert response.status_code == 200, response.text
        order_status[shop["jobs"][order["id"]]] = response.json()["status"]
    for job_id in job_ids:
        response = await client.get(f"/factory/jobs/{job_id}", headers=factory)
        assert response.status_code == 200, response.text
        job_status[job_id] = response.json()["status"]
    active = (await client.get("/factory/jobs", headers=factory)).json()["items"]

    anomalies = _anomalies(ledger, log, job_status, order_status)
    calls = ledger.calls
    fates = Counter(ledger.fates.values())
    answers = Counter((c.action, c.status) for c in calls)
    replays = [c for c in calls if c.replay]
    lost = {j for name in ("job not done", "order not printed") for j in anomalies.get(name, [])}
    duplicated = {
        j
        for name in ("not exactly one completed lease, the last", "completed twice")
        for j in anomalies.get(name, [])
    }
    print(
        f"\nclaim race [{backend}] seed={seed} agents={AGENTS} jobs={ORDERS} claims={ledger.claims} "
        f"(race {min(ledger.claims, CLAIMS)} + drain {max(0, ledger.claims - CLAIMS)}) "
        f"completes={answers[('complete', 200)]} fails={answers[('fail', 200)]} "
        f"abandoned={fates['abandoned']} heartbeats={answers[('heartbeat', 200)]} "
        f"lease_lost={sum(1 for c in calls if c.code == 'lease_lost')} "
        f"(replayed {len(replays)}, ran out while held {fates['lost']}) "
        f"lease_lost_reasons={dict(Counter(c.reason for c in calls if c.code == 'lease_lost'))} "
        f"empty_polls={answers[('claim', 204)]} max_fence={max(f for _, f in ledger.granted)} "
        f"lost={len(lost)} duplicated={len(duplicated)} 5xx={sum(1 for c in calls if c.status >= 500)} "
        f"violations={ {name: len(jobs) for name, jobs in anomalies.items()} } "
        f"slowest_call={max(c.answered - c.sent for c in calls):.2f}s setup={set_up:.1f}s race={raced:.1f}s"
    )
    assert not anomalies, f"seed {seed}; one job per violated invariant:\n" + "\n".join(
        f"{name}: {len(jobs)}\n{_story(jobs[0], ledger, log) if jobs[0] in log else '  ' + jobs[0]}"
        for name, jobs in anomalies.items()
    )
    assert active == []
    # The test's own bookkeeping: every lease granted had a fate, every abandoned token was replayed.
    assert set(ledger.fates) == set(ledger.granted)
    assert len(replays) == fates["abandoned"]
    assert ledger.claims >= CLAIMS
