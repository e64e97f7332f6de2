"""Delete stored files that nothing references any more: models of failed uploads, stale staging files."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from parts_catalog.repository import CatalogRepository
from parts_catalog.storage import BlobStore
from services.printing.repository import PrintingRepository

# How many blob addresses one reference query checks.
_BATCH = 500


@dataclass(frozen=True, slots=True)
class SweepResult:
    examined: int
    deleted: list[str]


async def sweep_orphan_blobs(session: AsyncSession, blobs: BlobStore, *, older_than: datetime) -> SweepResult:
    """Delete blobs that no revision (original or repaired) and no slice artifact references, and that
    were last stored before ``older_than``.

    The age gate protects uploads in flight: their blob is stored (or refreshed) before their row commits.
    """
    catalog, printing = CatalogRepository(session), PrintingRepository(session)
    candidates = [blob.sha256 async for blob in blobs.list_blobs() if blob.modified_at < older_than]
    deleted: list[str] = []
    for start in range(0, len(candidates), _BATCH):
        batch = candidates[start : start + _BATCH]
        referenced = await catalog.referenced_blobs(batch) | await printing.referenced_blobs(batch)
        for sha256 in batch:
            # Re-checking the age at deletion keeps a blob an upload refreshed since the listing.
            if sha256 not in referenced and await blobs.delete(sha256, older_than=older_than):
                deleted.append(sha256)
    return SweepResult(examined=len(candidates), deleted=deleted)


def _remove_stale(staging_dir: Path, older_than_epoch: float) -> int:
    removed = 0
    for path in staging_dir.glob("*"):
        try:
            if path.stat().st_mtime >= older_than_epoch:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed


async def sweep_staging(staging_dir: Path, *, grace_seconds: int) -> int:
    """Remove staging files and job workspaces left by uploads or jobs that died before finishing."""
    return await asyncio.to_thread(_remove_stale, staging_dir, time.time() - grace_seconds)
