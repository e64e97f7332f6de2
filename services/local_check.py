"""`spareflow check`: the worker's geometry check on local files, for operators and scripts."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parts_catalog.formats import ArchiveLimits, ModelFileError, detect_model_format
from parts_catalog.pipeline import check_and_repair
from parts_catalog.reports import REPORT_VERSION
from parts_catalog.units import Unit


@dataclass(frozen=True, slots=True)
class FileResult:
    path: Path
    report: dict[str, Any]
    printable: bool
    repaired_to: Path | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "printable": self.printable,
            "repaired_to": str(self.repaired_to) if self.repaired_to else None,
            "report": self.report,
        }

    def summary(self) -> str:
        report = self.report
        verdict = report.get("verdict", "?")
        reasons = ", ".join(report.get("reasons", [])) or "-"
        lines = [f"{self.path}: {verdict} ({reasons})"]
        if facts := report.get("facts"):
            size = " x ".join(f"{v:.1f}" for v in facts["size"])
            unit = f"{report.get('unit')} ({report.get('unit_source')})"
            lines.append(
                f"  {report.get('format')}  {facts['faces']} faces  {facts['bodies']} bodies  {size} mm  "
                f"volume {facts['volume_mm3']:.1f} mm3  unit {unit}"
            )
        if repair := report.get("repair"):
            lines.append(f"  repair: {repair.get('verdict')} ({', '.join(repair.get('reasons', [])) or '-'})")
        if self.repaired_to:
            lines.append(f"  repaired model written to {self.repaired_to}")
        lines.append(f"  printable: {'yes' if self.printable else 'no'}")
        return "\n".join(lines)


def _target(repair_to: Path | None, source: Path, several: bool) -> Path | None:
    if repair_to is None:
        return None
    if several or repair_to.is_dir():
        repair_to.mkdir(parents=True, exist_ok=True)
        return repair_to / f"{source.stem}.repaired.stl"
    return repair_to


def check_files(
    files: list[Path],
    *,
    archive_limits: ArchiveLimits,
    max_faces: int,
    declared_unit: Unit | None,
    repair_to: Path | None,
) -> list[FileResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="spareflow-check-") as scratch:
        for index, path in enumerate(files):
            try:
                detected = detect_model_format(path, archive_limits=archive_limits)
            except ModelFileError as exc:
                report = {
                    "version": REPORT_VERSION,
                    "verdict": "rejected",
                    "reasons": [exc.code],
                    "message": str(exc),
                    "details": exc.details,
                }
                results.append(FileResult(path=path, report=report, printable=False))
                continue
            repaired = Path(scratch) / f"{index}.stl"
            outcome = check_and_repair(
                path,
                detected.format.value,
                max_faces=max_faces,
                declared_unit=declared_unit.value if declared_unit else None,
                repaired_out=repaired,
            )
            target = _target(repair_to, path, len(files) > 1) if outcome.repaired else None
            if target is not None:
                shutil.move(repaired, target)
            results.append(
                FileResult(path=path, report=outcome.report, printable=outcome.printable, repaired_to=target)
            )
    return results
