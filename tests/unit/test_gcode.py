"""The G-code and slicer-output parsers, on small texts written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from slicer_adapters import gcode

PRUSA_FOOTER = """\
G1 X110.131 Y90.835 E2.5
M84 ; motors off
; filament used [mm] = 1336.36
; filament used [cm3] = 3.21
; filament used [g] = 3.99
; total filament used [g] = 3.99
; total filament cost = 0.00
; estimated printing time (normal mode) = {duration}
; estimated printing time (silent mode) = 9h 59m 59s

; prusaslicer_config = begin
; avoid_crossing_perimeters = 0
; before_layer_gcode = ;LAYER_CHANGE
; prusaslicer_config = end
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("48s", 48), ("17m 52s", 1072), ("2h 5m", 7500), ("1d 2h 3m 4s", 93784), ("3d", 259200)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert gcode.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "12", "1h 2x", "an hour", "1.5h"])
def test_parse_duration_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        gcode.parse_duration(text)


@pytest.mark.parametrize(
    ("duration", "seconds"), [("35s", 35.0), ("1h 30m", 5400.0), ("1d 2h 3m 4s", 93784.0)]
)
def test_prusaslicer_footer_reads_the_normal_mode_time(duration: str, seconds: float) -> None:
    footer = gcode.parse_prusaslicer_footer(PRUSA_FOOTER.format(duration=duration))
    assert footer == gcode.PrusaSlicerFooter(
        print_seconds=seconds, filament_mm=1336.36, filament_cm3=3.21, filament_g=3.99
    )


def test_prusaslicer_footer_sums_the_values_of_several_extruders() -> None:
    footer = gcode.parse_prusaslicer_footer("; filament used [mm] = 100.5, 20.25\n")
    assert footer.filament_mm == pytest.approx(120.75)


def test_prusaslicer_footer_missing() -> None:
    footer = gcode.parse_prusaslicer_footer("G1 X1 Y1 E1\nM84\n")
    assert footer == gcode.PrusaSlicerFooter(None, None, None, None)


def test_prusaslicer_footer_with_an_unreadable_time() -> None:
    footer = gcode.parse_prusaslicer_footer("; estimated printing time (normal mode) = soon\n")
    assert footer.print_seconds is None


def test_cura_layer_count_header() -> None:
    head = ";FLAVOR:Marlin\n;TIME:6666\nG28\n;LAYER_COUNT:150\n;LAYER:0\nM107\n"
    assert gcode.parse_cura_layer_count(head) == 150
    assert gcode.parse_cura_layer_count(";FLAVOR:Marlin\nG28\n") is None


def test_cura_estimates_from_stderr_lines() -> None:
    stderr = [
        "Gcode header after slicing:",
        ";TIME:932",
        "Print time (s): 932",
        "Print time (hr|min|s): 0h 15m 32s",
        "Filament (mm^3): 3129",
    ]
    kept = [line for line in stderr if gcode.is_cura_estimate_line(line)]
    assert kept == ["Print time (s): 932", "Filament (mm^3): 3129"]
    assert gcode.parse_cura_estimates(kept) == gcode.CuraEstimates(print_seconds=932, filament_mm3=3129)


def test_cura_estimates_missing() -> None:
    assert gcode.parse_cura_estimates(["Total time elapsed 0.11s."]) == gcode.CuraEstimates(None, None)


def test_read_head_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "out.gcode"
    path.write_text("first line\nsecond line\nthird line\n")
    assert gcode.read_head(path, 5) == "first"
    # A tail that starts mid-line drops the cut line; one that covers the whole file keeps it all.
    assert gcode.read_tail(path, 15) == "third line\n"
    assert gcode.read_tail(path, 1000) == path.read_text()


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1024 * 1024])
def test_count_marker_lines_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(gcode, "_CHUNK", chunk)
    path = tmp_path / "out.gcode"
    path.write_bytes(
        b";LAYER_CHANGE\n;Z:0.2\nG1 X1\n;LAYER_CHANGE\n;Z:0.4\n; x = ;LAYER_CHANGE\n;LAYER_CHANGE"
    )
    assert gcode.count_marker_lines(path, b";LAYER_CHANGE") == 3
    assert gcode.count_marker_lines(path, b";Z:") == 2


def test_count_marker_lines_counts_cura_layers_not_its_header(tmp_path: Path) -> None:
    path = tmp_path / "out.gcode"
    path.write_bytes(b";LAYER_COUNT:3\n;LAYER:-1\nG1\n;LAYER:0\nG1\n;LAYER:1\nG1\n")
    assert gcode.count_marker_lines(path, b";LAYER:") == 3
