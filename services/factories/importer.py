"""Read site definitions from JSON or CSV for `spareflow sites import`.

JSON: a list of objects shaped like the API's site body (or ``{"sites": [...]}``).
CSV: one row per printer; rows with the same ``slug`` form one site, whose other columns come from its first
row. Columns: slug, name, latitude, longitude, timezone, status, post_processing_minutes, printer_key,
printer_model, process, build_x_mm, build_y_mm, build_z_mm, materials_supported, materials_loaded
(materials separated by ``;``). Opening hours, cut-offs and transit take their defaults in CSV; use JSON to
set them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.factories.schemas import SiteIn

_SITE_COLUMNS = ("slug", "name", "latitude", "longitude", "timezone", "status", "post_processing_minutes")


class ImportFileError(Exception):
    code = "invalid_import_file"


def _materials(value: str) -> list[str]:
    return [m.strip() for m in value.split(";") if m.strip()]


def _from_csv(path: Path) -> list[dict[str, Any]]:
    sites: dict[str, dict[str, Any]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            slug = (row.get("slug") or "").strip()
            site = sites.setdefault(
                slug, {k: row[k] for k in _SITE_COLUMNS if row.get(k) not in (None, "")} | {"printers": []}
            )
            if row.get("printer_key"):
                site["printers"].append(
                    {
                        "key": row["printer_key"],
                        "model": row.get("printer_model") or row["printer_key"],
                        "process": row.get("process") or "fdm",
                        "build_volume": {
                            "x_mm": row.get("build_x_mm"),
                            "y_mm": row.get("build_y_mm"),
                            "z_mm": row.get("build_z_mm"),
                        },
                        "materials_supported": _materials(row.get("materials_supported") or ""),
                        "materials_loaded": _materials(row.get("materials_loaded") or ""),
                    }
                )
    return list(sites.values())


def read_sites(path: Path) -> list[SiteIn]:
    """Every site in the file, validated; any invalid site fails the whole file (nothing is half-imported).

    Raises:
        ImportFileError: unreadable file, bad JSON/CSV, or a site that does not validate (with its index).
    """
    try:
        if path.suffix.lower() == ".csv":
            raw: Any = _from_csv(path)
        else:
            raw = json.loads(path.read_text(encoding="utf-8"))
            raw = raw.get("sites") if isinstance(raw, dict) else raw
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise ImportFileError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, list):
        raise ImportFileError("expected a list of sites")
    sites = []
    for index, item in enumerate(raw):
        try:
            # CSV cells are text: let "53.55" be a number there (the API takes only JSON numbers).
            sites.append(SiteIn.model_validate(item, strict=False if path.suffix.lower() == ".csv" else None))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ImportFileError(f"site #{index + 1}: {where}: {first['msg']}") from exc
    slugs = [s.slug for s in sites]
    if len(slugs) != len(set(slugs)):
        raise ImportFileError("a slug appears twice in the file")
    return sites
