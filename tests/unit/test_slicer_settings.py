"""The pure profile mappings: PrusaSlicer ini keys and CuraEngine ``-s`` settings."""

from __future__ import annotations

import pytest

from slicer_adapters.curaengine import settings as cura
from slicer_adapters.models import BuildVolume, PrintProfile
from slicer_adapters.prusaslicer import config as prusa

BED = BuildVolume(x_mm=250, y_mm=210, z_mm=205)


def cura_pairs(argv: list[str]) -> list[tuple[str, str]]:
    """(key, value) of every ``-s key=value``, in order; ``-e0`` appears as ("-e0", "")."""
    pairs: list[tuple[str, str]] = []
    words = iter(argv)
    for word in words:
        if word == "-s":
            key, _, value = next(words).partition("=")
            pairs.append((key, value))
        else:
            pairs.append((word, ""))
    return pairs


def test_prusaslicer_bed_from_the_build_volume() -> None:
    config = prusa.prusaslicer_config(PrintProfile(), BED)
    assert config["bed_shape"] == "0x0,250x0,250x210,0x210"
    assert config["max_print_height"] == "205"
    assert prusa.bed_centre(BED) == "125,105"
    assert prusa.bed_centre(BuildVolume(x_mm=220.5, y_mm=220, z_mm=250)) == "110.25,110"


def test_prusaslicer_profile_values() -> None:
    profile = PrintProfile(
        nozzle_diameter_mm=0.6,
        line_width_mm=0.68,
        layer_height_mm=0.3,
        first_layer_height_mm=0.35,
        filament_diameter_mm=2.85,
        filament_density_g_cm3=1.27,
        perimeters=3,
        top_layers=5,
        bottom_layers=4,
        infill_density=0.35,
        nozzle_temperature_c=240,
        bed_temperature_c=80,
        external_perimeter_speed_mm_s=20,
    )
    config = prusa.prusaslicer_config(profile, BED)
    assert {
        key: config[key]
        for key in (
            "nozzle_diameter",
            "layer_height",
            "first_layer_height",
            "filament_diameter",
            "filament_density",
            "perimeters",
            "top_solid_layers",
            "bottom_solid_layers",
            "fill_density",
            "temperature",
            "first_layer_temperature",
            "bed_temperature",
            "first_layer_bed_temperature",
            "external_perimeter_speed",
            "gcode_flavor",
        )
    } == {
        "nozzle_diameter": "0.6",
        "layer_height": "0.3",
        "first_layer_height": "0.35",
        "filament_diameter": "2.85",
        "filament_density": "1.27",
        "perimeters": "3",
        "top_solid_layers": "5",
        "bottom_solid_layers": "4",
        "fill_density": "35%",
        "temperature": "240",
        "first_layer_temperature": "240",
        "bed_temperature": "80",
        "first_layer_bed_temperature": "80",
        "external_perimeter_speed": "20",  # mm/s, never a percentage of another speed
        "gcode_flavor": "marlin2",
    }
    widths = {value for key, value in config.items() if key.endswith("extrusion_width")}
    assert widths == {"0.68"}


@pytest.mark.parametrize(
    ("density", "expected"), [(0.0, "0%"), (0.2, "20%"), (0.155, "15.5%"), (1.0, "100%")]
)
def test_prusaslicer_fill_density_is_a_percentage(density: float, expected: str) -> None:
    assert prusa.prusaslicer_config(PrintProfile(infill_density=density), BED)["fill_density"] == expected


def test_prusaslicer_ini_is_one_line_per_key() -> None:
    config = prusa.prusaslicer_config(PrintProfile(), BED)
    ini = prusa.render_ini(config)
    lines = ini.splitlines()
    assert len(lines) == len(config)
    assert lines[0] == "bed_shape = 0x0,250x0,250x210,0x210"
    # Multi-line G-code is escaped the way PrusaSlicer itself saves it.
    assert "start_gcode = G28 ; home all axes\\nG92 E0" in ini


def test_cura_material_diameter_and_nozzle_come_after_e0() -> None:
    pairs = cura_pairs(cura.settings_argv(PrintProfile(filament_diameter_mm=1.75), BED))
    keys = [key for key, _ in pairs]
    e0 = keys.index("-e0")
    assert keys.count("-e0") == 1
    assert "material_diameter" not in keys[:e0]
    assert dict(pairs[e0 + 1 :]) == {"material_diameter": "1.75", "machine_nozzle_size": "0.4"}


def test_cura_every_setting_is_a_key_value_pair() -> None:
    for key, value in cura_pairs(cura.settings_argv(PrintProfile(), BED)):
        assert key == "-e0" or (key.isidentifier() and value), (key, value)


def test_cura_machine_from_the_build_volume() -> None:
    settings = cura.global_settings(PrintProfile(), BED)
    assert (settings["machine_width"], settings["machine_depth"], settings["machine_height"]) == (
        "250",
        "210",
        "205",
    )
    assert settings["machine_center_is_zero"] == "false"
    assert settings["center_object"] == "true"
    assert settings["machine_gcode_flavor"] == "RepRap (Marlin/Sprinter)"


@pytest.mark.parametrize(
    ("density", "width", "distance"),
    [(0.2, 0.45, 4.5), (0.2, 0.4, 4.0), (0.5, 0.4, 1.6), (1.0, 0.45, 0.9), (0.0, 0.45, 0.0)],
)
def test_cura_infill_line_distance_for_grid(density: float, width: float, distance: float) -> None:
    # fdmprinter.def.json: infill_line_width * 100 / infill_sparse_density * 2 for the grid pattern.
    assert cura.infill_line_distance(density, width) == pytest.approx(distance)


def test_cura_leaf_settings_follow_the_profile() -> None:
    profile = PrintProfile(
        line_width_mm=0.5,
        layer_height_mm=0.15,
        first_layer_height_mm=0.25,
        perimeters=3,
        top_layers=6,
        bottom_layers=5,
        infill_density=0.25,
        perimeter_speed_mm_s=50,
        external_perimeter_speed_mm_s=30,
        infill_speed_mm_s=90,
        solid_infill_speed_mm_s=35,
        travel_speed_mm_s=180,
        first_layer_speed_mm_s=15,
        nozzle_temperature_c=230,
        bed_temperature_c=0,
    )
    settings = cura.global_settings(profile, BED)
    assert settings["infill_line_distance"] == "4"  # 0.5 / 0.25 * 2
    assert settings["infill_pattern"] == "grid"
    assert (settings["layer_height"], settings["layer_height_0"], settings["infill_sparse_thickness"]) == (
        "0.15",
        "0.25",
        "0.15",
    )
    assert (settings["wall_line_count"], settings["top_layers"], settings["bottom_layers"]) == ("3", "6", "5")
    assert settings["initial_bottom_layers"] == "5"
    for key in ("wall_line_width_0", "wall_line_width_x", "skin_line_width", "infill_line_width"):
        assert settings[key] == "0.5", key
    assert {
        key: settings[key]
        for key in (
            "speed_print",
            "speed_wall_0",
            "speed_wall_x",
            "speed_infill",
            "speed_topbottom",
            "speed_travel",
            "speed_layer_0",
            "speed_print_layer_0",
        )
    } == {
        "speed_print": "50",
        "speed_wall_0": "30",
        "speed_wall_x": "50",
        "speed_infill": "90",
        "speed_topbottom": "35",
        "speed_travel": "180",
        "speed_layer_0": "15",
        "speed_print_layer_0": "15",
    }
    assert settings["material_print_temperature"] == settings["material_print_temperature_layer_0"] == "230"
    assert settings["material_bed_temperature"] == "0"
    assert settings["machine_heated_bed"] == "false"


def test_cura_start_gcode_has_no_placeholders() -> None:
    # CuraEngine does not fill {placeholders}: they would reach the printer verbatim.
    settings = cura.global_settings(PrintProfile(), BED)
    assert "{" not in settings["machine_start_gcode"] + settings["machine_end_gcode"]
