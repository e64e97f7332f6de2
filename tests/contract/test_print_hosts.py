"""The PrintHost contract, run against the simulated host and a real OctoPrint with its Virtual Printer.

OctoPrint is started once for the module (``tests.peers``, with ``../shared/peers/octoprint-up.sh``);
without ``../shared`` its half of the suite is skipped.
The Virtual Printer runs ``G4 P1000`` in real time, so a file of N dwells is an N-second print; the
``;TIME:N`` header gives the simulated host the same estimate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from services.factory_agent.octoprint import OctoPrintHost
from services.factory_agent.print_hosts import HostState, HostStatus, PrintHost, PrintHostBusy
from services.factory_agent.simulated import SimulatedPrintHost
from tests.peers import OCTOPRINT_KEY, octoprint_server

HOSTS = ["simulated", "octoprint"]
# Simulated prints run this much faster than their estimate: the suite checks behaviour, not timing.
SIM_SPEED = 2.0


@pytest.fixture(scope="module")
def octoprint_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with octoprint_server(tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module", params=HOSTS)
def host_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def host(
    host_kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PrintHost]:
    adapter: PrintHost
    if host_kind == "octoprint":
        # Only now, so that the simulated half runs (and OctoPrint starts) only when asked for.
        url: str = request.getfixturevalue("octoprint_url")
        adapter = OctoPrintHost(url, OCTOPRINT_KEY)
    else:
        # One printer for the module, like the one OctoPrint.
        adapter = SimulatedPrintHost(tmp_path_factory.getbasetemp() / "simulated-printer", speed=SIM_SPEED)
    try:
        yield adapter
        # The next test gets an idle printer, whatever this one left running.
        await adapter.cancel()
        selected = await adapter.status()
        if selected.file is not None:
            await wait_for(adapter, selected.file, {HostState.IDLE, HostState.DONE, HostState.FAILED})
    finally:
        await adapter.aclose()


def write_gcode(directory: Path, seconds: int, *, extra: str = "") -> Path:
    path = directory / f"{uuid.uuid4()}.gcode"
    path.write_text(f";TIME:{seconds}\nG28\n{extra}" + "G4 P1000\n" * seconds)
    return path


def new_name() -> str:
    return f"{uuid.uuid4()}-1.gcode"


async def wait_for(
    host: PrintHost, name: str, states: set[HostState], *, with_progress: bool = False, within_s: float = 20.0
) -> HostStatus:
    """The first status of ``name`` in one of ``states`` (and with a progress, if asked)."""
    deadline = time.monotonic() + within_s
    while True:
        status = await host.status(name)
        if status.state in states and (status.progress is not None or not with_progress):
            return status
        assert time.monotonic() < deadline, f"{name} still {status} after {within_s} s, expected {states}"
        await asyncio.sleep(0.1)


async def test_a_file_never_printed_is_idle(host: PrintHost) -> None:
    name = new_name()

    status = await host.status(name)

    assert status.state is HostState.IDLE
    assert status.file == name


async def test_a_print_reports_progress_then_done(host: PrintHost, tmp_path: Path) -> None:
    name = new_name()

    await host.start(name, write_gcode(tmp_path, 4))

    # OctoPrint says "Starting" without a progress for a moment; then it reports one.
    printing = await wait_for(host, name, {HostState.PRINTING}, with_progress=True)
    assert printing.file == name
    assert printing.progress is not None
    assert 0 <= printing.progress <= 100
    done = await wait_for(host, name, {HostState.DONE})
    assert done.progress == 100
    selected = await host.status()
    assert (selected.state, selected.file) == (HostState.DONE, name)


async def test_progress_grows_while_printing(host: PrintHost, tmp_path: Path) -> None:
    name = new_name()
    await host.start(name, write_gcode(tmp_path, 4))
    first = await wait_for(host, name, {HostState.PRINTING}, with_progress=True)

    await asyncio.sleep(1.5)
    later = await host.status(name)

    assert first.progress is not None
    assert later.progress is not None
    assert later.progress > first.progress
    await wait_for(host, name, {HostState.DONE})


async def test_a_cancelled_print_is_failed_and_says_so(host: PrintHost, tmp_path: Path) -> None:
    name = new_name()
    await host.start(name, write_gcode(tmp_path, 20))
    await wait_for(host, name, {HostState.PRINTING})

    await host.cancel()

    failed = await wait_for(host, name, {HostState.FAILED})
    assert failed.cancelled
    assert not (await host.status()).busy


async def test_starting_while_printing_is_refused_as_busy(host: PrintHost, tmp_path: Path) -> None:
    running, other = new_name(), new_name()
    await host.start(running, write_gcode(tmp_path, 20))
    await wait_for(host, running, {HostState.PRINTING})

    with pytest.raises(PrintHostBusy) as refused:
        await host.start(other, write_gcode(tmp_path, 1))

    assert refused.value.retryable
    assert (await host.status(running)).state is HostState.PRINTING
    assert (await host.status(other)).state is HostState.IDLE
    await host.cancel()
    await wait_for(host, running, {HostState.FAILED})


async def test_a_finished_print_is_remembered_after_the_next_one(host: PrintHost, tmp_path: Path) -> None:
    first, second = new_name(), new_name()
    await host.start(first, write_gcode(tmp_path, 1))
    await wait_for(host, first, {HostState.DONE})

    await host.start(second, write_gcode(tmp_path, 1))

    assert (await host.status(first)).state is HostState.DONE
    await wait_for(host, second, {HostState.DONE})
    assert (await host.status(first)).state is HostState.DONE


async def test_cancel_with_nothing_printing_does_nothing(host: PrintHost, tmp_path: Path) -> None:
    name = new_name()
    await host.start(name, write_gcode(tmp_path, 1))
    await wait_for(host, name, {HostState.DONE})

    await host.cancel()

    assert (await host.status(name)).state is HostState.DONE


# --- OctoPrint only: what its Virtual Printer can simulate and the simulated host does not ---------------


async def test_octoprint_printer_error_fails_the_print_without_calling_it_cancelled(
    octoprint_url: str, tmp_path: Path
) -> None:
    host = OctoPrintHost(octoprint_url, OCTOPRINT_KEY)
    name = new_name()
    # The Virtual Printer answers this line with Marlin's "Thermal Runaway ... kill() called!".
    path = write_gcode(tmp_path, 3, extra="G4 P500\n!!DEBUG:trigger_fatal_error_marlin\n")
    try:
        await host.start(name, path)

        error = await wait_for(host, name, {HostState.ERROR})
        assert "Thermal Runaway" in error.message

        async with httpx.AsyncClient(base_url=octoprint_url, headers={"X-Api-Key": OCTOPRINT_KEY}) as api:
            await api.post("/api/connection", json={"command": "connect"})
        failed = await wait_for(host, name, {HostState.FAILED})
        assert not failed.cancelled
        await wait_for(host, "never-printed.gcode", {HostState.IDLE})
    finally:
        await host.aclose()
