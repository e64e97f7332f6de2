"""What a slicer is asked to do and what it answers, in our words (no slicer's vocabulary leaks past here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class PrintProfile(BaseModel):
    """How a printer prints one material: the settings every adapter translates into its own config.

    Defaults are a common 0.4 mm nozzle, 0.2 mm layer PLA profile (PrusaSlicer's and Cura's "normal"
    quality presets agree on these within a few percent).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "generic-pla-0.2"
    material: str = "PLA"
    nozzle_diameter_mm: float = Field(default=0.4, gt=0.05, le=2.0)
    line_width_mm: float = Field(default=0.45, gt=0.05, le=3.0)
    layer_height_mm: float = Field(default=0.2, gt=0.01, le=1.0)
    first_layer_height_mm: float = Field(default=0.2, gt=0.01, le=1.0)
    filament_diameter_mm: float = Field(default=1.75, gt=0.5, le=3.5)
    filament_density_g_cm3: float = Field(default=1.24, gt=0.1, le=10.0)
    perimeters: int = Field(default=2, ge=1, le=20)
    top_layers: int = Field(default=4, ge=0, le=50)
    bottom_layers: int = Field(default=3, ge=0, le=50)
    infill_density: float = Field(default=0.2, ge=0.0, le=1.0)
    perimeter_speed_mm_s: float = Field(default=45.0, gt=0, le=1000)
    external_perimeter_speed_mm_s: float = Field(default=25.0, gt=0, le=1000)
    infill_speed_mm_s: float = Field(default=80.0, gt=0, le=1000)
    solid_infill_speed_mm_s: float = Field(default=40.0, gt=0, le=1000)
    travel_speed_mm_s: float = Field(default=150.0, gt=0, le=2000)
    first_layer_speed_mm_s: float = Field(default=20.0, gt=0, le=1000)
    nozzle_temperature_c: int = Field(default=215, ge=0, le=500)
    bed_temperature_c: int = Field(default=60, ge=0, le=200)

    def digest(self) -> str:
        """A stable hash of every setting: part of the slice cache key."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class BuildVolume(BaseModel):
    """A printer's usable build volume in millimetres (x, y: bed; z: height)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x_mm: float = Field(gt=0, le=10_000)
    y_mm: float = Field(gt=0, le=10_000)
    z_mm: float = Field(gt=0, le=10_000)


@dataclass(frozen=True, slots=True)
class MeshStats:
    """The geometry facts the built-in estimator needs; a geometry report provides them without a mesh."""

    volume_mm3: float
    area_up_mm2: float  # faces whose normal points up (top skins)
    area_down_mm2: float  # faces whose normal points down (bottom skins, overhangs)
    area_side_mm2: float  # near-vertical faces (walls)
    size_mm: tuple[float, float, float]  # bounding box as printed (x, y, z)


@dataclass(frozen=True, slots=True)
class SliceJob:
    """Slice one model for one printer.

    ``model_path`` is a binary STL in millimetres, already oriented for printing (lowest point at z=0);
    the adapter centres it on the bed. ``workdir`` is an empty directory the adapter owns for the call.
    """

    model_path: Path
    profile: PrintProfile
    build_volume: BuildVolume
    workdir: Path
    timeout_s: float = 600.0
    memory_limit_bytes: int = 4 * 1024**3


@dataclass(frozen=True, slots=True)
class SliceResult:
    gcode_path: Path
    print_seconds: float
    filament_mm3: float
    filament_g: float
    layer_count: int
    slicer: str
    slicer_version: str
    warnings: tuple[str, ...] = field(default=())
