"""The chaos harness shared by the worker and Redis scenarios (issue 7).

Pieces, each usable on its own:

- ``ServiceProcess`` and ``Supervisor``: ``python -m services worker`` as real processes, each in a process
  group of its own, restarted when they exit (as Kubernetes restarts a container) and SIGKILLed, group and
  all, when the harness kills them or tears down. Each incarnation writes its JSON log lines to a file.
- ``job_events`` and ``interrupted_jobs``: arq's own log lines (``→`` start, ``←`` done, ``↻`` retry, ``!``
  failed; each with the job's id and try) read back from those files, so the harness knows which jobs a
  kill interrupted and when they ran again.
- ``run_crons``: the worker's periodic jobs on a schedule compressed from minutes to seconds.
- ``FactoryFloor``: one agent per printer, claiming and completing through the factory HTTP API, as the
  simulated agents do but without a process each (the factory side is not what these scenarios break).
- ``place_orders``: technicians placing orders at a steady pace, each with its own ``Idempotency-Key``.
- ``audit``: what SQL says about every order placed: the counts the scenarios assert on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from arq import create_pool
from arq.connections import RedisSettings

from services.config import Settings
from services.db import create_engine
from tests.builders import HAMBURG, bearer, make_key, order_body, place_order, site_body

REPO = Path(__file__).resolve().parents[2]
WORKER_COMMAND = (sys.executable, "-m", "services", "worker")
# How long a process may take to die after SIGKILL and be reaped (it cannot refuse; this only bounds a bug).
REAP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# Two round-the-clock sites in Hamburg with two printers each: every order is placed (``accept_late``: 200
# orders queue past a 48 h promise on four printers), and both sites stay candidates for every move.
SITES = {"hamburg": HAMBURG, "altona": (53.5503, 9.9350)}
PRINTERS = [{**site_body("template")["printers"][0], "key": f"mk4-{n:02d}"} for n in range(2)]


def flow_settings(settings: Settings, tmp_path: Path, **overrides: object) -> Settings:
    """``settings`` for a run with orders flowing to the door in seconds."""
    return settings.model_copy(
        update={
            "blob_dir": tmp_path / "blobs",
            # Parcels arrive seconds after booking; the courier's per-second cron reports them.
            "local_courier_time_scale": 360_000.0,
            # What the reconcilers find pending, they enqueue again after a second (not a minute).
            "reconcile_after_seconds": 1,
            # An idle agent's claim answers 204 within a second, looking for a job every 0.1 s meanwhile.
            "factory_claim_poll_s": 0.1,
            "factory_claim_max_wait_s": 1.0,
            **overrides,
        }
    )


# --- processes ------------------------------------------------------------------------------------------


def service_env(settings: Settings, **overrides: object) -> dict[str, str]:
    """The environment of a ``spareflow`` process configured like ``settings`` (plus ``overrides``, by
    Settings field name). Any SPAREFLOW_ variable of the test runner's own environment is dropped, so that
    nothing but the test decides how the processes run."""
    fields = {
        "database_url": settings.resolved_database_url,
        "redis_url": settings.redis_url,
        "queue_name": settings.queue_name,
        "data_dir": str(settings.data_dir.resolve()),
        "blob_dir": str(settings.resolved_blob_dir),
        "public_base_url": settings.public_base_url,
        "local_courier_time_scale": settings.local_courier_time_scale,
        "reconcile_after_seconds": settings.reconcile_after_seconds,
        "job_lease_s": settings.job_lease_s,
        "max_job_attempts": settings.max_job_attempts,
        "factory_lease_seconds": settings.factory_lease_seconds,
        "worker_poll_delay_s": settings.worker_poll_delay_s,
        # One object per line with its UTC time to the millisecond: the harness reads arq's lines back.
        "log_format": "json",
        "log_level": "INFO",
        **overrides,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPAREFLOW_")}
    env.update({f"SPAREFLOW_{k.upper()}": str(v) for k, v in fields.items() if v is not None})
    return env


@dataclass
class Incarnation:
    """One OS process of a supervised service."""

    number: int
    process: asyncio.subprocess.Process
    log_path: Path
    started_at: float  # time.time()
    ended_at: float | None = None
    killed: bool = False  # by the harness (chaos or teardown), not an exit of its own
    # arq's job lines read from the log so far, and how far it was read.
    events: list[JobEvent] = field(default_factory=list)
    read_to: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class ServiceProcess:
    """A service kept running by a supervisor; each (re)start is a new incarnation with its own log."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    log_dir: Path
    incarnations: list[Incarnation] = field(default_factory=list)

    @property
    def current(self) -> Incarnation | None:
        return self.incarnations[-1] if self.incarnations else None

    @property
    def running(self) -> bool:
        current = self.current
        return current is not None and current.process.returncode is None

    async def start(self) -> Incarnation:
        assert not self.running, f"{self.name} is running already"
        number = len(self.incarnations)
        log_path = self.log_dir / f"{self.name}.{number}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=REPO,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # A group of its own: a kill takes its children too (the mesh pool's forkserver and
                # workers), as a container's end would, and none is left behind.
                start_new_session=True,
            )
        incarnation = Incarnation(number, process, log_path, started_at=time.time())
        self.incarnations.append(incarnation)
        return incarnation

    async def kill(self) -> float | None:
        """SIGKILL the current incarnation's process group and reap it; returns when it was sent."""
        current = self.current
        if current is None or current.process.returncode is not None:
            return None
        current.killed = True
        sent = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(current.pid, signal.SIGKILL)
        await asyncio.wait_for(current.process.wait(), REAP_TIMEOUT_S)
        current.ended_at = time.time()
        return sent

    def logs(self) -> str:
        parts = []
        for inc in self.incarnations:
            text = inc.log_path.read_text(errors="replace") if inc.log_path.exists() else ""
            parts.append(f"--- {self.name}.{inc.number} (exit {inc.process.returncode}) ---\n{text[-4000:]}")
        return "\n".join(parts)


@dataclass
class Supervisor:
    """Restarts a service that exited by itself after ``backoff_s`` (Kubernetes' restartPolicy: Always,
    with a short backoff); records each such exit. Processes the harness killed are restarted by the harness
    (``restart``), not here."""

    services: list[ServiceProcess]
    backoff_s: float = 0.5
    # (service name, exit code, when) of every exit the harness did not cause.
    exits: list[tuple[str, int | None, float]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for service in self.services:
            await service.start()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            for service in self.services:
                current = service.current
                if current is None or current.killed or current.process.returncode is None:
                    continue
                if current.ended_at is None:
                    current.ended_at = time.time()
                    self.exits.append((service.name, current.process.returncode, current.ended_at))
                if time.time() - current.ended_at >= self.backoff_s:
                    await service.start()

    async def restart(self, service: ServiceProcess) -> None:
        if not service.running:
            await service.start()

    async def stop(self) -> None:
        """Stop supervising and SIGKILL every process still running (teardown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for service in self.services:
            await service.kill()
            # Each killed process's group too, in case a child outlived an incarnation that exited.
            for inc in service.incarnations:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(inc.pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(service.logs() for service in self.services)


# --- arq's log lines --------------------------------------------------------------------------------------

# arq.worker: "  0.01s → <job id>:<function>(<args>) try=2 delayed=1.50s" (a cron job shows its function
# alone); "  0.02s ← <ref> ● <result>", "↻ <ref> retrying ...", "! <ref> failed ...", "! <ref> max retries".
_START = re.compile(r"^\s*[\d.]+s → (?P<ref>[^\s(]+)\(.*\)(?: try=(?P<try>\d+))?(?: delayed=\S+)?$")
_END = re.compile(r"^\s*[\d.]+s (?P<mark>[←↻!⊘]) (?P<ref>[^\s(]+)")


@dataclass(frozen=True, slots=True)
class JobEvent:
    at: float  # time.time() of the log line
    service: str
    incarnation: int
    job_id: str  # arq's job id (a cron run's is "cron:<function>:<ms>")
    kind: str  # start | done | retry | failed | exceeded (its max tries; the id is arq's ref then)
    job_try: int = 1


def _parse(line: str, service: str, incarnation: int) -> JobEvent | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None  # a traceback's lines
    if not isinstance(entry, dict) or entry.get("logger") != "arq.worker":
        return None
    # The worker logs inside a job's context with the job's id and try (services.observability.logs).
    job_id, job_try = entry.get("queue_job_id"), int(entry.get("job_try") or 1)
    message, at = str(entry.get("message", "")), datetime.fromisoformat(entry["ts"]).timestamp()
    if job_id is None:
        # Logged before the job's context opens: a job arq gives up on (its tries used up).
        if (ended := _END.match(message)) and "max retries" in message:
            return JobEvent(at, service, incarnation, ended["ref"], "exceeded")
        return None
    if _START.match(message):
        return JobEvent(at, service, incarnation, job_id, "start", job_try)
    if ended := _END.match(message):
        kind = {"←": "done", "↻": "retry"}.get(ended["mark"], "failed")
        return JobEvent(at, service, incarnation, job_id, kind, job_try)
    return None


def _job_events(service: ServiceProcess) -> list[JobEvent]:
    for inc in service.incarnations:
        if not inc.log_path.exists():
            continue
        with inc.log_path.open("rb") as log:
            log.seek(inc.read_to)
            chunk = log.read()
        # Whole lines only: a line being written is read on the next call.
        complete = chunk[: chunk.rfind(b"\n") + 1]
        inc.read_to += len(complete)
        for raw in complete.decode(errors="replace").splitlines():
            if (event := _parse(raw, service.name, inc.number)) is not None:
                inc.events.append(event)
    return [e for inc in service.incarnations for e in inc.events]


def log_lines(services: Iterable[ServiceProcess], needle: str) -> int:
    """How often ``needle`` occurs in the services' logs."""
    return sum(
        inc.log_path.read_text(errors="replace").count(needle)
        for service in services
        for inc in service.incarnations
        if inc.log_path.exists()
    )


# httpx logs each request the built-in courier makes: one per tracking webhook posted (four per parcel).
COURIER_POST = "/webhooks/partners/local"


def job_events(services: Iterable[ServiceProcess]) -> list[JobEvent]:
    """Every job start and end the workers logged, in time order."""
    return sorted((e for s in services for e in _job_events(s)), key=lambda e: e.at)


def _unfinished(events: Iterable[JobEvent], service: str, incarnation: int) -> list[str]:
    """Jobs the incarnation started and did not end, by id."""
    open_jobs: Counter[str] = Counter()
    for e in events:
        if (e.service, e.incarnation) != (service, incarnation):
            continue
        if e.kind == "start":
            open_jobs[e.job_id] += 1
        elif open_jobs[e.job_id]:
            open_jobs[e.job_id] -= 1
    return [job_id for job_id, n in open_jobs.items() if n]


def working(service: ServiceProcess) -> bool:
    """Whether the current incarnation is running and has finished a job: it is past its start-up and
    making progress."""
    current = service.current
    if current is None or current.process.returncode is not None:
        return False
    return any(e.kind == "done" and e.incarnation == current.number for e in _job_events(service))


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A job a kill caught running, and what became of it."""

    job_id: str
    killed_at: float
    rerun_at: float | None  # the next start of the same job, anywhere
    rerun_try: int | None
    finished: bool  # that run (or a later one) ended the job


def interrupted_jobs(events: list[JobEvent], kills: Iterable[tuple[str, int, float]]) -> list[Interrupted]:
    """For each kill ``(service, incarnation, at)``: the jobs that incarnation started and never ended, with
    the job's next start after the kill (anywhere) and whether a run after the kill ended it."""
    found = []
    for service, number, killed_at in kills:
        for job_id in _unfinished(events, service, number):
            later = [e for e in events if e.job_id == job_id and e.at >= killed_at]
            rerun = next((e for e in later if e.kind == "start"), None)
            finished = rerun is not None and any(e.kind in {"done", "failed"} for e in later)
            found.append(
                Interrupted(
                    job_id,
                    killed_at,
                    rerun.at if rerun else None,
                    rerun.job_try if rerun else None,
                    finished,
                )
            )
    return found


def seconds_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"median": round(statistics.median(values), 2), "max": round(max(values), 2)}


# --- the factory side -----------------------------------------------------------------------------------


@dataclass
class FactoryFloor:
    """One agent per printer: claim (long-poll), complete at once, repeat, until stopped. Counts what it
    did; any answer it does not expect is kept in ``unexpected``."""

    base_url: str
    printers: list[tuple[str, str]]  # (factory key, printer id)
    claimed: int = 0
    completed: int = 0
    unexpected: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._agent(key, printer)) for key, printer in self.printers]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _agent(self, key: str, printer_id: str) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=HTTP_TIMEOUT_S) as http:
            while not self._stop.is_set():
                try:
                    await self._one(http, key, printer_id)
                except httpx.HTTPError as exc:
                    self.unexpected.append(f"claim/complete: {exc!r}")
                    await asyncio.sleep(0.2)

    async def _one(self, http: httpx.AsyncClient, key: str, printer_id: str) -> None:
        body = {"printer_id": printer_id, "wait_seconds": 1}
        claimed = await http.post("/factory/jobs/claim", json=body, headers=bearer(key))
        if claimed.status_code == 204:
            return
        if claimed.status_code != 200:
            self.unexpected.append(f"claim: {claimed.status_code} {claimed.text[:200]}")
            await asyncio.sleep(0.2)
            return
        self.claimed += 1
        job, token = claimed.json()["job"], claimed.json()["lease"]["token"]
        done = await http.post(
            f"/factory/jobs/{job['id']}/complete",
            json={"token": token, "part_weight_g": 12.5},
            headers=bearer(key),
        )
        if done.status_code == 200:
            self.completed += 1
        else:
            self.unexpected.append(f"complete: {done.status_code} {done.text[:200]}")


async def factory_floor(
    client: httpx.AsyncClient, base_url: str, admin: str, sites: Iterable[Mapping[str, Any]]
) -> FactoryFloor:
    """An agent for every printer of these sites, each with its site's factory key."""
    printers = []
    for site in sites:
        key = await make_key(client, admin, "factory", site_id=site["id"])
        printers += [(key, printer["id"]) for printer in site["printers"]]
    return FactoryFloor(base_url, printers)


# --- the technicians ------------------------------------------------------------------------------------


@dataclass
class Placements:
    """What the technicians were told: the ids of the orders placed (201), and every other answer."""

    order_ids: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    # When each order was answered (time.time()), in the order of ``order_ids``.
    placed_at: list[float] = field(default_factory=list)


async def place_orders(
    client: httpx.AsyncClient,
    tech: str,
    placements: Placements,
    *,
    count: int,
    per_second: float,
    concurrency: int = 4,
) -> None:
    """Place ``count`` orders at about ``per_second``, ``concurrency`` at a time; every answer is kept."""
    slots = asyncio.Semaphore(concurrency)
    started = time.monotonic()

    async def one(n: int) -> None:
        async with slots:
            try:
                answer = await place_order(client, tech, order_body("BR-1", HAMBURG, accept_late=True))
            except httpx.HTTPError as exc:
                placements.refused.append(f"order {n}: {exc!r}")
                return
            if answer.status_code == 201:
                placements.order_ids.append(answer.json()["id"])
                placements.placed_at.append(time.time())
            else:
                placements.refused.append(f"order {n}: {answer.status_code} {answer.text[:200]}")

    tasks = []
    for n in range(count):
        await asyncio.sleep(max(0.0, started + n / per_second - time.monotonic()))
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)


# --- what the database says ------------------------------------------------------------------------------

# Events that must happen exactly once in an order's life on the main line.
ONCE = ("printed", "shipment_booked", "shipped", "delivered")
TRACKING = ("picked_up", "in_transit", "out_for_delivery", "delivered")


@dataclass(frozen=True, slots=True)
class Audit:
    """Every order placed, checked in SQL. Each list names the orders that break one invariant."""

    statuses: Counter[str]
    not_delivered: list[str]  # lost orders: not at the end of the line
    stuck_jobs: list[str]  # print jobs not done (still waiting, ready, claimed or printing)
    double_prints: list[str]  # orders whose print job holds more than one completed lease
    double_bookings: list[str]  # orders with more than one shipment, or courier parcel
    duplicated_events: list[str]  # orders with an event of ONCE other than once
    tracking_gaps: list[str]  # shipments without exactly the four tracking events
    unprocessed_webhooks: int  # inbound webhooks stored and never processed
    print_job_attempts: Counter[int]  # preparation attempts per job: 2+ means prepared again
    booking_attempts: Counter[int]  # booking attempts per shipment

    @property
    def lost(self) -> int:
        return len(self.not_delivered)

    @property
    def duplicated(self) -> int:
        return len(set(self.double_prints) | set(self.double_bookings) | set(self.duplicated_events))

    def describe(self) -> str:
        return (
            f"statuses={dict(self.statuses)} not_delivered={self.not_delivered[:5]} "
            f"stuck_jobs={self.stuck_jobs[:5]} double_prints={self.double_prints[:5]} "
            f"double_bookings={self.double_bookings[:5]} duplicated_events={self.duplicated_events[:5]} "
            f"tracking_gaps={self.tracking_gaps[:5]} unprocessed_webhooks={self.unprocessed_webhooks}"
        )


async def _rows(conn: Any, query: str, **params: Any) -> list[Any]:
    return list((await conn.execute(sa.text(query), params)).all())


async def audit(database_url: str, order_ids: list[str]) -> Audit:
    ids = [uuid.UUID(i) for i in order_ids]
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            statuses = await _rows(conn, "SELECT id, status FROM orders WHERE id = ANY(:ids)", ids=ids)
            status_of = {str(order_id): status for order_id, status in statuses}
            stuck = await _rows(
                conn,
                "SELECT j.id FROM print_job j JOIN orders o ON o.print_job_id = j.id "
                "WHERE o.id = ANY(:ids) AND j.status <> 'done'",
                ids=ids,
            )
            prints = await _rows(
                conn,
                "SELECT o.id, count(l.id) FILTER (WHERE l.outcome = 'completed'), "
                "count(DISTINCT j.id) FILTER (WHERE j.status = 'done') "
                "FROM orders o JOIN print_job j ON j.id = o.print_job_id "
                "LEFT JOIN print_job_lease l ON l.job_id = j.id "
                "WHERE o.id = ANY(:ids) GROUP BY o.id",
                ids=ids,
            )
            bookings = await _rows(
                conn,
                "SELECT o.id, count(DISTINCT s.id), count(DISTINCT p.tracking_number) "
                "FROM orders o LEFT JOIN shipment s ON s.order_id = o.id "
                "LEFT JOIN local_courier_parcel p ON p.reference = CAST(o.id AS TEXT) "
                "WHERE o.id = ANY(:ids) GROUP BY o.id",
                ids=ids,
            )
            events = await _rows(
                conn,
                "SELECT order_id, kind, count(*) FROM order_event "
                "WHERE order_id = ANY(:ids) AND kind = ANY(:kinds) GROUP BY order_id, kind",
                ids=ids,
                kinds=list(ONCE),
            )
            tracking = await _rows(
                conn,
                "SELECT s.order_id, array_agg(e.status ORDER BY e.occurred_at) FROM shipment s "
                "LEFT JOIN shipment_event e ON e.shipment_id = s.id "
                "WHERE s.order_id = ANY(:ids) GROUP BY s.id, s.order_id",
                ids=ids,
            )
            webhooks = await _rows(conn, "SELECT count(*) FROM inbound_webhook WHERE status = 'received'")
            job_attempts = await _rows(
                conn,
                "SELECT j.attempts FROM print_job j JOIN orders o ON o.print_job_id = j.id "
                "WHERE o.id = ANY(:ids)",
                ids=ids,
            )
            ship_attempts = await _rows(
                conn, "SELECT attempts FROM shipment WHERE order_id = ANY(:ids)", ids=ids
            )
    finally:
        await engine.dispose()
    counts: dict[str, Counter[str]] = {}
    for order_id, kind, n in events:
        counts.setdefault(str(order_id), Counter())[kind] = n
    return Audit(
        statuses=Counter(str(s) for s in status_of.values()) + Counter(missing=len(ids) - len(status_of)),
        not_delivered=[i for i in order_ids if status_of.get(i) != "delivered"],
        stuck_jobs=[str(j) for (j,) in stuck],
        # More than one, not fewer: an order short of a print or a booking is not delivered (lost).
        double_prints=[str(o) for o, completed, done in prints if completed > 1 or done > 1],
        double_bookings=[str(o) for o, shipments, parcels in bookings if shipments > 1 or parcels > 1],
        duplicated_events=[i for i in order_ids if any(counts.get(i, Counter())[kind] > 1 for kind in ONCE)],
        tracking_gaps=[str(o) for o, statuses in tracking if sorted(statuses or []) != sorted(TRACKING)],
        unprocessed_webhooks=int(webhooks[0][0]),
        print_job_attempts=Counter(int(a) for (a,) in job_attempts),
        booking_attempts=Counter(int(a) for (a,) in ship_attempts),
    )


async def delivered_count(database_url: str, order_ids: list[str]) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            (n,) = (
                await conn.execute(
                    sa.text("SELECT count(*) FROM orders WHERE id = ANY(:ids) AND status = 'delivered'"),
                    {"ids": [uuid.UUID(i) for i in order_ids]},
                )
            ).one()
            return int(n)
    finally:
        await engine.dispose()


def all_delivered(settings: Settings, placements: Placements) -> Callable[[], Awaitable[bool]]:
    async def condition() -> bool:
        delivered = await delivered_count(settings.resolved_database_url, placements.order_ids)
        return delivered == len(placements.order_ids)

    return condition


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.5
) -> float | None:
    """Poll ``condition`` until it holds (returns when, time.time()) or ``within`` s pass (None)."""
    deadline = time.monotonic() + within
    while True:
        if await condition():
            return time.time()
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(every)


def jitter(low: float, high: float, rng: random.Random) -> float:
    return low + (high - low) * rng.random()


async def run_crons(settings: Settings, names: list[str], *, every_s: float, until: asyncio.Event) -> int:
    """Enqueue the worker's cron jobs ``names`` in turn, one every ``every_s``, until ``until`` is set: a
    schedule of minutes compressed into seconds, as the courier's time scale compresses its day. Each is
    enqueued as arq's scheduler does (function ``cron:<name>``, a unique job id), so a run that a kill cuts
    short is not retried: the next tick is its retry. Returns how many were enqueued."""
    assert settings.redis_url is not None
    pool = await create_pool(
        RedisSettings.from_dsn(settings.redis_url), default_queue_name=settings.queue_name
    )
    sent = 0
    try:
        while not until.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), every_s)
                break
            name = names[sent % len(names)]
            await pool.enqueue_job(f"cron:{name}", _job_id=f"cron:{name}:{int(time.time() * 1000)}")
            sent += 1
    finally:
        await pool.aclose()
    return sent
