"""Content-addressed model storage behind the ``BlobStore`` port.

A blob's address is the sha256 of its bytes, so the same model uploaded twice is stored once.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

_SHA256 = re.compile(r"[0-9a-f]{64}")
# 1 MiB reads keep a 200 MB model download at ~200 thread hops without holding it in memory.
_CHUNK = 1024 * 1024


class BlobNotFound(Exception):
    """No blob is stored under that address."""


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size: int
    created: bool  # False when identical content was already stored


@dataclass(frozen=True, slots=True)
class BlobInfo:
    sha256: str
    size: int
    modified_at: datetime


class BlobStore(Protocol):
    """Where model files and artifacts live, addressed by the sha256 of their content."""

    async def put_file(self, path: Path, *, sha256: str) -> StoredBlob:
        """Take ownership of the file at ``path`` and store it under ``sha256``.

        Args:
            path: a file the store may move or delete; gone after the call either way.
            sha256: the lowercase hex sha256 of its content, computed by the caller while it streamed in.
        Returns:
            The stored blob; ``created`` is False when the content was already there, in which case the
            existing blob's age is refreshed so that an orphan sweep running concurrently keeps it.
        """
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def size(self, sha256: str) -> int:
        """The blob's length in bytes. Raises BlobNotFound."""
        ...

    def read(self, sha256: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the blob's bytes ``[start, end)`` (to its end when ``end`` is None) in chunks.

        Raises BlobNotFound.
        """
        ...

    async def delete(self, sha256: str, *, older_than: datetime | None = None) -> bool:
        """Remove the blob, only if last stored before ``older_than`` when that is given.

        Returns whether it was removed; a missing blob is not an error.
        """
        ...

    def list_blobs(self) -> AsyncIterator[BlobInfo]:
        """Every stored blob, in no particular order."""
        ...

    def local_file(self, sha256: str) -> AbstractAsyncContextManager[Path]:
        """A local, read-only file holding the blob while the context is open (mesh tools need paths).

        Raises BlobNotFound.
        """
        ...


class LocalBlobStore:
    """Blobs as read-only files under ``root/ab/cd/<sha256>``; staging files must live on the same disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put_file(self, path: Path, *, sha256: str) -> StoredBlob:
        return await asyncio.to_thread(self._put_file, path, sha256)

    def _put_file(self, path: Path, sha256: str) -> StoredBlob:
        target = self.path_for(sha256)
        size = path.stat().st_size
        if target.exists():
            os.utime(target)
            path.unlink()
            return StoredBlob(sha256=sha256, size=size, created=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.chmod(0o444)
        # Atomic on one filesystem: a reader never sees half a blob, and two uploads of the same
        # content racing here both leave the same bytes behind.
        os.replace(path, target)
        return StoredBlob(sha256=sha256, size=size, created=True)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path_for(sha256).is_file)

    async def size(self, sha256: str) -> int:
        try:
            return (await asyncio.to_thread(self.path_for(sha256).stat)).st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(sha256) from exc

    async def read(self, sha256: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(self.path_for(sha256).open, "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(sha256) from exc
        try:
            if start:
                await asyncio.to_thread(handle.seek, start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                chunk = await asyncio.to_thread(handle.read, _CHUNK if left is None else min(_CHUNK, left))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete(self, sha256: str, *, older_than: datetime | None = None) -> bool:
        return await asyncio.to_thread(self._delete, self.path_for(sha256), older_than)

    @staticmethod
    def _delete(path: Path, older_than: datetime | None) -> bool:
        try:
            if older_than is not None and path.stat().st_mtime >= older_than.timestamp():
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    async def list_blobs(self) -> AsyncIterator[BlobInfo]:
        for path in await asyncio.to_thread(self._blob_paths):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            yield BlobInfo(
                sha256=path.name, size=stat.st_size, modified_at=datetime.fromtimestamp(stat.st_mtime, UTC)
            )

    @asynccontextmanager
    async def local_file(self, sha256: str) -> AsyncIterator[Path]:
        path = self.path_for(sha256)
        if not await asyncio.to_thread(path.is_file):
            raise BlobNotFound(sha256)
        # The stored file itself: blobs are immutable and read-only, so no copy is needed.
        yield path

    def _blob_paths(self) -> list[Path]:
        return [p for p in self.root.glob("??/??/*") if _SHA256.fullmatch(p.name)]
