"""Points on the Earth, great-circle distances and a nearest-first spatial index (pure; numpy + scipy).

The index stores points as unit vectors, where the straight-line (chord) distance is monotonic in the
great-circle distance, so a Euclidean k-d tree returns sphere neighbours in the right order everywhere,
including across the antimeridian and near the poles (where a lat/lon grid would not).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree  # type: ignore[import-untyped]

# IUGG mean Earth radius R1 (Moritz 2000, "Geodetic Reference System 1980"); the sphere errs by <= 0.5 % vs
# the ellipsoid, far below what courier transit models resolve.
EARTH_RADIUS_KM = 6371.0088
# The first k-d tree query asks for this many neighbours; each further query asks for _GROWTH times more.
# Most decisions end within the first few dozen sites, and re-querying a larger k is O(k log n).
_FIRST_CHUNK = 16
_GROWTH = 4


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A WGS84 position in decimal degrees.

    Raises:
        ValueError: latitude outside [-90, 90], longitude outside [-180, 180], or not finite.
    """

    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            raise ValueError(f"latitude {self.lat!r} is outside [-90, 90]")
        if not (math.isfinite(self.lon) and -180.0 <= self.lon <= 180.0):
            raise ValueError(f"longitude {self.lon!r} is outside [-180, 180]")


def haversine_km(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance in km on the mean-radius sphere (haversine: well-conditioned for short hops)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin(math.radians(b.lon - a.lon) / 2) ** 2
    )
    # min(): rounding can push h a hair above 1 for antipodal points, outside asin's domain.
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


def unit_vectors(points: Sequence[GeoPoint]) -> npt.NDArray[np.float64]:
    """Points as an (n, 3) array of unit vectors (x towards 0°N 0°E, z towards the north pole)."""
    lat = np.radians(np.fromiter((p.lat for p in points), dtype=np.float64, count=len(points)))
    lon = np.radians(np.fromiter((p.lon for p in points), dtype=np.float64, count=len(points)))
    cos_lat = np.cos(lat)
    return np.column_stack((cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)))


def chord_to_km(chord: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Great-circle km for chord lengths between unit vectors (chord = 2 sin(angle / 2))."""
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, chord / 2))


class SphereIndex:
    """Immutable k-d tree over points on the sphere, visited nearest-first.

    Building it costs one vectorised conversion and one ``cKDTree`` build (a few ms for 10k points).
    """

    __slots__ = ("_size", "_tree")

    def __init__(self, points: Sequence[GeoPoint]) -> None:
        self._size = len(points)
        self._tree = cKDTree(unit_vectors(points)) if points else None

    def __len__(self) -> int:
        return self._size

    def nearest_chunks(
        self, point: GeoPoint
    ) -> Iterator[tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]]:
        """Every point once, as chunks of ``(positions, great-circle km)``, nearest first.

        Lazily: the tree is queried for a growing number of neighbours, so a caller that stops after a few
        chunks pays for a few. Distances come from the chord and may differ from ``haversine_km`` in the
        last bits; callers that compare them with bounds should allow for that.
        """
        if self._tree is None:
            return
        target = unit_vectors([point])[0]
        seen = np.zeros(self._size, dtype=bool)
        k = min(_FIRST_CHUNK, self._size)
        while True:
            chords, positions = self._tree.query(target, k=k)
            # query() returns scalars for k == 1; atleast_1d makes both cases arrays.
            positions = np.atleast_1d(np.asarray(positions, dtype=np.intp))
            km = chord_to_km(np.atleast_1d(np.asarray(chords, dtype=np.float64)))
            # Not positions[previous k:]: points at the same distance may come back in another order from
            # a larger query. Everything strictly nearer than the last point seen was seen, so what is new
            # is never nearer than what was yielded: the order stays nearest-first.
            fresh = ~seen[positions]
            seen[positions] = True
            yield positions[fresh], km[fresh]
            if k == self._size:
                return
            k = min(k * _GROWTH, self._size)

    def nearest(self, point: GeoPoint) -> Iterator[tuple[int, float]]:
        """Yield ``(position, great-circle km)`` for every point, nearest first (see ``nearest_chunks``)."""
        for positions, km in self.nearest_chunks(point):
            yield from zip(positions.tolist(), km.tolist(), strict=True)
