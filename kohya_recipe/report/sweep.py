"""The report of a sweep: every run of a sweep folder, and one comparison across them.

A sweep folder is what ``kohya-recipe sweep`` writes (its runs listed in ``sweep.toml``, read by
:func:`kohya_recipe.train.sweep.load_sweep`), or any folder whose sub-folders are runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.report.locate import is_run_root
from kohya_recipe.report.model import ComparisonRow, FailedRun, ReportError, RunReport, SweepReport
from kohya_recipe.report.ranking import rank_values
from kohya_recipe.report.run import SETTING_KEYS, report_run
from kohya_recipe.train.sweepfile import MANIFEST_NAME, load_sweep


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


def report_sweep(
    path: str | Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    members: list[SweepMember] | None = None,
    **kwargs: Any,
) -> SweepReport:
    """Report every run of a sweep folder; a run that cannot be read is listed with its error, not fatal.

    ``progress(done, total)`` is called after each run; ``members``: the runs, when the caller has already found
    them (:func:`find_sweep_runs`); the other arguments go to :func:`report_run`.
    """
    path = Path(path)
    if path.is_file():
        path = path.parent
    if members is None:
        members = find_sweep_runs(path)
    if not members:
        raise ReportError("not a sweep folder (no sweep.toml and no run folders in it)", source=str(path))
    runs: list[RunReport] = []
    names: list[str] = []
    failed: list[FailedRun] = []
    for done, member in enumerate(members, 1):
        try:
            rep = report_run(member.folder, **kwargs)
        except KohyaRecipeError as exc:
            failed.append(FailedRun(member.name, str(exc)))
        else:
            if rep.source.output_name is None:
                rep.source.output_name = member.name
            runs.append(rep)
            names.append(member.name)
        if progress is not None:
            progress(done, len(members))
    if not runs:
        raise ReportError(f"no run of the sweep could be read: {failed[0].error}", source=str(path))
    settings = _sweep_settings(members, runs, names)
    return SweepReport(
        root=path,
        runs=runs,
        names=names,
        failed=failed,
        settings=settings,
        comparison=compare_runs(runs, names, settings),
        warnings=[],
    )


def compare_runs(runs: list[RunReport], names: list[str], settings: dict[str, dict[str, Any]]) -> list[ComparisonRow]:
    """One row per run; ``sweep_rank`` orders the runs by their best epoch's loss when all were ranked by the
    same metric (training and validation losses are not comparable)."""
    rows = [_comparison_row(name, run, settings.get(name, {})) for name, run in zip(names, runs, strict=True)]
    metrics = {r.metric for r in rows}
    if len(metrics) == 1 and "none" not in metrics:
        for row, rank in zip(rows, rank_values([r.best_metric for r in rows]), strict=True):
            row.sweep_rank = rank
    return rows


def _comparison_row(name: str, run: RunReport, settings: dict[str, Any]) -> ComparisonRow:
    best = run.ranking.best
    top = min(best, key=lambda r: (r.metric, r.epoch)) if best else None
    final = next((p for p in run.picks if p.is_final), None)
    return ComparisonRow(
        run=name,
        output_name=run.name,
        path=run.source.root,
        metric=run.ranking.metric,
        best_epochs=[r.epoch for r in best],
        best_metric=top.metric if top else None,
        best_se=top.se if top else None,
        final_epoch=final.epoch if final else None,
        final_metric=final.metric if final else None,
        final_rank=final.rank if final else None,
        epochs_logged=sum(1 for r in run.ranking.rows if r.logged),
        finished=run.finished,
        settings=settings,
        warnings=len(run.warnings),
    )
