"""The report of a sweep: every run of a sweep folder, and one comparison across them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.report.locate import _read_toml, is_run_root
from kohya_recipe.report.model import ReportError, RunReport, SweepReport
from kohya_recipe.report.run import SETTING_KEYS, report_run

SWEEP_FILE = "sweep.toml"


def find_sweep_runs(path: Path) -> list[tuple[str, Path]] | None:
    """The runs of a sweep folder (from ``sweep.toml`` or its run sub-folders), or None if it is not a sweep."""
    if path.is_file() and path.name == SWEEP_FILE:
        path = path.parent
    if not path.is_dir() or is_run_root(path):
        return None
    manifest = path / SWEEP_FILE
    if manifest.is_file():
        data = _read_toml(manifest)
        runs = data.get("runs")
        if isinstance(runs, list) and runs:
            found = []
            for i, r in enumerate(runs):
                if not isinstance(r, dict) or not isinstance(r.get("folder"), str):
                    raise ReportError("must be a table with a folder", source=str(manifest), field=f"runs[{i}]")
                found.append((str(r.get("name") or r["folder"]), path / r["folder"]))
            return found
    subs = sorted(p for p in path.iterdir() if p.is_dir() and is_run_root(p))
    return [(p.name, p) for p in subs] or None


def _sweep_settings(path: Path, runs: list[RunReport], names: list[str]) -> dict[str, dict[str, Any]]:
    manifest = path / SWEEP_FILE
    if manifest.is_file():
        data = _read_toml(manifest)
        declared = {
            str(r.get("name")): dict(r.get("settings") or {}) for r in data.get("runs", []) if isinstance(r, dict)
        }
        if any(declared.values()):
            return {name: declared.get(name, {}) for name in names}
    keys = [k for k in SETTING_KEYS if k != "output_name"]
    differ = [k for k in keys if len({json.dumps(run.settings.get(k), sort_keys=True) for run in runs}) > 1]
    return {name: {k: run.settings.get(k) for k in differ} for name, run in zip(names, runs, strict=True)}


def report_sweep(path: str | Path, *, progress: Any = None, **kwargs: Any) -> SweepReport:
    """Report every run of a sweep folder; a run that cannot be read is listed with its error, not fatal."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    runs_found = find_sweep_runs(path)
    if not runs_found:
        raise ReportError("not a sweep folder (no sweep.toml and no run folders in it)", source=str(path))
    runs: list[RunReport] = []
    names: list[str] = []
    failed: list[tuple[str, str]] = []
    warnings: list[str] = []
    items = progress(runs_found) if progress is not None else runs_found
    for name, folder in items:
        try:
            rep = report_run(folder, **kwargs)
        except KohyaRecipeError as exc:
            failed.append((name, str(exc)))
            continue
        if rep.source.output_name is None:
            rep.source.output_name = name
        runs.append(rep)
        names.append(name)
    if not runs:
        raise ReportError(
            f"no run of the sweep could be read: {failed[0][1]}" if failed else "no runs", source=str(path)
        )
    return SweepReport(
        root=path, runs=runs, names=names, failed=failed, settings=_sweep_settings(path, runs, names), warnings=warnings
    )
