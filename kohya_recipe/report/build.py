"""The epoch report: which epoch to keep, and why.

The article ends with the question every LoRA trainer asks: which epoch do I keep? It reads the loss graphs,
takes the lowest-loss epoch (6) and the final one (8), and tries both — "don't base everything on a graph".
This module does exactly that from a run's files: it reads the TensorBoard events (:mod:`kohya_recipe.report.events`),
ranks the epochs with their uncertainty (:mod:`kohya_recipe.report.ranking`), maps each epoch to its checkpoint and
confirms the mapping from the files' metadata (:mod:`kohya_recipe.report.checkpoints`), picks the best N epochs plus the
final one, and writes an A1111 prompt for each pick. A folder of several runs (a sweep) gets one comparison table.

What it accepts (:func:`locate_run`):

* a kohya-recipe project (``resolved-recipe.toml`` + ``config.toml``; the recipe gives the sample prompt);
* any sd-scripts run folder with the ``--config_file`` it was launched with (``logging_dir``, ``output_dir``,
  ``output_name``, ``sample_prompts`` are read from it, relative to the folder, which was the trainer's cwd);
* a folder with ``log/`` (and ``model/``), or a bare log folder or event file (checkpoints via ``model_dir``);
* a sweep folder: ``sweep.toml`` from ``kohya-recipe sweep``, or a folder whose sub-folders are runs.

Nothing heavy is imported here: the recipe is read from ``resolved-recipe.toml`` with tomllib, not through the
pydantic model (whose import alone costs ~130 ms of the 0.3 s ``report --json`` budget; the file was validated
when the project was rendered). Plots and HTML import matplotlib/jinja2 only when asked for.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.errors import EventsError, KohyaRecipeError
from kohya_recipe.report.checkpoints import Checkpoint, CheckpointSet, scan_checkpoints
from kohya_recipe.report.events import EVENT_FILE_MARK, LogDir, read_log_dir
from kohya_recipe.report.ranking import (
    DEFAULT_TIE_RTOL,
    DEFAULT_Z,
    RANKING_TAGS,
    EpochRow,
    Ranking,
    _span,
    epoch_ranking,
)
from kohya_recipe.report.safetensors_meta import lora_summary

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SCHEMA = "kohya-recipe/report/1"
RESOLVED_RECIPE = "resolved-recipe.toml"  # kohya_recipe.render.project.RESOLVED_RECIPE (not imported: pydantic)
CONFIG_FILE = "config.toml"
SWEEP_FILE = "sweep.toml"
DEFAULT_WEIGHT = 0.8  # the article's <lora:CharacterAI-1-A-000006:0.8>
SAVE_TIME_TOLERANCE = 1.0  # seconds; a checkpoint is saved right after its epoch record (measured 1 ms - 2.4 s)

# sd-scripts sample_sampler -> the name A1111 shows for the same sampler, where they are the same algorithm.
A1111_SAMPLERS = {
    "ddim": "DDIM",
    "pndm": "PLMS",
    "lms": "LMS",
    "k_lms": "LMS",
    "euler": "Euler",
    "k_euler": "Euler",
    "euler_a": "Euler a",
    "k_euler_a": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "k_dpm_2": "DPM2",
    "dpm_2_a": "DPM2 a",
    "k_dpm_2_a": "DPM2 a",
    "dpmsolver++": "DPM++ 2M",
}

# lora_summary keys shown as the run's settings and compared across the runs of a sweep
SETTING_KEYS = (
    "output_name",
    "base_model",
    "base_model_version",
    "network_module",
    "network_dim",
    "network_alpha",
    "network_args",
    "optimizer",
    "learning_rate",
    "unet_lr",
    "text_encoder_lr",
    "lr_scheduler",
    "num_epochs",
    "batches_per_epoch",
    "train_images",
    "reg_images",
    "validation_images",
    "batch_size",
    "resolution",
    "mixed_precision",
    "dtypes",
    "seed",
    "clip_skip",
    "noise_offset",
    "max_train_steps",
)


class ReportError(KohyaRecipeError):
    """The report cannot be made or its outputs cannot be written."""


# --- where things are ---------------------------------------------------------------------------------------------


@dataclass
class SamplePrompt:
    """The first sample prompt of the run, for the A1111 snippet."""

    prompt: str
    negative: str = ""
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    sampler: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunSource:
    """Where a run's log, checkpoints and recipe are."""

    root: Path
    kind: str  # "project" | "sd-scripts run" | "log folder"
    log_dir: Path | None
    model_dir: Path | None
    output_name: str | None
    sample: SamplePrompt | None = None
    recipe: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.output_name or self.root.name


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ReportError(f"cannot read: {exc}", source=str(path)) from None


def parse_prompt_line(line: str) -> SamplePrompt:
    """One sd-scripts sample-prompt line: ``prompt --n negative --w 512 --h 512 --s 30 --l 7 --d 42``.

    sd-scripts splits the line on " --" and reads each piece's first letters as the option (sd_scripts.md §6).
    """
    parts = line.strip().split(" --")
    sample = SamplePrompt(prompt=parts[0].strip())
    for part in parts[1:]:
        key, _, value = part.partition(" ")
        value = value.strip()
        try:
            if key == "n":
                sample.negative = value
            elif key == "w":
                sample.width = int(value)
            elif key == "h":
                sample.height = int(value)
            elif key == "s":
                sample.steps = int(value)
            elif key == "l":
                sample.cfg_scale = float(value)
            elif key == "d":
                sample.seed = int(value)
        except ValueError:
            continue
    return sample


def _first_prompt(path: Path) -> SamplePrompt | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return parse_prompt_line(line)
    return None


def _recipe_sample(recipe: dict[str, Any]) -> SamplePrompt | None:
    samples = recipe.get("samples") or {}
    prompts = samples.get("prompts") or []
    if not prompts or not isinstance(prompts[0], dict):
        return None
    p = prompts[0]
    subject = recipe.get("subject") or {}
    words = {"{trigger}": str(subject.get("trigger", "")), "{class}": str(subject.get("class_token", ""))}

    def fill(text: Any) -> str:
        text = str(text or "")
        for k, v in words.items():  # the recipe's placeholders (recipe.py SamplePrompt.prompt)
            text = text.replace(k, v)
        return text

    return SamplePrompt(
        prompt=fill(p.get("prompt")),
        negative=fill(p.get("negative")),
        width=p.get("width"),
        height=p.get("height"),
        steps=p.get("steps"),
        cfg_scale=p.get("cfg_scale"),
        seed=p.get("seed"),
        sampler=samples.get("sampler"),
    )


def _recipe_output_name(recipe: dict[str, Any]) -> str | None:
    out = recipe.get("output") or {}
    name = out.get("name") or (recipe.get("subject") or {}).get("trigger")
    if not name:
        return None
    return f"{name}-{out.get('major', 1)}-{out.get('letter', 'A')}"


def is_run_root(path: Path) -> bool:
    """A folder that holds one run: a project, an sd-scripts run folder with its config, or ``log/``."""
    return (path / RESOLVED_RECIPE).is_file() or (path / CONFIG_FILE).is_file() or (path / "log").is_dir()


def locate_run(
    path: str | Path,
    *,
    model_dir: str | Path | None = None,
    output_name: str | None = None,
) -> RunSource:
    """Find the log folder, checkpoint folder, output name and sample prompt of the run at ``path``."""
    path = Path(path)
    if not path.exists():
        raise ReportError("no such file or folder", source=str(path))
    if path.is_file():
        if path.suffix == ".safetensors":
            raise ReportError("is a checkpoint; use `kohya-recipe inspect` to read its metadata", source=str(path))
        if not path.name.startswith(EVENT_FILE_MARK):
            raise ReportError("not a TensorBoard event file, log folder or project", source=str(path))
        src = RunSource(root=path.parent, kind="log folder", log_dir=path, model_dir=None, output_name=None)
    elif is_run_root(path):
        src = _locate_root(path)
    else:
        src = RunSource(root=path, kind="log folder", log_dir=path, model_dir=None, output_name=None)
        if is_run_root(path.parent):
            # PROJECT/log or PROJECT/model given: report the whole project (its log, checkpoints and recipe).
            parent = _locate_root(path.parent)
            if any(d is not None and d.resolve() == path.resolve() for d in (parent.log_dir, parent.model_dir)):
                src = parent
    if model_dir is not None:
        src.model_dir = Path(model_dir)
    if output_name is not None:
        src.output_name = output_name
    return src


def _locate_root(root: Path) -> RunSource:
    recipe: dict[str, Any] | None = None
    warnings: list[str] = []
    kind = "sd-scripts run"
    if (root / RESOLVED_RECIPE).is_file():
        kind = "project"
        try:
            recipe = _read_toml(root / RESOLVED_RECIPE)
        except ReportError as exc:
            warnings.append(f"{exc}; the report goes on without the recipe")
    flat: dict[str, Any] = {}
    if (root / CONFIG_FILE).is_file():
        try:
            from kohya_recipe.sdscripts.options import flatten_config

            flat = flatten_config(_read_toml(root / CONFIG_FILE))
        except ReportError as exc:
            warnings.append(f"{exc}; using the default layout (log/, model/)")
    # The trainer runs with cwd = the project (kohya-recipe) or the run folder, so relative paths start there.
    log_dir = root / str(flat.get("logging_dir") or "log")
    model_dir = root / str(flat.get("output_dir") or "model")
    name = flat.get("output_name") or (_recipe_output_name(recipe) if recipe else None)
    sample = _recipe_sample(recipe) if recipe else None
    if sample is None and flat.get("sample_prompts"):
        sample = _first_prompt(root / str(flat["sample_prompts"]))
        if sample is not None and flat.get("sample_sampler"):
            sample.sampler = str(flat["sample_sampler"])
    if recipe is None and kind == "sd-scripts run" and not (root / CONFIG_FILE).is_file():
        kind = "log folder"
    return RunSource(
        root=root,
        kind=kind,
        log_dir=log_dir,
        model_dir=model_dir,
        output_name=str(name) if name else None,
        sample=sample,
        recipe=recipe,
        warnings=warnings,
    )


# --- the run report -----------------------------------------------------------------------------------------------


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


def a1111_snippet(lora_name: str, sample: SamplePrompt | None, weight: float = DEFAULT_WEIGHT) -> str:
    """An A1111 prompt using the LoRA, in the format A1111's "read generation parameters" accepts."""
    tag = f"<lora:{lora_name}:{weight:g}>"
    if sample is None or not sample.prompt:
        return tag
    lines = [f"{sample.prompt.rstrip(', ')}, {tag}"]
    if sample.negative:
        lines.append(f"Negative prompt: {sample.negative}")
    params = []
    if sample.steps:
        params.append(f"Steps: {sample.steps}")
    if sample.sampler and sample.sampler in A1111_SAMPLERS:
        params.append(f"Sampler: {A1111_SAMPLERS[sample.sampler]}")
    if sample.cfg_scale is not None:
        params.append(f"CFG scale: {sample.cfg_scale:g}")
    if sample.seed is not None:
        params.append(f"Seed: {sample.seed}")
    if sample.width and sample.height:
        params.append(f"Size: {sample.width}x{sample.height}")
    if params:
        lines.append(", ".join(params))
    return "\n".join(lines)


def _expected_name(output_name: str | None, epoch: int, final: bool) -> str | None:
    if not output_name:
        return None
    return output_name if final else f"{output_name}-{epoch:06d}"


def _map_files(
    ranking: Ranking, cset: CheckpointSet | None, warnings: list[str]
) -> tuple[dict[int, Checkpoint], dict[int, bool]]:
    if cset is None:
        return {}, {}
    files = cset.by_epoch()
    if cset.final is not None and cset.final.epoch is None:
        # No metadata: the final file holds the last epoch the log finished, if no numbered file claims it.
        last = ranking.last_epoch
        if last is not None and last not in files:
            files[last] = cset.final
            warnings.append(
                f"{cset.final.path.name}: taken as epoch {last} (the last epoch in the log); no metadata to confirm it"
            )
            files = dict(sorted(files.items()))
    confirmed: dict[int, bool] = {}
    ends = {r.epoch: r.end_wall_time for r in ranking.rows}
    for epoch, cp in files.items():
        ok = cp.confirmed and cp.epoch == epoch
        row = ranking.row(epoch)
        if (
            row is not None
            and row.steps is not None
            and cp.meta_steps is not None
            and row.steps.last_step != cp.meta_steps
        ):
            ok = False
            warnings.append(
                f"{cp.path.name}: ss_steps={cp.meta_steps} but the log's epoch {epoch} ends at step "
                f"{row.steps.last_step}: the file and the log come from different trainings"
            )
        saved = cp.saved_at
        end = ends.get(epoch)
        if saved is not None and end is not None:
            nxt = ends.get(epoch + 1)
            if saved < end - SAVE_TIME_TOLERANCE:
                ok = False
                warnings.append(
                    f"{cp.path.name}: saved before epoch {epoch} ended in the log: it comes from an earlier training"
                )
            elif nxt is not None and saved > nxt + SAVE_TIME_TOLERANCE:
                ok = False
                warnings.append(
                    f"{cp.path.name}: saved after epoch {epoch + 1} ended in the log: it comes from "
                    "a later training than the log"
                )
        confirmed[epoch] = ok
    return files, confirmed


def _picks(
    ranking: Ranking,
    files: dict[int, Checkpoint],
    cset: CheckpointSet | None,
    source: RunSource,
    pick_best: int,
    weight: float,
    finished: bool,
) -> list[Pick]:
    chosen: dict[int, list[str]] = {}
    for ranked in ranking.ranked[: max(pick_best, 0)]:
        chosen.setdefault(ranked.epoch, []).append("best" if ranked.rank == 1 else f"rank {ranked.rank}")
    final_epoch: int | None = None
    final_reason = "final"
    if cset is not None and cset.final is not None and cset.final.epoch is not None:
        final_epoch = cset.final.epoch
    elif files:
        final_epoch = max(files)
        if not finished:
            final_reason = "last saved (no final file: the run did not finish)"
    elif ranking.last_epoch is not None:
        final_epoch = ranking.last_epoch
        # Without checkpoints to look at, a log that ends on an epoch record is taken as a finished run.
        finished = ranking.incomplete is None
        if not finished:
            final_reason = "last logged (the run did not finish)"
    if final_epoch is not None:
        chosen.setdefault(final_epoch, []).append(final_reason)
    picks = []
    for epoch in sorted(chosen, key=lambda e: (0 if "best" in chosen[e] else 1, e)):
        row = ranking.row(epoch)
        cp = files.get(epoch)
        is_final = (cp.kind == "final") if cp is not None else ("final" in chosen[epoch] and finished)
        name = cp.stem if cp is not None else _expected_name(source.output_name, epoch, is_final)
        tied = [
            r.epoch for r in ranking.rows if row is not None and r.rank == row.rank and r.epoch != epoch and row.tied
        ]
        picks.append(
            Pick(
                epoch=epoch,
                reasons=chosen[epoch],
                row=row,
                checkpoint=cp,
                lora_name=name,
                a1111=a1111_snippet(name, source.sample, weight) if name else None,
                tied_with=tied,
            )
        )
    return picks


def _settings(cset: CheckpointSet | None, files: dict[int, Checkpoint], source: RunSource) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ref = None
    if cset is not None:
        with_meta = [
            cp
            for cp in ([cset.final] if cset.final else []) + list(files.values())
            if cp is not None and cp.header is not None and cp.header.metadata
        ]
        ref = with_meta[0] if with_meta else None
    if ref is not None and ref.header is not None:
        summary = lora_summary(ref.header, top_tags=10)
        out = {k: summary[k] for k in SETTING_KEYS if summary.get(k) is not None}
        if summary.get("tag_frequency_top"):
            out["top_tags"] = summary["tag_frequency_top"]
        out["settings_from"] = str(ref.path)
    if source.recipe:
        subject = source.recipe.get("subject") or {}
        if subject.get("trigger"):
            out["trigger"] = subject.get("trigger")
        if subject.get("class_token"):
            out["class_token"] = subject.get("class_token")
        if source.recipe.get("preset"):
            out["preset"] = source.recipe.get("preset")
    return out


def report_run(
    path: str | Path | RunSource,
    *,
    metric: str = "auto",
    pick_best: int = 1,
    weight: float = DEFAULT_WEIGHT,
    z: float = DEFAULT_Z,
    tie_rtol: float = DEFAULT_TIE_RTOL,
    model_dir: str | Path | None = None,
    output_name: str | None = None,
    with_lr: bool = False,
) -> RunReport:
    """Report one run. ``with_lr`` reads every tag (loss/average and lr/* feed the plots only)."""
    source = path if isinstance(path, RunSource) else locate_run(path, model_dir=model_dir, output_name=output_name)
    warnings = list(source.warnings)
    prefixes = None if with_lr else RANKING_TAGS
    log: LogDir | None = None
    cset: CheckpointSet | None = None
    if source.model_dir is not None and source.model_dir.is_dir():
        cset = scan_checkpoints(source.model_dir, source.output_name)
        if source.output_name is None:
            source.output_name = cset.output_name
    log_error: EventsError | None = None
    if source.log_dir is not None:
        try:
            log = read_log_dir(source.log_dir, prefixes)
        except EventsError as exc:
            log_error = exc
    if log is None:
        if cset is None or not cset.all:
            if source.log_dir is not None and not source.log_dir.exists() and source.kind != "log folder":
                raise ReportError(
                    f"no log folder ({source.log_dir.name}/) and no checkpoints: has this run been trained yet?",
                    source=str(source.root),
                )
            if log_error is not None:
                raise log_error
            raise ReportError("no TensorBoard log and no checkpoints found", source=str(source.root))
        warnings.append(f"{log_error}: epochs cannot be ranked; showing the checkpoints only")
    else:
        try:
            _check_scalars(log, source)
        except EventsError as exc:
            # A log with no loss scalars (a 0-byte file from a run killed before its first step, or another
            # program's events in the folder) says nothing about the epochs, but the checkpoints are still sound.
            if cset is None or not cset.all:
                raise
            warnings.append(f"{exc}: epochs cannot be ranked; showing the checkpoints only")
            log = None
    if log is not None:
        ranking = epoch_ranking(log, metric, z=z, tie_rtol=tie_rtol)
        warnings.extend(str(w) for w in log.warnings)
    else:
        ranking = Ranking(
            rows=[], metric="none", metric_tag=None, segments=[], incomplete=None, warnings=[], z=z, tie_rtol=tie_rtol
        )
    warnings.extend(ranking.warnings)
    if cset is not None:
        warnings.extend(cset.warnings)
    files, confirmed = _map_files(ranking, cset, warnings)
    for epoch in files:  # files whose epoch the log does not show still get a row
        if ranking.row(epoch) is None:
            extra = EpochRow(epoch=epoch)
            extra.notes.append("not in the log")
            ranking.rows.append(extra)
    ranking.rows.sort(key=lambda r: r.epoch)
    num_epochs = cset.num_epochs if cset is not None else None
    finished = cset is not None and cset.final is not None
    if ranking.incomplete is not None:
        inc = ranking.incomplete
        which = f"epoch {inc.epoch}" if inc.epoch is not None else "an epoch"
        steps = f"{inc.steps.n} steps logged (steps {inc.steps.first_step}-{inc.steps.last_step})"
        # sd-scripts logs the epoch record before it saves that epoch's file, so a checkpoint for this epoch or a
        # later one means the training got further than the log shows: the event file lags (torch's SummaryWriter
        # flushes every 120 s while training) or was cut short.
        ahead = sorted(e for e in files if inc.epoch is None or e >= inc.epoch)
        if ahead:
            warnings.append(
                f"the log stops in {which} ({steps} after the last epoch record), but checkpoints "
                f"exist for epoch{'s' if len(ahead) > 1 else ''} {_span(ahead)}: the event file was "
                "cut short or damaged, or a running trainer has not flushed it yet"
            )
        else:
            warnings.append(
                f"{which} did not finish: {steps} after the last epoch record — interrupted, or still training"
            )
    if not finished and cset is not None and cset.all:
        planned = f" of {num_epochs}" if num_epochs else ""
        warnings.append(
            f"no final {source.output_name or '<name>'}.safetensors: the run did not finish "
            f"({len(cset.epoch_files)} epoch file{'s' if len(cset.epoch_files) != 1 else ''}{planned} "
            "saved)"
        )
    missing = [r.epoch for r in ranking.rows if r.logged and r.epoch not in files]
    if cset is not None and missing:
        warnings.append(
            f"no checkpoint for epoch{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))} (save_every_n_epochs, save_last_n_epochs, or deleted)"
        )
    picks = _picks(ranking, files, cset, source, pick_best, weight, finished)
    return RunReport(
        source=source,
        log=log,
        ranking=ranking,
        checkpoints=cset,
        files=files,
        confirmed=confirmed,
        picks=picks,
        settings=_settings(cset, files, source),
        num_epochs=num_epochs,
        finished=finished,
        warnings=_dedupe(warnings),
        weight=weight,
    )


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _check_scalars(log: LogDir, source: RunSource) -> None:
    """No loss/ scalar at all: say what the files hold instead (empty, damaged, or another program's tags)."""
    if any(t.startswith("loss/") for ef in log.files for t in ef.scalars):
        return
    where = str(source.log_dir)
    details = [str(w) for w in log.warnings[:3]]
    everything = read_log_dir(source.log_dir) if source.log_dir is not None else log  # tags of any name
    tags = everything.tags
    n = len(log.files)
    files = f"{n} event file{'s' if n != 1 else ''}"
    if tags:
        shown = ", ".join(tags[:8]) + (", ..." if len(tags) > 8 else "")
        raise EventsError(
            f"{files} but no sd-scripts loss scalars (loss/...); tags found: {shown} — not a train_network.py log?",
            source=where,
        )
    msg = f"{files} but no scalars in them yet"
    if details:
        msg += " (" + "; ".join(details) + ")"
    raise EventsError(msg, source=where)


# --- sweeps -------------------------------------------------------------------------------------------------------


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


# --- outputs ------------------------------------------------------------------------------------------------------


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
        "sample_prompt": rep.source.sample.to_dict() if rep.source.sample else None,
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


def _num(v: float | None, width: int = 9) -> str:
    return f"{v:.6f}".rjust(width) if v is not None else "-".rjust(width)


def format_run(rep: RunReport) -> str:
    """The terminal table."""
    rk = rep.ranking
    lines = [f"{rep.name} — {rep.source.kind}: {rep.source.root}"]
    if rk.metric == "none":
        lines.append("no epoch loss in the log: epochs cannot be ranked")
    else:
        how = f"ranked by {rk.metric_label}"
        if rk.metric == "train":
            how += f"; ±SE from the epoch's loss/current points; ≈ = within {rk.z:g} SE of the best"
        else:
            how += "; validation has no per-batch values, so ≈ marks ties only"
        lines.append(how)
    lines.append("")
    lines.append(
        f"{'epoch':>5}  {'loss':>9}  {'±SE':>9}  {'rank':>5}  {'≈best':>5}  {'train':>9}  {'val':>9}  checkpoint"
    )
    for row in rk.rows:
        rank = "" if row.rank is None else (f"={row.rank}" if row.tied else str(row.rank))
        cp = rep.files.get(row.epoch)
        if cp is None:
            file_text = "(no file)"
        else:
            mark = "ok" if rep.confirmed.get(row.epoch) else "unconfirmed"
            file_text = f"{cp.path.name} [{mark}]"
        close = "yes" if row.indistinguishable else ""
        lines.append(
            f"{row.epoch:>5}  {_num(row.metric)}  {_num(row.se)}  {rank:>5}  {close:>5}"
            f"  {_num(row.train_loss)}  {_num(row.validation_loss)}  {file_text}"
        )
        for note in row.notes:
            lines.append(f"{'':>7}note: {note}")
    if rk.incomplete is not None:
        inc = rk.incomplete
        lines.append(
            f"{inc.epoch if inc.epoch is not None else '?':>5}  (incomplete: {inc.steps.n} steps, "
            f"mean loss/current {inc.steps.mean:.6f})"
        )
    lines.append("")
    for p in rep.picks:
        why = ", ".join(p.reasons)
        if p.tied_with:
            why += f"; tied with epoch{'s' if len(p.tied_with) > 1 else ''} {', '.join(map(str, p.tied_with))}"
        where = str(p.checkpoint.path) if p.checkpoint else "no file"
        lines.append(f"pick: epoch {p.epoch} ({why}): {where}")
        if p.a1111:
            lines.extend(f"    {line}" for line in p.a1111.splitlines())
    if rep.warnings:
        lines.append("")
        lines.append("warnings:")
        lines.extend(f"  - {w}" for w in rep.warnings)
    return "\n".join(lines)


def format_sweep(rep: SweepReport) -> str:
    rows = rep.comparison()
    lines = [f"sweep: {rep.root} ({len(rep.runs)} runs)", ""]
    keys = sorted({k for r in rows for k in r["settings"]})
    head = f"{'run':<24} {'rank':>4} {'metric':>10} {'best':>10} {'loss':>9} {'±SE':>9} {'final':>5} {'loss':>9}"
    # Each setting column as wide as its name or its widest value, so the values sit under their names.
    widths = {k: max([len(k)] + [len(str(r["settings"].get(k))) for r in rows]) for k in keys}
    lines.append((head + "".join(f"  {k:<{widths[k]}}" for k in keys)).rstrip())
    for r in rows:
        best = ",".join(map(str, r["best_epochs"])) or "-"
        lines.append(
            (
                f"{r['run']:<24} {r['sweep_rank'] if r['sweep_rank'] is not None else '-':>4} {r['metric']:>10} "
                f"{best:>10} {_num(r['best_metric'])} {_num(r['best_se'])} "
                f"{r['final_epoch'] if r['final_epoch'] is not None else '-':>5} {_num(r['final_metric'])}"
                + "".join(f"  {r['settings'].get(k)!s:<{widths[k]}}" for k in keys)
            ).rstrip()
        )
    for name, err in rep.failed:
        lines.append(f"{name:<24} could not be read: {err}")
    for run in rep.runs:
        lines.append("")
        lines.append(format_run(run))
    return "\n".join(lines)


def format_report(rep: RunReport | SweepReport) -> str:
    return format_sweep(rep) if isinstance(rep, SweepReport) else format_run(rep)


def copy_picks(rep: RunReport | SweepReport, dest: str | Path, *, force: bool = False) -> list[tuple[Path, str]]:
    """Copy each pick's checkpoint into ``dest``; returns ``(target, "copied"|"same"|"replaced")``.

    A different file already at the target is not overwritten without ``force``. Each copy goes to a temp file in
    ``dest`` and is then renamed, so an interrupted copy never leaves half a checkpoint under the real name.
    """
    dest = Path(dest)
    runs = rep.runs if isinstance(rep, SweepReport) else [rep]
    todo = [
        (p.checkpoint.path, dest / p.checkpoint.path.name) for r in runs for p in r.picks if p.checkpoint is not None
    ]
    if not todo:
        raise ReportError("no picked epoch has a checkpoint file to copy")
    sources: dict[Path, Path] = {}
    for src, target in todo:
        if sources.setdefault(target, src) != src:
            raise ReportError(
                f"two picks have the same file name ({sources[target]} and {src}); copy those runs one at a time",
                source=str(target),
            )
    plan: list[tuple[Path, Path, str]] = []
    for src, target in dict.fromkeys(todo):
        if target.exists():
            from kohya_recipe.files import sha256_file

            if target.stat().st_size == src.stat().st_size and sha256_file(target) == sha256_file(src):
                plan.append((src, target, "same"))
                continue
            if not force:
                raise ReportError(
                    "a different file is already there; not overwritten (use --force)", source=str(target)
                )
            plan.append((src, target, "replaced"))
        else:
            plan.append((src, target, "copied"))
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the folder: {exc.strerror or exc}", source=str(dest)) from None
    done = []
    for src, target, status in plan:
        if status != "same":
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=dest)
            os.close(fd)
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, target)
            except OSError as exc:
                Path(tmp).unlink(missing_ok=True)
                raise ReportError(f"cannot copy {src}: {exc.strerror or exc}", source=str(target)) from None
        done.append((target, status))
    return done


def render_html(rep: RunReport | SweepReport, *, plots: bool = True) -> str:
    """The self-contained HTML report (plots embedded as base64 PNG) from ``templates/report.html.j2``."""
    import base64

    from kohya_recipe.templating import render_template

    runs = rep.runs if isinstance(rep, SweepReport) else [rep]
    images: dict[str, dict[str, str]] = {}
    if plots:
        from kohya_recipe.report.plots import run_plots, sweep_plot

        for i, run in enumerate(runs):  # by position: runs of a sweep may share an output name
            images[str(i)] = {k: base64.b64encode(v).decode("ascii") for k, v in run_plots(run).items()}
        if isinstance(rep, SweepReport):
            images["__sweep__"] = {k: base64.b64encode(v).decode("ascii") for k, v in sweep_plot(rep).items()}
    data = report_to_dict(rep)
    run_dicts = data["runs"] if data["kind"] == "sweep" else [data]
    from kohya_recipe import __version__

    return render_template("report.html.j2", report=data, runs=run_dicts, images=images, version=__version__)
