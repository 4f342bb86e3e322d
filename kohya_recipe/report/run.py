"""The report of one run: read its log and checkpoints, rank the epochs, pick the best and the final one.

The article's answer to "which epoch do I keep?" is to take the lowest-loss epoch and the final one and try both
("don't base everything on a graph"): :func:`report_run` picks the best N epochs plus the final one, and writes
an A1111 prompt for each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kohya_recipe.errors import EventsError
from kohya_recipe.report.a1111 import DEFAULT_WEIGHT
from kohya_recipe.report.checkpoints import Checkpoint, CheckpointSet, scan_checkpoints
from kohya_recipe.report.events import LogDir, read_log_dir
from kohya_recipe.report.locate import locate_run
from kohya_recipe.report.mapping import map_checkpoints
from kohya_recipe.report.model import ReportError, RunReport, RunSource
from kohya_recipe.report.picks import choose_picks, find_divergence
from kohya_recipe.report.ranking import (
    DEFAULT_TIE_RTOL,
    DEFAULT_Z,
    RANKING_TAGS,
    Ranking,
    epoch_ranking,
    span,
)
from kohya_recipe.report.safetensors_meta import lora_summary
from kohya_recipe.report.samples import SampleSet, attach_samples, scan_samples

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
    cset = _scan_checkpoints(source)
    log = _read_log(source, cset, None if with_lr else RANKING_TAGS, warnings)
    ranking = _rank(log, metric, z, tie_rtol, warnings)
    if cset is not None:
        warnings.extend(cset.warnings)
    map_checkpoints(ranking, cset, warnings)
    files = {r.epoch: r.checkpoint.checkpoint for r in ranking.rows if r.checkpoint is not None}
    finished = cset is not None and cset.final is not None
    warnings.extend(_state_warnings(ranking, cset, files, source))
    diverged = find_divergence(log, ranking)
    samples = _samples(source, ranking)
    if samples is not None:
        warnings.extend(samples.warnings)
    return RunReport(
        source=source,
        log=log,
        ranking=ranking,
        checkpoint_set=cset,
        picks=[]
        if diverged
        else choose_picks(ranking, files, cset, source, pick_best=pick_best, weight=weight, finished=finished),
        settings=_settings(cset, files, source),
        num_epochs=cset.num_epochs if cset is not None else None,
        finished=finished,
        warnings=list(dict.fromkeys(warnings)),
        weight=weight,
        diverged=diverged,
        samples=samples,
    )


def _samples(source: RunSource, ranking: Ranking) -> SampleSet | None:
    """The run's sample images on their epochs (None when there is no checkpoint folder to look in)."""
    folder = source.sample_dir
    if folder is None:
        return None
    sset = scan_samples(folder, source.output_name, source.sampling, [p.prompt for p in source.prompts])
    attach_samples(sset, ranking)
    return sset


def _scan_checkpoints(source: RunSource) -> CheckpointSet | None:
    if source.model_dir is None or not source.model_dir.is_dir():
        return None
    cset = scan_checkpoints(source.model_dir, source.output_name)
    if source.output_name is None:
        source.output_name = cset.output_name
    return cset


def _read_log(
    source: RunSource, cset: CheckpointSet | None, prefixes: tuple[str, ...] | None, warnings: list[str]
) -> LogDir | None:
    """The run's log, or None when it cannot rank anything but the checkpoints can still be shown."""
    has_files = cset is not None and bool(cset.all)
    try:
        if source.log_dir is None:
            if not has_files:
                raise ReportError("no TensorBoard log and no checkpoints found", source=str(source.root))
            warnings.append(
                "the run logs nothing (no logging_dir): epochs cannot be ranked; showing the checkpoints only"
            )
            return None
        log = read_log_dir(source.log_dir, prefixes)
        _check_scalars(log, source)
    except EventsError as exc:
        # A log with no loss scalars (a 0-byte file from a run killed before its first step, or another
        # program's events in the folder) says nothing about the epochs, but the checkpoints are still sound.
        if not has_files:
            _never_trained(source)
            raise
        warnings.append(f"{exc}: epochs cannot be ranked; showing the checkpoints only")
        return None
    return log


def _never_trained(source: RunSource) -> None:
    log_dir = source.log_dir
    if log_dir is not None and not log_dir.exists() and source.kind != "log folder":
        raise ReportError(
            f"no log folder ({log_dir.name}/) and no checkpoints: has this run been trained yet?",
            source=str(source.root),
        )


def _rank(log: LogDir | None, metric: str, z: float, tie_rtol: float, warnings: list[str]) -> Ranking:
    if log is None:
        ranking = Ranking(
            rows=[], metric="none", metric_tag=None, segments=[], incomplete=None, warnings=[], z=z, tie_rtol=tie_rtol
        )
    else:
        ranking = epoch_ranking(log, metric, z=z, tie_rtol=tie_rtol)
        warnings.extend(str(w) for w in log.warnings)
    warnings.extend(ranking.warnings)
    return ranking


def _state_warnings(
    ranking: Ranking, cset: CheckpointSet | None, files: dict[int, Checkpoint], source: RunSource
) -> list[str]:
    """Where the run stands: an epoch that did not finish, no final file, epochs without a file."""
    out = []
    if ranking.incomplete is not None:
        out.append(_incomplete_warning(ranking, files))
    if cset is not None and cset.final is None and cset.all:
        n = len(cset.epoch_files)
        planned = f" of {cset.num_epochs}" if cset.num_epochs else ""
        out.append(
            f"no final {source.output_name or '<name>'}.safetensors: the run did not finish "
            f"({n} epoch file{'s' if n != 1 else ''}{planned} saved)"
        )
    missing = [r.epoch for r in ranking.rows if r.logged and r.epoch not in files]
    if cset is not None and missing:
        out.append(
            f"no checkpoint for epoch{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))} (save_every_n_epochs, save_last_n_epochs, or deleted)"
        )
    return out


def _incomplete_warning(ranking: Ranking, files: dict[int, Checkpoint]) -> str:
    inc = ranking.incomplete
    assert inc is not None
    which = f"epoch {inc.epoch}" if inc.epoch is not None else "an epoch"
    steps = f"{inc.steps.n} steps logged (steps {inc.steps.first_step}-{inc.steps.last_step})"
    # sd-scripts logs the epoch record before it saves that epoch's file, so a checkpoint for this epoch or a
    # later one means the training got further than the log shows: the event file lags (torch's SummaryWriter
    # flushes every 120 s while training) or was cut short.
    ahead = sorted(e for e in files if inc.epoch is None or e >= inc.epoch)
    if ahead:
        return (
            f"the log stops in {which} ({steps} after the last epoch record), but checkpoints "
            f"exist for epoch{'s' if len(ahead) > 1 else ''} {span(ahead)}: the event file was "
            "cut short or damaged, or a running trainer has not flushed it yet"
        )
    return f"{which} did not finish: {steps} after the last epoch record — interrupted, or still training"


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
    out.update(source.recipe_settings)
    return out


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
