"""The estimate model: print time and filament from geometry facts alone. Pure arithmetic, no mesh.

``estimate`` needs only ``MeshStats`` (a geometry report has them), so the router can promise an ETA before
any slicer runs, without loading a model.

The model works on the *average layer* of the part (``section = volume / height``), the way a slicer fills it
(PrusaSlicer 2.5 is the reference):

- walls: ``perimeters`` beads around the outline; the outline length summed over layers is
  ``area_side / layer_height``, so walls take ``area_side * perimeters * spacing`` of volume (no more than the
  part has);
- skins: ``top_layers`` solid layers under every upward face and ``bottom_layers`` above every downward
  one, ``(area_up * top_layers + area_down * bottom_layers) * layer_height``, less the share of each layer
  the walls already cover;
- sparse infill: what is left, times ``infill_density``, except that thin insides are printed solid (gap
  fill, PrusaSlicer's ``solid_infill_below_area``): the solid share is ``exp(-inside_width /
  thin_width_mm)``, where ``inside_width = 2 * inside_area / outline`` is the inside's average width;
- a one-loop skirt around the footprint on the first layer.

A bead is a rounded rectangle (PrusaSlicer's ``Flow``): ``line_width`` wide and ``layer_height`` tall, beads
``spacing = line_width - layer_height * (1 - pi / 4)`` apart, so a path of length L lays ``L * spacing *
layer_height`` of plastic. Time is each path's length over its speed (external perimeter, perimeters, solid
infill, sparse infill; the first layer and the skirt at ``first_layer_speed``) times ``motion_factor``
(acceleration, corners, small perimeters), with each layer slowed down to PrusaSlicer's minimum layer time
(but no extrusion below its minimum print speed), plus travel and a per-layer overhead. Every coefficient is
in ``Calibration``; ``tests/benchmarks/bench_estimator.py`` measures the model against PrusaSlicer and fits
the four marked as fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slicer_adapters.models import MeshStats, PrintProfile

# A bead's corners are quarter circles (PrusaSlicer Flow::rounded_rectangle_extrusion_spacing).
_BEAD_CORNER_LOSS = 1.0 - math.pi / 4.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """Every coefficient of the model, each with where its value comes from.

    Defaults reproduce PrusaSlicer 2.5 with ``slicer_adapters.prusaslicer``'s config (its other keys at
    PrusaSlicer's defaults). ``id`` goes into the estimator's version (and so into the slice cache key):
    change it with any value.
    """

    id: str = "ps25-fit1"
    # --- What the reference slicer does (PrusaSlicer 2.5 defaults, read from its expanded config) ---
    # skirts = 1 (set by the adapter), skirt_distance = 6 mm, skirt_height = 1 layer. The adapter's start
    # G-code draws no purge line, so the skirt is the only priming.
    skirt_loops: int = 1
    skirt_distance_mm: float = 6.0
    # Cooling: slowdown_below_layer_time = 5 s stretches a short layer to last that long, but slows no
    # extrusion below min_print_speed = 10 mm/s.
    min_layer_time_s: float = 5.0
    min_print_speed_mm_s: float = 10.0
    # --- Assumed ---
    # Travel per layer in bed-footprint half-perimeters (size x + size y): one crossing of the part, from
    # where a layer's infill ends to where the next layer's perimeters start.
    travel_factor: float = 1.0
    # --- Fitted by tests/benchmarks/bench_estimator.py on 42 parts (37 corpus files, 5 demo parts) ---
    # Solid top and bottom volume per modelled skin volume: bridges over infill and holes are round beads
    # (nozzle-wide: ~1.5x a flat bead's section) and solid infill overlaps the perimeters.
    skin_factor: float = 1.41
    # Thin parts of a layer are printed solid (gap fill, and PrusaSlicer's solid_infill_below_area = 70 mm2):
    # the solid share of the inside is exp(-width / thin_width_mm), width being the inside's average width.
    thin_width_mm: float = 1.77
    # Extrusion time per nominal time (length / speed): acceleration, corners, small perimeters at 15 mm/s.
    motion_factor: float = 1.21
    # Per layer: the layer change, retractions (2 mm at 40 mm/s, each way) and travel between regions.
    layer_overhead_s: float = 0.40


DEFAULT_CALIBRATION = Calibration()


@dataclass(frozen=True, slots=True)
class Estimate:
    """The figures a slicer reports (see ``SliceResult``), predicted without slicing."""

    print_seconds: float
    filament_mm3: float
    filament_g: float
    layer_count: int


def layer_count(height_mm: float, profile: PrintProfile) -> int:
    """Layers for a part ``height_mm`` tall: the first layer, then as many layers as fit, rounded.

    The top of the last layer is within half a layer of the part's top, as in PrusaSlicer.
    """
    rest = max(0.0, height_mm - profile.first_layer_height_mm)
    return 1 + round(rest / profile.layer_height_mm)


def bead_spacing(profile: PrintProfile) -> float:
    """Centre-to-centre distance of adjacent beads (mm); ``spacing * layer_height`` is a bead's section."""
    return profile.line_width_mm - profile.layer_height_mm * _BEAD_CORNER_LOSS


def estimate(
    stats: MeshStats, profile: PrintProfile, calibration: Calibration = DEFAULT_CALIBRATION
) -> Estimate:
    """Print time and filament for a part, from its geometry facts (see the module docstring).

    Returns:
        An estimate with ``print_seconds > 0`` and ``filament_mm3 > 0`` for any part with volume and height;
        zeros (no layers) for a part without height.
    """
    c, p = calibration, profile
    size_x, size_y, height = stats.size_mm
    volume = max(stats.volume_mm3, 0.0)
    if height <= 0 or volume <= 0:
        return Estimate(print_seconds=0.0, filament_mm3=0.0, filament_g=0.0, layer_count=0)
    layers = layer_count(height, p)
    h = p.layer_height_mm
    spacing = bead_spacing(p)
    bead = spacing * h  # mm3 per mm of path

    # Volumes of the average layer stacked over the height.
    section = volume / height
    outline = stats.area_side_mm2 / height
    wall_band = min(section, outline * p.perimeters * spacing)
    inside = section - wall_band
    walls = wall_band * height
    skin_layers = stats.area_up_mm2 * p.top_layers + stats.area_down_mm2 * p.bottom_layers
    skins = min(volume - walls, skin_layers * h * (inside / section) * c.skin_factor)
    rest = volume - walls - skins
    # The inside's average width: its area over half its boundary, taken as long as the outline.
    inside_width = 2 * inside / outline if outline > 0 else math.inf
    solid_rest = rest * math.exp(-inside_width / c.thin_width_mm)
    sparse = (rest - solid_rest) * p.infill_density
    solid = skins + solid_rest
    skirt_path = c.skirt_loops * (2 * (size_x + size_y) + 2 * math.pi * c.skirt_distance_mm)
    skirt = skirt_path * spacing * p.first_layer_height_mm
    filament = walls + solid + sparse + skirt

    # Extrusion time: each path at its speed.
    wall_path, solid_path, sparse_path = walls / bead, solid / bead, sparse / bead
    extrude_s = c.motion_factor * (
        wall_path / p.perimeters / p.external_perimeter_speed_mm_s
        + wall_path * (1 - 1 / p.perimeters) / p.perimeter_speed_mm_s
        + solid_path / p.solid_infill_speed_mm_s
        + sparse_path / p.infill_speed_mm_s
    )
    # The first layer (its footprint, at most the average section) goes at first_layer_speed instead of the
    # solid infill speed it was counted at; the skirt goes at first_layer_speed too.
    footprint_path = min(section, stats.area_down_mm2) / spacing
    first_layer_extra_s = footprint_path * (1 / p.first_layer_speed_mm_s - 1 / p.solid_infill_speed_mm_s)
    extrude_s += max(0.0, first_layer_extra_s) + skirt_path / p.first_layer_speed_mm_s
    # Cooling slows a short layer down (the average layer stands for all of them).
    layer_path = (wall_path + solid_path + sparse_path) / layers
    slowest_s = min(c.min_layer_time_s, layer_path / c.min_print_speed_mm_s)
    extrude_s = layers * max(extrude_s / layers, slowest_s)
    travel_s = layers * c.travel_factor * (size_x + size_y) / p.travel_speed_mm_s
    seconds = extrude_s + travel_s + layers * c.layer_overhead_s
    return Estimate(
        print_seconds=seconds,
        filament_mm3=filament,
        filament_g=filament * p.filament_density_g_cm3 / 1000,
        layer_count=layers,
    )
