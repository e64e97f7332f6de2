"""Procedurally generated spare parts for the Spareflow demo and tests.

The project ships no third-party models, so every part is built here from primitives with manifold3d, whose
booleans always yield closed, consistently wound solids. Circle resolutions are passed explicitly everywhere:
manifold3d's defaults are process-global and could be changed by other code, which would change our bytes.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import trimesh
from manifold3d import CrossSection, Error, Manifold

FILE_FORMATS = ("stl-binary", "stl-ascii", "obj", "3mf")

_HOLE_SEGMENTS = 32
_ROUND_SEGMENTS = 64

# Proper rotations only (determinant +1), so extruded solids keep outward-facing triangles.
# Each maps an extruded profile (u, v, w = extrusion direction) onto the part's axes.
_FRAMES: dict[str, tuple[tuple[float, ...], ...]] = {
    "x": ((0, 0, 1, 0), (1, 0, 0, 0), (0, 1, 0, 0)),  # (u, v) -> (y, z)
    "y": ((-1, 0, 0, 0), (0, 0, 1, 0), (0, 1, 0, 0)),  # (u, v) -> (-x, z)
}


@dataclass(frozen=True, slots=True)
class DemoPart:
    part_number: str
    name: str
    description: str
    process: str
    materials: tuple[str, ...]
    equipment_models: tuple[str, ...]
    file_format: str
    build: Callable[[], trimesh.Trimesh]


def _polygon(points: Sequence[tuple[float, float]]) -> CrossSection:
    return CrossSection([np.asarray(points, dtype=np.float64)])


def _polar(radius: float, angle: float) -> tuple[float, float]:
    return radius * math.cos(angle), radius * math.sin(angle)


def _extrude(profile: CrossSection, length: float, axis: Literal["x", "y"]) -> Manifold:
    """Extrude a 2D profile over [0, length] along a horizontal axis."""
    return Manifold.extrude(profile, length).transform(np.array(_FRAMES[axis], dtype=np.float64))


def _countersunk_hole(x: float, y: float, top: float, bore: float = 3.4, head: float = 6.5) -> Manifold:
    """Cutter for a vertical hole (M3 by default) with a 90-degree countersink opening at z=top."""
    # Cutters overshoot every face they cut: booleans on exactly coplanar faces are where slivers come from.
    sink = (head - bore) / 2
    shank = Manifold.cylinder(top + 2, bore / 2, circular_segments=_HOLE_SEGMENTS).translate((x, y, -1))
    cone = Manifold.cylinder(sink + 1, bore / 2, head / 2 + 1, _HOLE_SEGMENTS).translate((x, y, top - sink))
    return shank + cone


def _l_bracket() -> Manifold:
    thickness, leg, width, fillet = 4.0, 30.0, 40.0, 3.0
    # A printed L cracks at the inside corner first, so the profile carries a fillet there.
    corner = thickness + fillet
    inner = [(corner + u, corner + v) for u, v in (_polar(fillet, a) for a in np.linspace(1.5, 1, 7) * np.pi)]
    outline = [(0.0, 0.0), (leg, 0.0), (leg, thickness), *inner, (thickness, leg), (0.0, leg)]
    body = _extrude(_polygon(outline), width, "x")
    sensor_hole = _extrude(CrossSection.circle(1.7, _HOLE_SEGMENTS), thickness + 2, "y")
    for x in (10.0, 30.0):
        body -= _countersunk_hole(x, 20.0, thickness, bore=4.5, head=9.0)
        body -= sensor_hole.translate((x, -1.0, 20.0))
    return body


def _knurled_knob() -> Manifold:
    radius, valley, height, ridges, chamfer = 12.5, 11.7, 16.0, 30, 1.5
    profile = [(0, valley), (0.25, radius), (0.5, radius), (0.75, valley)]
    knurl = _polygon([_polar(r, (i + f) * 2 * math.pi / ridges) for i in range(ridges) for f, r in profile])
    # The 45-degree top chamfer is a tapered extrusion, not a cone intersection: a cone cuts the ridges into
    # vertices so close together that they collapse into one as float32 (binary STL), breaking the solid.
    taper = (radius - chamfer) / radius
    grip = Manifold.extrude(knurl, height - chamfer) + Manifold.extrude(
        knurl, chamfer, scale_top=(taper, taper)
    ).translate((0, 0, height - chamfer))
    body = grip + Manifold.cylinder(2.0, 14.0, circular_segments=_ROUND_SEGMENTS)
    pointer = Manifold.cube((radius, 1.2, 2.0)).translate((4.0, -0.6, height - 0.8))
    # 6 mm D-shaft, flat 1.5 mm off-centre on the pointer side, plus 0.05 mm clearance for FDM shrinkage.
    d_bore = CrossSection.circle(3.05, _HOLE_SEGMENTS) ^ CrossSection.square((5.6, 8.0)).translate((-4, -4))
    return body - pointer - Manifold.extrude(d_bore, 11.0).translate((0, 0, -1))


def _gear_profile(module: float, teeth: int, pressure_deg: float = 20.0) -> CrossSection:
    """Involute spur gear outline; flanks run radially below the base circle, as a hobbed gear's do."""
    r_pitch = module * teeth / 2
    r_base = r_pitch * math.cos(math.radians(pressure_deg))
    r_root, r_tip = r_pitch - 1.25 * module, r_pitch + module

    def involute(r: float) -> float:
        alpha = math.acos(r_base / max(r, r_base))
        return math.tan(alpha) - alpha

    def half_tooth(r: float) -> float:
        # Half the tooth's angular thickness at radius r; a quarter of the pitch on the pitch circle.
        return math.pi / (2 * teeth) + involute(r_pitch) - involute(r)

    radii = [r_root, *np.linspace(max(r_root, r_base), r_tip, 8)]
    points: list[tuple[float, float]] = []
    for i in range(teeth):
        centre = 2 * math.pi * i / teeth
        points += [_polar(r, centre - half_tooth(r)) for r in radii]
        points += [_polar(r, centre + half_tooth(r)) for r in reversed(radii)]
    return _polygon(points)


def _spur_gear() -> Manifold:
    # 8 mm bore with a DIN 6885 keyway for a 2 x 2 key (hub depth t2 = 1.0 mm).
    bore = CrossSection.circle(4.0, _HOLE_SEGMENTS) + CrossSection.square((2.0, 5.0)).translate((-1, 0))
    web = _gear_profile(module=1.5, teeth=24) - bore
    for k in range(4):
        # Lightening holes save filament and print time; the rim and hub carry the load.
        web -= CrossSection.circle(2.5, _HOLE_SEGMENTS).translate(_polar(12.5, (2 * k + 1) * math.pi / 4))
    hub = CrossSection.circle(9.0, _ROUND_SEGMENTS) - bore
    return Manifold.extrude(web, 8.0) + Manifold.extrude(hub, 14.0)


def _cable_clip() -> Manifold:
    bundle_r, wall, base_t, width, tab = 6.0, 1.6, 2.5, 10.0, 17.0
    outer, inner = (CrossSection.circle(r, _ROUND_SEGMENTS) for r in (bundle_r + wall, bundle_r))
    ring = outer - inner
    # The mouth is narrower than the bundle so the arms flex open and snap back; its slope is the lead-in.
    mouth = _polygon([(-4.0, 3.0), (4.0, 3.0), (7.0, 9.0), (-7.0, 9.0)])
    base = CrossSection.square((2 * tab, base_t)).translate((-tab, 0))
    body = _extrude(base + (ring - mouth).translate((0, base_t + bundle_r)), width, "y")
    return body - _countersunk_hole(-12.5, width / 2, base_t) - _countersunk_hole(12.5, width / 2, base_t)


def _hinge_leaf() -> Manifold:
    length, leaf_w, thickness, knuckle_r, pin_r, clearance = 50.0, 28.0, 3.0, 4.0, 1.6, 0.4
    segment = length / 5

    def barrel(radius: float, span: float, start: float) -> Manifold:
        circle = CrossSection.circle(radius, _ROUND_SEGMENTS).translate((0, knuckle_r))
        return _extrude(circle, span, "x").translate((start, 0, 0))

    body = Manifold.cube((length, leaf_w, thickness)) + barrel(knuckle_r, length, 0.0)
    for k in (1, 3):
        # The mating leaf's knuckles sit in the 2nd and 4th fifths and need room to swing.
        body -= barrel(knuckle_r + clearance, segment + 2 * clearance, k * segment - clearance)
    body -= barrel(pin_r, length + 2, -1.0)
    for x in (8.0, length / 2, length - 8.0):
        body -= _countersunk_hole(x, 18.0, thickness)
    return body


def _to_trimesh(solid: Manifold) -> trimesh.Trimesh:
    if solid.status() != Error.NoError:
        raise ValueError(f"manifold3d failed to build the part: {solid.status()}")
    # to_mesh() yields float32 positions, so binary STL (float32 too) stores them without loss.
    mesh = solid.to_mesh()
    vertices = np.array(mesh.vert_properties[:, :3], dtype=np.float64)
    vertices[:, 2] -= vertices[:, 2].min()  # slicers and our checks expect the part to rest exactly on z=0
    return trimesh.Trimesh(vertices=vertices, faces=np.array(mesh.tri_verts, dtype=np.int64), process=False)


def _builder(make: Callable[[], Manifold]) -> Callable[[], trimesh.Trimesh]:
    return lambda: _to_trimesh(make())


_XML = '<?xml version="1.0" encoding="UTF-8"?>\n'
_3MF_PACKAGE = {
    "[Content_Types].xml": (
        f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        f'{_XML}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
        'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
    ),
}


def _export_3mf(mesh: trimesh.Trimesh) -> bytes:
    # trimesh's own 3MF writer stamps random UUIDs and wall-clock zip times, so its bytes differ every call.
    vertices = "".join(f'<vertex x="{x!r}" y="{y!r}" z="{z!r}"/>' for x, y, z in mesh.vertices.tolist())
    triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in mesh.faces.tolist())
    model = (
        _XML + '<model unit="millimeter" xml:lang="en-US" '
        'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"><resources>'
        f'<object id="1" type="model"><mesh><vertices>{vertices}</vertices><triangles>{triangles}</triangles>'
        '</mesh></object></resources><build><item objectid="1"/></build></model>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (*_3MF_PACKAGE.items(), ("3D/3dmodel.model", model)):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return buffer.getvalue()


def export_model(mesh: trimesh.Trimesh, file_format: str) -> bytes:
    """Serialise a mesh to binary STL, ASCII STL, OBJ or 3MF (unit millimeter) bytes."""
    if file_format == "stl-binary":
        return bytes(trimesh.exchange.stl.export_stl(mesh))
    if file_format == "stl-ascii":
        return trimesh.exchange.stl.export_stl_ascii(mesh).encode("ascii")
    if file_format == "obj":
        # Positions only: normals or UVs would split vertices along seams, and the reloaded OBJ would no
        # longer be one watertight body.
        text = mesh.export(
            file_type="obj", include_normals=False, include_color=False, include_texture=False, header=None
        )
        return str(text).encode("ascii")
    if file_format == "3mf":
        return _export_3mf(mesh)
    raise ValueError(f"unsupported file format {file_format!r}; expected one of {FILE_FORMATS}")


DEMO_PARTS: tuple[DemoPart, ...] = (
    DemoPart(
        part_number="SF-BRK-1040",
        name="Sensor mounting bracket, 40 x 30 mm",
        description="Filleted L-bracket holding the fill-level sensor on the filler frame. Fix with two M4 "
        "countersunk screws; the sensor mounts through the two M3 holes in the upright.",
        process="fdm",
        materials=("PETG", "PA12-CF"),
        equipment_models=("Norvane FX-200", "Norvane FX-240"),
        file_format="stl-binary",
        build=_builder(_l_bracket),
    ),
    DemoPart(
        part_number="SF-KNB-2025",
        name="Knurled control knob, 25 mm, 6 mm D-shaft",
        description="Speed-adjust knob for the dosing potentiometer. Press onto the 6 mm D-shaft with the "
        "pointer groove on the side of the flat.",
        process="fdm",
        materials=("PLA", "PETG"),
        equipment_models=("Norvane FX-200", "Tarnwell CM-3"),
        file_format="stl-ascii",
        build=_builder(_knurled_knob),
    ),
    DemoPart(
        part_number="SF-GER-3024",
        name="Spur gear m1.5, 24 teeth, 8 mm keyed bore",
        description="Involute drive gear (20 degree pressure angle) for the conveyor index drive. Fits an "
        "8 mm shaft with a 2 x 2 mm parallel key; replace together with its mating gear.",
        process="fdm",
        materials=("PA12", "PA12-CF"),
        equipment_models=("Quellon PL-40", "Quellon PL-60"),
        file_format="obj",
        build=_builder(_spur_gear),
    ),
    DemoPart(
        part_number="SF-CLP-4012",
        name="Snap-fit cable clip, 12 mm bundle",
        description="Holds a cable bundle of up to 12 mm against the machine frame. Screw down with two M3 "
        "countersunk screws, then press the bundle through the mouth.",
        process="fdm",
        materials=("PETG", "PP"),
        equipment_models=("Norvane FX-240", "Quellon PL-40", "Tarnwell CM-3"),
        file_format="3mf",
        build=_builder(_cable_clip),
    ),
    DemoPart(
        part_number="SF-HNG-5050",
        name="Guard door hinge leaf, 50 mm, 3 mm pin",
        description="Knuckle leaf of the safety-guard door hinge; pairs with the mating leaf on a 3 mm steel "
        "pin. Fix with three M3 countersunk screws.",
        process="fdm",
        materials=("PETG", "ASA"),
        equipment_models=("Quellon PL-60", "Tarnwell CM-3"),
        file_format="stl-binary",
        build=_builder(_hinge_leaf),
    ),
)
