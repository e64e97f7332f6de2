"""The whole pipeline against the bare PrusaSlicer CLI on the same parts, measured in one run.

Run from the project root::

    .venv/bin/python tests/benchmarks/bench_pipeline.py

Pipeline: upload over HTTP to the API (uvicorn on loopback) -> queue (an embedded Redis) -> worker check
(and repair) -> print job -> queue -> orientation -> PrusaSlicer -> G-code stored -> job `ready`, timed from
the upload request to the moment the job reads `ready` (polled every 50 ms). Bare: `prusa-slicer
--export-gcode` on the same file with the same full config, nothing else. Both warm: one untimed run of
each first. Parts: the demo parts plus corpus STL/OBJ files that PrusaSlicer slices, in millimetres-sized
extents (10-200 units), fitting the bed. Goal: pipeline / bare <= 1.2x (sum of times over the parts).
"""

from __future__ import annotations

import asyncio
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trimesh
import uvicorn

from services.accounts.models import Role
from services.accounts.service import AccountsService
from services.api.app import create_app
from services.config import Settings
from services.db import create_engine, session_factory, transaction
from services.demo.meshes import DEMO_PARTS, export_model
from services.embedded_redis import EmbeddedRedis
from services.migrate import upgrade
from services.workers.settings import build_worker
from slicer_adapters.models import BuildVolume, PrintProfile
from slicer_adapters.prusaslicer.config import bed_centre, prusaslicer_config, render_ini

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
BED = BuildVolume(x_mm=250, y_mm=210, z_mm=210)
PRINTER = {
    "name": "bench-i3",
    "build_volume": BED.model_dump(),
    "slicer": "prusaslicer",
}
GOAL = 1.2
POLL_S = 0.05
MAX_CORPUS_PARTS = 12


def parts() -> list[tuple[str, str, bytes]]:
    """(label, file name, bytes) for every part of the run."""
    chosen = [
        (p.part_number, f"{p.part_number}.stl", export_model(p.build(), "stl-binary")) for p in DEMO_PARTS
    ]
    manifest = CORPUS / "manifest.csv"
    if not manifest.is_file():
        print("../shared/corpus not present: demo parts only")
        return chosen
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    picked = []
    for row in rows:
        extents = [float(row[a] or 0) for a in ("bbox_x", "bbox_y", "bbox_z")]
        if not row["prusaslicer_2.5"].startswith("ok") or row["format"] not in (
            "stl-binary",
            "stl-ascii",
            "obj",
        ):
            continue
        if not 10 <= max(extents) <= 200 or row["is_watertight"] != "True":
            continue
        picked.append(row)
    picked.sort(key=lambda r: -int(r["faces"]))
    for row in picked[:MAX_CORPUS_PARTS]:
        path = CORPUS / row["file"]
        chosen.append((path.name, path.name, path.read_bytes()))
    return chosen


def bare_slice(executable: str, full_ini: Path, model: Path, out: Path) -> float:
    started = time.perf_counter()
    argv = [executable, "--loglevel", "1", "--export-gcode", "--load", str(full_ini)]
    argv += ["--center", bed_centre(BED), str(model), "-o", str(out)]
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def full_config(executable: str, root: Path) -> Path:
    """PrusaSlicer's expanded config for the default profile: what the adapter feeds it too."""
    small, full = root / "small.ini", root / "full.ini"
    small.write_text(render_ini(prusaslicer_config(PrintProfile(), BED)))
    subprocess.run([executable, "--load", str(small), "--save", str(full)], check=True, capture_output=True)
    return full


@asynccontextmanager
async def platform(settings: Settings, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await upgrade(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    async with transaction(session_factory(engine)) as session:
        token = (await AccountsService(session).issue_key(Role.ADMIN)).token
    await engine.dispose()
    worker = build_worker(settings, redis_url, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, redis_url=redis_url), host="127.0.0.1", port=0, log_level="warning"
        )
    )
    server_task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=600
    ) as client:
        try:
            yield client
        finally:
            server.should_exit = True
            await server_task
            await worker.close()
            worker_task.cancel()


async def through_pipeline(client: httpx.AsyncClient, part_id: str, name: str, data: bytes) -> float:
    started = time.perf_counter()
    revision = (await client.post(f"/parts/{part_id}/revisions", files={"file": (name, data)})).json()
    job = (await client.post("/print-jobs", json={"revision_id": revision["id"], "printer": PRINTER})).json()
    while job["status"] == "waiting_geometry":
        # A client polling faster than this would compete with the slicer for the CPU it measures.
        await asyncio.sleep(POLL_S)
        job = (await client.get(f"/print-jobs/{job['id']}")).json()
    elapsed = time.perf_counter() - started
    if job["status"] != "ready":
        raise RuntimeError(f"{name}: {job['failure']}")
    return elapsed


async def main() -> None:
    executable = "prusa-slicer"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        full = full_config(executable, root)

        settings = Settings(data_dir=root / "data")
        settings.data_dir.mkdir()
        chosen = parts()
        with EmbeddedRedis(root / "redis") as redis_url:
            async with platform(settings, redis_url) as client:
                org = (await client.post("/organizations", json={"slug": "bench", "name": "Bench"})).json()
                part = (
                    await client.post(
                        "/parts",
                        json={"organization_id": org["id"], "part_number": "B-1", "name": "Bench part",
                              "process": "fdm", "materials": ["PLA"]},
                    )
                ).json()  # fmt: skip
                # Warm-up with a model of its own: a part of the run would then come from the slice cache.
                cube = export_model(trimesh.creation.box(extents=(20, 20, 20)), "stl-binary")
                await through_pipeline(client, part["id"], "warmup-cube.stl", cube)

                rows = []
                for label, name, data in chosen:
                    model = root / name
                    model.write_bytes(data)
                    bare_slice(executable, full, model, root / "warm.gcode")  # page cache, dynamic loader
                    bare = bare_slice(executable, full, model, root / "bare.gcode")
                    piped = await through_pipeline(client, part["id"], name, data)
                    rows.append((label, bare, piped))
                    print(f"{label:<52} bare {bare:6.2f} s  pipeline {piped:6.2f} s  x{piped / bare:5.2f}")

    total_bare = sum(r[1] for r in rows)
    total_piped = sum(r[2] for r in rows)
    ratio = total_piped / total_bare
    print(f"\nparts: {len(rows)}")
    print(f"sum bare PrusaSlicer: {total_bare:.2f} s   sum pipeline: {total_piped:.2f} s")
    print(f"median per-part ratio: {statistics.median(r[2] / r[1] for r in rows):.2f}x")
    print(f"pipeline / bare (sums): {ratio:.2f}x   goal <= {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
