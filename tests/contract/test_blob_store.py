"""The BlobStore contract, run against every adapter."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from parts_catalog.storage import BlobNotFound, BlobStore, LocalBlobStore

ADAPTERS: dict[str, Callable[[Path], BlobStore]] = {"local": lambda root: LocalBlobStore(root / "blobs")}


@pytest.fixture(params=sorted(ADAPTERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return ADAPTERS[request.param](tmp_path)


def staged(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    path = tmp_path / "blobs" / ".staging" / os.urandom(4).hex()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def read_all(store: BlobStore, sha256: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(sha256)])


async def test_put_then_read_back(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path, sha = staged(tmp_path, data)
    stored = await store.put_file(path, sha256=sha)
    assert (stored.sha256, stored.size, stored.created) == (sha, len(data), True)
    assert not path.exists()
    assert await store.exists(sha)
    assert await store.size(sha) == len(data)
    assert await read_all(store, sha) == data


@pytest.mark.parametrize(
    ("start", "end"), [(0, 1), (5, None), (1024 * 1024 - 3, 1024 * 1024 + 5), (0, 10**9), (2_500_000, None)]
)
async def test_read_a_byte_range(store: BlobStore, tmp_path: Path, start: int, end: int | None) -> None:
    data = os.urandom(2 * 1024 * 1024 + 101)
    path, sha = staged(tmp_path, data)
    await store.put_file(path, sha256=sha)
    got = b"".join([chunk async for chunk in store.read(sha, start=start, end=end)])
    assert got == data[start:end]


async def test_same_content_is_stored_once(store: BlobStore, tmp_path: Path) -> None:
    first, sha = staged(tmp_path, b"solid x\nendsolid x\n")
    second, _ = staged(tmp_path, b"solid x\nendsolid x\n")
    assert (await store.put_file(first, sha256=sha)).created
    assert not (await store.put_file(second, sha256=sha)).created
    assert not second.exists()
    assert [b.sha256 async for b in store.list_blobs()] == [sha]


async def test_missing_blob(store: BlobStore) -> None:
    sha = "0" * 64
    assert not await store.exists(sha)
    with pytest.raises(BlobNotFound):
        await read_all(store, sha)
    with pytest.raises(BlobNotFound):
        await store.size(sha)
    assert not await store.delete(sha)


async def test_delete_respects_the_age_gate(store: BlobStore, tmp_path: Path) -> None:
    path, sha = staged(tmp_path, b"abc")
    await store.put_file(path, sha256=sha)
    past = datetime.now(UTC) - timedelta(hours=1)
    assert not await store.delete(sha, older_than=past)
    assert await store.exists(sha)
    assert await store.delete(sha, older_than=datetime.now(UTC) + timedelta(seconds=5))
    assert not await store.exists(sha)


async def test_addresses_must_be_sha256(store: BlobStore) -> None:
    with pytest.raises(ValueError, match="sha256"):
        await store.exists("../../etc/passwd")


async def test_local_file_holds_the_blob(store: BlobStore, tmp_path: Path) -> None:
    path, sha = staged(tmp_path, b"facet normal 0 0 1")
    await store.put_file(path, sha256=sha)
    async with store.local_file(sha) as local:
        assert local.read_bytes() == b"facet normal 0 0 1"
    with pytest.raises(BlobNotFound):
        async with store.local_file("f" * 64):
            pass
