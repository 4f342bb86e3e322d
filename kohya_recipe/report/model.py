"""The report's results: where a run is (:class:`RunSource`), its picks, the run report and the sweep report.

Results are data. Each class's JSON (``kohya-recipe report --json``, schema :data:`SCHEMA`) is its dataclass
fields, minus those marked ``metadata={"json": False}``, plus the properties it names in ``__json_properties__``
(:func:`kohya_recipe.cli.output.jsonable` turns them into JSON); the HTML report reads the same attributes.
JSON has no NaN: ``cli.output.jsonable`` turns a diverged loss into ``null``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.report.checkpoints import Checkpoint, CheckpointSet
from kohya_recipe.report.events import LogDir
from kohya_recipe.report.ranking import EpochRow, Incomplete, Ranking, SegmentInfo
from kohya_recipe.sdscripts.prompts import PromptLine

SCHEMA = "kohya-recipe/report/1"
NO_JSON = {"json": False}  # a field's metadata: kept out of the JSON
# The sample prompt's JSON: the options an A1111 prompt shows (not PromptLine.guidance_scale or .dropped).
PROMPT_KEYS = ("prompt", "negative", "width", "height", "steps", "cfg_scale", "seed", "sampler")


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
    """A picked epoch: why, its checkpoint (if saved), and the A1111 prompt that uses it."""

    epoch: int
    reasons: list[str]
    row: EpochRow | None = field(metadata=NO_JSON)
    file: Checkpoint | None = field(metadata=NO_JSON)
    lora_name: str | None
    a1111: str | None
    tied_with: list[int] = field(default_factory=list)

    __json_properties__ = ("metric", "rank", "checkpoint")

    @property
    def checkpoint(self) -> Path | None:
        return self.file.path if self.file is not None else None

    @property
    def metric(self) -> float | None:
        return self.row.metric if self.row is not None else None

    @property
    def rank(self) -> int | None:
        return self.row.rank if self.row is not None else None

    @property
    def is_final(self) -> bool:
        """The final (or, for a run that did not finish, the last) epoch."""
        return any(x.startswith(("final", "last")) for x in self.reasons)


@dataclass
class MetricInfo:
    """How the epochs were ranked: lowest first, ``z`` standard errors, ties within ``tie_rtol``."""

    kind: str  # "validation" | "train" | "none"
    tag: str | None
    label: str
    z: float
    tie_rtol: float
    lower_is_better: bool = True


@dataclass
class RunReport:
    """One run: its epochs ranked, each mapped to its checkpoint, and the picks."""

    source: RunSource = field(metadata=NO_JSON)
    log: LogDir | None = field(metadata=NO_JSON)
    ranking: Ranking = field(metadata=NO_JSON)
    checkpoint_set: CheckpointSet | None = field(metadata=NO_JSON)
    picks: list[Pick]
    settings: dict[str, Any]
    num_epochs: int | None
    finished: bool
    warnings: list[str]
    weight: float = field(metadata=NO_JSON)

    __json_properties__ = (
        "schema",
        "kind",
        "name",
        "path",
        "source_kind",
        "log_dir",
        "model_dir",
        "output_name",
        "metric",
        "epochs",
        "incomplete",
        "checkpoints",
        "sample_prompt",
        "segments",
        "tags",
        "tags_not_read",
    )
    schema = SCHEMA
    kind = "run"

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def path(self) -> Path:
        return self.source.root

    @property
    def source_kind(self) -> str:
        return self.source.kind

    @property
    def log_dir(self) -> Path | None:
        return self.source.log_dir

    @property
    def model_dir(self) -> Path | None:
        return self.source.model_dir

    @property
    def output_name(self) -> str | None:
        return self.source.output_name

    @property
    def metric(self) -> MetricInfo:
        rk = self.ranking
        return MetricInfo(kind=rk.metric, tag=rk.metric_tag, label=rk.metric_label, z=rk.z, tie_rtol=rk.tie_rtol)

    @property
    def epochs(self) -> list[EpochRow]:
        """Every epoch the log or the checkpoint folder shows, with its checkpoint (``row.checkpoint``)."""
        return self.ranking.rows

    @property
    def incomplete(self) -> Incomplete | None:
        return self.ranking.incomplete

    @property
    def segments(self) -> list[SegmentInfo]:
        return self.ranking.segments

    @property
    def checkpoints(self) -> CheckpointSet:
        """The run's checkpoint folder (empty when there is none)."""
        if self.checkpoint_set is not None:
            return self.checkpoint_set
        return CheckpointSet(model_dir=self.source.model_dir or self.source.root, output_name=None)

    @property
    def files(self) -> dict[int, Checkpoint]:
        """epoch -> its checkpoint file."""
        return {r.epoch: r.checkpoint.checkpoint for r in self.ranking.rows if r.checkpoint is not None}

    @property
    def confirmed(self) -> dict[int, bool]:
        """epoch -> whether its file's metadata and the log agree that the file holds that epoch."""
        return {r.epoch: r.checkpoint.confirmed for r in self.ranking.rows if r.checkpoint is not None}

    @property
    def sample_prompt(self) -> dict[str, Any] | None:
        sample = self.source.sample
        return {k: getattr(sample, k) for k in PROMPT_KEYS} if sample is not None else None

    @property
    def tags(self) -> dict[str, int]:
        """tag -> points read (the JSON path reads only the tags ranking needs)."""
        counts: dict[str, int] = {}
        for ef in self.log.files if self.log is not None else []:
            for tag, series in ef.scalars.items():
                counts[tag] = counts.get(tag, 0) + len(series)
        return dict(sorted(counts.items()))

    @property
    def tags_not_read(self) -> list[str]:
        """Tags present but not read (only the plots need them: --plots/--html read them)."""
        unread = {t for ef in self.log.files for t in ef.unread_tags} if self.log is not None else set()
        return sorted(unread - set(self.tags))


@dataclass
class ComparisonRow:
    """One run of a sweep, for the comparison table: its best and final epochs, and its differing settings."""

    run: str
    output_name: str
    path: Path
    metric: str
    best_epochs: list[int]
    best_metric: float | None
    best_se: float | None
    final_epoch: int | None
    final_metric: float | None
    final_rank: int | None
    epochs_logged: int
    finished: bool
    settings: dict[str, Any]
    warnings: int  # how many the run's report has
    sweep_rank: int | None = None  # None when the runs were ranked by different metrics


@dataclass
class FailedRun:
    """A run of a sweep that could not be read."""

    run: str
    error: str


@dataclass
class SweepReport:
    """The runs of a sweep. ``names`` (parallel to ``runs``) are unique: the manifest's run names or the run
    folders' names — output names may repeat when a folder holds re-runs of one recipe."""

    root: Path = field(metadata=NO_JSON)
    runs: list[RunReport]
    names: list[str] = field(metadata=NO_JSON)
    failed: list[FailedRun]
    settings: dict[str, dict[str, Any]] = field(metadata=NO_JSON)  # run name -> the settings that differ
    comparison: list[ComparisonRow]
    warnings: list[str]

    __json_properties__ = ("schema", "kind", "path")
    schema = SCHEMA
    kind = "sweep"

    @property
    def path(self) -> Path:
        return self.root
