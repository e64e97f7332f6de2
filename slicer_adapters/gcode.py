"""Pure parsers for what slicers write: G-code comments (PrusaSlicer, CuraEngine) and CuraEngine's stderr.

G-code files can reach hundreds of MB, so estimates are read from the head or tail of a file only, and layers
are counted by streaming the file in chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# PrusaSlicer 2.5 writes its estimates just before the ~8 KB config block at the very end of the file; 64 KiB
# leaves room for long custom G-code in that block.
PRUSASLICER_FOOTER_BYTES = 64 * 1024
# CuraEngine writes ;LAYER_COUNT: after its header and the start G-code, a few hundred bytes into the file.
CURA_HEADER_BYTES = 64 * 1024
_CHUNK = 1024 * 1024

_DURATION_PART = re.compile(r"(\d+)([dhms])")
_DURATION = re.compile(r"\s*(?:\d+[dhms]\s*)+")
_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PRUSA_TIME = re.compile(r"^; estimated printing time \(normal mode\) = (.+?)\s*$", re.MULTILINE)
_PRUSA_FILAMENT = re.compile(r"^; filament used \[(mm|cm3|g)\] = (.+?)\s*$", re.MULTILINE)
_CURA_LAYER_COUNT = re.compile(r"^;LAYER_COUNT:(\d+)\s*$", re.MULTILINE)
_CURA_PRINT_TIME = re.compile(r"^Print time \(s\): (\d+(?:\.\d+)?)\s*$")
_CURA_FILAMENT = re.compile(r"^Filament \(mm\^3\): (\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True, slots=True)
class PrusaSlicerFooter:
    """The estimates in a PrusaSlicer G-code footer; None where the footer has no such line."""

    print_seconds: float | None
    filament_mm: float | None  # length of filament
    filament_cm3: float | None
    filament_g: float | None  # only meaningful when the config sets filament_density


@dataclass(frozen=True, slots=True)
class CuraEstimates:
    """CuraEngine's estimates (stderr with ``-v``); None where the line is missing."""

    print_seconds: float | None
    filament_mm3: float | None


def parse_duration(text: str) -> float:
    """Seconds in a PrusaSlicer duration such as ``1d 2h 3m 4s``, ``2h 5m`` or ``48s``.

    Raises:
        ValueError: the text is not made only of ``<integer><d|h|m|s>`` parts.
    """
    if not _DURATION.fullmatch(text):
        raise ValueError(f"not a duration: {text!r}")
    return float(sum(int(number) * _SECONDS[unit] for number, unit in _DURATION_PART.findall(text)))


def _sum_of_values(text: str) -> float | None:
    # One value per extruder, comma separated; a single-extruder print has one.
    try:
        return sum(float(value) for value in text.split(","))
    except ValueError:
        return None


def parse_prusaslicer_footer(text: str) -> PrusaSlicerFooter:
    """The estimates in ``text``, the end of a PrusaSlicer G-code file (see ``read_tail``)."""
    time_match = _PRUSA_TIME.search(text)
    seconds = None
    if time_match:
        try:
            seconds = parse_duration(time_match.group(1))
        except ValueError:
            seconds = None
    filament = {unit: _sum_of_values(values) for unit, values in _PRUSA_FILAMENT.findall(text)}
    return PrusaSlicerFooter(
        print_seconds=seconds,
        filament_mm=filament.get("mm"),
        filament_cm3=filament.get("cm3"),
        filament_g=filament.get("g"),
    )


def parse_cura_layer_count(text: str) -> int | None:
    """The ``;LAYER_COUNT:`` header in ``text``, the start of a CuraEngine G-code file; None if absent."""
    match = _CURA_LAYER_COUNT.search(text)
    return int(match.group(1)) if match else None


def is_cura_estimate_line(line: str) -> bool:
    """Whether a line of CuraEngine's stderr carries an estimate (to keep while streaming)."""
    return bool(_CURA_PRINT_TIME.match(line) or _CURA_FILAMENT.match(line))


def parse_cura_estimates(lines: Iterable[str]) -> CuraEstimates:
    """Print time and filament volume from CuraEngine's stderr lines; the last of each wins."""
    seconds = mm3 = None
    for line in lines:
        if time_match := _CURA_PRINT_TIME.match(line):
            seconds = float(time_match.group(1))
        elif filament_match := _CURA_FILAMENT.match(line):
            mm3 = float(filament_match.group(1))
    return CuraEstimates(print_seconds=seconds, filament_mm3=mm3)


def read_head(path: Path, max_bytes: int) -> str:
    """The first ``max_bytes`` of a text file, decoded as UTF-8 (errors replaced)."""
    with path.open("rb") as file:
        return file.read(max_bytes).decode("utf-8", "replace")


def read_tail(path: Path, max_bytes: int) -> str:
    """The last ``max_bytes`` of a text file, decoded, without the partial line a mid-file start cuts."""
    with path.open("rb") as file:
        size = file.seek(0, 2)
        start = max(0, size - max_bytes)
        file.seek(start)
        data = file.read()
    if start > 0:
        data = data.partition(b"\n")[2]
    return data.decode("utf-8", "replace")


def count_marker_lines(path: Path, marker: bytes) -> int:
    """How many lines of a file start with ``marker``, streaming it in 1 MiB chunks.

    Used for layers: PrusaSlicer marks each with ``;LAYER_CHANGE``, CuraEngine with ``;LAYER:<n>``.
    """
    pattern = b"\n" + marker
    count = 0
    carry = b"\n"  # so that the first line counts like any other
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            data = carry + chunk
            count += data.count(pattern)
            # Shorter than the pattern, so no occurrence is counted twice; long enough to catch one split
            # across two chunks.
            carry = data[-(len(pattern) - 1) :]
    return count
