"""The report of whatever a path holds: one run, or a sweep of runs (:func:`build_report`, ``kr.build_report``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kohya_recipe.report.events import EVENT_FILE_MARK
from kohya_recipe.report.model import RunReport, SweepReport, require_recommendation
from kohya_recipe.report.run import report_run
from kohya_recipe.report.sweep import find_sweep_runs, report_sweep

__all__ = ["build_report", "require_recommendation"]


def build_report(
    path: str | Path, *, progress: Callable[[int, int], None] | None = None, **kwargs: Any
) -> RunReport | SweepReport:
    """A run report, or a sweep report when ``path`` is a sweep folder (``progress(done, total)`` per run).

    The other arguments go to :func:`kohya_recipe.report.run.report_run`.
    """
    p = Path(path)
    members = find_sweep_runs(p) if p.exists() else None
    if members is not None and not _has_direct_log(p):
        return report_sweep(p, progress=progress, members=members, **kwargs)
    return report_run(p, **kwargs)


def _has_direct_log(path: Path) -> bool:
    # A folder holding event files of its own is a log folder, even if it also has sub-folders that look like runs.
    return path.is_dir() and any(f.name.startswith(EVENT_FILE_MARK) for f in path.iterdir() if f.is_file())
