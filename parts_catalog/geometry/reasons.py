"""The codes a geometry check reports and the verdict they lead to.

Which code leads to which verdict:

==========================  ==========  ====================================================================
code                        verdict     meaning
==========================  ==========  ====================================================================
parse_error                 rejected    no parser could read the file (CR-only ASCII STL, broken OBJ, ...)
invalid_3mf                 rejected    lib3mf refused the 3MF package (the 3MF Consortium MUSTFAIL cases)
truncated_model             rejected    binary STL with fewer records than its header declares
too_many_faces              rejected    over ``MeshLimits.max_faces``, refused before the mesh is built
empty_mesh                  rejected    zero facets: never a pass
non_finite_coordinates      rejected    NaN or infinite vertex coordinates
flat_mesh                   rejected    zero thickness: slicers abort on it (measured, PrusaSlicer 2.5)
units_suspect               rejected    largest extent < 5 mm or > 1000 mm with an assumed unit: likely
                                        metres/inches/microns; ``unit_guess`` says which. Re-check with a
                                        declared unit. Never raised when the unit is declared or from 3MF.
not_watertight              repairable  boundary edges (holes, stray facets, gaps)
non_manifold_edges          repairable  edges shared by > 2 facets that leave a body without a well-defined
                                        inside (an internal wall, a fin, a duplicated facet); only a warning
                                        when every such edge is balanced (see below)
inconsistent_winding        repairable  an interior edge used twice in the same direction (flipped facets)
inverted_bodies             repairable  a closed body whose facets all point inwards (negative volume) and
                                        that is not a cavity inside another body
duplicate_faces             repairable  the same three vertices more than once
==========================  ==========  ====================================================================

``warnings`` holds codes that do not change the verdict: ``degenerate_faces`` (zero-area slivers are common in
watertight CAD exports; slicers ignore them and removing them opens the mesh, see GEOMETRY-AND-SLICING.md),
and ``non_manifold_edges`` when every body is still closed: each edge used equally often in both directions,
as where two solids touch along an edge. Such a surface encloses a well-defined volume, manifold3d accepts
it and PrusaSlicer slices all five such corpus files; no safe automatic repair exists for it anyway.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Verdict(StrEnum):
    OK = "ok"
    REPAIRABLE = "repairable"
    REJECTED = "rejected"


class Reason(StrEnum):
    PARSE_ERROR = "parse_error"
    INVALID_3MF = "invalid_3mf"
    TRUNCATED_MODEL = "truncated_model"
    TOO_MANY_FACES = "too_many_faces"
    EMPTY_MESH = "empty_mesh"
    NON_FINITE_COORDINATES = "non_finite_coordinates"
    FLAT_MESH = "flat_mesh"
    UNITS_SUSPECT = "units_suspect"
    NOT_WATERTIGHT = "not_watertight"
    NON_MANIFOLD_EDGES = "non_manifold_edges"
    INCONSISTENT_WINDING = "inconsistent_winding"
    INVERTED_BODIES = "inverted_bodies"
    DUPLICATE_FACES = "duplicate_faces"
    DEGENERATE_FACES = "degenerate_faces"


# The verdict table of the module docstring; DEGENERATE_FACES is a warning and in neither set.
REJECTING: Final = frozenset(
    {
        Reason.PARSE_ERROR,
        Reason.INVALID_3MF,
        Reason.TRUNCATED_MODEL,
        Reason.TOO_MANY_FACES,
        Reason.EMPTY_MESH,
        Reason.NON_FINITE_COORDINATES,
        Reason.FLAT_MESH,
        Reason.UNITS_SUSPECT,
    }
)
REPAIRABLE: Final = frozenset(
    {
        Reason.NOT_WATERTIGHT,
        Reason.NON_MANIFOLD_EDGES,
        Reason.INCONSISTENT_WINDING,
        Reason.INVERTED_BODIES,
        Reason.DUPLICATE_FACES,
    }
)


def verdict_for(reasons: list[Reason]) -> Verdict:
    """rejected if any rejecting code, else repairable if any code, else ok."""
    if any(reason in REJECTING for reason in reasons):
        return Verdict.REJECTED
    if any(reason in REPAIRABLE for reason in reasons):
        return Verdict.REPAIRABLE
    return Verdict.OK
