"""Tests for parts_catalog.formats: every case is built here from bytes, plus a pass over the corpus."""

from __future__ import annotations

import csv
import io
import random
import struct
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from parts_catalog.formats import (
    ArchiveLimitExceeded,
    ArchiveLimits,
    DetectedFormat,
    EmptyModelFile,
    MalformedArchive,
    ModelFileError,
    ModelFormat,
    TruncatedModelFile,
    UnsupportedModelFormat,
    detect_model_format,
)

GENEROUS = ArchiveLimits(max_uncompressed_bytes=10**9, max_compression_ratio=200.0, max_entries=1000)

Vec = tuple[float, float, float]
Facet = tuple[Vec, Vec, Vec, Vec]  # normal, then three vertices

# A tetrahedron with outward normals (unnormalised normals are fine for detection).
_P0, _P1, _P2, _P3 = (0.0, 0.0, 0.0), (10.0, 0.0, 0.0), (0.0, 10.0, 0.0), (0.0, 0.0, 10.0)
TETRA: list[Facet] = [
    ((0.0, 0.0, -1.0), _P0, _P2, _P1),
    ((0.0, -1.0, 0.0), _P0, _P1, _P3),
    ((-1.0, 0.0, 0.0), _P0, _P3, _P2),
    ((0.577, 0.577, 0.577), _P1, _P2, _P3),
]


def binary_stl(
    facets: Sequence[Facet],
    *,
    header: bytes = b"binary tetrahedron",
    declared: int | None = None,
    attribute: int = 0,
    trailing: bytes = b"",
) -> bytes:
    out = bytearray(header.ljust(80, b"\0")[:80])
    out += struct.pack("<I", len(facets) if declared is None else declared)
    for normal, a, b, c in facets:
        out += struct.pack("<12fH", *normal, *a, *b, *c, attribute)
    return bytes(out) + trailing


def ascii_stl(facets: Sequence[Facet], *, newline: str = "\n", name: str = "tetra") -> bytes:
    lines = [f"solid {name}"]
    for normal, *vertices in facets:
        lines.append("  facet normal {:e} {:e} {:e}".format(*normal))
        lines.append("    outer loop")
        lines.extend("      vertex {:e} {:e} {:e}".format(*v) for v in vertices)
        lines.append("    endloop")
        lines.append("  endfacet")
    lines.append(f"endsolid {name}")
    return (newline.join(lines) + newline).encode("ascii")


CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
    b"</Types>"
)
ROOT_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Target="/3D/3dmodel.model" Id="rel0" '
    b'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
)
TETRA_MODEL = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<model unit="millimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
    b'<resources><object id="1" type="model"><mesh><vertices>'
    b'<vertex x="0" y="0" z="0"/><vertex x="10" y="0" z="0"/>'
    b'<vertex x="0" y="10" z="0"/><vertex x="0" y="0" z="10"/>'
    b"</vertices><triangles>"
    b'<triangle v1="0" v2="2" v3="1"/><triangle v1="0" v2="1" v3="3"/>'
    b'<triangle v1="0" v2="3" v3="2"/><triangle v1="1" v2="2" v3="3"/>'
    b'</triangles></mesh></object></resources><build><item objectid="1"/></build></model>'
)
MINIMAL_3MF_ENTRIES = [
    ("[Content_Types].xml", CONTENT_TYPES),
    ("_rels/.rels", ROOT_RELS),
    ("3D/3dmodel.model", TETRA_MODEL),
]


def zip_bytes(entries: Sequence[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, compression)
    return buffer.getvalue()


def central_directory_offset(data: bytes, name: str) -> int:
    """Offset of the central-directory header of ``name`` (APPNOTE 4.3.12: signature PK\\x01\\x02,
    file name at offset 46)."""
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        (name_len,) = struct.unpack_from("<H", data, at + 28)
        if data[at + 46 : at + 46 + name_len] == name.encode():
            return at
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{name} not in central directory")


def write(tmp_path: Path, data: bytes, name: str = "upload.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def detect(path: Path, limits: ArchiveLimits = GENEROUS) -> DetectedFormat:
    return detect_model_format(path, archive_limits=limits)


# --- errors and value types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (EmptyModelFile, "empty_file"),
        (UnsupportedModelFormat, "unsupported_format"),
        (TruncatedModelFile, "truncated_model"),
        (ArchiveLimitExceeded, "archive_limit_exceeded"),
        (MalformedArchive, "malformed_archive"),
    ],
)
def test_error_codes_and_details(error: type[ModelFileError], code: str) -> None:
    assert error.code == code
    bare = error("message")
    assert isinstance(bare, ModelFileError)
    assert bare.details == {}
    assert str(bare) == "message"
    assert error("m", {"k": 1}).details == {"k": 1}


def test_archive_limits_reject_non_positive_values() -> None:
    with pytest.raises(ValueError, match="positive"):
        ArchiveLimits(max_uncompressed_bytes=0, max_compression_ratio=100.0, max_entries=10)


def test_model_format_values() -> None:
    assert [f.value for f in ModelFormat] == ["stl-binary", "stl-ascii", "obj", "3mf"]


# --- empty and foreign files -----------------------------------------------------------------------------


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyModelFile) as info:
        detect(write(tmp_path, b""))
    assert info.value.details["reason"] == "zero_bytes"


@pytest.mark.parametrize(
    "data",
    [b" ", b"\n\r\n\t  \x0b\x0c", b"\xef\xbb\xbf  \n", b" " * 200_000],
    ids=["space", "mixed", "bom", "larger-than-sniff-window"],
)
def test_whitespace_only_file_is_empty(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(EmptyModelFile) as info:
        detect(write(tmp_path, data))
    assert info.value.details["reason"] == "whitespace_only"


def test_whitespace_beyond_the_sniff_window_then_content_is_not_empty(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelFormat):
        detect(write(tmp_path, b" " * 200_000 + b"x"))


@pytest.mark.parametrize(
    ("magic", "sniffed"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png"),
        (b"%PDF-1.7\n", "pdf"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"ply\nformat binary_little_endian 1.0\n", "ply"),
    ],
)
def test_foreign_binary_formats_are_unsupported(tmp_path: Path, magic: bytes, sniffed: str) -> None:
    data = magic + random.Random(7).randbytes(5000)
    with pytest.raises(UnsupportedModelFormat) as info:
        detect(write(tmp_path, data, "model.stl"))
    assert info.value.details["sniffed"] == sniffed


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_are_unsupported(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    # At least 16 records after the preamble, so the facet plausibility check has its full sample.
    data = rng.randbytes(rng.randrange(84 + 50 * 16, 200_000))
    with pytest.raises(UnsupportedModelFormat):
        detect(write(tmp_path, data, "model.stl"))


@pytest.mark.parametrize(
    "text",
    [
        b"hello world\nthis is not a model\n",
        b"ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION(('part'),'2;1');\nENDSEC;\n",
        b"solid waste management report\nchapter one\n" * 10,
        b"v 1 2 3\nv 4 5 6\nhello\n",
        b"# only comments\n# and no vertices\ng group\n",
        b"v one two three\n",
    ],
    ids=["prose", "step", "solid-prose", "obj-with-unknown-keyword", "obj-without-vertex", "obj-bad-vertex"],
)
def test_other_text_is_unsupported(tmp_path: Path, text: bytes) -> None:
    with pytest.raises(UnsupportedModelFormat):
        detect(write(tmp_path, text, "model.obj"))


def test_file_name_is_ignored(tmp_path: Path) -> None:
    assert detect(write(tmp_path, binary_stl(TETRA), "part.obj")).format is ModelFormat.STL_BINARY
    assert detect(write(tmp_path, zip_bytes(MINIMAL_3MF_ENTRIES), "part.stl")).format is ModelFormat.THREE_MF


# --- binary STL ------------------------------------------------------------------------------------------


def test_binary_stl(tmp_path: Path) -> None:
    assert detect(write(tmp_path, binary_stl(TETRA))) == DetectedFormat(ModelFormat.STL_BINARY, ())


def test_binary_stl_with_solid_header(tmp_path: Path) -> None:
    data = binary_stl(TETRA, header=b"solid tetra".ljust(80, b" "))
    assert data.startswith(b"solid")
    assert detect(write(tmp_path, data)) == DetectedFormat(ModelFormat.STL_BINARY, ())


def test_binary_stl_with_solid_header_and_no_nul_byte_is_still_binary(tmp_path: Path) -> None:
    # The worst case of the "solid" trap: the header even says "facet" and the sniff window holds no NUL.
    # Any count below 2**24 has a zero high byte, so this needs a count like 0x01010101 (an 842 MB file,
    # written sparse here), coordinates whose float32 bytes are all non-zero, and a non-zero attribute.
    declared = 0x01010101
    odd: Facet = ((1.1, 2.2, 3.3), (1.1, 2.2, 3.3), (4.4, 5.3, 6.6), (7.7, 8.8, 9.9))
    head = binary_stl(
        [odd] * 1400, header=b"solid facet exporter".ljust(80, b" "), declared=declared, attribute=0x2020
    )
    assert b"\0" not in head[: 64 * 1024]
    path = tmp_path / "huge.stl"
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(84 + 50 * declared)
    assert detect(path).format is ModelFormat.STL_BINARY


def test_binary_stl_with_trailing_bytes(tmp_path: Path) -> None:
    data = binary_stl(TETRA, trailing=b"\x00" * 10)
    assert detect(write(tmp_path, data)) == DetectedFormat(ModelFormat.STL_BINARY, ("stl_trailing_bytes",))


def test_solid_header_binary_stl_with_trailing_bytes(tmp_path: Path) -> None:
    data = binary_stl(TETRA, header=b"solid tetra".ljust(80, b" "), trailing=b"\n")
    assert detect(write(tmp_path, data)) == DetectedFormat(ModelFormat.STL_BINARY, ("stl_trailing_bytes",))


@pytest.mark.parametrize("declared", [0, 2])
def test_binary_stl_header_undercounting_whole_records(tmp_path: Path, declared: int) -> None:
    # Count 0 is what streaming writers that cannot seek back leave behind.
    data = binary_stl(TETRA, declared=declared)
    detected = detect(write(tmp_path, data))
    assert detected == DetectedFormat(ModelFormat.STL_BINARY, ("stl_facet_count_mismatch",))


def test_binary_stl_undercount_and_partial_record_warn_twice(tmp_path: Path) -> None:
    data = binary_stl(TETRA, declared=3, trailing=b"\x01\x02\x03")
    assert detect(write(tmp_path, data)).warnings == ("stl_facet_count_mismatch", "stl_trailing_bytes")


def test_truncated_binary_stl(tmp_path: Path) -> None:
    data = binary_stl(TETRA * 3, declared=1000)[: 84 + 50 * 7 + 13]
    with pytest.raises(TruncatedModelFile) as info:
        detect(write(tmp_path, data))
    assert info.value.details["declared_facets"] == 1000
    assert info.value.details["present_facets"] == 7


def test_binary_stl_cut_on_a_record_boundary_is_truncated_not_a_mismatch(tmp_path: Path) -> None:
    data = binary_stl(TETRA * 2, declared=12)
    with pytest.raises(TruncatedModelFile) as info:
        detect(write(tmp_path, data))
    assert (info.value.details["declared_facets"], info.value.details["present_facets"]) == (12, 8)


def test_binary_stl_with_zero_facets_is_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyModelFile) as info:
        detect(write(tmp_path, binary_stl([], header=b"Exported from Blender")))
    assert info.value.details["reason"] == "stl_zero_facets"


def test_binary_stl_shorter_than_its_preamble_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelFormat):
        detect(write(tmp_path, binary_stl(TETRA)[:60]))


# --- ASCII STL -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr-only"])
def test_ascii_stl_line_endings(tmp_path: Path, newline: str) -> None:
    # CR-only files are rejected later by geometry checks; detection is only about the format.
    data = ascii_stl(TETRA, newline=newline)
    assert detect(write(tmp_path, data)) == DetectedFormat(ModelFormat.STL_ASCII, ())


def test_ascii_stl_with_bom_leading_whitespace_and_upper_case(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf  \n" + ascii_stl(TETRA).upper()
    assert detect(write(tmp_path, data)).format is ModelFormat.STL_ASCII


def test_ascii_stl_without_facets_is_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyModelFile) as info:
        detect(write(tmp_path, b"solid nothing\nendsolid nothing\n"))
    assert info.value.details["reason"] == "stl_zero_facets"


# --- OBJ -------------------------------------------------------------------------------------------------

OBJ_WITH_NEGATIVE_INDICES = b"""# exported by hand
mtllib tetra.mtl
o tetra

v 0 0 0
v 10 0 0
v 0 10 0
v 0 0 10
vt 0 0
vn 0 0 -1
g faces
usemtl steel
s off
f -4 -2 -3
f -4/-1/-1 -3/-1/-1 -1/-1/-1
f -4 -1 -2
f -3 -2 \\
  -1
"""


def test_obj_with_comments_negative_indices_and_continuation(tmp_path: Path) -> None:
    data = OBJ_WITH_NEGATIVE_INDICES
    assert detect(write(tmp_path, data)) == DetectedFormat(ModelFormat.OBJ, ())
    assert detect(write(tmp_path, data.replace(b"\n", b"\r\n"))).format is ModelFormat.OBJ


def test_obj_with_vertex_block_larger_than_the_sniff_window(tmp_path: Path) -> None:
    vertices = b"".join(b"v %d.125 %d.5 -%d.75\n" % (i, i, i) for i in range(20_000))
    assert len(vertices) > 64 * 1024
    data = b"# big scan\n" + vertices + b"f 1 2 3\n"
    assert detect(write(tmp_path, data)).format is ModelFormat.OBJ


def test_obj_in_latin1_with_comment(tmp_path: Path) -> None:
    data = "# Pièce détachée\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n".encode("latin-1")
    assert detect(write(tmp_path, data)).format is ModelFormat.OBJ


# --- 3MF -------------------------------------------------------------------------------------------------


def test_minimal_3mf(tmp_path: Path) -> None:
    path = write(tmp_path, zip_bytes(MINIMAL_3MF_ENTRIES))
    assert detect(path) == DetectedFormat(ModelFormat.THREE_MF, ())


def test_3mf_names_are_case_insensitive(tmp_path: Path) -> None:
    entries = [("[content_types].XML", CONTENT_TYPES), ("3d/Part.MODEL", TETRA_MODEL)]
    assert detect(write(tmp_path, zip_bytes(entries))).format is ModelFormat.THREE_MF


def test_zip_without_model_part_is_malformed_3mf(tmp_path: Path) -> None:
    path = write(tmp_path, zip_bytes(MINIMAL_3MF_ENTRIES[:2]))
    with pytest.raises(MalformedArchive) as info:
        detect(path)
    assert info.value.details["reason"] == "missing_model_part"


def test_3mf_without_content_types_is_malformed(tmp_path: Path) -> None:
    path = write(tmp_path, zip_bytes(MINIMAL_3MF_ENTRIES[1:]))
    with pytest.raises(MalformedArchive) as info:
        detect(path)
    assert info.value.details["reason"] == "missing_content_types"


def test_3mf_with_empty_model_part_is_malformed(tmp_path: Path) -> None:
    path = write(tmp_path, zip_bytes([*MINIMAL_3MF_ENTRIES[:2], ("3D/3dmodel.model", b"")]))
    with pytest.raises(MalformedArchive) as info:
        detect(path)
    assert info.value.details["reason"] == "empty_model_part"


@pytest.mark.parametrize(
    "entries",
    [
        [("part.stl", binary_stl(TETRA))],
        [("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w:document/>")],
    ],
    ids=["zipped-stl", "office-document"],
)
def test_zip_that_is_not_a_3mf_is_unsupported(tmp_path: Path, entries: list[tuple[str, bytes]]) -> None:
    with pytest.raises(UnsupportedModelFormat) as info:
        detect(write(tmp_path, zip_bytes(entries)))
    assert info.value.details["sniffed"] == "zip"


def test_empty_zip_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelFormat):
        detect(write(tmp_path, zip_bytes([])))


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 3MF whose model part is 50 MB of zeros, deflated to ~50 KB (ratio ~1000)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.3mf"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in MINIMAL_3MF_ENTRIES[:2]:
            archive.writestr(name, data)
        megabyte = bytes(1_000_000)
        with archive.open("3D/3dmodel.model", "w") as entry:
            for _ in range(50):
                entry.write(megabyte)
    return path


def test_zip_bomb_trips_the_compression_ratio(zip_bomb: Path) -> None:
    limits = ArchiveLimits(max_uncompressed_bytes=10_000_000, max_compression_ratio=100.0, max_entries=100)
    with pytest.raises(ArchiveLimitExceeded) as info:
        detect(zip_bomb, limits)
    assert info.value.details["limit"] == "compression_ratio"
    assert info.value.details["max"] == 100.0
    assert info.value.details["entry"] == "3D/3dmodel.model"


def test_zip_bomb_trips_the_total_size_when_ratio_is_lax(zip_bomb: Path) -> None:
    limits = ArchiveLimits(max_uncompressed_bytes=10_000_000, max_compression_ratio=1e6, max_entries=100)
    with pytest.raises(ArchiveLimitExceeded) as info:
        detect(zip_bomb, limits)
    assert info.value.details["limit"] == "uncompressed_bytes"
    assert info.value.details["max"] == 10_000_000
    # Reading stops one byte past the cap instead of decompressing the remaining 40 MB.
    assert info.value.details["read_bytes"] == 10_000_001


def test_total_size_counts_all_entries(tmp_path: Path) -> None:
    noise = random.Random(3).randbytes(600_000)  # incompressible: ratio ~1, only the total can trip
    entries = [*MINIMAL_3MF_ENTRIES, ("3D/Textures/a.png", noise), ("3D/Textures/b.png", noise[::-1])]
    limits = ArchiveLimits(max_uncompressed_bytes=1_000_000, max_compression_ratio=100.0, max_entries=100)
    with pytest.raises(ArchiveLimitExceeded) as info:
        detect(write(tmp_path, zip_bytes(entries)), limits)
    assert info.value.details["limit"] == "uncompressed_bytes"
    assert info.value.details["entry"] == "3D/Textures/b.png"


def test_small_entries_may_compress_very_well(tmp_path: Path) -> None:
    # 500 KB of zeros compresses ~1000x; under the 1 MiB grace it is not judged by ratio.
    entries = [*MINIMAL_3MF_ENTRIES, ("Metadata/thumbnail.png", bytes(500_000))]
    limits = ArchiveLimits(max_uncompressed_bytes=10_000_000, max_compression_ratio=100.0, max_entries=100)
    assert detect(write(tmp_path, zip_bytes(entries)), limits).format is ModelFormat.THREE_MF


def test_header_sizes_are_not_trusted(tmp_path: Path) -> None:
    # Central-directory "uncompressed size" (APPNOTE 4.3.12, offset 24) claims 2 GB: the real content is
    # tiny, and only the bytes actually produced count against the 10 MB cap.
    data = bytearray(zip_bytes(MINIMAL_3MF_ENTRIES))
    struct.pack_into(
        "<I", data, central_directory_offset(bytes(data), "3D/3dmodel.model") + 24, 2_000_000_000
    )
    limits = ArchiveLimits(max_uncompressed_bytes=10_000_000, max_compression_ratio=100.0, max_entries=100)
    assert detect(write(tmp_path, bytes(data)), limits).format is ModelFormat.THREE_MF


def test_too_many_entries(tmp_path: Path) -> None:
    entries = MINIMAL_3MF_ENTRIES + [(f"Metadata/{i}.txt", b"x") for i in range(10)]
    limits = ArchiveLimits(max_uncompressed_bytes=10**9, max_compression_ratio=100.0, max_entries=5)
    with pytest.raises(ArchiveLimitExceeded) as info:
        detect(write(tmp_path, zip_bytes(entries)), limits)
    assert info.value.details == {"limit": "entries", "max": 5, "actual": 13}


def test_too_many_entries_when_the_end_record_lies_about_the_count(tmp_path: Path) -> None:
    entries = MINIMAL_3MF_ENTRIES + [(f"Metadata/{i}.txt", b"x") for i in range(10)]
    data = bytearray(zip_bytes(entries))
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, eocd + 8, 1, 1)  # entries on this disk, total entries (APPNOTE 4.3.16)
    limits = ArchiveLimits(max_uncompressed_bytes=10**9, max_compression_ratio=100.0, max_entries=5)
    with pytest.raises(ArchiveLimitExceeded) as info:
        detect(write(tmp_path, bytes(data)), limits)
    assert info.value.details["actual"] == 13


@pytest.mark.parametrize(
    "name",
    ["../evil.model", "3D/../../evil.model", "/etc/evil.model", "\\evil.model", "C:evil.model", "3D\\..\\x"],
)
def test_unsafe_entry_names(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, zip_bytes([*MINIMAL_3MF_ENTRIES, (name, b"<model/>")]))
    with pytest.raises(MalformedArchive) as info:
        detect(path)
    assert info.value.details["reason"] == "unsafe_entry_name"
    assert info.value.details["entry"] == name


def test_duplicate_entry_names(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = zip_bytes([*MINIMAL_3MF_ENTRIES, ("3D/3dmodel.model", b"<model/>")])
    with pytest.raises(MalformedArchive) as info:
        detect(write(tmp_path, data))
    assert info.value.details["reason"] == "duplicate_entry_name"


def test_encrypted_entry(tmp_path: Path) -> None:
    data = bytearray(zip_bytes(MINIMAL_3MF_ENTRIES))
    flags_at = central_directory_offset(bytes(data), "3D/3dmodel.model") + 8  # general purpose bit flag
    data[flags_at] |= 0x01
    with pytest.raises(MalformedArchive) as info:
        detect(write(tmp_path, bytes(data)))
    assert info.value.details["reason"] == "encrypted_entry"


def test_corrupted_crc(tmp_path: Path) -> None:
    data = bytearray(zip_bytes(MINIMAL_3MF_ENTRIES, compression=zipfile.ZIP_STORED))
    at = data.find(b'<vertex x="10"')
    data[at + 11] = ord("9")  # stored, so this edits the content itself: the CRC no longer matches
    with pytest.raises(MalformedArchive) as info:
        detect(write(tmp_path, bytes(data)))
    assert info.value.details["reason"] == "corrupt_entry"
    assert "CRC" in str(info.value.details["error"])


def test_unsupported_compression_method(tmp_path: Path) -> None:
    data = bytearray(zip_bytes(MINIMAL_3MF_ENTRIES))
    cd = central_directory_offset(bytes(data), "3D/3dmodel.model")
    struct.pack_into("<H", data, cd + 10, 9)  # compression method 9 = Deflate64, which zipfile lacks
    with pytest.raises(MalformedArchive) as info:
        detect(write(tmp_path, bytes(data)))
    assert info.value.details["reason"] == "unsupported_compression"


@pytest.mark.parametrize(
    "data",
    [b"PK\x03\x04" + bytes(200), b"PK\x03\x04garbage", zip_bytes(MINIMAL_3MF_ENTRIES)[:-30]],
    ids=["zeros", "short", "cut-end-record"],
)
def test_broken_zip_is_malformed(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(MalformedArchive) as info:
        detect(write(tmp_path, data))
    assert info.value.details["reason"] == "bad_zip"


def _mutations(seed: int, samples: Sequence[bytes], count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for _ in range(count):
        data = bytearray(rng.choice(samples))
        if rng.random() < 0.5:
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            del data[rng.randrange(len(data)) :]
        yield bytes(data)


def test_mutated_files_only_ever_raise_model_file_errors(tmp_path: Path) -> None:
    samples = [
        zip_bytes(MINIMAL_3MF_ENTRIES),
        zip_bytes(MINIMAL_3MF_ENTRIES, compression=zipfile.ZIP_STORED),
        zip_bytes(MINIMAL_3MF_ENTRIES, compression=zipfile.ZIP_LZMA),
        zip_bytes(MINIMAL_3MF_ENTRIES, compression=zipfile.ZIP_BZIP2),
        binary_stl(TETRA * 5),
        ascii_stl(TETRA),
        OBJ_WITH_NEGATIVE_INDICES,
    ]
    outcomes: Counter[str] = Counter()
    for data in _mutations(11, samples, 800):
        try:
            outcomes[detect(write(tmp_path, data)).format.value] += 1
        except ModelFileError as exc:
            outcomes[exc.code] += 1
    allowed = {f.value for f in ModelFormat} | {e.code for e in ModelFileError.__subclasses__()}
    assert set(outcomes) <= allowed


# --- the shared corpus -----------------------------------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"

# Distinct values of the manifest's `format` column and what detection must say for them.
MANIFEST_FORMATS = {
    "stl-ascii": ModelFormat.STL_ASCII,
    "stl-binary": ModelFormat.STL_BINARY,
    "stl-binary(solid-header)": ModelFormat.STL_BINARY,  # the "solid" trap: binary regardless of the header
    "obj": ModelFormat.OBJ,
    "3mf": ModelFormat.THREE_MF,
}

# Every corpus file detection rejects, with the error it must raise. Checked after looking at each file.
EXPECTED_REJECTS: dict[str, type[ModelFileError]] = {
    # Geomview OFF (manifest format "off"): a real mesh, but not a format the platform accepts.
    "meshes/admesh__conveyor_basic.off": UnsupportedModelFormat,
    # trimesh's empty-IO fixture: an 84-byte binary STL whose header declares 0 facets and that holds none
    # (manifest ground truth "empty binary STL (0 faces)").
    "meshes/trimesh__emptyIO_stl_empty_bin.stl": EmptyModelFile,
}
# Not rejected on purpose, although the manifest marks them broken:
# - prusa__test_stl_ASCII_20mmbox-CR.stl (trimesh load error): CR-only ASCII STL; detection reports
#   stl-ascii and leaves the rejection to the geometry checks.
# - 3mfs__MUSTFAIL_..._MissingBuildElement.3mf: a sound zip/OPC package whose model XML lacks <build>;
#   detection does not parse the XML, the 3MF loader must reject it.


def _manifest_rows() -> list[dict[str, str]]:
    manifest = CORPUS / "manifest.csv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


CORPUS_ROWS = _manifest_rows()


def _corpus_outcome(row: dict[str, str]) -> DetectedFormat | ModelFileError:
    try:
        return detect(CORPUS / row["file"])
    except ModelFileError as exc:
        return exc


@pytest.mark.parametrize("row", CORPUS_ROWS or [None], ids=lambda row: row["file"] if row else "absent")
def test_corpus_file(row: dict[str, str] | None) -> None:
    if row is None:
        pytest.skip("../shared/corpus not present")
    path = CORPUS / row["file"]
    assert path.stat().st_size == int(row["bytes"]), "the corpus file differs from its manifest row"
    outcome = _corpus_outcome(row)
    expected_error = EXPECTED_REJECTS.get(row["file"])
    if expected_error is not None:
        assert type(outcome) is expected_error, f"expected {expected_error.__name__}, got {outcome!r}"
        return
    assert row["format"] in MANIFEST_FORMATS, f"new manifest format {row['format']!r}: map or allowlist it"
    assert isinstance(outcome, DetectedFormat), f"{row['file']} unexpectedly rejected: {outcome!r}"
    assert outcome.format is MANIFEST_FORMATS[row["format"]]


def test_corpus_summary(capsys: pytest.CaptureFixture[str]) -> None:
    if not CORPUS_ROWS:
        pytest.skip("../shared/corpus not present")
    detected: Counter[str] = Counter()
    rejected: dict[str, str] = {}
    for row in CORPUS_ROWS:
        outcome = _corpus_outcome(row)
        if isinstance(outcome, ModelFileError):
            rejected[row["file"]] = f"{type(outcome).__name__} {outcome.details}"
        else:
            detected[outcome.format.value + "".join(f" +{w}" for w in outcome.warnings)] += 1
    with capsys.disabled():
        print(f"\ncorpus: {len(CORPUS_ROWS)} files, detected {dict(sorted(detected.items()))}")
        for name, error in sorted(rejected.items()):
            print(f"  rejected {name}: {error}")
    assert set(rejected) == set(EXPECTED_REJECTS)
