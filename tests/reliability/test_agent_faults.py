"""The factory agent as a real process, against the API on a real port, under process faults.

1. Paused past its lease (SIGSTOP) and resumed (SIGCONT): meanwhile a second agent has re-claimed the job
   (fence 2). The paused agent's next call with its old token is refused (409 ``lease_lost``,
   ``superseded``), it cancels its own print on its printer and never completes; the second agent prints and
   completes. The lease log holds fence 1 expired and fence 2 completed: one completed lease, no double print.
2. Killed mid-print (SIGKILL) and restarted with the same state directory within the lease: it reconciles
   its journal with the print host (which kept printing, or finished, while it was dead) instead of
   claiming anew, and completes the job under its first lease (fence 1); the host printed the file once.

Each agent is ``python -m services factory-agent`` with a simulated print host in its state directory; its
JSON event lines (stdout) are read as they come. Everything is bounded: a hard timeout around each test, a
timeout on every wait, and every agent process is killed (SIGKILL, after SIGCONT) in the teardown.
Both backends (the parametrized ``settings``): each run takes about 10-20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.api.background import serve_in_background
from services.config import Settings
from tests.builders import HAMBURG, bearer, lease_outcomes, make_key, make_shop, order_body, place_order
from tests.workers import run_worker_until_idle

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
AGENT_COMMAND = (sys.executable, "-m", "services", "factory-agent")
# Every test body runs under this; each wait inside it has its own, shorter bound.
TEST_TIMEOUT_S = 40.0
# How long an agent process may take to start and claim, or to get to an event after a cause.
EVENT_TIMEOUT_S = 12.0
# The SIGSTOP test: a lease short enough to lapse while the agent is paused. The paused agent's print lasts
# long enough to be running still when it resumes (so that it has a print to cancel), or, in the variant,
# ends while it is paused (so that its first call on resuming is a complete); the second agent's print lasts
# until after the paused one resumed (so that the refusal is for a superseded lease, not a finished job).
SHORT_LEASE_S = 2.0
PAUSED_PRINT_S = {False: 20.0, True: 3.0}
SECOND_PRINT_S = 5.0
# The SIGKILL test: a lease long enough for the restart to come in time.
LONG_LEASE_S = 10.0
POLL_S = 0.2


@pytest.fixture
def lease_seconds() -> float:
    return LONG_LEASE_S


@pytest.fixture
def settings(settings: Settings, lease_seconds: float) -> Settings:
    # A claim long-polls at most 1 s: agents with nothing to claim answer promptly and never hold a request
    # open for long (the server's shutdown waits for requests in flight).
    return settings.model_copy(
        update={
            "factory_lease_seconds": lease_seconds,
            "factory_claim_poll_s": 0.1,
            "factory_claim_max_wait_s": 1.0,
        }
    )


@pytest.fixture
async def api_url(settings: Settings) -> AsyncIterator[str]:
    """The API on a loopback port, served in the test's event loop, for the agent processes."""
    async with serve_in_background(settings) as url:
        yield url


@dataclass
class Agent:
    """One ``spareflow factory-agent`` process and the events it has written so far."""

    name: str
    state_dir: Path
    process: asyncio.subprocess.Process
    stderr_path: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.events.append({"event": "not_json", "line": line})

    def named(self, event: str, **fields: object) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
        ]

    def describe(self) -> str:
        stderr = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        lines = "\n".join(json.dumps(e) for e in self.events)
        return f"agent {self.name} (exit {self.process.returncode}):\n{lines}\nstderr:\n{stderr[-3000:]}"

    async def wait_for(self, event: str, within: float = EVENT_TIMEOUT_S, **fields: object) -> dict[str, Any]:
        """The first ``event`` with these fields, waiting (without blocking the loop) up to ``within`` s."""
        deadline = time.monotonic() + within
        while True:
            found = self.named(event, **fields)
            if found:
                return found[0]
            if self.process.returncode is not None:
                raise AssertionError(f"exited before {event} {fields}\n{self.describe()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {event} {fields} within {within} s\n{self.describe()}")
            await asyncio.sleep(0.05)

    def signal(self, signum: signal.Signals) -> None:
        assert self.process.returncode is None, self.describe()
        self.process.send_signal(signum)

    async def kill(self) -> None:
        """SIGKILL (a stopped process is continued first), then reap it and drain its output."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 10)
        if self.reader is not None:
            await asyncio.wait_for(self.reader, 10)


@dataclass
class Agents:
    """Starts agent processes; the fixture kills whatever is still running."""

    base_url: str
    root: Path
    started: list[Agent] = field(default_factory=list)

    async def start(
        self, name: str, *, key: str, printer_id: str, state_dir: Path, print_seconds: float
    ) -> Agent:
        """An agent with a simulated host; every print takes ``print_seconds`` (the estimate is longer)."""
        stderr_path = self.root / f"{name}-{len(self.started)}.stderr"
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *AGENT_COMMAND,
                "--api",
                self.base_url,
                "--key",
                key,
                "--printer-id",
                printer_id,
                "--print-host",
                "simulated",
                "--state-dir",
                str(state_dir),
                "--sim-speed",
                "1",
                "--sim-max-seconds",
                str(print_seconds),
                "--poll-seconds",
                str(POLL_S),
                cwd=REPO,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        agent = Agent(name, state_dir, process, stderr_path)
        agent.reader = asyncio.create_task(agent.read())
        self.started.append(agent)
        return agent

    async def kill_all(self) -> None:
        for agent in self.started:
            await agent.kill()


@pytest.fixture
async def agents(api_url: str, tmp_path: Path) -> AsyncIterator[Agents]:
    # Depends on api_url, so torn down first: no agent is left calling while the server shuts down.
    pool = Agents(api_url, tmp_path)
    try:
        yield pool
    finally:
        await pool.kill_all()


async def one_ready_job(client: httpx.AsyncClient, settings: Settings) -> dict[str, Any]:
    """A shop with one round-the-clock site, one order routed there and prepared, and the site's key."""
    shop = await make_shop(client, settings, {"hamburg": HAMBURG})
    response = await place_order(client, shop["tech"], order_body("BR-1"))
    assert response.status_code == 201, response.text
    order = response.json()
    await run_worker_until_idle(settings)
    key = await make_key(client, shop["admin"], "factory", site_id=shop["hamburg"]["id"])
    jobs = (await client.get("/factory/jobs", headers=bearer(key))).json()["items"]
    assert [j["status"] for j in jobs] == ["ready"], jobs
    return {**shop, "order": order, "key": key, "printer_id": order["routing"]["quote"]["printer_id"]}


async def job_when(
    client: httpx.AsyncClient, key: str, job_id: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The job as its site sees it, once ``condition`` holds (polled, up to EVENT_TIMEOUT_S)."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        job: dict[str, Any] = (await client.get(f"/factory/jobs/{job_id}", headers=bearer(key))).json()
        if condition(job) or time.monotonic() >= deadline:
            return job
        await asyncio.sleep(0.05)


def host_print(state_dir: Path) -> dict[str, Any]:
    """The simulated printer's state: ``{"current": {name, started_at, duration, cancelled_at...}, ...}``."""
    state: dict[str, Any] = json.loads((state_dir / "simulated-printer" / "host.json").read_text())
    return state


async def settled(
    client: httpx.AsyncClient, shop: dict[str, Any], job_id: str
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The job (as its site sees it), the order, and the order's event kinds."""
    job = (await client.get(f"/factory/jobs/{job_id}", headers=bearer(shop["key"]))).json()
    order_id = shop["order"]["id"]
    order = (await client.get(f"/orders/{order_id}", headers=bearer(shop["tech"]))).json()
    events = (await client.get(f"/orders/{order_id}/events", headers=bearer(shop["tech"]))).json()
    return job, order, [e["kind"] for e in events]


def only(events: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    return [e for e in events if predicate(e)]


@pytest.mark.parametrize("lease_seconds", [SHORT_LEASE_S])
@pytest.mark.parametrize(
    "ends_while_paused", [False, True], ids=["resumed-mid-print", "print-ended-meanwhile"]
)
async def test_agent_paused_past_its_lease_is_refused_and_cancels_its_print(
    client: httpx.AsyncClient, settings: Settings, agents: Agents, tmp_path: Path, ends_while_paused: bool
) -> None:
    started = time.perf_counter()
    paused_print_s = PAUSED_PRINT_S[ends_while_paused]
    async with asyncio.timeout(TEST_TIMEOUT_S):
        shop = await one_ready_job(client, settings)
        common = {"key": shop["key"], "printer_id": shop["printer_id"]}
        a = await agents.start("A", state_dir=tmp_path / "a", print_seconds=paused_print_s, **common)
        claimed = await a.wait_for("claimed")
        job_id = claimed["job_id"]
        assert claimed["fence"] == 1
        # B starts only now, so that A is certainly the first to claim; it polls while A holds the job.
        b = await agents.start("B", state_dir=tmp_path / "b", print_seconds=SECOND_PRINT_S, **common)
        await a.wait_for("started", job_id=job_id)
        a_print = host_print(a.state_dir)["current"]
        assert a_print["name"] == f"{job_id}-1.gcode"
        assert a_print["duration"] == paused_print_s, "the slicer's estimate is shorter than the test needs"
        a_ends_at = a_print["started_at"] + a_print["duration"]

        a.signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        paused_events = len(a.events)
        # A's lease runs out while it is paused; B takes the job over and prints it.
        taken = await b.wait_for("claimed", within=SHORT_LEASE_S + EVENT_TIMEOUT_S, job_id=job_id)
        assert taken["fence"] == 2
        assert time.monotonic() - paused_at >= SHORT_LEASE_S * 0.5  # not before A's lease could lapse
        await b.wait_for("started", job_id=job_id)
        assert len(a.events) == paused_events, "a stopped process wrote events"
        # B tells the API right after its start (``started`` comes just before that heartbeat).
        job = await job_when(client, shop["key"], job_id, lambda j: j["status"] == "printing")
        assert job["fence"] == 2, job

        if ends_while_paused:
            # A's printer finishes A's print while A is paused: on resuming, A finds it done and completes.
            await asyncio.sleep(max(0.0, a_ends_at - time.time()) + 0.3)
        else:
            assert time.time() < a_ends_at - 1, "A's print would end before A resumes"
        assert not b.named("completed"), "B finished before A resumed: the test proves less than it says"

        a.signal(signal.SIGCONT)
        lost = await a.wait_for("lease_lost", job_id=job_id)
        assert (lost["code"], lost["reason"]) == ("lease_lost", "superseded"), a.describe()
        a_print = host_print(a.state_dir)["current"]
        assert a_print["name"] == f"{job_id}-1.gcode"
        if ends_while_paused:
            # Nothing left to cancel: the part was printed on A's printer too (a pause cannot be fenced
            # against), but the API recorded nothing of it.
            assert lost["cancelled_print"] is False, a.describe()
            assert a_print["cancelled_at"] is None
        else:
            assert lost["cancelled_print"] is True, a.describe()
            assert a_print["cancelled_at"] is not None
            assert a_print["cancelled_at"] < a_ends_at
        assert not (a.state_dir / "job.json").exists(), "A kept the lost job in its journal"

        done = await b.wait_for("completed", within=SECOND_PRINT_S + EVENT_TIMEOUT_S, job_id=job_id)
        assert done["status"] == "done"
        b_print = host_print(b.state_dir)["current"]
        assert b_print["name"] == f"{job_id}-2.gcode"
        assert b_print["cancelled_at"] is None

        # A did nothing more with the job: no complete or fail accepted or even reported, no second claim.
        for event in ("completed", "failed", "started"):
            assert len(a.named(event, job_id=job_id)) == (1 if event == "started" else 0), a.describe()
        assert len(a.named("claimed", job_id=job_id)) == 1, a.describe()
        assert len(b.named("claimed", job_id=job_id)) == 1, b.describe()

        job, order, kinds = await settled(client, shop, job_id)
        assert (job["status"], job["fence"]) == ("done", 2), job
        assert order["status"] == "printed"
        assert kinds.count("printed") == 1, kinds
        log = await lease_outcomes(settings, job_id)
        assert log == [(1, "expired"), (2, "completed")], log
        assert [outcome for _, outcome in log].count("completed") == 1
    backend = settings.resolved_database_url.split(":")[0]
    variant = "ended meanwhile" if ends_while_paused else "mid-print"
    print(f"\n{backend}: SIGSTOP test ({variant}) {time.perf_counter() - started:.1f} s")


@pytest.mark.parametrize("finishes_while_dead", [False, True], ids=["prints-on", "finished-meanwhile"])
async def test_agent_killed_mid_print_reconciles_after_restart(
    client: httpx.AsyncClient, settings: Settings, agents: Agents, tmp_path: Path, finishes_while_dead: bool
) -> None:
    started = time.perf_counter()
    print_s = 2.0 if finishes_while_dead else 6.0
    async with asyncio.timeout(TEST_TIMEOUT_S):
        shop = await one_ready_job(client, settings)
        state_dir = tmp_path / "agent"
        options = {"key": shop["key"], "printer_id": shop["printer_id"], "state_dir": state_dir}
        first = await agents.start("A", print_seconds=print_s, **options)
        claimed = await first.wait_for("claimed")
        job_id = claimed["job_id"]
        assert claimed["fence"] == 1
        await first.wait_for("started", job_id=job_id)
        first.signal(signal.SIGKILL)
        await asyncio.wait_for(first.process.wait(), 10)
        killed_at = time.monotonic()
        assert first.process.returncode == -signal.SIGKILL

        printing = host_print(state_dir)["current"]
        assert printing["name"] == f"{job_id}-1.gcode"
        assert printing["duration"] == print_s, "the slicer's estimate is shorter than the test needs"
        ends_at = printing["started_at"] + printing["duration"]
        if finishes_while_dead:
            await asyncio.sleep(max(0.0, ends_at - time.time()) + 0.3)
        else:
            assert time.time() < ends_at, "the print ended before the agent was killed"

        again = await agents.start("A-restarted", print_seconds=print_s, **options)
        reconciled = await again.wait_for("reconciled")
        assert time.monotonic() - killed_at < LONG_LEASE_S, "restarted too late: the lease may have lapsed"
        assert reconciled["job_id"] == job_id
        assert reconciled["phase"] == "started"
        if finishes_while_dead:
            assert (reconciled["host_state"], reconciled["action"]) == ("done", "complete"), again.describe()
        else:
            assert (reconciled["host_state"], reconciled["action"]) == ("printing", "watch"), again.describe()
        done = await again.wait_for("completed", within=print_s + EVENT_TIMEOUT_S, job_id=job_id)
        assert done["status"] == "done"

        # Resumed, not claimed anew; nothing printed again, nothing refused or failed.
        names = [e["event"] for e in again.events]
        assert names.index("reconciled") < names.index("completed")
        assert not only(again.events, lambda e: e["event"] in {"claimed", "downloaded", "started"}), names
        assert not only(again.events, lambda e: e["event"] in {"lease_lost", "failed"}), again.describe()
        host = host_print(state_dir)
        assert host["current"] == printing, "the host printed something else after the restart"
        assert host["history"] == {}
        assert not (state_dir / "job.json").exists(), "the completed job is still journalled"

        job, order, kinds = await settled(client, shop, job_id)
        assert (job["status"], job["fence"]) == ("done", 1), job
        assert order["status"] == "printed"
        assert kinds.count("printed") == 1, kinds
        assert await lease_outcomes(settings, job_id) == [(1, "completed")]
    backend = settings.resolved_database_url.split(":")[0]
    print(
        f"\n{backend}: SIGKILL test ({'finished' if finishes_while_dead else 'printing'}) "
        f"{time.perf_counter() - started:.1f} s"
    )
