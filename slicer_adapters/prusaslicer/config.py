"""Pure mapping from our PrintProfile and BuildVolume to PrusaSlicer 2.5 config keys (``.ini``).

Only the keys our profile decides are written here; ``prusa-slicer --load small.ini --save full.ini`` then
fills in the other ~230 with PrusaSlicer's defaults, so that nothing is left for a model file's embedded
config to decide.
"""

from __future__ import annotations

from slicer_adapters.models import BuildVolume, PrintProfile

# Plain Marlin G-code without placeholders; PrusaSlicer emits the heat-up commands before it by itself.
START_GCODE = "G28 ; home all axes\nG92 E0 ; reset extruder\nG1 Z5 F3000 ; lift nozzle"
END_GCODE = (
    "M104 S0 ; nozzle heater off\nM140 S0 ; bed heater off\nM107 ; fan off\n"
    "G91\nG1 Z10 F600 ; lift away from the part\nG90\nM84 ; motors off"
)
# Grid infill prints both directions on every layer; CuraEngine's adapter uses its "grid" too, so the two
# slicers' estimates describe the same part.
INFILL_PATTERN = "grid"


def _number(value: float) -> str:
    # Six significant digits: PrusaSlicer's own precision for these settings, and no float noise (0.45).
    return f"{value:.6g}"


def bed_shape(volume: BuildVolume) -> str:
    """The rectangular bed as PrusaSlicer's ``bed_shape``: corners from the origin, counter-clockwise."""
    x, y = _number(volume.x_mm), _number(volume.y_mm)
    return f"0x0,{x}x0,{x}x{y},0x{y}"


def bed_centre(volume: BuildVolume) -> str:
    """The bed's centre as ``--center`` takes it (``X,Y``)."""
    return f"{_number(volume.x_mm / 2)},{_number(volume.y_mm / 2)}"


def prusaslicer_config(profile: PrintProfile, volume: BuildVolume) -> dict[str, str]:
    """PrusaSlicer config keys and values for printing ``profile`` on a printer of ``volume``.

    Returns:
        Keys in a stable order; values as PrusaSlicer writes them (percentages with ``%``, newlines in
        G-code as ``\\n``).
    """
    width = _number(profile.line_width_mm)
    nozzle_c, bed_c = str(profile.nozzle_temperature_c), str(profile.bed_temperature_c)
    return {
        "bed_shape": bed_shape(volume),
        "max_print_height": _number(volume.z_mm),
        "gcode_flavor": "marlin2",
        "nozzle_diameter": _number(profile.nozzle_diameter_mm),
        "filament_diameter": _number(profile.filament_diameter_mm),
        # Without a density PrusaSlicer reports 0 g.
        "filament_density": _number(profile.filament_density_g_cm3),
        "layer_height": _number(profile.layer_height_mm),
        "first_layer_height": _number(profile.first_layer_height_mm),
        "perimeters": str(profile.perimeters),
        "top_solid_layers": str(profile.top_layers),
        "bottom_solid_layers": str(profile.bottom_layers),
        "fill_density": f"{_number(profile.infill_density * 100)}%",
        "fill_pattern": INFILL_PATTERN,
        # Every width explicit: 0 would mean "automatic", and the first layer defaults to 200% of its height.
        "extrusion_width": width,
        "first_layer_extrusion_width": width,
        "perimeter_extrusion_width": width,
        "external_perimeter_extrusion_width": width,
        "infill_extrusion_width": width,
        "solid_infill_extrusion_width": width,
        "top_infill_extrusion_width": width,
        "perimeter_speed": _number(profile.perimeter_speed_mm_s),
        "external_perimeter_speed": _number(profile.external_perimeter_speed_mm_s),
        "infill_speed": _number(profile.infill_speed_mm_s),
        "solid_infill_speed": _number(profile.solid_infill_speed_mm_s),
        "top_solid_infill_speed": _number(profile.solid_infill_speed_mm_s),
        "travel_speed": _number(profile.travel_speed_mm_s),
        "first_layer_speed": _number(profile.first_layer_speed_mm_s),
        "temperature": nozzle_c,
        "first_layer_temperature": nozzle_c,
        "bed_temperature": bed_c,
        "first_layer_bed_temperature": bed_c,
        "skirts": "1",
        "brim_width": "0",
        "support_material": "0",
        "start_gcode": START_GCODE.replace("\n", "\\n"),
        "end_gcode": END_GCODE.replace("\n", "\\n"),
    }


def render_ini(config: dict[str, str]) -> str:
    """The ``key = value`` lines PrusaSlicer's ``--load`` reads."""
    return "".join(f"{key} = {value}\n" for key, value in config.items())
