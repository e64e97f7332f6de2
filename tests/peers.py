"""Real peer servers for tests: a real OctoPrint with its Virtual Printer.

OctoPrint is started with ``../shared/peers/octoprint-up.sh`` on a free loopback port (installed once into
``.cache/octoprint-venv``); without ``../shared`` the tests that need it are skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
OCTOPRINT_UP = SHARED / "peers" / "octoprint-up.sh"
OCTOPRINT_VENV = REPO / ".cache" / "octoprint-venv"
OCTOPRINT_KEY = "SPAREFLOW_CONTRACT_KEY_000000001"


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


@contextmanager
def octoprint_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running OctoPrint (API key ``OCTOPRINT_KEY``) for the block; yields its base URL.

    Skips the calling test when ``../shared`` or curl is missing.
    """
    if not OCTOPRINT_UP.exists():
        pytest.skip(f"{SHARED} is absent: no script to run a real OctoPrint")
    if shutil.which("curl") is None:
        pytest.skip("octoprint-up.sh needs curl")
    port = free_port()
    base = tmp_path_factory.mktemp("octoprint") / "base"
    result = subprocess.run(
        ["bash", str(OCTOPRINT_UP), str(base), str(port), OCTOPRINT_KEY],
        env={**os.environ, "OCTOPRINT_VENV": str(OCTOPRINT_VENV)},
        capture_output=True,
        text=True,
        timeout=900,  # the first run installs OctoPrint
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    pid = int(result.stdout.split()[-1])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(pid)
