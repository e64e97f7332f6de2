"""Model file format detection: decide from the bytes (never the file name) what an upload is.

Detection answers "which parser should read this?" and rejects what no parser should touch (empty files,
foreign formats, truncated binary STLs, hostile or broken 3MF archives). It does not judge geometry: an ASCII
STL with CR-only line endings is still ``stl-ascii`` here and is rejected later by the geometry checks.

Errors, each with a stable machine-readable ``code`` and a ``details`` dict:

ModelFileError              model_file_error        base class, never raised itself
├── EmptyModelFile          empty_file              0 bytes, only whitespace, or a model with zero facets
├── UnsupportedModelFormat  unsupported_format      PNG, PDF, random bytes, a non-3MF zip, other text
├── TruncatedModelFile      truncated_model         binary STL shorter than its header's facet count says
├── ArchiveLimitExceeded    archive_limit_exceeded  3MF over the entry / total size / compression-ratio limit
└── MalformedArchive        malformed_archive       bad zip, CRC error, encrypted/unsafe entry, no model part

``OSError`` from opening ``path`` itself (missing file, permissions) is not a property of the model and
propagates unchanged.
"""

from __future__ import annotations

import lzma
import math
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, ClassVar

__all__ = [
    "ArchiveLimitExceeded",
    "ArchiveLimits",
    "DetectedFormat",
    "EmptyModelFile",
    "MalformedArchive",
    "ModelFileError",
    "ModelFormat",
    "TruncatedModelFile",
    "UnsupportedModelFormat",
    "detect_model_format",
]


class ModelFormat(StrEnum):
    STL_BINARY = "stl-binary"
    STL_ASCII = "stl-ascii"
    OBJ = "obj"
    THREE_MF = "3mf"

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self]

    @property
    def extension(self) -> str:
        """The usual file name ending, without the dot."""
        return "stl" if self in (ModelFormat.STL_BINARY, ModelFormat.STL_ASCII) else self.value


_MEDIA_TYPES = {
    ModelFormat.STL_BINARY: "model/stl",
    ModelFormat.STL_ASCII: "model/stl",
    ModelFormat.OBJ: "model/obj",
    ModelFormat.THREE_MF: "model/3mf",
}


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Caps applied while a 3MF (zip) archive is read; see ``detect_model_format``."""

    max_uncompressed_bytes: int  # total over all entries, counted while decompressing, never from headers
    max_compression_ratio: float  # per entry: decompressed bytes / compressed bytes
    max_entries: int

    def __post_init__(self) -> None:
        # A zero or negative cap would reject every archive; that is a configuration bug, not a bad upload.
        if self.max_uncompressed_bytes <= 0 or self.max_compression_ratio <= 0 or self.max_entries <= 0:
            raise ValueError(f"archive limits must be positive: {self!r}")


# Warning codes carried by DetectedFormat.warnings (stored with the revision, so they are part of the API).
WARN_STL_FACET_COUNT_MISMATCH = "stl_facet_count_mismatch"
WARN_STL_TRAILING_BYTES = "stl_trailing_bytes"


@dataclass(frozen=True, slots=True)
class DetectedFormat:
    format: ModelFormat
    warnings: tuple[str, ...] = ()  # machine-readable codes, e.g. "stl_facet_count_mismatch"


class ModelFileError(Exception):
    """Base of every problem with the uploaded file's content."""

    code: ClassVar[str] = "model_file_error"

    def __init__(self, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = details if details is not None else {}


class EmptyModelFile(ModelFileError):
    code = "empty_file"


class UnsupportedModelFormat(ModelFileError):
    code = "unsupported_format"


class TruncatedModelFile(ModelFileError):
    code = "truncated_model"


class ArchiveLimitExceeded(ModelFileError):
    code = "archive_limit_exceeded"


class MalformedArchive(ModelFileError):
    code = "malformed_archive"


# --- constants -------------------------------------------------------------------------------------------

# How much of the file the text heuristics look at. 64 KiB holds the header and hundreds of facets or
# vertices of any real file while keeping detection O(1) in the file size.
_SNIFF_BYTES = 64 * 1024

# Chunk size for streaming reads (whitespace scan, archive decompression): bounded memory per step.
_CHUNK_BYTES = 1024 * 1024

# UTF-8 byte order mark (Unicode standard, ch. 23.8); some Windows tools prepend it to text files.
_UTF8_BOM = b"\xef\xbb\xbf"

# Bytes Python's bytes.isspace() would accept: space, \t, \n, \v, \f, \r (ASCII whitespace).
_ASCII_WHITESPACE = b" \t\n\x0b\x0c\r"

# Binary STL layout (the de-facto spec, e.g. Burns, "The StL Format", 1993, section 6.5.2):
# 80-byte free-form header, uint32 little-endian facet count, then per facet 12 float32 (normal + 3 vertices)
# and a uint16 "attribute byte count" = 4*12 + 2 = 50 bytes.
_STL_HEADER_BYTES = 80
_STL_PREAMBLE_BYTES = _STL_HEADER_BYTES + 4  # header + uint32 facet count
_STL_RECORD_BYTES = 50
_STL_RECORD = struct.Struct("<12fH")
_STL_COUNT = struct.Struct("<I")

# When the header's facet count and the file size disagree, the records themselves must look like facets
# before we accept the file (with a warning) or call it a truncated STL rather than a foreign file. We look
# at the first 16 records: their 16 * 9 = 144 vertex coordinates must all be finite and below 1e9 in
# magnitude. 1e9 is a kilometre in micrometres, beyond any printable part in any unit an exporter writes; a
# random float32 bit pattern is inf/NaN or above 1e9 about 39 % of the time (exponent field >= 157 of 256),
# so one record of random bytes passes with probability ~1 % and two records ~0.01 %.
_PLAUSIBILITY_RECORDS = 16
_MAX_PLAUSIBLE_COORDINATE = 1e9

# ASCII STL keywords (same spec, section 6.5.1). Matched case-insensitively: a few exporters write upper case.
_ASCII_STL_START = re.compile(rb"\s*solid", re.IGNORECASE)
_ASCII_STL_FACET = re.compile(rb"\bfacet\b", re.IGNORECASE)  # "facet normal"; not the tail of "endfacet"
_ASCII_STL_ENDSOLID = re.compile(rb"\bendsolid\b", re.IGNORECASE)

# Statement keywords of Wavefront OBJ ("Object Files (.obj)", Appendix B1 of the Advanced Visualizer manual):
# vertex data, elements, free-form curve/surface attributes and body statements, connectivity, grouping,
# display/render attributes, and the general statements call/csh.
# fmt: off
_OBJ_KEYWORDS = frozenset(
    {
        "v", "vt", "vn", "vp",
        "p", "l", "f", "curv", "curv2", "surf",
        "cstype", "deg", "bmat", "step",
        "parm", "trim", "hole", "scrv", "sp", "end",
        "con",
        "g", "s", "mg", "o",
        "bevel", "c_interp", "d_interp", "lod", "usemtl", "mtllib", "shadow_obj", "trace_obj",
        "ctech", "stech", "maplib", "usemap",
        "call", "csh",
    }
)
# fmt: on
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Zip signatures (PKWARE APPNOTE.TXT 6.3.x, sections 4.3.7 and 4.3.16).
_ZIP_LOCAL_HEADER_MAGIC = b"PK\x03\x04"
_ZIP_EOCD_MAGIC = b"PK\x05\x06"
_ZIP_EOCD_BYTES = 22  # fixed part of the end-of-central-directory record
_ZIP_MAX_COMMENT_BYTES = 0xFFFF  # the EOCD comment length is a uint16
_ZIP_EOCD_TOTAL_ENTRIES_OFFSET = 10  # signature 4 + disk numbers 2 + 2 + entries on this disk 2
_ZIP64_ENTRY_COUNT_MARKER = 0xFFFF  # "see the ZIP64 record" (APPNOTE 4.4.22)
_ZIP_FLAG_ENCRYPTED = 0x1  # general purpose bit 0 (APPNOTE 4.4.4)

# 3MF Core Specification 1.3, chapter 2 (package): the OPC content-types part, the model part(s) under /3D/,
# and the content type / relationship type that name the 3D model. Part names are case-insensitive (OPC).
_3MF_CONTENT_TYPES_PART = "[content_types].xml"
_3MF_ROOT_RELS_PART = "_rels/.rels"
_3MF_MODEL_DIR = "3d/"
_3MF_MODEL_SUFFIX = ".model"
_3MF_MARKER = b"3dmanufacturing"  # in "...3dmanufacturing-3dmodel+xml" and ".../3dmanufacturing/.../3dmodel"
# The two OPC parts scanned for the marker are a few hundred bytes in practice; keep at most this much.
_OPC_PART_SCAN_BYTES = 64 * 1024
# Entries that produced at most this much are never judged by their compression ratio: a 300-byte XML part
# deflates 10x or more and an all-zero thumbnail far more, without being a bomb.
_RATIO_GRACE_BYTES = 1024 * 1024

# Magic numbers of formats people upload by mistake. They name what we saw in UnsupportedModelFormat details,
# and a "decisive" one also stops a header/size mismatch from being read as a damaged binary STL. The 80-byte
# STL header is free text, so short or wordlike signatures ("MZ") are not decisive: a header may start so.
# Sources: PNG spec 5.2; JPEG/JFIF SOI + marker; GIF89a spec; PDF 1.7 7.5.2; RFC 1952 (gzip); 7-Zip format
# doc; RAR 5.0 technote; ELF gABI; PE/COFF "MZ" DOS stub; .blend file header; ISO 10303-21 (STEP) header;
# glTF 2.0 GLB header; PLY header line; Geomview OFF header line; APPNOTE 4.3.16 (empty zip = EOCD only).
_FOREIGN_MAGIC: tuple[tuple[bytes, str, bool], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png", True),
    (b"\xff\xd8\xff", "jpeg", True),
    (b"GIF87a", "gif", True),
    (b"GIF89a", "gif", True),
    (b"%PDF-", "pdf", True),
    (b"\x1f\x8b", "gzip", True),
    (b"7z\xbc\xaf\x27\x1c", "7z", True),
    (b"Rar!\x1a\x07", "rar", True),
    (b"\x7fELF", "elf", True),
    (b"MZ", "windows-executable", False),
    (b"BLENDER", "blend", True),
    (b"ISO-10303-21;", "step", True),
    (b"glTF", "glb", True),
    (b"ply\n", "ply", True),
    (b"ply\r\n", "ply", True),
    (b"OFF\n", "off", True),
    (b"OFF\r\n", "off", True),
    (b"PK\x05\x06", "zip", True),
)


# --- entry point -----------------------------------------------------------------------------------------


def detect_model_format(path: Path, *, archive_limits: ArchiveLimits) -> DetectedFormat:
    """Sniff the content (never the file name) of ``path`` and say which model format it is.

    Order matters and is chosen so that no rule can steal another format's files:

    1. empty / whitespace-only -> EmptyModelFile;
    2. zip local-header magic -> 3MF, validated entry by entry under ``archive_limits``;
    3. binary STL whose size is exactly 84 + 50 * header count (n > 0) -> stl-binary, even if the header
       starts with "solid" (several exporters do that);
    4. "solid" + no NUL in the first 64 KiB + a "facet" keyword -> stl-ascii ("endsolid" without any facet
       -> EmptyModelFile). A binary STL with fewer than 2**24 facets always has a NUL (the count's high
       byte), so the rule only needs step 3 for 800+ MB files;
    5. text whose every complete line in the first 64 KiB is an OBJ statement, with a vertex -> obj;
    6. binary STL whose header count disagrees with the size: accepted with warnings, or TruncatedModelFile,
       but only when the records look like facets (see ``_binary_stl_with_bad_count``);
    7. anything else -> UnsupportedModelFormat.

    Raises ModelFileError subclasses; OSError from opening the file propagates.
    """
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        window = fh.read(_SNIFF_BYTES)
        if size == 0 or not window:
            raise EmptyModelFile("the model file is empty (0 bytes)", {"reason": "zero_bytes"})
        if _only_whitespace(fh, window):
            raise EmptyModelFile(
                "the model file contains only whitespace", {"reason": "whitespace_only", "bytes": size}
            )
        if window.startswith(_ZIP_LOCAL_HEADER_MAGIC):
            return _detect_3mf(fh, size, archive_limits)

    declared = _declared_facets(window)
    if declared is not None and declared > 0 and size == _STL_PREAMBLE_BYTES + _STL_RECORD_BYTES * declared:
        # Header count and size agree to the byte: for an ASCII file the "count" is four text characters
        # (>= 0x09090909, i.e. a file of 7.5 GB or more), so this cannot misfire on text in practice.
        return DetectedFormat(ModelFormat.STL_BINARY)

    is_text = b"\0" not in window
    if is_text and _ASCII_STL_START.match(_strip_bom(window)):
        if _ASCII_STL_FACET.search(window):
            return DetectedFormat(ModelFormat.STL_ASCII)
        if _ASCII_STL_ENDSOLID.search(window):
            raise EmptyModelFile("the ASCII STL solid has no facets", {"reason": "stl_zero_facets"})

    if is_text and _looks_like_obj(window, whole_file=size <= len(window)):
        return DetectedFormat(ModelFormat.OBJ)

    if declared is not None:
        detected = _binary_stl_with_bad_count(window, size, declared)
        if detected is not None:
            return detected

    raise _unsupported(window, size)


# --- helpers: plain files --------------------------------------------------------------------------------


def _strip_bom(data: bytes) -> bytes:
    return data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data


def _only_whitespace(fh: IO[bytes], window: bytes) -> bool:
    """True if the whole file is an optional BOM plus ASCII whitespace. Reads on only while that holds."""
    if _strip_bom(window).strip(_ASCII_WHITESPACE):
        return False
    while chunk := fh.read(_CHUNK_BYTES):
        if chunk.strip(_ASCII_WHITESPACE):
            return False
    return True


def _declared_facets(window: bytes) -> int | None:
    if len(window) < _STL_PREAMBLE_BYTES:
        return None
    (count,) = _STL_COUNT.unpack_from(window, _STL_HEADER_BYTES)
    return int(count)


def _looks_like_obj(window: bytes, *, whole_file: bool) -> bool:
    try:
        text = _strip_bom(window).decode("utf-8")
    except UnicodeDecodeError:
        # Latin-1 maps every byte, so this never fails; OBJ keywords are ASCII either way. UTF-8 also fails
        # when the window cuts a multi-byte character in half, which must not make a file "not OBJ".
        text = _strip_bom(window).decode("latin-1")
    lines = _LINE_BREAK.split(text)
    if not whole_file:
        lines.pop()  # the window may end mid-line; judge only complete lines
    saw_vertex = False
    continued = False
    for raw in lines:
        line = raw.strip()
        is_continuation = continued
        # A trailing backslash joins the next physical line to this statement (OBJ spec, "general
        # statement" syntax); real exporters split long faces that way.
        continued = line.endswith("\\")
        if is_continuation or not line or line.startswith("#"):
            continue
        keyword, *args = line.split()
        if keyword not in _OBJ_KEYWORDS:
            return False
        if keyword == "v" and not saw_vertex:
            saw_vertex = _floats(args[:3]) and len(args) >= 3
    return saw_vertex


def _floats(tokens: list[str]) -> bool:
    try:
        for token in tokens:
            float(token)
    except ValueError:
        return False
    return True


def _binary_stl_with_bad_count(window: bytes, size: int, declared: int) -> DetectedFormat | None:
    """Binary STL whose uint32 count is not exactly the number of 50-byte records in the file.

    Judgement calls (the exact-size case was handled by the caller):

    * count 0 and nothing after the 84-byte preamble but a partial record -> EmptyModelFile;
    * header count > records present -> TruncatedModelFile, even when the size happens to be a whole number
      of records: a download cut on a record boundary is still missing facets, and silently accepting it
      would lose geometry;
    * header count < records present (count 0 included: streaming writers that cannot seek back leave it
      at 0) -> stl-binary with ``stl_facet_count_mismatch``; a partial record at the end -> also
      ``stl_trailing_bytes``;
    * both of the previous two only if there is at least one complete record and the records look like
      facets (finite, sane vertex coordinates, and the sniff window holds a NUL, which every real binary STL
      does and no text file does); otherwise the header count is noise and the file is not an STL: None.
    """
    if _foreign_magic(window, decisive_only=True) is not None:
        return None
    present, partial = divmod(size - _STL_PREAMBLE_BYTES, _STL_RECORD_BYTES)
    if declared == 0 and present == 0:
        raise EmptyModelFile("the binary STL declares and holds no facets", {"reason": "stl_zero_facets"})
    if not _records_look_like_facets(window, present):
        return None
    if declared > present:
        raise TruncatedModelFile(
            f"the binary STL header declares {declared} facets but the file holds {present}",
            {
                "declared_facets": declared,
                "present_facets": present,
                "expected_bytes": _STL_PREAMBLE_BYTES + _STL_RECORD_BYTES * declared,
                "actual_bytes": size,
            },
        )
    warnings: list[str] = []
    if present > declared:
        warnings.append(WARN_STL_FACET_COUNT_MISMATCH)
    if partial:
        warnings.append(WARN_STL_TRAILING_BYTES)
    return DetectedFormat(ModelFormat.STL_BINARY, tuple(warnings))


def _records_look_like_facets(window: bytes, present: int) -> bool:
    if present == 0 or b"\0" not in window:
        return False
    checked = min(present, _PLAUSIBILITY_RECORDS, (len(window) - _STL_PREAMBLE_BYTES) // _STL_RECORD_BYTES)
    for index in range(checked):
        record = _STL_RECORD.unpack_from(window, _STL_PREAMBLE_BYTES + index * _STL_RECORD_BYTES)
        # Fields 0-2 are the normal, which broken exporters leave NaN for degenerate facets; 3-11 are the
        # three vertices, which no exporter writes as NaN or astronomically large.
        for coordinate in record[3:12]:
            if not math.isfinite(coordinate) or abs(coordinate) > _MAX_PLAUSIBLE_COORDINATE:
                return False
    return True


def _foreign_magic(window: bytes, *, decisive_only: bool = False) -> str | None:
    for magic, name, decisive in _FOREIGN_MAGIC:
        if window.startswith(magic) and (decisive or not decisive_only):
            return name
    return None


def _unsupported(window: bytes, size: int) -> UnsupportedModelFormat:
    sniffed = _foreign_magic(window)
    if sniffed is not None:
        return UnsupportedModelFormat(
            f"this looks like a {sniffed} file, not a 3D model",
            {"reason": "foreign_format", "sniffed": sniffed, "bytes": size},
        )
    return UnsupportedModelFormat(
        "not a recognised model format (binary or ASCII STL, OBJ, or 3MF)",
        {"reason": "unrecognised_content", "bytes": size},
    )


# --- helpers: 3MF archives -------------------------------------------------------------------------------


def _detect_3mf(fh: IO[bytes], size: int, limits: ArchiveLimits) -> DetectedFormat:
    declared_entries = _eocd_entry_count(fh, size)
    if declared_entries is not None and declared_entries > limits.max_entries:
        # Checked before zipfile parses the central directory, which costs memory per entry.
        raise _too_many_entries(declared_entries, limits)
    fh.seek(0)
    try:
        archive = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, NotImplementedError, ValueError, struct.error, EOFError) as exc:
        # ValueError covers UnicodeDecodeError on entry names flagged UTF-8 that are not; NotImplementedError
        # an entry needing a newer "version needed to extract" than zipfile implements.
        raise MalformedArchive(
            "the file starts like a zip archive but cannot be read as one",
            {"reason": "bad_zip", "error": str(exc)},
        ) from exc
    with archive:
        infos = archive.infolist()
        # The EOCD count can lie (zipfile walks the central directory by byte size, not by count).
        if len(infos) > limits.max_entries:
            raise _too_many_entries(len(infos), limits)
        _check_entry_names(infos)

        names = {info.filename.lower() for info in infos}
        has_content_types = _3MF_CONTENT_TYPES_PART in names
        model_parts = [info for info in infos if _is_model_part(info.filename)]
        mentions_3d_dir = any(name.startswith(_3MF_MODEL_DIR) for name in names)
        if not (has_content_types or model_parts or mentions_3d_dir):
            # Some other zip (a zipped STL, an office document without content types, ...): not ours, and not
            # worth decompressing.
            raise UnsupportedModelFormat(
                "this is a zip archive but not a 3MF package", {"sniffed": "zip", "reason": "not_3mf"}
            )

        produced, opc_text = _read_all_entries(archive, infos, limits)

    if has_content_types and model_parts:
        if all(produced[info.filename] == 0 for info in model_parts):
            raise MalformedArchive(
                "the 3MF model part is empty",
                {"reason": "empty_model_part", "entry": model_parts[0].filename},
            )
        return DetectedFormat(ModelFormat.THREE_MF)
    if model_parts or mentions_3d_dir or _3MF_MARKER in opc_text:
        if not model_parts:
            raise MalformedArchive(
                "the 3MF package has no 3D model part (3D/*.model)", {"reason": "missing_model_part"}
            )
        raise MalformedArchive(
            "the 3MF package has no [Content_Types].xml", {"reason": "missing_content_types"}
        )
    # Has [Content_Types].xml but nothing 3MF about it: a .docx/.xlsx or other OPC package.
    raise UnsupportedModelFormat(
        "this is an OPC package (e.g. an office document), not a 3MF", {"sniffed": "zip", "reason": "not_3mf"}
    )


def _eocd_entry_count(fh: IO[bytes], size: int) -> int | None:
    """Total entry count from the end-of-central-directory record, or None if absent or ZIP64."""
    tail_bytes = min(size, _ZIP_EOCD_BYTES + _ZIP_MAX_COMMENT_BYTES)
    fh.seek(size - tail_bytes)
    tail = fh.read(tail_bytes)
    at = tail.rfind(_ZIP_EOCD_MAGIC)
    if at < 0 or len(tail) - at < _ZIP_EOCD_BYTES:
        return None  # zipfile will say what is wrong
    (count,) = struct.unpack_from("<H", tail, at + _ZIP_EOCD_TOTAL_ENTRIES_OFFSET)
    # ZIP64 archives keep the real count elsewhere; the post-parse check covers them.
    return None if count == _ZIP64_ENTRY_COUNT_MARKER else int(count)


def _too_many_entries(count: int, limits: ArchiveLimits) -> ArchiveLimitExceeded:
    return ArchiveLimitExceeded(
        f"the archive has {count} entries; at most {limits.max_entries} are allowed",
        {"limit": "entries", "max": limits.max_entries, "actual": count},
    )


def _is_model_part(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(_3MF_MODEL_DIR) and lowered.endswith(_3MF_MODEL_SUFFIX)


def _check_entry_names(infos: list[zipfile.ZipInfo]) -> None:
    seen: set[str] = set()
    for info in infos:
        if info.flag_bits & _ZIP_FLAG_ENCRYPTED:
            raise MalformedArchive(
                "the archive contains an encrypted entry",
                {"reason": "encrypted_entry", "entry": info.filename},
            )
        if _unsafe_entry_name(info.orig_filename):
            raise MalformedArchive(
                "the archive contains an entry with an unsafe path",
                {"reason": "unsafe_entry_name", "entry": info.orig_filename},
            )
        # OPC part names are unique case-insensitively; two entries with one name make "which one is the
        # model" depend on the reader.
        key = info.filename.lower()
        if key in seen:
            raise MalformedArchive(
                "the archive contains two entries with the same name",
                {"reason": "duplicate_entry_name", "entry": info.filename},
            )
        seen.add(key)


def _unsafe_entry_name(name: str) -> bool:
    if "\0" in name or name.startswith(("/", "\\")):
        return True
    if re.match(r"[A-Za-z]:", name):  # Windows drive letter, e.g. "C:evil" or "C:\evil"
        return True
    return ".." in re.split(r"[/\\]", name)


def _read_all_entries(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], limits: ArchiveLimits
) -> tuple[dict[str, int], bytes]:
    """Decompress every entry, counting real output. Returns bytes produced per entry and the start of the
    OPC content-types and root-relationships parts (to recognise a 3MF that lost its model part)."""
    total = 0
    produced: dict[str, int] = {}
    opc_text = bytearray()
    for info in infos:
        keep_text = info.filename.lower() in (_3MF_CONTENT_TYPES_PART, _3MF_ROOT_RELS_PART)
        entry_bytes = 0
        ratio_cap = limits.max_compression_ratio * max(info.compress_size, 1)
        try:
            with archive.open(info) as stream:
                # Never ask for more than one byte past the total cap: we stop as soon as it is passed.
                while chunk := stream.read(min(_CHUNK_BYTES, limits.max_uncompressed_bytes - total + 1)):
                    entry_bytes += len(chunk)
                    total += len(chunk)
                    if total > limits.max_uncompressed_bytes:
                        raise ArchiveLimitExceeded(
                            "the archive decompresses to more than the allowed total size",
                            {
                                "limit": "uncompressed_bytes",
                                "max": limits.max_uncompressed_bytes,
                                "entry": info.filename,
                                "read_bytes": total,
                            },
                        )
                    if entry_bytes > _RATIO_GRACE_BYTES and entry_bytes > ratio_cap:
                        raise ArchiveLimitExceeded(
                            f"archive entry {info.filename!r} expands more than "
                            f"{limits.max_compression_ratio:g}x its compressed size",
                            {
                                "limit": "compression_ratio",
                                "max": limits.max_compression_ratio,
                                "entry": info.filename,
                                "compressed_bytes": info.compress_size,
                                "read_bytes": entry_bytes,
                            },
                        )
                    if keep_text and len(opc_text) < _OPC_PART_SCAN_BYTES:
                        opc_text += chunk[: _OPC_PART_SCAN_BYTES - len(opc_text)]
        except NotImplementedError as exc:
            raise MalformedArchive(
                f"archive entry {info.filename!r} uses an unsupported compression method or feature",
                {"reason": "unsupported_compression", "entry": info.filename, "error": str(exc)},
            ) from exc
        # zipfile reports a CRC mismatch as BadZipFile when the entry's last byte is read; a corrupt stream
        # surfaces as zlib.error / lzma.LZMAError, bzip2 corruption as OSError, a short one as EOFError.
        except (
            zipfile.BadZipFile,
            zlib.error,
            lzma.LZMAError,
            EOFError,
            OSError,
            ValueError,
            struct.error,
        ) as exc:
            raise MalformedArchive(
                f"archive entry {info.filename!r} is corrupt",
                {"reason": "corrupt_entry", "entry": info.filename, "error": str(exc)},
            ) from exc
        produced[info.filename] = entry_bytes
    return produced, bytes(opc_text)
