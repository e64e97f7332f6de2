"""POST /orders on PostgreSQL under a constant arrival rate, next to a plain insert on the same stack.

Run from the project root (PostgreSQL and Redis on loopback, as for the tests)::

    .venv/bin/python tests/benchmarks/bench_orders_load.py [--rates 50,100,200,300] [--seconds 8]
        [--sites 100] [--clients 32] [--saturation-seconds 5] [--seed 7]

One API worker: a uvicorn process (``--workers 1``, asyncio loop, no access log) serving the real app plus
``POST /bench/insert`` (``orders_load_app.py``), which authenticates like ``POST /orders`` and inserts one
row in the same request transaction. A fresh database (migrated, dropped at the end) holds one
organization, a technician key, a part whose model passed the real worker's check, and ~100 round-the-clock
FDM sites around German cities with 2-4 PETG printers each. Orders: quantity 1, 48 h SLA, ``accept_late``
(every valid order is accepted; a late one still reserves a slot), a destination near a German city, a
fresh ``Idempotency-Key`` each. The insert endpoint gets the same bodies and headers.

Open loop, per offered rate and endpoint: request i is sent at t0 + i / rate whatever became of the earlier
ones (one asyncio task each, on httpx pools without a connection limit), and its latency runs from that
scheduled time to the response, so a stalled server shows as latency and is never hidden by a generator
that waited for it (no coordinated omission). Latency percentiles cover every request, errors
included; errors are any answer but 201, or a transport failure. Achieved = 201s / (last answer - t0).
``lag p99`` is how late the generator itself sent (client overload, part of the latency above). CPU, as
shares of one core: ``srv cpu`` the API server process (``ms/req``: its CPU time per request), ``gen cpu``
the load generator (this process), ``db cpu`` every PostgreSQL and Redis process, ``others`` every other
process on the machine (another session's tests would show there; they are also measured before the run).
All of them share the machine's cores. After a phase the next one waits until the server has finished the
requests of clients that gave up (its CPU idle).

Saturation: a closed loop of ``--clients`` concurrent clients, each sending its next request as soon as the
previous one answered, for ``--saturation-seconds``: completed 201s per second.

Goals: p99 <= 50 ms at 200 req/s per API worker; orders' saturation >= 0.7x the plain insert's. Every order
placed stays in the database (its reservation too), so routing works on a fuller calendar as the run goes
on: the orders count is printed with each orders row. The arq queue the orders fed (no worker runs during
the measurement) is deleted at the end with the database; the server's warnings are summarised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from arq.constants import health_check_key_suffix, job_key_prefix, retry_key_prefix
from sqlalchemy.engine import make_url

from services.config import Settings
from services.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: the checkout's `tests` package
    sys.path.insert(0, str(ROOT))

from tests.benchmarks.orders_load_app import CREATE_TABLE  # noqa: E402
from tests.builders import (  # noqa: E402
    bearer,
    factory_body,
    make_account,
    make_admin_token,
    make_key,
    make_orderable_part,
    order_body,
)

POSTGRES_URL = os.environ.get(
    "SPAREFLOW_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = "redis://127.0.0.1:6379/0"
APP_FACTORY = "tests.benchmarks.orders_load_app:create_bench_app"
GOAL_P99_MS = 50.0
GOAL_P99_RATE = 200.0
GOAL_SATURATION_RATIO = 0.7
REQUEST_TIMEOUT_S = 60.0
KEEPALIVE_EXPIRY_S = 2.0
CLIENT_SHARDS = 8
WARMUP_S = 2.0
SETTLE_MAX_S = 120.0
IDLE_CORE_SHARE = 0.05  # a server using less of a core than this is idle
PART_NUMBER = "LOAD-1"
# (name, lat, lon, postal code): where sites cluster and orders go.
CITIES = [
    ("Berlin", 52.52, 13.40, "10115"), ("Hamburg", 53.55, 9.99, "20095"),
    ("Munich", 48.14, 11.58, "80331"), ("Cologne", 50.94, 6.96, "50667"),
    ("Frankfurt", 50.11, 8.68, "60311"), ("Stuttgart", 48.78, 9.18, "70173"),
    ("Duesseldorf", 51.23, 6.78, "40213"), ("Leipzig", 51.34, 12.37, "04109"),
    ("Dortmund", 51.51, 7.47, "44135"), ("Essen", 51.46, 7.01, "45127"),
    ("Bremen", 53.08, 8.80, "28195"), ("Dresden", 51.05, 13.74, "01067"),
    ("Hanover", 52.38, 9.73, "30159"), ("Nuremberg", 49.45, 11.08, "90402"),
    ("Kiel", 54.32, 10.12, "24103"), ("Rostock", 54.09, 12.10, "18055"),
    ("Freiburg", 47.99, 7.85, "79098"), ("Erfurt", 50.98, 11.03, "99084"),
]  # fmt: skip
SITE_SIGMA_DEG = 0.25  # sites spread over a metropolitan region
DESTINATION_SIGMA_DEG = 0.4
BUILD_VOLUMES = ({"x_mm": 250, "y_mm": 210, "z_mm": 220}, {"x_mm": 256, "y_mm": 256, "z_mm": 256})
ENDPOINTS = {"orders": "/orders", "insert": "/bench/insert"}


def percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


# --- platform: database, server, accounts ---------------------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def api_server(settings: Settings, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The API in a process of its own; what it logs goes to ``log``."""
    env = {
        **os.environ,
        "SPAREFLOW_DATABASE_URL": settings.resolved_database_url,
        "SPAREFLOW_REDIS_URL": str(settings.redis_url),
        "SPAREFLOW_QUEUE_NAME": settings.queue_name,
        "SPAREFLOW_DATA_DIR": str(settings.data_dir),
        "SPAREFLOW_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "uvicorn", "--factory", APP_FACTORY, "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:]


async def wait_until_up(client: httpx.AsyncClient, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server exited with {process.returncode}:\n{tail(log)}")
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the API server did not answer /health within 60 s")


def site_printers(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "key": f"fdm-{n:02d}",
            "model": "i3 MK4-class",
            "build_volume": rng.choice(BUILD_VOLUMES),
            "materials_supported": ["PLA", "PETG", "ASA"],
            "materials_loaded": ["PETG"] if rng.random() < 0.5 else ["PETG", "PLA"],
        }
        for n in range(rng.randint(2, 4))
    ]


async def make_sites(client: httpx.AsyncClient, admin: str, rng: random.Random, count: int) -> int:
    """``count`` round-the-clock sites around the cities; returns how many printers they have."""
    printers = 0
    for n in range(count):
        _, lat, lon, _ = CITIES[n % len(CITIES)]
        at = (rng.gauss(lat, SITE_SIGMA_DEG), rng.gauss(lon, SITE_SIGMA_DEG))
        body = factory_body(f"load-{n:03d}", at, printers=site_printers(rng))
        response = await client.post("/sites", json=body, headers=bearer(admin))
        assert response.status_code == 201, response.text
        printers += len(body["printers"])
    return printers


@dataclass(frozen=True)
class Prepared:
    content: bytes
    headers: dict[str, str]


def order_request(rng: random.Random, token: str) -> Prepared:
    city, lat, lon, postal_code = rng.choice(CITIES)
    at = (rng.gauss(lat, DESTINATION_SIGMA_DEG), rng.gauss(lon, DESTINATION_SIGMA_DEG))
    body = order_body(PART_NUMBER, at, accept_late=True)
    body["destination"]["address"].update(city=city, postal_code=postal_code)
    headers = {
        **bearer(token),
        "Idempotency-Key": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    return Prepared(json.dumps(body).encode(), headers)


# --- load --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: str  # the HTTP status, or the transport error's class name
    latency_s: float
    done_at: float  # loop time


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DB_PROCESSES = {"postgres", "redis-server"}


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class ProcessCpu:
    name: str
    started: int  # clock ticks after boot: with the pid, who the process is
    cpu_s: float  # user + system so far


def cpu_by_process() -> dict[int, ProcessCpu]:
    """Every process on the machine (Linux /proc)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            head, _, rest = Path(entry.path, "stat").read_text().rpartition(")")
        except OSError:  # gone meanwhile
            continue
        fields = rest.split()
        found[int(entry.name)] = ProcessCpu(
            name=head.split("(", 1)[1],
            started=int(fields[19]),
            cpu_s=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        )
    return found


@dataclass
class Usage:
    """CPU used over a phase, as shares of one core: the API server, this process (the load generator),
    PostgreSQL and Redis (all their processes), and every other process on the machine."""

    server_pid: int
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    server: float = 0.0
    generator: float = 0.0
    database: float = 0.0
    others: float = 0.0
    _started: tuple[float, dict[int, ProcessCpu]] = field(default=(0.0, {}), repr=False)

    def start(self) -> None:
        self._started = (time.perf_counter(), cpu_by_process())

    def stop(self) -> None:
        after = cpu_by_process()
        started, before = self._started
        self.wall_s = time.perf_counter() - started
        shares: dict[str, float] = defaultdict(float)
        for pid, now in after.items():
            # A process that started during the phase counts whole; one that ended is missed.
            then = before.get(pid)
            used = now.cpu_s - then.cpu_s if then is not None and then.started == now.started else now.cpu_s
            if pid == self.server_pid:
                self.server_cpu_s = used
                shares["server"] += used
            elif pid == os.getpid():
                shares["generator"] += used
            elif now.name in DB_PROCESSES:
                shares["database"] += used
            else:
                shares["others"] += used
        self.server = shares["server"] / self.wall_s
        self.generator = shares["generator"] / self.wall_s
        self.database = shares["database"] / self.wall_s
        self.others = shares["others"] / self.wall_s


@dataclass
class Phase:
    endpoint: str
    offered: float | None  # req/s; None in a closed loop
    outcomes: list[Outcome]
    started: float
    usage: Usage
    lags_s: list[float] = field(default_factory=list)
    error_samples: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(o.status == "201" for o in self.outcomes)

    @property
    def errors(self) -> int:
        return len(self.outcomes) - self.ok

    @property
    def throughput(self) -> float:
        if not self.outcomes:
            return 0.0
        return self.ok / (max(o.done_at for o in self.outcomes) - self.started)

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.usage.server_cpu_s / len(self.outcomes) if self.outcomes else float("nan")

    def latencies_ms(self) -> list[float]:
        return sorted(1000 * o.latency_s for o in self.outcomes)


async def send(
    client: httpx.AsyncClient, path: str, request: Prepared, since: float, samples: dict[str, str]
) -> Outcome:
    loop = asyncio.get_running_loop()
    try:
        response = await client.post(path, content=request.content, headers=request.headers)
        status = str(response.status_code)
        if status != "201":
            samples.setdefault(status, response.text[:300])
    except httpx.HTTPError as exc:
        status = type(exc).__name__
        samples.setdefault(status, str(exc)[:300])
    done = loop.time()
    return Outcome(status, done - since, done)


async def open_loop(
    shards: Sequence[httpx.AsyncClient], endpoint: str, requests: list[Prepared], rate: float, usage: Usage
) -> Phase:
    loop = asyncio.get_running_loop()
    path = ENDPOINTS[endpoint]
    samples: dict[str, str] = {}
    tasks: list[asyncio.Task[Outcome]] = []
    lags = []
    usage.start()
    t0 = loop.time() + 0.01
    for i, request in enumerate(requests):
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append(max(0.0, loop.time() - scheduled))
        client = shards[i % len(shards)]
        tasks.append(asyncio.create_task(send(client, path, request, scheduled, samples)))
    outcomes = list(await asyncio.gather(*tasks))
    usage.stop()
    return Phase(endpoint, rate, outcomes, t0, usage, lags, samples)


async def closed_loop(
    shards: Sequence[httpx.AsyncClient],
    endpoint: str,
    make: Callable[[], Prepared],
    concurrency: int,
    seconds: float,
    usage: Usage,
) -> Phase:
    loop = asyncio.get_running_loop()
    path = ENDPOINTS[endpoint]
    samples: dict[str, str] = {}
    outcomes: list[Outcome] = []
    usage.start()
    started = loop.time()
    deadline = started + seconds

    async def one_client(client: httpx.AsyncClient) -> None:
        while loop.time() < deadline:
            request = make()
            outcomes.append(await send(client, path, request, loop.time(), samples))

    await asyncio.gather(*(one_client(shards[n % len(shards)]) for n in range(concurrency)))
    usage.stop()
    return Phase(endpoint, None, outcomes, started, usage, [], samples)


async def settle(server_pid: int) -> None:
    """Wait until the server has finished what timed-out clients left it (its CPU falls idle)."""
    deadline = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        before = process_cpu_s(server_pid)
        await asyncio.sleep(0.5)
        if process_cpu_s(server_pid) - before < 0.5 * IDLE_CORE_SHARE:
            return


# --- report ------------------------------------------------------------------------------------------

RATE_COLUMNS = (
    ("endpoint", 8), ("offered/s", 9), ("sent", 6), ("201", 6), ("errors", 6), ("achieved/s", 10),
    ("p50 ms", 8), ("p99 ms", 8), ("max ms", 8), ("lag p99", 8), ("srv cpu", 7), ("ms/req", 6),
    ("gen cpu", 7), ("db cpu", 7), ("others", 7), ("orders", 7),
)  # fmt: skip
SATURATION_COLUMNS = (
    ("endpoint", 8), ("clients", 7), ("201", 6), ("errors", 6), ("done/s", 8), ("p50 ms", 8), ("p99 ms", 8),
    ("max ms", 8), ("srv cpu", 7), ("ms/req", 6), ("gen cpu", 7), ("db cpu", 7),
    ("others", 7),
)  # fmt: skip


def row(columns: tuple[tuple[str, int], ...], cells: tuple[str, ...]) -> str:
    return " ".join(f"{cell:>{width}}" for (_, width), cell in zip(columns, cells, strict=True))


def header(columns: tuple[tuple[str, int], ...]) -> str:
    return row(columns, tuple(name for name, _ in columns))


def rate_row(phase: Phase, orders_before: int | None) -> str:
    ms = phase.latencies_ms()
    lags = sorted(1000 * lag for lag in phase.lags_s)
    return row(
        RATE_COLUMNS,
        (
            phase.endpoint,
            f"{phase.offered:g}",
            f"{len(phase.outcomes)}",
            f"{phase.ok}",
            f"{phase.errors}",
            f"{phase.throughput:.1f}",
            f"{percentile(ms, 0.5):.1f}",
            f"{percentile(ms, 0.99):.1f}",
            f"{ms[-1]:.1f}",
            f"{percentile(lags, 0.99):.1f}",
            f"{phase.usage.server:.0%}",
            f"{phase.cpu_ms_per_request:.1f}",
            f"{phase.usage.generator:.0%}",
            f"{phase.usage.database:.0%}",
            f"{phase.usage.others:.0%}",
            "" if orders_before is None else f"{orders_before}",
        ),
    )


def saturation_row(phase: Phase, clients: int) -> str:
    ms = phase.latencies_ms()
    return row(
        SATURATION_COLUMNS,
        (
            phase.endpoint,
            f"{clients}",
            f"{phase.ok}",
            f"{phase.errors}",
            f"{phase.throughput:.1f}",
            f"{percentile(ms, 0.5):.1f}",
            f"{percentile(ms, 0.99):.1f}",
            f"{ms[-1]:.1f}",
            f"{phase.usage.server:.0%}",
            f"{phase.cpu_ms_per_request:.1f}",
            f"{phase.usage.generator:.0%}",
            f"{phase.usage.database:.0%}",
            f"{phase.usage.others:.0%}",
        ),
    )


def print_server_log(log: Path) -> None:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    if not lines:
        print("server log (warnings and errors): empty")
        return
    print(f"server log (warnings and errors): {len(lines)} lines; the most frequent:")
    for line, count in Counter(line[:200] for line in lines).most_common(5):
        print(f"  {count:6d} x {line}")


def print_errors(phases: list[Phase]) -> None:
    failed = [p for p in phases if p.errors]
    if not failed:
        print("\nerrors: none")
        return
    print("\nerrors (status: count; first answer of each status):")
    for phase in failed:
        counts = Counter(o.status for o in phase.outcomes if o.status != "201")
        where = f"{phase.endpoint} @ {phase.offered:g}/s" if phase.offered else f"{phase.endpoint} closed"
        print(f"  {where}: {dict(counts)}")
        for status, sample in phase.error_samples.items():
            print(f"    {status}: {sample}")


# --- run ---------------------------------------------------------------------------------------------


async def count_orders(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM orders")
    return count


async def run(args: argparse.Namespace, settings: Settings, db: asyncpg.Connection) -> None:
    rng = random.Random(args.seed)
    port = free_port()
    limits = httpx.Limits(
        max_connections=None,  # never hold a scheduled request back
        max_keepalive_connections=None,
        # Below uvicorn's 5 s keep-alive: reusing a connection the server is closing fails with ReadError.
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    log = settings.data_dir.parent / "server.log"
    with api_server(settings, port, log) as process:
        async with AsyncExitStack() as stack:
            # Several pools: an httpx pool's work per request grows with its connections and waiting
            # requests; with one pool the generator used 91% of a core at 32 closed-loop clients, 36% with 8.
            shards = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=REQUEST_TIMEOUT_S
                    )
                )
                for _ in range(CLIENT_SHARDS)
            ]
            client = shards[0]
            await wait_until_up(client, process, log)
            started = time.perf_counter()
            admin = await make_admin_token(settings)
            org = await make_account(client, admin, "organizations", slug="load-org")
            technician = await make_key(client, admin, "technician", organization_id=org["id"])
            await make_orderable_part(
                client, admin, settings, organization_id=org["id"], part_number=PART_NUMBER
            )
            printers = await make_sites(client, admin, rng, args.sites)
            print(
                f"setup: {args.sites} sites, {printers} printers, 1 part, "
                f"{time.perf_counter() - started:.1f} s; API: 1 uvicorn worker (pid {process.pid}) on "
                f"127.0.0.1:{port}; {os.cpu_count()} CPUs"
            )
            server = process.pid

            def make() -> Prepared:
                return order_request(rng, technician)

            for endpoint in ENDPOINTS:  # warm-up: connections, the routing snapshot, code paths
                await closed_loop(shards, endpoint, make, len(shards), WARMUP_S, Usage(server))

            phases: list[Phase] = []
            print(
                f"\nopen loop, {args.seconds:g} s per rate and endpoint; latency from each request's "
                "scheduled send time"
            )
            print(header(RATE_COLUMNS))
            for rate in args.rates:
                for endpoint in ("insert", "orders"):
                    before = await count_orders(db) if endpoint == "orders" else None
                    requests = [make() for _ in range(round(rate * args.seconds))]
                    phase = await open_loop(shards, endpoint, requests, rate, Usage(server))
                    phases.append(phase)
                    print(rate_row(phase, before))
                    await settle(server)

            print(f"\nsaturation: closed loop, {args.clients} clients, {args.saturation_seconds:g} s each")
            print(header(SATURATION_COLUMNS))
            saturation: dict[str, Phase] = {}
            for endpoint in ("insert", "orders"):
                phase = await closed_loop(
                    shards, endpoint, make, args.clients, args.saturation_seconds, Usage(server)
                )
                saturation[endpoint] = phase
                phases.append(phase)
                print(saturation_row(phase, args.clients))
                await settle(server)

    print_errors(phases)
    print_server_log(log)
    print("\ngoals")
    at_goal_rate = [p for p in phases if p.endpoint == "orders" and p.offered == GOAL_P99_RATE]
    if at_goal_rate:
        p99 = percentile(at_goal_rate[0].latencies_ms(), 0.99)
        verdict = "met" if p99 <= GOAL_P99_MS and at_goal_rate[0].errors == 0 else "MISSED"
        print(
            f"  POST /orders p99 <= {GOAL_P99_MS:g} ms at {GOAL_P99_RATE:g} req/s per API worker: "
            f"{p99:.1f} ms, {at_goal_rate[0].errors} errors: {verdict}"
        )
    else:
        print(f"  POST /orders p99 at {GOAL_P99_RATE:g} req/s: not measured (add it to --rates)")
    insert_rate, orders_rate = saturation["insert"].throughput, saturation["orders"].throughput
    ratio = orders_rate / insert_rate if insert_rate else float("nan")
    verdict = "met" if ratio >= GOAL_SATURATION_RATIO else "MISSED"
    print(
        f"  orders saturation >= {GOAL_SATURATION_RATIO}x insert: {orders_rate:.1f} / {insert_rate:.1f} "
        f"req/s = {ratio:.2f}x: {verdict}"
    )
    reservations = await db.fetchval("SELECT count(*) FROM printer_reservation WHERE released_at IS NULL")
    print(f"\nat the end: {await count_orders(db)} orders, {reservations} active printer reservations")


async def forget_queue(settings: Settings) -> None:
    """The print-preparation jobs the orders enqueued (no worker ran them) and the queue itself."""
    assert settings.redis_url
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        queue = settings.queue_name
        job_ids = [member.decode() for member in await redis.zrange(queue, 0, -1)]
        for start in range(0, len(job_ids), 1000):
            chunk = job_ids[start : start + 1000]
            await redis.delete(*(f"{job_key_prefix}{j}" for j in chunk))
            await redis.delete(*(f"{retry_key_prefix}{j}" for j in chunk))
        await redis.delete(queue, f"{queue}{health_check_key_suffix}")
    finally:
        await redis.aclose()


async def busy_before(seconds: float) -> Usage:
    """What the machine does before anything of the run starts (other processes: another benchmark...)."""
    usage = Usage(server_pid=-1)
    usage.start()
    await asyncio.sleep(seconds)
    usage.stop()
    return usage


async def main(args: argparse.Namespace) -> None:
    before = await busy_before(2.0)
    print(
        f"before the run, CPU used by PostgreSQL + Redis: {before.database:.0%}, by other processes: "
        f"{before.others:.0%} (of one core; {os.cpu_count()} cores)"
    )
    name = f"spareflow_bench_{os.getpid()}_{secrets.token_hex(3)}"
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    admin = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL))
    with tempfile.TemporaryDirectory(prefix="spareflow-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            database_url=url,
            redis_url=args.redis_url,
            queue_name=f"bench:{uuid.uuid4().hex}",
            log_level="WARNING",
        )
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            await upgrade(url)
            db = await asyncpg.connect(asyncpg_dsn(url))
            try:
                await db.execute(CREATE_TABLE)
                await run(args, settings, db)
            finally:
                await db.close()
        finally:
            try:
                await forget_queue(settings)
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()


def rates(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rates", type=rates, default=[50.0, 100.0, 200.0, 300.0], help="req/s, e.g. 50,100")
    parser.add_argument("--seconds", type=float, default=8.0, help="per offered rate and endpoint")
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32, help="closed-loop clients for the saturation")
    parser.add_argument("--saturation-seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--redis-url", default=REDIS_URL)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
