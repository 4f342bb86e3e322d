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

from kohya_recipe.errors import ExitCode, KohyaRecipeError
from kohya_recipe.report.checkpoints import Checkpoint, CheckpointSet
from kohya_recipe.report.events import LogDir
from kohya_recipe.report.ranking import EpochRow, Incomplete, Ranking, SegmentInfo
from kohya_recipe.report.samples import SampleSet, SampleSettings
from kohya_recipe.report.tensors import TensorScan
from kohya_recipe.sdscripts.prompts import PromptLine

SCHEMA = "kohya-recipe/report/1"
NO_JSON = {"json": False}  # a field's metadata: kept out of the JSON
# The sample prompt's JSON: the options an A1111 prompt shows (not PromptLine.guidance_scale or .dropped).
PROMPT_KEYS = ("prompt", "negative", "width", "height", "steps", "cfg_scale", "seed", "sampler")
SAMPLE_DIR_NAME = "sample"  # sd-scripts: <output_dir>/sample (library/train_util.py sample_images_common)


class ReportError(KohyaRecipeError):
    """The report cannot be made or its outputs cannot be written."""


class RunDiverged(ReportError):
    """The run (every run of a sweep) diverged: nothing can be recommended. Raised after the report is shown."""

    exit_code = ExitCode.RUN_DIVERGED


@dataclass
class RunSource:
    """Where a run's log and checkpoints are, its output name and its first sample prompt."""

    root: Path
    kind: str  # "project" | "sd-scripts run" | "log folder"
    log_dir: Path | None
    model_dir: Path | None
    output_name: str | None
    sample: PromptLine | None = None  # the first sample prompt, for the A1111 snippets
    prompts: list[PromptLine] = field(default_factory=list)  # every sample prompt, by the index in sample names
    sampling: SampleSettings = field(default_factory=SampleSettings)
    recipe_settings: dict[str, Any] = field(default_factory=dict)  # the recipe's trigger, class token, preset
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.output_name or self.root.name

    @property
    def sample_dir(self) -> Path | None:
        """Where sd-scripts saves the sample images: ``<output_dir>/sample``."""
        return self.model_dir / SAMPLE_DIR_NAME if self.model_dir is not None else None


@dataclass
class Pick:
    """A picked epoch: why, its checkpoint (if saved), and the A1111 prompt that uses it.

    ``problem`` says why the pick cannot be recommended (no file, a NaN loss, NaN/inf weights); such a pick has no
    A1111 prompt: a ``<lora:...>`` tag for a file that does not exist, or holds broken weights, helps nobody.
    """

    epoch: int
    reasons: list[str]
    row: EpochRow | None = field(metadata=NO_JSON)
    file: Checkpoint | None = field(metadata=NO_JSON)
    lora_name: str | None
    a1111: str | None
    tied_with: list[int] = field(default_factory=list)
    problem: str | None = None
    weights: TensorScan | None = field(default=None, metadata=NO_JSON)

    __json_properties__ = ("metric", "rank", "checkpoint", "recommended", "weights_checked")

    @property
    def recommended(self) -> bool:
        return self.problem is None

    @property
    def weights_checked(self) -> dict[str, Any] | None:
        """The NaN/inf scan of the file: tensors scanned, those holding NaN/inf, dtypes not scanned."""
        w = self.weights
        if w is None:
            return None
        return {
            "ok": w.ok,
            "scanned": w.scanned,
            "non_finite": w.non_finite,
            "not_scanned": w.not_scanned,
            "truncated": w.truncated,
            "error": w.error,
        }

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
class Divergence:
    """Every epoch's loss is NaN/inf: the run diverged, and nothing can be recommended.

    ``step`` is the first ``loss/current`` point that is NaN/inf (as logged: a resumed segment restarts at 1),
    ``epoch`` the epoch it fell in.
    """

    epoch: int | None
    step: int | None
    segment: str | None
    value: str  # "nan", "inf" or "-inf"

    __json_properties__ = ("message",)

    @property
    def message(self) -> str:
        where = []
        if self.step is not None:
            where.append(f"step {self.step}")
        if self.epoch is not None:
            where.append(f"epoch {self.epoch}")
        since = f" from {', '.join(where)}" if where else ""
        return (
            f"the run diverged: the loss is {self.value}{since} and every epoch's loss is NaN/inf, so no epoch is "
            "recommended (lower the learning rate; with fp16, try bf16 or fp32)"
        )


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
    diverged: Divergence | None = None
    samples: SampleSet | None = None

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


def require_recommendation(rep: RunReport | SweepReport) -> None:
    """Raise :class:`RunDiverged` (exit 6) when the run diverged, or every run of the sweep did: the report has
    said so and recommends nothing, and a script must not take that for success."""
    runs = rep.runs if isinstance(rep, SweepReport) else [rep]
    if not runs or any(r.diverged is None for r in runs):
        return
    if isinstance(rep, RunReport) and rep.diverged is not None:
        raise RunDiverged(rep.diverged.message, source=str(rep.path))
    raise RunDiverged(
        "every run of the sweep diverged (every epoch's loss is NaN/inf): no epoch is recommended",
        source=str(rep.path),
    )
