"""The report's numbers as tables for other tools: the epoch table as CSV (``report --csv``), and every logged
scalar as a pandas DataFrame (:func:`read_scalars`, ``kohya_recipe.read_scalars``) — what notebook users get from
tbparse, read by this package's own event reader.

pandas is an extra (``pip install 'kohya-recipe[pandas]'``): only :func:`read_scalars` needs it, and it is
imported there. The CSV is written with the standard library.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_recipe.report.events import read_log_dir
from kohya_recipe.report.locate import locate_run
from kohya_recipe.report.model import ReportError, RunReport, SweepReport
from kohya_recipe.report.sweep import find_sweep_runs

if TYPE_CHECKING:
    import pandas

SCALAR_COLUMNS = ("step", "wall_time", "tag", "value", "run", "segment")
EPOCH_COLUMNS = (
    "run",
    "epoch",
    "loss",
    "se",
    "rank",
    "tied",
    "best",
    "indistinguishable_from_best",
    "train_loss",
    "validation_loss",
    "validation_divergence",
    "steps",
    "first_step",
    "last_step",
    "checkpoint",
    "confirmed",
    "picked",
    "samples",
)


def epoch_records(rep: RunReport | SweepReport) -> list[dict[str, Any]]:
    """One dict per epoch (per run of a sweep), keys :data:`EPOCH_COLUMNS`; ``loss`` is the ranking metric."""
    runs = list(zip(rep.names, rep.runs, strict=True)) if isinstance(rep, SweepReport) else [(rep.name, rep)]
    out = []
    for name, run in runs:
        picked = {p.epoch: ", ".join(p.reasons) for p in run.picks}
        for r in run.ranking.rows:
            loss = r.validation_loss if run.ranking.metric == "validation" else r.train_loss
            out.append(
                {
                    "run": name,
                    "epoch": r.epoch,
                    "loss": loss,
                    "se": r.se,
                    "rank": r.rank,
                    "tied": r.tied,
                    "best": r.best,
                    "indistinguishable_from_best": r.indistinguishable_from_best,
                    "train_loss": r.train_loss,
                    "validation_loss": r.validation_loss,
                    "validation_divergence": r.validation_divergence,
                    "steps": r.steps.n if r.steps is not None else None,
                    "first_step": r.steps.first_step if r.steps is not None else None,
                    "last_step": r.steps.last_step if r.steps is not None else None,
                    "checkpoint": str(r.checkpoint.path) if r.checkpoint is not None else None,
                    "confirmed": r.checkpoint.confirmed if r.checkpoint is not None else None,
                    "picked": picked.get(r.epoch),
                    "samples": " ".join(str(s.path) for s in r.samples),
                }
            )
    return out


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None, ``nan``/``inf`` as pandas and spreadsheets read them, floats in full."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def csv_text(rep: RunReport | SweepReport) -> str:
    """The epoch table as CSV (a header row, then :func:`epoch_records`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EPOCH_COLUMNS)
    for rec in epoch_records(rep):
        writer.writerow([_cell(rec[c]) for c in EPOCH_COLUMNS])
    return buf.getvalue()


def read_scalars(path: str | Path, tags: tuple[str, ...] | None = None) -> pandas.DataFrame:
    """Every scalar a run logged, one row per point: columns ``step``, ``wall_time``, ``tag``, ``value``, ``run``,
    ``segment`` (the event file's folder: one per training process).

    ``path`` is anything ``kohya-recipe report`` takes: a project, an sd-scripts run folder, a log folder, an event
    file, or a sweep folder (``run`` then tells the runs apart). ``tags``: keep only tags starting with one of these
    prefixes. ``step`` is as logged: a ``--resume``d segment restarts at 1 (sd-scripts resets global_step), so
    group by ``segment`` before plotting steps. Needs pandas (``pip install 'kohya-recipe[pandas]'``).
    """
    try:
        import pandas as pd
    except ImportError:
        raise ReportError(
            "read_scalars needs pandas, which is not installed: pip install 'kohya-recipe[pandas]'"
        ) from None
    frames = [f for name, log_dir in _log_dirs(Path(path)) if (f := _frame(pd, name, log_dir, tags)) is not None]
    if frames:
        return pd.concat(frames, ignore_index=True)
    types = {"step": "int64", "wall_time": "float64", "tag": "object", "value": "float64"}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, "object")) for c in SCALAR_COLUMNS})


def _log_dirs(path: Path) -> list[tuple[str, Path]]:
    """(run name, log folder) of the run at ``path``, or of every run of a sweep folder."""
    members = find_sweep_runs(path) if path.is_dir() else None
    sources = [(m.name, locate_run(m.folder)) for m in members] if members else [(None, locate_run(path))]
    out = []
    for name, src in sources:
        if src.log_dir is None:
            raise ReportError("the run logs nothing (no logging_dir)", source=str(src.root))
        out.append((name or src.name, src.log_dir))
    return out


def _frame(pd: Any, run: str, log_dir: Path, tags: tuple[str, ...] | None) -> Any | None:
    import numpy as np  # pandas' own dependency

    log = read_log_dir(log_dir, tags)
    parts = []
    for ef in log.files:
        segment = log.segment_name(ef)
        for tag, s in sorted(ef.scalars.items()):
            n = len(s)
            parts.append(
                pd.DataFrame(
                    {
                        "step": np.frombuffer(s.steps, dtype=np.int64).copy(),
                        "wall_time": np.frombuffer(s.wall_times, dtype=np.float64).copy(),
                        "tag": [tag] * n,
                        "value": np.frombuffer(s.values, dtype=np.float64).copy(),
                        "run": [run] * n,
                        "segment": [segment] * n,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True) if parts else None
