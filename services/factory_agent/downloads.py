"""Artifact downloads: streamed to a partial file, resumed with ``Range``, verified against their sha256.

Files are named by their sha256, so a job claimed again (a new fence) resumes what the last claim left.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from services.factory_agent.client import ApiRejected, FactoryApiClient
from services.printing.schemas import ArtifactOut

_HASH_CHUNK = 1024 * 1024


class ArtifactInvalid(Exception):
    """The artifact did not match its sha256 even when downloaded afresh."""


@dataclass(frozen=True, slots=True)
class Downloaded:
    path: Path
    resumed_from: int  # bytes already on disk when this download began; 0 for a fresh one
    fetched: int  # bytes received now


def artifact_path(directory: Path, artifact: ArtifactOut) -> Path:
    return directory / f"{artifact.sha256}.{artifact.format}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def fetch_artifact(client: FactoryApiClient, artifact: ArtifactOut, directory: Path) -> Downloaded:
    """The artifact in ``directory``, verified: already there, resumed from a partial file, or downloaded.

    A file that fails its checksum is downloaded once more from the start before giving up.

    Raises:
        ArtifactInvalid: the fresh download did not match ``artifact.sha256`` either.
        ApiUnavailable: the download broke off; calling again resumes it.
        ApiRejected, JobLost: the API refused it.
    """
    final = artifact_path(directory, artifact)
    if await asyncio.to_thread(_verified, final, artifact.sha256):
        return Downloaded(final, resumed_from=artifact.bytes, fetched=0)
    partial = final.with_name(final.name + ".part")
    resumed_from = await asyncio.to_thread(_size, partial)
    fetched = 0
    for _ in range(2):
        fetched += await _download(client, artifact, partial)
        if await asyncio.to_thread(_keep_if_verified, partial, final, artifact.sha256):
            return Downloaded(final, resumed_from=resumed_from, fetched=fetched)
    raise ArtifactInvalid(f"{artifact.url}: the download does not match sha256 {artifact.sha256}")


async def _download(client: FactoryApiClient, artifact: ArtifactOut, partial: Path) -> int:
    """Bring ``partial`` up to the whole artifact, resuming from its size; the bytes received."""
    offset = await asyncio.to_thread(_size, partial)
    if offset > 0 and offset == artifact.bytes:
        return 0  # complete already (the agent stopped before verifying it)
    try:
        return await _stream_into(client, artifact, partial, offset)
    except ApiRejected as exc:
        if exc.status != 416 or offset == 0:
            raise
        # The partial file is longer than the artifact: not a prefix of it. Start over.
        await asyncio.to_thread(partial.unlink)
        return await _stream_into(client, artifact, partial, 0)


async def _stream_into(client: FactoryApiClient, artifact: ArtifactOut, partial: Path, offset: int) -> int:
    received = 0
    async with client.artifact(artifact.url, offset=offset, etag=f'"{artifact.sha256}"') as stream:
        # A 200 to a range request is the whole artifact again: it is written from the start.
        handle = await asyncio.to_thread(_open_at, partial, stream.start)
        try:
            async for chunk in stream.chunks:
                handle.write(chunk)
                received += len(chunk)
        finally:
            handle.close()
    return received


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _open_at(path: Path, start: int) -> BinaryIO:
    """``path`` open for writing at ``start``, anything after it cut off."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("r+b" if path.exists() else "wb")
    handle.seek(start)
    handle.truncate()
    return handle


def _verified(path: Path, sha256: str) -> bool:
    return path.exists() and sha256_of(path) == sha256


def _keep_if_verified(partial: Path, final: Path, sha256: str) -> bool:
    """Move a download that matches ``sha256`` into place; delete one that does not."""
    if sha256_of(partial) == sha256:
        os.replace(partial, final)
        return True
    partial.unlink()
    return False
