"""Geometry checks: ``reading`` a model file into one millimetre mesh, its ``topology``, the ``facts``
measured from both, and the ``check`` that turns them into a versioned report (codes in ``reasons``)."""

from parts_catalog.geometry.check import GeometryReport, UnitGuess, check_model, geometry_reasons
from parts_catalog.geometry.facts import BodyFacts, MeshFacts, analyse
from parts_catalog.geometry.reading import GeometryRejected, LoadedModel, MeshLimits, UnitSource, load_model
from parts_catalog.geometry.reasons import Reason, Verdict
from parts_catalog.reports import REPORT_VERSION
from parts_catalog.units import Unit

__all__ = [
    "REPORT_VERSION",
    "BodyFacts",
    "GeometryRejected",
    "GeometryReport",
    "LoadedModel",
    "MeshFacts",
    "MeshLimits",
    "Reason",
    "Unit",
    "UnitGuess",
    "UnitSource",
    "Verdict",
    "analyse",
    "check_model",
    "geometry_reasons",
    "load_model",
]
