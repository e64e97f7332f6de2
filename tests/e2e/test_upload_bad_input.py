"""Bad uploads get a 4xx with a code, and leave no row, no blob and no staging file behind."""

from __future__ import annotations

import io
import struct
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.config import Settings
from tests.builders import bearer, make_account, make_admin_token, make_part, model_bytes, upload

CAP = 200_000


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    from tests.conftest import REDIS_URL

    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=REDIS_URL,
        max_upload_bytes=CAP,
        max_archive_uncompressed_bytes=5_000_000,
        queue_name=f"test:{uuid.uuid4().hex}",
    )


@pytest.fixture
async def admin(settings: Settings) -> str:
    return await make_admin_token(settings)


@pytest.fixture
async def part(client: httpx.AsyncClient, admin: str) -> dict[str, str]:
    org = await make_account(client, admin, "organizations", slug="northwind")
    return await make_part(client, admin, organization_id=org["id"])


async def assert_nothing_kept(
    client: httpx.AsyncClient, admin: str, part_id: str, settings: Settings
) -> None:
    revisions = await client.get(f"/parts/{part_id}/revisions", headers=bearer(admin))
    assert revisions.json() == []
    blob_dir = settings.resolved_blob_dir
    leftovers = [p for p in blob_dir.rglob("*") if p.is_file()] if blob_dir.exists() else []
    assert leftovers == []


def multipart(*parts: bytes, boundary: str = "b0undary") -> tuple[bytes, dict[str, str]]:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def file_part(data: bytes, filename: bytes = b"part.stl", name: bytes = b"file") -> bytes:
    return (
        b'Content-Disposition: form-data; name="' + name + b'"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data
    )


def zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("3D/3dmodel.model", b"\0" * 50_000_000)
    return buffer.getvalue()


BAD_FILES = {
    "empty": (b"", 422, "empty_file"),
    "png_named_stl": (b"\x89PNG\r\n\x1a\n" + b"\0" * 200, 415, "unsupported_format"),
    "pdf": (b"%PDF-1.7\n" + b"x" * 300, 415, "unsupported_format"),
    "plain_text": (b"hello, this is not a mesh\n" * 10, 415, "unsupported_format"),
    "truncated_stl": (b"\0" * 80 + struct.pack("<I", 1000) + b"\0" * 500, 422, "truncated_model"),
    "zip_bomb_3mf": (zip_bomb(), 422, "archive_limit_exceeded"),
    "zip_not_3mf": (b"", 415, "unsupported_format"),
}


def _plain_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(BAD_FILES))
async def test_bad_model_files_are_refused_with_a_code(
    client: httpx.AsyncClient, admin: str, part: dict[str, str], settings: Settings, case: str
) -> None:
    data, status, code = BAD_FILES[case]
    if case == "zip_not_3mf":
        data = _plain_zip()
    response = await upload(client, admin, part["id"], data)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    await assert_nothing_kept(client, admin, part["id"], settings)


@pytest.mark.parametrize(
    ("filename", "problem"),
    [
        (b"../../etc/passwd", "path components"),
        (b"..\\..\\boot.ini", "path components"),
        (b"a\x00b.stl", "control characters"),
        (b"x" * 300 + b".stl", "longer than 255 bytes"),
        (b"..", "path components"),
    ],
)
async def test_unsafe_file_names_are_refused(
    client: httpx.AsyncClient,
    admin: str,
    part: dict[str, str],
    settings: Settings,
    filename: bytes,
    problem: str,
) -> None:
    body, headers = multipart(file_part(model_bytes(), filename=filename))
    response = await client.post(
        f"/parts/{part['id']}/revisions", content=body, headers={**headers, **bearer(admin)}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_filename"
    assert problem in response.json()["error"]["details"]["problems"]
    await assert_nothing_kept(client, admin, part["id"], settings)


@pytest.mark.parametrize(
    ("make_body", "status", "code"),
    [
        (lambda: (b"not multipart", {"content-type": "application/json"}), 415, "unsupported_media_type"),
        (lambda: (b"--x\r\n", {"content-type": "multipart/form-data"}), 400, "malformed_multipart"),
        (
            lambda: (b"--b0undary\r\ngarbage", {"content-type": "multipart/form-data; boundary=b0undary"}),
            400,
            "malformed_multipart",
        ),
        (lambda: multipart(b'Content-Disposition: form-data; name="note"\r\n\r\nhello'), 422, "missing_file"),
        (lambda: multipart(file_part(model_bytes()), file_part(model_bytes())), 422, "too_many_files"),
        (
            lambda: multipart(
                file_part(model_bytes()), b'Content-Disposition: form-data; name="evil"\r\n\r\nx'
            ),
            422,
            "unexpected_field",
        ),
        (
            lambda: multipart(
                file_part(model_bytes()), b'Content-Disposition: form-data; name="note"\r\n\r\n' + b"n" * 5000
            ),
            422,
            "field_too_long",
        ),
        (
            lambda: multipart(
                file_part(model_bytes()), b'Content-Disposition: form-data; name="note"\r\n\r\na\x00b'
            ),
            422,
            "invalid_field",
        ),
        (lambda: multipart(b"Content-Disposition: attachment\r\n\r\nx"), 400, "malformed_multipart"),
    ],
    ids=[
        "json",
        "no_boundary",
        "unterminated",
        "no_file",
        "two_files",
        "unknown_field",
        "long_note",
        "nul_note",
        "not_form_data",
    ],
)
async def test_malformed_requests_are_refused(
    client: httpx.AsyncClient,
    admin: str,
    part: dict[str, str],
    settings: Settings,
    make_body: object,
    status: int,
    code: str,
) -> None:
    body, headers = make_body()  # type: ignore[operator]
    response = await client.post(
        f"/parts/{part['id']}/revisions", content=body, headers={**headers, **bearer(admin)}
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    await assert_nothing_kept(client, admin, part["id"], settings)


async def test_oversized_stream_is_cut_off_as_soon_as_it_crosses_the_cap(
    client: httpx.AsyncClient, admin: str, part: dict[str, str], settings: Settings
) -> None:
    sent = 0
    chunk = b"\0" * 16_384

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        head, _ = multipart(file_part(b""))
        preamble = head[: head.index(b"\r\n--b0undary--")]
        yield preamble
        for _ in range(10_000):  # 160 MB if nobody stopped us
            sent += len(chunk)
            yield chunk

    response = await client.post(
        f"/parts/{part['id']}/revisions",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=b0undary", **bearer(admin)},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    assert sent <= CAP + 2 * len(chunk)
    await assert_nothing_kept(client, admin, part["id"], settings)


async def test_declared_oversized_body_is_refused_before_reading(
    client: httpx.AsyncClient, admin: str, part: dict[str, str], settings: Settings
) -> None:
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read += 1
        yield b"x"

    response = await client.post(
        f"/parts/{part['id']}/revisions",
        content=body(),
        headers={
            "content-type": "multipart/form-data; boundary=b0undary",
            "content-length": str(CAP * 10),
            **bearer(admin),
        },
    )
    assert response.status_code == 413
    assert read == 0
    await assert_nothing_kept(client, admin, part["id"], settings)


async def test_upload_at_the_cap_is_accepted(
    client: httpx.AsyncClient, admin: str, part: dict[str, str]
) -> None:
    facets = (CAP - 84) // 50
    data = b"\0" * 80 + struct.pack("<I", facets) + b"\0" * (50 * facets)
    response = await upload(client, admin, part["id"], data)
    assert response.status_code == 202, response.text


async def test_upload_to_an_unknown_part_is_404_and_keeps_nothing(
    client: httpx.AsyncClient, admin: str, part: dict[str, str], settings: Settings
) -> None:
    response = await upload(client, admin, "00000000-0000-4000-8000-000000000000", model_bytes())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "part_not_found"
    await assert_nothing_kept(client, admin, part["id"], settings)
