"""The print preparation stage: each ready revision oriented and sliced for the demo printer."""

from __future__ import annotations

from typing import Any

import httpx

from services.demo.meshes import DEMO_PARTS
from services.demo.scenario import DEMO_PRINTER
from services.demo.support import Say, ok, until

PrintJobs = list[tuple[str, dict[str, Any]]]


async def _prepare(admin: httpx.AsyncClient, revision_id: str) -> dict[str, Any]:
    created = ok(
        await admin.post("/print-jobs", json={"revision_id": revision_id, "printer": DEMO_PRINTER}), 202
    )
    return await until(admin, f"/print-jobs/{created['id']}", lambda job: job["status"] != "waiting_geometry")


def _job_line(part_number: str, job: dict[str, Any]) -> str:
    if job["status"] != "ready":
        return f"  {part_number:<12} failed: {job['failure']['code']}"
    cut = job["slice"]
    return (
        f"  {part_number:<12} {cut['slicer']:<11} {cut['print_seconds'] / 60:6.1f} min "
        f"{cut['filament_g']:6.1f} g  {cut['layer_count']:4d} layers  "
        f"({job['orientation']['candidate']}, {job['orientation']['height_mm']:.1f} mm high)"
    )


async def prepare_all(admin: httpx.AsyncClient, checked: list[dict[str, Any]], say: Say) -> PrintJobs:
    """Prepare each ready revision for the demo printer: (part number, print job)."""
    jobs = []
    for demo_part, revision in zip(DEMO_PARTS, checked, strict=True):
        if revision["status"] != "ready":
            continue
        job = await _prepare(admin, revision["id"])
        jobs.append((demo_part.part_number, job))
        say(_job_line(demo_part.part_number, job))
    return jobs
