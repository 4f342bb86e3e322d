"""The report of a sweep: every run of a sweep folder, and one comparison across them.

A sweep folder is what ``kohya-recipe sweep`` writes (its runs listed in ``sweep.toml``, read by
:func:`kohya_recipe.train.sweep.load_sweep`), or any folder whose sub-folders are runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.report.locate import is_run_root
from kohya_recipe.report.model import ReportError, RunReport, SweepReport
from kohya_recipe.report.run import SETTING_KEYS, report_run
from kohya_recipe.train.sweep import MANIFEST_NAME, load_sweep


@dataclass
class SweepMember:
    """One run of a sweep: its name (unique in the sweep), its folder, and the settings the manifest says it varies."""

    name: str
    folder: Path
    settings: dict[str, Any] = field(default_factory=dict)


def find_sweep_runs(path: Path) -> list[SweepMember] | None:
    """The runs of a sweep folder (from ``sweep.toml`` or its run sub-folders), or None if it is not a sweep."""
    if path.is_file() and path.name == MANIFEST_NAME:
        path = path.parent
    if not path.is_dir() or is_run_root(path):
        return None
    manifest = path / MANIFEST_NAME
    if manifest.is_file():
        # Folders as given, relative to the path the user passed (load_sweep's own run_dir is absolute).
        return [SweepMember(r.name, path / r.folder, dict(r.settings)) for r in load_sweep(manifest).runs]
    subs = sorted(p for p in path.iterdir() if p.is_dir() and is_run_root(p))
    return [SweepMember(p.name, p) for p in subs] or None


def _sweep_settings(members: list[SweepMember], runs: list[RunReport], names: list[str]) -> dict[str, dict[str, Any]]:
    """The settings that differ between the runs: as the manifest declares them, else from the checkpoints."""
    declared = {m.name: m.settings for m in members}
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
    for member in items:
        name = member.name
        try:
            rep = report_run(member.folder, **kwargs)
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
        root=path,
        runs=runs,
        names=names,
        failed=failed,
        settings=_sweep_settings(runs_found, runs, names),
        warnings=warnings,
    )
