"""Mesh work in worker processes, with a time limit per task and a memory limit per process.

Loading and repairing meshes is CPU-bound and can take seconds: it never runs on the event loop. A
ProcessPoolExecutor cannot cancel a running task, so a task that overruns its time kills the pool's
processes and the pool is rebuilt; whatever else was running in it fails as retryable.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

# Imported once per forkserver rather than once per worker process: `import trimesh` costs ~0.6 s.
_PRELOAD = ["trimesh", "numpy", "scipy.sparse.csgraph", "parts_catalog.pipeline"]


class MeshWorkError(Exception):
    retryable = True
    code = "mesh_work_failed"


class MeshTimeout(MeshWorkError):
    code = "mesh_timeout"


class MeshWorkerCrashed(MeshWorkError):
    code = "mesh_worker_crashed"


def _limit_memory(limit_bytes: int) -> None:
    # The address-space limit turns a runaway allocation into a MemoryError in the task instead of the
    # kernel's OOM killer taking the whole worker.
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def _ready() -> bool:
    return True


class MeshPool:
    def __init__(self, workers: int, memory_limit_bytes: int) -> None:
        self._workers = workers
        self._memory_limit = memory_limit_bytes
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_PRELOAD)
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=self._context,
            initializer=_limit_memory,
            initargs=(self._memory_limit,),
        )

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker process.

        Raises:
            MeshTimeout: it ran longer than ``timeout_s`` (its process was killed).
            MeshWorkerCrashed: its process died (signal, memory).
            Whatever ``fn`` raised, re-raised here.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError as exc:
            self._restart()
            raise MeshTimeout(f"mesh work exceeded {timeout_s:.0f} s") from exc
        except BrokenProcessPool as exc:
            self._restart()
            raise MeshWorkerCrashed("a mesh worker process died") from exc

    async def warm_up(self) -> None:
        """Start every worker process now (the first task would otherwise pay for it)."""
        await asyncio.gather(*(self.run(_ready, timeout_s=120) for _ in range(self._workers)))

    def _restart(self) -> None:
        # No public API kills a running task; the executor's own process table is the only handle.
        for process in list(self._executor._processes.values()):
            process.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
