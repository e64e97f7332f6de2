"""Receive a multipart model upload by streaming it to a staging file, never holding the body in memory.

Starlette's form parser spools files without a size cap and only hands them over once the whole body has
arrived; here the cap is enforced per chunk, so an oversized upload is refused as soon as it crosses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import unicodedata
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from pydantic import TypeAdapter, ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from parts_catalog.schemas import RevisionNote
from parts_catalog.service import IncomingModel
from parts_catalog.units import Unit
from services.errors import InvalidRequest, MalformedRequest, PayloadTooLarge, UnsupportedMediaType

FILE_FIELD = "file"
TEXT_FIELDS = frozenset({"note", "units"})
# Framing, part headers and the small text fields ride on top of the model file itself.
_ENVELOPE_ALLOWANCE = 64 * 1024
_MAX_TEXT_FIELD = 4096
_MAX_HEADER_BYTES = 8192
_MAX_PARTS = 8
_MAX_FILENAME_BYTES = 255  # NAME_MAX on Linux file systems; longer names come from nothing legitimate

_NOTE: TypeAdapter[str] = TypeAdapter(RevisionNote)
_UNITS = frozenset(unit.value for unit in Unit)

Event = tuple[
    Literal["begin", "header_field", "header_value", "header_end", "headers_done", "data", "end"], bytes
]


@dataclass
class _Part:
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    disposition: bytes = b""
    header_bytes: int = 0
    name: str = ""
    text: bytearray = field(default_factory=bytearray)
    is_file: bool = False


def _checked_filename(raw: bytes) -> str:
    try:
        # Header parameters arrive as latin-1; browsers put UTF-8 bytes in them.
        name = raw.decode("latin-1").encode("latin-1").decode("utf-8")
    except UnicodeError as exc:
        raise InvalidRequest("file name is not valid UTF-8", code="invalid_filename") from exc
    problems = []
    if not name.strip():
        problems.append("empty")
    if len(name.encode()) > _MAX_FILENAME_BYTES:
        problems.append("longer than 255 bytes")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        problems.append("control characters")
    if "/" in name or "\\" in name or name in {".", ".."}:
        problems.append("path components")
    if problems:
        raise InvalidRequest(
            "file name must be a plain name", code="invalid_filename", details={"problems": problems}
        )
    return name


class _Receiver:
    def __init__(self, staging_dir: Path, max_file_bytes: int) -> None:
        self.staging_dir = staging_dir
        self.max_file_bytes = max_file_bytes
        self.events: list[Event] = []
        self.part = _Part()
        self.parts_seen = 0
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.path: Path | None = None
        self.handle: IO[bytes] | None = None
        self.size = 0
        self.digest = hashlib.sha256()
        self.finished = False

    def callbacks(self) -> dict[str, object]:
        def data(kind: Literal["header_field", "header_value", "data"]) -> object:
            return lambda buf, start, end: self.events.append((kind, bytes(buf[start:end])))

        def note(kind: Literal["begin", "header_end", "headers_done", "end"]) -> object:
            return lambda: self.events.append((kind, b""))

        return {
            "on_part_begin": note("begin"),
            "on_header_field": data("header_field"),
            "on_header_value": data("header_value"),
            "on_header_end": note("header_end"),
            "on_headers_finished": note("headers_done"),
            "on_part_data": data("data"),
            "on_part_end": lambda: self.events.append(("end", b"")),
            "on_end": lambda: setattr(self, "finished", True),
        }

    async def handle_events(self) -> None:
        events, self.events = self.events, []
        for kind, payload in events:
            if kind == "begin":
                self.parts_seen += 1
                if self.parts_seen > _MAX_PARTS:
                    raise InvalidRequest(f"more than {_MAX_PARTS} form parts", code="too_many_parts")
                self.part = _Part()
            elif kind in ("header_field", "header_value"):
                self.part.header_bytes += len(payload)
                if self.part.header_bytes > _MAX_HEADER_BYTES:
                    raise MalformedRequest("form part headers too long", code="malformed_multipart")
                target = self.part.header_field if kind == "header_field" else self.part.header_value
                target.extend(payload)
            elif kind == "header_end":
                if self.part.header_field.lower() == b"content-disposition":
                    self.part.disposition = bytes(self.part.header_value)
                self.part.header_field.clear()
                self.part.header_value.clear()
            elif kind == "headers_done":
                await self._start_part()
            elif kind == "data":
                await self._part_data(payload)
            elif kind == "end" and not self.part.is_file:
                try:
                    self.fields[self.part.name] = self.part.text.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidRequest(
                        f"field {self.part.name!r} is not UTF-8", code="invalid_field"
                    ) from exc

    async def _start_part(self) -> None:
        disposition, options = parse_options_header(self.part.disposition)
        if disposition != b"form-data" or b"name" not in options:
            raise MalformedRequest("form part without a form-data name", code="malformed_multipart")
        self.part.name = options[b"name"].decode("latin-1")
        if self.part.name == FILE_FIELD:
            if self.path is not None:
                raise InvalidRequest("upload one model file per request", code="too_many_files")
            self.part.is_file = True
            self.filename = _checked_filename(options.get(b"filename", b"model"))
            self.staging_dir.mkdir(parents=True, exist_ok=True)
            self.path = self.staging_dir / f"{uuid.uuid4().hex}.part"
            self.handle = await asyncio.to_thread(self.path.open, "xb")
        elif self.part.name not in TEXT_FIELDS:
            raise InvalidRequest(
                f"unexpected form field {self.part.name[:64]!r}",
                code="unexpected_field",
                details={"allowed": sorted(TEXT_FIELDS | {FILE_FIELD})},
            )
        elif self.part.name in self.fields:
            raise InvalidRequest(f"field {self.part.name!r} given twice", code="duplicate_field")

    async def _part_data(self, payload: bytes) -> None:
        if not self.part.is_file:
            self.part.text.extend(payload)
            if len(self.part.text) > _MAX_TEXT_FIELD:
                raise InvalidRequest(f"field {self.part.name!r} is too long", code="field_too_long")
            return
        self.size += len(payload)
        if self.size > self.max_file_bytes:
            raise PayloadTooLarge(
                f"model file exceeds {self.max_file_bytes} bytes", details={"max_bytes": self.max_file_bytes}
            )
        assert self.handle is not None
        await asyncio.to_thread(self._write, self.handle, payload)

    def _write(self, handle: IO[bytes], payload: bytes) -> None:
        handle.write(payload)
        self.digest.update(payload)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@asynccontextmanager
async def receive_model_upload(
    request: Request, *, staging_dir: Path, max_file_bytes: int
) -> AsyncIterator[IncomingModel]:
    """Yield the uploaded model, staged on disk; the staging file is gone afterwards in every case.

    Raises (as DomainError): 413 when the declared or streamed size crosses the cap, 415 for a body that is
    not multipart/form-data, 400 for broken multipart, 422 for a missing file, unexpected fields or an
    unsafe file name.
    """
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise UnsupportedMediaType("send the model as multipart/form-data", details={"field": FILE_FIELD})
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedRequest("multipart body without a boundary", code="malformed_multipart")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_file_bytes + _ENVELOPE_ALLOWANCE:
        raise PayloadTooLarge(
            f"model file exceeds {max_file_bytes} bytes", details={"max_bytes": max_file_bytes}
        )

    receiver = _Receiver(staging_dir, max_file_bytes)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                await receiver.handle_events()
            parser.finalize()
        except MultipartParseError as exc:
            raise MalformedRequest(f"malformed multipart body: {exc}", code="malformed_multipart") from exc
        await receiver.handle_events()
        if not receiver.finished:
            raise MalformedRequest("body ended before the closing boundary", code="malformed_multipart")
        receiver.close()
        if receiver.path is None or receiver.filename is None:
            raise InvalidRequest(f"no {FILE_FIELD!r} part in the form", code="missing_file")
        try:
            note = _NOTE.validate_python(receiver.fields.get("note", ""))
        except ValidationError as exc:
            raise InvalidRequest("invalid note", code="invalid_field", details={"field": "note"}) from exc
        units = receiver.fields.get("units") or None
        if units is not None and units not in _UNITS:
            raise InvalidRequest(
                "unknown unit", code="invalid_field", details={"field": "units", "allowed": sorted(_UNITS)}
            )
        yield IncomingModel(
            path=receiver.path,
            size=receiver.size,
            sha256=receiver.digest.hexdigest(),
            filename=receiver.filename,
            note=note,
            declared_unit=units,
        )
    finally:
        receiver.discard()
