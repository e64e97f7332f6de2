"""Run a slicer binary as a bounded child process: argv only, a timeout, a memory limit, bounded output.

The memory limit is ``RLIMIT_DATA``, not ``RLIMIT_AS``. Measured here (2 cores, 24 GB, Debian prusa-slicer
2.5.0): PrusaSlicer's address space is ~250 MiB larger than its data segment even on a 20 mm cube (VmSize
295 MiB, VmData 48 MiB: its GUI libraries are mapped on the command line too), and the gap grows with the
core count because every worker thread reserves a stack and a 64 MiB glibc malloc arena. Slicing a
327,680-face sphere (VmData peak 208 MiB, resident 229 MiB) under ``RLIMIT_AS``:
  - below ~200 MiB it cannot even load its shared libraries (exit 127, "failed to map segment");
  - at 350 MiB it exits 1 with "std::bad_alloc";
  - at 400 MiB it succeeds but takes 14-18 s instead of 8-9 s unlimited (interleaved runs).
Under ``RLIMIT_DATA`` of 260 MiB the same slice takes 8-10 s, like unlimited runs: the limit tracks what the
process really uses. CuraEngine 4.13 has no such gap (VmSize 169 MiB, VmData 154 MiB on that sphere) and
fails the same way under either limit. Thread stacks do count towards ``RLIMIT_DATA`` (8 MiB each:
PrusaSlicer cannot start its threads under 24 MiB), so leave headroom on many-core machines.

When the limit is hit, both slicers mostly die by SIGABRT ("std::bad_alloc", or "std::system_error" when a
thread cannot start) or SIGSEGV. Some failures exit with a status instead: PrusaSlicer exits 1 with
"std::bad_alloc" when loading a model fails, CuraEngine exits 1 with "libgomp: Thread creation failed:
Resource temporarily unavailable", and under a few MiB the dynamic loader exits 127 ("failed to map segment
from shared object", "cannot map zero-fill pages"). All of these are ``SlicerResourceExhausted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from slicer_adapters.errors import SlicerFailed, SlicerResourceExhausted, SlicerTimeout, SlicerUnavailable

# What an operator needs to see why a run failed; CuraEngine -v writes ~20 KB of settings dump per run, so
# 64 KiB per stream keeps the whole of a normal run and the end of a runaway one.
TAIL_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024
# Longer lines are never matched by ``keep_line`` (CuraEngine's settings dump is one ~18 KB line).
_MAX_LINE_BYTES = 4 * 1024
# Only a handful of lines are ever wanted (estimates); the cap bounds memory if a predicate is too broad.
_MAX_KEPT_LINES = 256
# After SIGKILL the pipes close at once; this only guards against a grandchild that left the process group.
_DRAIN_AFTER_KILL_S = 5.0
# What a slicer prints when an allocation fails without a signal ending it (measured: see module docstring).
_OUT_OF_MEMORY_MARKERS = (
    "std::bad_alloc",
    "Resource temporarily unavailable",
    "failed to map segment from shared object",
    "cannot map zero-fill pages",
)


@dataclass(frozen=True, slots=True)
class ProcessOutput:
    """How a child process ended, with the tails of its output (decoded as UTF-8, errors replaced)."""

    returncode: int  # negative: killed by that signal
    stdout: str  # the last TAIL_BYTES of stdout
    stderr: str  # the last TAIL_BYTES of stderr
    elapsed_s: float
    kept_lines: tuple[str, ...] = ()  # lines of either stream selected by ``keep_line``, in arrival order

    @property
    def output(self) -> str:
        """Both tails, for an error message."""
        return f"{self.stdout}\n{self.stderr}".strip()


class _StreamTail:
    """Keeps the last TAIL_BYTES of a stream and the complete lines a predicate selects, while it streams."""

    def __init__(self, keep_line: Callable[[str], bool] | None, kept: deque[str]) -> None:
        self._keep_line = keep_line
        self._kept = kept
        self._tail = bytearray()
        self._line = bytearray()
        self._line_overflowed = False

    def feed(self, chunk: bytes) -> None:
        self._tail += chunk
        del self._tail[:-TAIL_BYTES]
        if self._keep_line is None:
            return
        *complete, rest = chunk.split(b"\n")
        for piece in complete:
            self._line += piece
            if not self._line_overflowed:
                line = self._line.decode("utf-8", "replace").rstrip("\r")
                if self._keep_line(line):
                    self._kept.append(line)
            self._line.clear()
            self._line_overflowed = False
        self._line += rest
        if len(self._line) > _MAX_LINE_BYTES:
            self._line.clear()
            self._line_overflowed = True

    def text(self) -> str:
        return self._tail.decode("utf-8", "replace")


async def _pump(stream: asyncio.StreamReader | None, sink: _StreamTail) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_READ_CHUNK):
        sink.feed(chunk)


def _effective_limit(kind: int, wanted: int) -> int:
    # A child may lower its limits but not raise them above the hard limit it inherited.
    _, hard = resource.getrlimit(kind)
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # start_new_session made the child a group leader, so its pid is the group id; helpers it spawned die too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    memory_limit_bytes: int,
    env: Mapping[str, str] | None = None,
    keep_line: Callable[[str], bool] | None = None,
) -> ProcessOutput:
    """Run ``argv`` (never through a shell) in ``cwd`` and wait for it, keeping only bounded output.

    Args:
        argv: the program and its arguments; the program is looked up on ``env``'s PATH if not a path.
        cwd: the working directory of the child.
        timeout_s: wall-clock limit from the start of the child; on expiry its whole process group is killed.
        memory_limit_bytes: the child's RLIMIT_DATA (see the module docstring for why not RLIMIT_AS).
        env: the child's complete environment; None inherits this process's.
        keep_line: selects lines of stdout or stderr to keep whole (e.g. estimates), whatever the tails keep.
    Returns:
        The exit status and output tails, whatever the exit status; see ``raise_for_exit``.
    Raises:
        SlicerUnavailable: the program does not exist or cannot be executed.
        SlicerTimeout: the child was killed after ``timeout_s``; carries its output so far.
        FileNotFoundError: ``cwd`` does not exist.
    """
    kept: deque[str] = deque(maxlen=_MAX_KEPT_LINES)
    out, err = _StreamTail(keep_line, kept), _StreamTail(keep_line, kept)
    data_limit = _effective_limit(resource.RLIMIT_DATA, memory_limit_bytes)

    def limit_child() -> None:
        # Runs in the forked child before exec, so it does as little as possible: the limit is computed above.
        resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))
        # A process killed by the limit must not leave a core file the size of that limit in the workdir.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=limit_child,
        )
    except (FileNotFoundError, PermissionError) as exc:
        if exc.filename is not None and Path(exc.filename) == Path(cwd):
            raise  # a missing workdir is the caller's bug, not a missing slicer
        raise SlicerUnavailable(f"cannot run {argv[0]}: {exc}") from exc

    tasks = [
        asyncio.create_task(_pump(process.stdout, out)),
        asyncio.create_task(_pump(process.stderr, err)),
        asyncio.create_task(process.wait()),
    ]
    try:
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        if pending:
            _kill_group(process)
            await asyncio.wait(pending, timeout=_DRAIN_AFTER_KILL_S)
            result = _result(process, out, err, started, kept)
            raise SlicerTimeout(f"{argv[0]} killed after the {timeout_s:g} s timeout", output=result.output)
        return _result(process, out, err, started, kept)
    finally:
        # Also reached when the caller is cancelled: never leave a slicer running unattended.
        if process.returncode is None:
            _kill_group(process)
        for task in tasks:
            task.cancel()


def _result(
    process: asyncio.subprocess.Process, out: _StreamTail, err: _StreamTail, started: float, kept: deque[str]
) -> ProcessOutput:
    return ProcessOutput(
        returncode=process.returncode if process.returncode is not None else -signal.SIGKILL,
        stdout=out.text(),
        stderr=err.text(),
        elapsed_s=time.monotonic() - started,
        kept_lines=tuple(kept),
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def raise_for_exit(result: ProcessOutput, *, program: str, permanent_markers: Sequence[str] = ()) -> None:
    """Classify a finished run: return if it exited 0, else raise the matching error.

    Args:
        result: what ``run_process`` returned.
        program: the slicer's name, for the message.
        permanent_markers: output texts that make any failure permanent, even death by a signal (PrusaSlicer
            aborts with SIGABRT on "Objects could not fit on the bed").
    Raises:
        SlicerFailed: a marker matched, or the program exited non-zero on its own.
        SlicerResourceExhausted: killed by a signal (the memory limit ends in SIGABRT or SIGSEGV), or an
            allocation failure the program reported before exiting.
    """
    if result.returncode == 0:
        return
    text = result.output
    for marker in permanent_markers:
        if marker in text:
            raise SlicerFailed(f"{program} failed: {marker}", output=text)
    if result.returncode < 0:
        raise SlicerResourceExhausted(
            f"{program} killed by {_signal_name(-result.returncode)} (memory limit or crash)", output=text
        )
    if any(marker in text for marker in _OUT_OF_MEMORY_MARKERS):
        raise SlicerResourceExhausted(f"{program} ran out of memory (exit {result.returncode})", output=text)
    raise SlicerFailed(f"{program} exited with status {result.returncode}", output=text)


# `--help` runs in ~0.1 s and ~80 MB; these bounds only stop a broken install from hanging the caller.
_PROBE_TIMEOUT_S = 30.0
_PROBE_MEMORY_BYTES = 1024**3


async def probe_version(binary: str, args: Sequence[str], pattern: re.Pattern[str]) -> tuple[str, str] | None:
    """Find ``binary`` on PATH, run it with ``args`` (a help command that writes no file) and search both
    output streams for ``pattern``'s first group.

    Returns:
        (the executable's path, the version), or None when the binary is missing, fails or says no version.
    """
    executable = shutil.which(binary)
    if executable is None:
        return None
    try:
        result = await run_process(
            [executable, *args],
            cwd=Path("/"),
            timeout_s=_PROBE_TIMEOUT_S,
            memory_limit_bytes=_PROBE_MEMORY_BYTES,
            env={"LC_ALL": "C.UTF-8"},
        )
    except (SlicerUnavailable, SlicerTimeout):
        return None
    match = pattern.search(f"{result.stdout}\n{result.stderr}")
    if result.returncode != 0 or match is None:
        return None
    return executable, match.group(1)
