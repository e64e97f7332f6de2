"""Pure mapping from our PrintProfile and BuildVolume to CuraEngine 4.13 ``-s key=value`` settings.

CuraEngine reads leaf settings only and never evaluates the formulas in the definition files: a setting that
Cura's front end would derive (``infill_line_distance`` from ``infill_sparse_density``, ``wall_line_count``
from ``wall_thickness``, every first-layer and per-feature value from its parent) keeps its definition's
default unless it is given here. So every setting the profile decides is given as a leaf, and the derived ones
are computed with the front end's formulas (fdmprinter.def.json of Cura 4.13).
"""

from __future__ import annotations

from slicer_adapters.models import BuildVolume, PrintProfile

# Plain Marlin G-code: CuraEngine does not fill {placeholders}, and it emits the heat-up commands before this
# itself (material_print_temp_prepend, material_bed_temp_prepend).
START_GCODE = "G28 ; home all axes\nG92 E0 ; reset extruder\nG1 Z5 F3000 ; lift nozzle"
END_GCODE = (
    "M104 S0 ; nozzle heater off\nM140 S0 ; bed heater off\nM107 ; fan off\n"
    "G91\nG1 Z10 F600 ; lift away from the part\nG90\nM84 ; motors off"
)
# Grid infill prints both directions on every layer, like PrusaSlicer's "grid" that its adapter uses.
INFILL_PATTERN = "grid"
# fdmprinter.def.json's infill_line_distance multiplies the single-direction spacing by the number of line
# directions a pattern prints per layer: 2 for grid (3 for triangles/cubic, 1 for lines).
_GRID_DIRECTIONS = 2


def _number(value: float) -> str:
    # Six significant digits: no float noise (0.9 / 0.2 -> 4.5), ample for millimetres and mm/s.
    return f"{value:.6g}"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def infill_line_distance(density: float, line_width_mm: float) -> float:
    """Distance between infill lines for grid infill of ``density`` (0..1), as Cura's front end computes it.

    ``infill_line_width * 100 / infill_sparse_density * 2`` for grid: one direction at spacing ``w / density``
    would fill ``density`` of the area; grid prints two, so each is spaced twice as far. 0 means no infill.
    """
    if density <= 0:
        return 0.0
    return line_width_mm / density * _GRID_DIRECTIONS


def global_settings(profile: PrintProfile, volume: BuildVolume) -> dict[str, str]:
    """Machine-wide (``-s`` before ``-e0``) settings for ``profile`` on a printer of ``volume``."""
    width = _number(profile.line_width_mm)
    nozzle_c, bed_c = _number(profile.nozzle_temperature_c), _number(profile.bed_temperature_c)
    first_layer_speed = _number(profile.first_layer_speed_mm_s)
    solid_speed = _number(profile.solid_infill_speed_mm_s)
    return {
        "machine_width": _number(volume.x_mm),
        "machine_depth": _number(volume.y_mm),
        "machine_height": _number(volume.z_mm),
        "machine_center_is_zero": "false",
        "center_object": "true",  # the model's own x/y are ignored: it is placed at the bed's centre
        "machine_gcode_flavor": "RepRap (Marlin/Sprinter)",
        "machine_heated_bed": _flag(profile.bed_temperature_c > 0),
        "machine_nozzle_size": _number(profile.nozzle_diameter_mm),
        "machine_start_gcode": START_GCODE,
        "machine_end_gcode": END_GCODE,
        "layer_height": _number(profile.layer_height_mm),
        "layer_height_0": _number(profile.first_layer_height_mm),
        # Default 0.1 mm, not the layer height: a leaf like the others.
        "infill_sparse_thickness": _number(profile.layer_height_mm),
        "wall_line_count": str(profile.perimeters),
        "top_layers": str(profile.top_layers),
        "bottom_layers": str(profile.bottom_layers),
        "initial_bottom_layers": str(profile.bottom_layers),
        "infill_pattern": INFILL_PATTERN,
        "infill_line_distance": _number(infill_line_distance(profile.infill_density, profile.line_width_mm)),
        "line_width": width,
        "wall_line_width_0": width,
        "wall_line_width_x": width,
        "skin_line_width": width,
        "roofing_line_width": width,
        "infill_line_width": width,
        "skirt_brim_line_width": width,
        "initial_layer_line_width_factor": "100",  # percent of the line width, as in PrusaSlicer's config
        "speed_print": _number(profile.perimeter_speed_mm_s),
        "speed_wall_0": _number(profile.external_perimeter_speed_mm_s),
        "speed_wall_x": _number(profile.perimeter_speed_mm_s),
        "speed_infill": _number(profile.infill_speed_mm_s),
        "speed_topbottom": solid_speed,
        "speed_roofing": solid_speed,
        "speed_travel": _number(profile.travel_speed_mm_s),
        "speed_layer_0": first_layer_speed,
        "speed_print_layer_0": first_layer_speed,
        "speed_travel_layer_0": _number(profile.travel_speed_mm_s),
        "skirt_brim_speed": first_layer_speed,
        # One skirt loop and no brim, as in the PrusaSlicer config (fdmprinter's default is a 20-line brim).
        "adhesion_type": "skirt",
        "skirt_line_count": "1",
        "support_enable": "false",
        "material_print_temperature": nozzle_c,
        "material_print_temperature_layer_0": nozzle_c,
        "material_initial_print_temperature": nozzle_c,
        "material_final_print_temperature": nozzle_c,
        "material_bed_temperature": bed_c,
        "material_bed_temperature_layer_0": bed_c,
    }


def extruder_settings(profile: PrintProfile) -> dict[str, str]:
    """Settings defined per extruder train (``-s`` after ``-e0``); given globally they would be ignored.

    ``material_diameter`` in particular stays at fdmextruder's 2.85 mm unless set here, which makes every E
    value 2.65x too small on a 1.75 mm printer ((2.85 / 1.75) ** 2).
    """
    return {
        "material_diameter": _number(profile.filament_diameter_mm),
        "machine_nozzle_size": _number(profile.nozzle_diameter_mm),
    }


def settings_argv(profile: PrintProfile, volume: BuildVolume) -> list[str]:
    """The ``-s key=value`` arguments of ``CuraEngine slice``: global settings, then ``-e0`` and its own."""
    argv: list[str] = []
    for key, value in global_settings(profile, volume).items():
        argv += ["-s", f"{key}={value}"]
    argv.append("-e0")
    for key, value in extruder_settings(profile).items():
        argv += ["-s", f"{key}={value}"]
    return argv
