"""The report's results: where a run is (:class:`RunSource`), its picks, the run report and the sweep report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.report.checkpoints import Checkpoint, CheckpointSet
from kohya_recipe.report.events import LogDir
from kohya_recipe.report.ranking import EpochRow, Ranking
from kohya_recipe.sdscripts.prompts import PromptLine

SCHEMA = "kohya-recipe/report/1"


class ReportError(KohyaRecipeError):
    """The report cannot be made or its outputs cannot be written."""


@dataclass
class RunSource:
    """Where a run's log and checkpoints are, its output name and its first sample prompt."""

    root: Path
    kind: str  # "project" | "sd-scripts run" | "log folder"
    log_dir: Path | None
    model_dir: Path | None
    output_name: str | None
    sample: PromptLine | None = None  # the first sample prompt, for the A1111 snippets
    recipe_settings: dict[str, Any] = field(default_factory=dict)  # the recipe's trigger, class token, preset
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.output_name or self.root.name


@dataclass
class Pick:
    epoch: int
    reasons: list[str]
    row: EpochRow | None
    checkpoint: Checkpoint | None
    lora_name: str | None
    a1111: str | None
    tied_with: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "reasons": list(self.reasons),
            "metric": self.row.metric if self.row else None,
            "rank": self.row.rank if self.row else None,
            "tied_with": list(self.tied_with),
            "checkpoint": str(self.checkpoint.path) if self.checkpoint else None,
            "lora_name": self.lora_name,
            "a1111": self.a1111,
        }


@dataclass
class RunReport:
    source: RunSource
    log: LogDir | None
    ranking: Ranking
    checkpoints: CheckpointSet | None
    files: dict[int, Checkpoint]
    confirmed: dict[int, bool]
    picks: list[Pick]
    settings: dict[str, Any]
    num_epochs: int | None
    finished: bool
    warnings: list[str]
    weight: float

    @property
    def name(self) -> str:
        return self.source.name


@dataclass
class SweepReport:
    """The runs of a sweep. ``names`` (parallel to ``runs``) are unique: the manifest's run names or the run
    folders' names — output names may repeat when a folder holds re-runs of one recipe."""

    root: Path
    runs: list[RunReport]
    names: list[str]
    failed: list[tuple[str, str]]
    settings: dict[str, dict[str, Any]]  # run name -> the settings that differ between runs
    warnings: list[str]

    def comparison(self) -> list[dict[str, Any]]:
        metrics = {r.ranking.metric for r in self.runs}
        rows = []
        for name, run in zip(self.names, self.runs, strict=True):
            best = run.ranking.best
            top = min(best, key=lambda r: (r.metric, r.epoch)) if best else None
            final = next((p for p in run.picks if any(x.startswith(("final", "last")) for x in p.reasons)), None)
            rows.append(
                {
                    "run": name,
                    "output_name": run.name,
                    "path": str(run.source.root),
                    "metric": run.ranking.metric,
                    "best_epochs": [r.epoch for r in best],
                    "best_metric": top.metric if top else None,
                    "best_se": top.se if top else None,
                    "final_epoch": final.epoch if final else None,
                    "final_metric": final.row.metric if final and final.row else None,
                    "final_rank": final.row.rank if final and final.row else None,
                    "epochs_logged": sum(1 for r in run.ranking.rows if r.logged),
                    "finished": run.finished,
                    "settings": self.settings.get(name, {}),
                    "warnings": len(run.warnings),
                }
            )
        if len(metrics) == 1 and "none" not in metrics:
            ranks = _competition([r["best_metric"] for r in rows])  # type: ignore[misc]
            for r, k in zip(rows, ranks, strict=True):
                r["sweep_rank"] = k
        else:
            for r in rows:
                r["sweep_rank"] = None
        return rows


def _competition(values: list[float | None]) -> list[int | None]:
    from kohya_recipe.report.ranking import rank_values

    return rank_values(values)
