"""How a slicer's exit is classified: retryable (resources) or permanent (the model or the slicer)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from slicer_adapters._process import ProcessOutput, raise_for_exit, run_process
from slicer_adapters.errors import SlicerFailed, SlicerResourceExhausted, SlicerTimeout


def ended(returncode: int, stderr: str = "") -> ProcessOutput:
    return ProcessOutput(returncode=returncode, stdout="", stderr=stderr, elapsed_s=0.1)


def test_success_raises_nothing() -> None:
    raise_for_exit(ended(0), program="x")


def test_a_signal_is_retryable() -> None:
    with pytest.raises(SlicerResourceExhausted) as caught:
        raise_for_exit(ended(-9, "partial output"), program="x")
    assert caught.value.retryable
    assert "partial output" in caught.value.output


def test_a_known_permanent_marker_wins_over_the_signal() -> None:
    with pytest.raises(SlicerFailed) as caught:
        raise_for_exit(
            ended(-6, "Objects could not fit on the bed"), program="x", permanent_markers=("could not fit",)
        )
    assert not caught.value.retryable


def test_an_allocation_failure_message_is_retryable() -> None:
    with pytest.raises(SlicerResourceExhausted):
        raise_for_exit(
            ended(1, "terminate called after throwing an instance of 'std::bad_alloc'"), program="x"
        )


def test_any_other_exit_is_permanent() -> None:
    with pytest.raises(SlicerFailed) as caught:
        raise_for_exit(ended(2, "unknown option"), program="x")
    assert not isinstance(caught.value, SlicerResourceExhausted)


async def test_run_process_kills_on_timeout(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"]
    started = asyncio.get_running_loop().time()
    with pytest.raises(SlicerTimeout):
        await run_process(argv, cwd=tmp_path, timeout_s=1.0, memory_limit_bytes=2 * 1024**3)
    assert asyncio.get_running_loop().time() - started < 10


async def test_run_process_keeps_only_a_bounded_tail(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('x' * 5_000_000); print('done')"]
    result = await run_process(argv, cwd=tmp_path, timeout_s=30, memory_limit_bytes=2 * 1024**3)
    assert result.returncode == 0
    assert len(result.stderr) <= 128 * 1024
    assert result.stdout.strip() == "done"
