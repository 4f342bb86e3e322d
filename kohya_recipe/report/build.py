"""The report of whatever a path holds: one run, or a sweep of runs; and the report as JSON data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from kohya_recipe.report.events import EVENT_FILE_MARK
from kohya_recipe.report.model import SCHEMA, RunReport, SweepReport
from kohya_recipe.report.run import report_run
from kohya_recipe.report.sweep import find_sweep_runs, report_sweep


def build_report(path: str | Path, **kwargs: Any) -> RunReport | SweepReport:
    """A run report, or a sweep report when ``path`` is a sweep folder."""
    p = Path(path)
    progress = kwargs.pop("progress", None)
    if p.exists() and find_sweep_runs(p) is not None and not _has_direct_log(p):
        return report_sweep(p, progress=progress, **kwargs)
    return report_run(p, **kwargs)


def _has_direct_log(path: Path) -> bool:
    # A folder holding event files of its own is a log folder, even if it also has sub-folders that look like runs.
    return path.is_dir() and any(f.name.startswith(EVENT_FILE_MARK) for f in path.iterdir() if f.is_file())


_PROMPT_KEYS = ("prompt", "negative", "width", "height", "steps", "cfg_scale", "seed", "sampler")


def run_to_dict(rep: RunReport) -> dict[str, Any]:
    rk = rep.ranking
    epochs = []
    for row in rk.rows:
        d = row.to_dict()
        cp = rep.files.get(row.epoch)
        d["checkpoint"] = cp.to_dict() if cp is not None else None
        if cp is not None:
            d["checkpoint"]["confirmed"] = rep.confirmed.get(row.epoch, False)  # type: ignore[index]
        epochs.append(d)
    tags: dict[str, int] = {}
    unread: set[str] = set()
    if rep.log is not None:
        for ef in rep.log.files:
            for t, s in ef.scalars.items():
                tags[t] = tags.get(t, 0) + len(s)
            unread.update(ef.unread_tags)
    cset = rep.checkpoints
    return {
        "schema": SCHEMA,
        "kind": "run",
        "name": rep.name,
        "path": str(rep.source.root),
        "source_kind": rep.source.kind,
        "log_dir": str(rep.source.log_dir) if rep.source.log_dir else None,
        "model_dir": str(rep.source.model_dir) if rep.source.model_dir else None,
        "output_name": rep.source.output_name,
        "metric": {
            "kind": rk.metric,
            "tag": rk.metric_tag,
            "label": rk.metric_label,
            "lower_is_better": True,
            "z": rk.z,
            "tie_rtol": rk.tie_rtol,
        },
        "num_epochs": rep.num_epochs,
        "finished": rep.finished,
        "epochs": epochs,
        "incomplete": rk.incomplete.to_dict() if rk.incomplete else None,
        "picks": [p.to_dict() for p in rep.picks],
        "checkpoints": {
            "final": cset.final.to_dict() if cset and cset.final else None,
            "step_files": [c.to_dict() for c in cset.step_files] if cset else [],
            "other_names": list(cset.other_names) if cset else [],
        },
        "sample_prompt": {k: getattr(rep.source.sample, k) for k in _PROMPT_KEYS} if rep.source.sample else None,
        "settings": rep.settings,
        "segments": [s.to_dict() for s in rk.segments],
        "tags": dict(sorted(tags.items())),
        "tags_not_read": sorted(unread - set(tags)),  # present, but only the plots need them (--plots/--html)
        "warnings": list(rep.warnings),
    }


def sweep_to_dict(rep: SweepReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "kind": "sweep",
        "path": str(rep.root),
        "comparison": rep.comparison(),
        "runs": [run_to_dict(r) for r in rep.runs],
        "failed": [{"run": n, "error": e} for n, e in rep.failed],
        "warnings": list(rep.warnings),
    }


def _finite(value: Any) -> Any:
    """NaN/inf (a diverged loss) become null: JSON has no NaN, and strict parsers reject it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def report_to_dict(rep: RunReport | SweepReport) -> dict[str, Any]:
    """Everything in the report as plain JSON-ready data (``kohya-recipe report --json``)."""
    return _finite(sweep_to_dict(rep) if isinstance(rep, SweepReport) else run_to_dict(rep))  # type: ignore


def report_to_json(rep: RunReport | SweepReport) -> str:
    return json.dumps(report_to_dict(rep), indent=2, sort_keys=True, allow_nan=False, default=str)
