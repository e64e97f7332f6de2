"""Real peer servers for tests: a real OctoPrint with its Virtual Printer, a real Karrio shipping gateway.

Each is started with its script from ``../shared/peers`` on a free loopback port and installed once into
``.cache/<name>-venv``; without ``../shared`` (or curl, which the scripts use) the tests that need it are
skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
OCTOPRINT_UP = SHARED / "peers" / "octoprint-up.sh"
OCTOPRINT_VENV = REPO / ".cache" / "octoprint-venv"
OCTOPRINT_KEY = "SPAREFLOW_CONTRACT_KEY_000000001"
KARRIO_UP = SHARED / "peers" / "karrio-up.sh"
KARRIO_MAKE_TRACKER = SHARED / "peers" / "karrio-make-tracker.py"
KARRIO_VENV = REPO / ".cache" / "karrio-venv"
KARRIO_TOKEN = "key_spareflow_local_test_000000000"  # the token karrio-up.sh gives its admin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(pid: int) -> None:
    # The script detaches the server (nohup): it is not our child, so poll until it is gone.
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _require(script: Path, peer: str) -> None:
    """Skip the calling test when ``script`` (from ``../shared``) or the curl it uses is missing."""
    if not script.exists():
        pytest.skip(f"{SHARED} is absent: no script to run a real {peer}")
    if shutil.which("curl") is None:
        pytest.skip(f"{script.name} needs curl")


@contextmanager
def _running(script: Path, args: Sequence[str], env: Mapping[str, str]) -> Iterator[None]:
    """Run an ``*-up.sh`` script, which starts its server detached and prints its PID last; stop the
    server after the block."""
    result = subprocess.run(
        ["bash", str(script), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=900,  # the first run installs the peer (and, for Karrio, migrates its database)
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    pid = int(result.stdout.split()[-1])
    try:
        yield
    finally:
        _stop(pid)


@contextmanager
def octoprint_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running OctoPrint (API key ``OCTOPRINT_KEY``) for the block; yields its base URL.

    Skips the calling test when ``../shared`` or curl is missing.
    """
    _require(OCTOPRINT_UP, "OctoPrint")
    port = free_port()
    base = tmp_path_factory.mktemp("octoprint") / "base"
    env = {**os.environ, "OCTOPRINT_VENV": str(OCTOPRINT_VENV)}
    with _running(OCTOPRINT_UP, [str(base), str(port), OCTOPRINT_KEY], env):
        yield f"http://127.0.0.1:{port}"


def _karrio_env(workdir: Path) -> dict[str, str]:
    """The environment karrio-up.sh exports: Karrio reads its settings from real variables only, so a
    ``karrio shell`` beside the server needs the same ones to open the same database."""
    return {
        **os.environ,
        "KARRIO_VENV": str(KARRIO_VENV),
        "KARRIO_TOKEN": KARRIO_TOKEN,
        "SECRET_KEY": "local-test-secret-key-not-for-production-0123456789",
        "DEBUG_MODE": "False",
        "WORK_DIR": str(workdir),
        "LOG_DIR": str(workdir),
        "WORKER_DB_DIR": str(workdir),
        "DATABASE_ENGINE": "sqlite3",
        "DATABASE_NAME": "db.sqlite3",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "OTEL_ENABLED": "False",
        # Webhooks go out inside the API request that caused them: no worker process to run.
        "WORKER_IMMEDIATE_MODE": "True",
    }


@dataclass(frozen=True)
class KarrioPeer:
    """A running Karrio: its API and the two things a test does as the carrier would."""

    base_url: str
    token: str
    workdir: Path

    def make_tracker(self, shipment_id: str) -> str:
        """Create the tracker of a bought shipment; returns its id (``trk_...``).

        Karrio makes none for the generic carrier (no tracking API) and refuses ``POST /v1/trackers`` for it,
        so karrio-make-tracker.py writes the row in a ``karrio shell`` (~2.5 s).
        """
        with KARRIO_MAKE_TRACKER.open() as script:
            result = subprocess.run(
                [str(KARRIO_VENV / "bin" / "karrio"), "shell"],
                stdin=script,
                cwd=self.workdir,
                env={**_karrio_env(self.workdir), "SHIPMENT_ID": shipment_id},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        output = result.stdout[-1000:] + result.stderr[-2000:]
        assert result.returncode == 0, output
        found = re.search(r"^TRACKER_ID (\S+)", result.stdout, re.MULTILINE)
        assert found is not None, output
        return found.group(1)

    def scan(self, tracker_id: str, status: str, at: datetime, *, location: str) -> None:
        """Add one carrier event to a tracker and give the tracker its status, as a carrier's tracking feed
        would; Karrio sends its webhooks.

        The event has ``status`` as its Karrio status and, upper-cased, as its code. ``at`` is a UTC time,
        kept to the second: Karrio orders events by date and time to the second and reads them as UTC.
        """
        event = {
            "date": at.strftime("%Y-%m-%d"),
            "time": at.strftime("%H:%M:%S"),
            "code": status.upper(),
            "description": f"parcel {status.replace('_', ' ')}",
            "location": location,
            "status": status,
        }
        response = httpx.post(
            f"{self.base_url}/v1/trackers/{tracker_id}/inject-events",
            json={"events": [event], "status": status, "delivered": status == "delivered"},
            headers={"Authorization": f"Token {self.token}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text


def _wait_for_karrio(base_url: str, workdir: Path) -> None:
    # The script gives up waiting after 60 s without saying so.
    deadline = time.monotonic() + 120
    while True:
        try:
            answer = httpx.get(
                f"{base_url}/v1/carriers", headers={"Authorization": f"Token {KARRIO_TOKEN}"}, timeout=5
            )
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            log = workdir / "gunicorn.log"
            raise AssertionError(f"Karrio did not come up: {log.read_text()[-2000:] if log.exists() else ''}")
        time.sleep(0.25)


@contextmanager
def karrio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KarrioPeer]:
    """A running Karrio (token ``KARRIO_TOKEN``, SQLite, no Redis) for the block.

    The first run installs Karrio into ``.cache/karrio-venv`` (~60 s) and migrates a template database
    beside it (~70 s); later runs copy the template and are up in ~2 s. Skips the calling test when
    ``../shared`` or curl is missing.
    """
    _require(KARRIO_UP, "Karrio")
    port = free_port()
    workdir = tmp_path_factory.mktemp("karrio") / "work"
    with _running(KARRIO_UP, [str(workdir), str(port)], _karrio_env(workdir)):
        base_url = f"http://127.0.0.1:{port}"
        _wait_for_karrio(base_url, workdir)
        yield KarrioPeer(base_url=base_url, token=KARRIO_TOKEN, workdir=workdir)
