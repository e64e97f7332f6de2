"""The factory agent's pure pieces: its decisions, OctoPrint's wire mapping (payloads recorded from OctoPrint
1.11.8 with its Virtual Printer), the simulated host's persistence, the journal, backoff and its waits.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from services.factory_agent.agent import Backoff, Interrupted, abortable, pause
from services.factory_agent.decisions import VANISHED_GRACE_S, Action, next_step, printer_state
from services.factory_agent.journal import (
    JobRecord,
    Journal,
    JournalUnreadable,
    Phase,
    StateDirLocked,
    host_file_name,
)
from services.factory_agent.octoprint import OctoFile, OctoJob, to_host_status
from services.factory_agent.print_hosts import HostState, HostStatus, PrintHostBusy
from services.factory_agent.simulated import SimulatedPrintHost, estimated_seconds
from services.printing.schemas import ArtifactOut, FailReason, PrinterState

NAME = "0b6c3c1e-7a61-4d5e-9f7e-2f3f3f0e9a11-3.gcode"
GRACE = 600.0


def status(state: HostState, *, cancelled: bool = False, message: str = "") -> HostStatus:
    return HostStatus(state, NAME, None, message, cancelled=cancelled)


# --- decisions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("state", [HostState.PRINTING, HostState.PAUSED])
def test_a_print_under_way_is_watched_whatever_the_journal_says(phase: Phase, state: HostState) -> None:
    assert next_step(phase, status(state), trouble_for=0, grace_s=GRACE).action is Action.WATCH


@pytest.mark.parametrize("phase", list(Phase))
def test_a_done_print_is_completed(phase: Phase) -> None:
    assert next_step(phase, status(HostState.DONE), trouble_for=0, grace_s=GRACE).action is Action.COMPLETE


def test_a_cancel_at_the_printer_is_reported_as_such_for_a_retry_here() -> None:
    step = next_step(Phase.STARTED, status(HostState.FAILED, cancelled=True), trouble_for=0, grace_s=GRACE)

    assert (step.action, step.reason, step.retry_here) == (Action.FAIL, FailReason.CANCELLED_ON_PRINTER, True)


def test_a_failed_print_is_reported_as_print_failed() -> None:
    step = next_step(Phase.STARTED, status(HostState.FAILED), trouble_for=0, grace_s=GRACE)

    assert (step.action, step.reason, step.retry_here) == (Action.FAIL, FailReason.PRINT_FAILED, True)


def test_a_file_never_started_is_started() -> None:
    assert (
        next_step(Phase.CLAIMED, status(HostState.IDLE), trouble_for=0, grace_s=GRACE).action is Action.START
    )


def test_a_start_that_keeps_failing_gives_the_job_back_after_the_grace() -> None:
    step = next_step(Phase.CLAIMED, status(HostState.IDLE), trouble_for=GRACE, grace_s=GRACE)

    assert (step.action, step.reason) == (Action.FAIL, FailReason.PRINTER_ERROR)


def test_a_started_print_the_host_forgot_is_looked_at_again_before_failing() -> None:
    soon = next_step(Phase.STARTED, status(HostState.IDLE), trouble_for=0, grace_s=GRACE)
    later = next_step(Phase.STARTED, status(HostState.IDLE), trouble_for=VANISHED_GRACE_S, grace_s=GRACE)

    assert soon.action is Action.WAIT
    assert (later.action, later.reason) == (Action.FAIL, FailReason.PRINT_FAILED)


def test_a_printer_error_ends_a_started_print() -> None:
    step = next_step(
        Phase.STARTED, status(HostState.ERROR, message="Thermal Runaway"), trouble_for=0, grace_s=GRACE
    )

    assert (step.action, step.reason, step.message) == (
        Action.FAIL,
        FailReason.PRINTER_ERROR,
        "Thermal Runaway",
    )


@pytest.mark.parametrize("state", [HostState.ERROR, HostState.OFFLINE])
def test_an_unready_host_is_waited_for_then_the_unstarted_job_given_back(state: HostState) -> None:
    waiting = next_step(Phase.CLAIMED, status(state), trouble_for=GRACE - 1, grace_s=GRACE)
    given_back = next_step(Phase.CLAIMED, status(state), trouble_for=GRACE, grace_s=GRACE)

    assert waiting.action is Action.WAIT
    assert (given_back.action, given_back.reason) == (Action.FAIL, FailReason.PRINTER_ERROR)


def test_an_unreachable_host_never_gives_back_a_started_print() -> None:
    # It may be printing still: failing the job could have it printed twice.
    step = next_step(Phase.STARTED, status(HostState.OFFLINE), trouble_for=10 * GRACE, grace_s=GRACE)

    assert step.action is Action.WAIT


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (HostState.IDLE, PrinterState.PREPARING),
        (HostState.PRINTING, PrinterState.PRINTING),
        (HostState.PAUSED, PrinterState.PAUSED),
        (HostState.DONE, PrinterState.FINISHING),
        (HostState.FAILED, PrinterState.IDLE),
        (HostState.ERROR, PrinterState.ERROR),
        (HostState.OFFLINE, PrinterState.ERROR),
    ],
)
def test_heartbeats_name_the_printer_state_in_the_apis_words(
    state: HostState, expected: PrinterState
) -> None:
    assert printer_state(status(state)) is expected


# --- OctoPrint's mapping -----------------------------------------------------------------------------------


def octo_job(
    state: str, file: str | None = NAME, completion: float | None = None, error: str | None = None
) -> OctoJob:
    payload = {
        "job": {"file": {"name": file, "origin": "local" if file else None}, "lastPrintTime": None},
        "progress": {"completion": completion, "printTime": None},
        "state": state,
    }
    if error is not None:
        payload["error"] = error
    return OctoJob.model_validate(payload)


def octo_file(success: bool | None) -> OctoFile:
    payload: dict[str, object] = {"name": NAME, "origin": "local", "size": 40, "type": "machinecode"}
    if success is not None:
        payload["prints"] = {
            "failure": int(not success),
            "success": int(success),
            "last": {"date": 1795276444.27, "success": success},
        }
    return OctoFile.model_validate(payload)


@pytest.mark.parametrize(
    ("octoprint_state", "expected"),
    [
        ("Starting", HostState.PRINTING),
        ("Printing", HostState.PRINTING),
        ("Finishing", HostState.PRINTING),
        ("Cancelling", HostState.PRINTING),
        ("Printing from SD", HostState.PRINTING),
        ("Pausing", HostState.PAUSED),
        ("Paused", HostState.PAUSED),
    ],
)
def test_octoprint_busy_with_our_file(octoprint_state: str, expected: HostState) -> None:
    result = to_host_status(octo_job(octoprint_state, completion=55.0), octo_file(None), NAME)

    assert (result.state, result.file, result.progress) == (expected, NAME, 55.0)


def test_octoprint_done_is_the_files_successful_last_print() -> None:
    result = to_host_status(octo_job("Operational", completion=100.0), octo_file(True), NAME)

    assert (result.state, result.progress) == (HostState.DONE, 100.0)


def test_octoprint_cancel_leaves_the_file_selected_on_an_operational_printer() -> None:
    result = to_host_status(octo_job("Operational", completion=None), octo_file(False), NAME)

    assert (result.state, result.cancelled) == (HostState.FAILED, True)


def test_octoprint_failure_of_a_file_no_longer_selected_is_not_called_a_cancel() -> None:
    # After "Offline after error" and a reconnect, no file is selected any more.
    result = to_host_status(octo_job("Operational", file=None), octo_file(False), NAME)

    assert (result.state, result.cancelled) == (HostState.FAILED, False)


def test_octoprint_a_print_ended_by_a_disconnect_is_failed_not_offline() -> None:
    # OctoPrint records the failure when the connection closes under a print: the print is over.
    result = to_host_status(octo_job("Offline", file=None), octo_file(False), NAME)

    assert (result.state, result.cancelled) == (HostState.FAILED, False)


def test_octoprint_offline_after_error_is_an_error_with_its_message() -> None:
    message = "Thermal Runaway, system stopped! Heater_ID: bed - Printer halted. kill() called!"
    result = to_host_status(octo_job("Offline after error", file=None, error=message), octo_file(False), NAME)

    assert (result.state, result.message) == (HostState.ERROR, message)


def test_octoprint_a_finished_print_outranks_an_offline_printer() -> None:
    result = to_host_status(octo_job("Offline", file=None), octo_file(True), NAME)

    assert result.state is HostState.DONE


def test_octoprint_disconnected_printer_is_offline() -> None:
    assert to_host_status(octo_job("Offline", file=None), None, NAME).state is HostState.OFFLINE


def test_octoprint_file_selected_but_never_started_is_idle() -> None:
    assert to_host_status(octo_job("Operational"), octo_file(None), NAME).state is HostState.IDLE


def test_octoprint_end_of_print_before_the_history_is_written_is_still_printing() -> None:
    result = to_host_status(octo_job("Operational", completion=100.0), octo_file(None), NAME)

    assert result.state is HostState.PRINTING


def test_octoprint_another_files_print_says_nothing_of_ours() -> None:
    result = to_host_status(octo_job("Printing", file="someone-else.gcode", completion=10.0), None, NAME)

    assert (result.state, result.file) == (HostState.IDLE, NAME)


def test_octoprint_nothing_selected_on_an_operational_printer_is_idle() -> None:
    result = to_host_status(octo_job("Operational", file=None), None, None)

    assert (result.state, result.file) == (HostState.IDLE, None)


def test_octoprint_unknown_state_is_not_taken_for_a_failure() -> None:
    result = to_host_status(octo_job("Unknown State (42)"), octo_file(None), NAME)

    assert result.state is HostState.OFFLINE
    assert "Unknown State (42)" in result.message


# --- the simulated host --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def gcode(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"{uuid.uuid4()}.gcode"
    path.write_text(text)
    return path


def test_estimate_is_read_from_prusaslicers_footer(tmp_path: Path) -> None:
    path = gcode(tmp_path, "G1 X1\n; estimated printing time (normal mode) = 1h 2m 3s\n")

    assert estimated_seconds(path) == 3723


def test_estimate_is_read_from_curas_header(tmp_path: Path) -> None:
    assert estimated_seconds(gcode(tmp_path, ";FLAVOR:Marlin\n;TIME:123\nG1 X1\n")) == 123


def test_a_file_without_an_estimate_has_none(tmp_path: Path) -> None:
    assert estimated_seconds(gcode(tmp_path, "G1 X1\n")) is None


async def test_a_simulated_print_lasts_the_estimate_over_the_speed(tmp_path: Path) -> None:
    clock = Clock()
    host = SimulatedPrintHost(tmp_path / "printer", speed=10, clock=clock)
    await host.start(NAME, gcode(tmp_path, ";TIME:100\n"))

    clock.now += 5
    halfway = await host.status(NAME)
    clock.now += 5
    done = await host.status(NAME)

    assert (halfway.state, halfway.progress) == (HostState.PRINTING, 50.0)
    assert (done.state, done.progress) == (HostState.DONE, 100.0)


async def test_a_simulated_print_without_an_estimate_takes_the_default_capped(tmp_path: Path) -> None:
    clock = Clock()
    host = SimulatedPrintHost(tmp_path / "printer", default_seconds=3600, max_seconds=20, clock=clock)
    await host.start(NAME, gcode(tmp_path, "G1 X1\n"))

    clock.now += 19
    assert (await host.status(NAME)).state is HostState.PRINTING
    clock.now += 1
    assert (await host.status(NAME)).state is HostState.DONE


async def test_a_new_host_object_sees_the_print_its_predecessor_started(tmp_path: Path) -> None:
    clock = Clock()
    await SimulatedPrintHost(tmp_path / "printer", clock=clock).start(NAME, gcode(tmp_path, ";TIME:60\n"))

    clock.now += 30
    restarted = SimulatedPrintHost(tmp_path / "printer", clock=clock)
    running = await restarted.status()
    clock.now += 30
    finished = await restarted.status(NAME)

    assert (running.state, running.file, running.progress) == (HostState.PRINTING, NAME, 50.0)
    assert finished.state is HostState.DONE


async def test_injected_failure_fails_the_print_at_that_fraction(tmp_path: Path) -> None:
    clock = Clock()
    host = SimulatedPrintHost(tmp_path / "printer", fail_after_fraction=0.5, clock=clock)
    await host.start(NAME, gcode(tmp_path, ";TIME:60\n"))

    clock.now += 29
    before = await host.status(NAME)
    clock.now += 1
    after = await host.status(NAME)

    assert before.state is HostState.PRINTING
    assert (after.state, after.cancelled) == (HostState.FAILED, False)


async def test_a_simulated_printer_prints_one_file_at_a_time(tmp_path: Path) -> None:
    host = SimulatedPrintHost(tmp_path / "printer", clock=Clock())
    await host.start(NAME, gcode(tmp_path, ";TIME:60\n"))

    with pytest.raises(PrintHostBusy):
        await host.start("other-1.gcode", gcode(tmp_path, ";TIME:60\n"))


async def test_a_cancelled_simulated_print_stays_cancelled_in_its_history(tmp_path: Path) -> None:
    clock = Clock()
    host = SimulatedPrintHost(tmp_path / "printer", clock=clock)
    await host.start(NAME, gcode(tmp_path, ";TIME:60\n"))
    await host.cancel()

    await host.start("next-1.gcode", gcode(tmp_path, ";TIME:60\n"))
    remembered = await host.status(NAME)

    assert (remembered.state, remembered.cancelled) == (HostState.FAILED, True)


# --- the journal ---------------------------------------------------------------------------------------


def make_record(*, phase: Phase = Phase.CLAIMED, fence: int = 3) -> JobRecord:
    job_id = uuid.uuid4()
    return JobRecord(
        job_id=job_id,
        token=f"{fence}.{'s' * 32}",
        fence=fence,
        lease_seconds=90,
        phase=phase,
        gcode=ArtifactOut(
            kind="gcode",
            sha256="ab" * 32,
            bytes=1234,
            format="gcode",
            url=f"/factory/jobs/{job_id}/artifacts/gcode",
        ),
        filament_g=12.5,
    )


def test_the_journal_keeps_the_held_job_across_instances(tmp_path: Path) -> None:
    record = make_record(phase=Phase.STARTED)
    Journal(tmp_path).save(record)

    assert Journal(tmp_path).load() == record


def test_the_journal_is_empty_once_cleared(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.save(make_record())

    journal.clear()

    assert journal.load() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_unreadable_journal_is_refused_not_ignored(tmp_path: Path) -> None:
    (tmp_path / "job.json").write_text('{"job_id": "half a rec')

    with pytest.raises(JournalUnreadable):
        Journal(tmp_path).load()


def test_one_agent_per_state_directory(tmp_path: Path) -> None:
    with Journal(tmp_path).locked(), pytest.raises(StateDirLocked), Journal(tmp_path).locked():
        pass


def test_the_host_file_names_the_job_and_its_fence() -> None:
    record = make_record(fence=7)

    assert record.host_file == host_file_name(record.job_id, 7) == f"{record.job_id}-7.gcode"


# --- backoff and waits ---------------------------------------------------------------------------------


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(first_s=0.5, cap_s=30)

    delays = [backoff.delay(attempt) for attempt in range(12)]

    assert 0.25 <= delays[0] <= 0.5
    assert 2 <= delays[3] <= 4
    assert all(15 <= delay <= 30 for delay in delays[8:])


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    backoff = Backoff(first_s=0.5, cap_s=30)

    assert backoff.delay(0, retry_after=5) == 5
    assert backoff.delay(0, retry_after=3600) == 30


async def test_pause_ends_early_when_told() -> None:
    until = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, until.set)

    with pytest.raises(Interrupted):
        await asyncio.wait_for(pause(30, until), 5)


async def test_abortable_returns_the_result_or_cancels_the_work() -> None:
    until = asyncio.Event()
    assert await abortable(asyncio.sleep(0, result="claimed"), until) == "claimed"

    asyncio.get_running_loop().call_later(0.05, until.set)
    with pytest.raises(Interrupted):
        await asyncio.wait_for(abortable(asyncio.sleep(30), until), 5)
