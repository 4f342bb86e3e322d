"""Which epochs to recommend, and whether each pick can be recommended at all.

The article takes the lowest-loss epoch and the final one and tries both. A pick is only worth an A1111 prompt
when there is something to load: its checkpoint file exists (an epoch skipped by ``save_every_n_epochs`` has
none, and extending a finished run overwrites the old final file), its loss is a number, and its weights are
finite (:mod:`kohya_recipe.report.tensors`). When every epoch's loss is NaN/inf the run diverged and nothing is
recommended at all (:func:`find_divergence`).
"""

from __future__ import annotations

import math

from kohya_recipe.report.a1111 import a1111_snippet
from kohya_recipe.report.checkpoints import Checkpoint, CheckpointSet
from kohya_recipe.report.events import TAG_CURRENT, LogDir
from kohya_recipe.report.model import Divergence, Pick, RunSource
from kohya_recipe.report.ranking import EpochRow, Ranking
from kohya_recipe.report.tensors import scan_tensors


def _raw_loss(row: EpochRow, metric: str) -> float | None:
    """The epoch's loss by the ranking metric, NaN included (``row.metric`` is None for a NaN)."""
    return row.validation_loss if metric == "validation" else row.train_loss


def find_divergence(log: LogDir | None, ranking: Ranking) -> Divergence | None:
    """A :class:`Divergence` when every logged epoch's loss is NaN/inf; None otherwise."""
    if log is None or ranking.metric == "none":
        return None
    losses = [(r, v) for r in ranking.rows if r.logged and (v := _raw_loss(r, ranking.metric)) is not None]
    if not losses or any(math.isfinite(v) for _r, v in losses):
        return None
    first_row, first_value = min(losses, key=lambda rv: rv[0].epoch)
    for ef in log.segments:
        cur = ef.scalars.get(TAG_CURRENT)
        if cur is None:
            continue
        for step, value, wall in zip(cur.steps, cur.values, cur.wall_times, strict=True):
            if not math.isfinite(value):
                name = log.segment_name(ef)
                ends = [r for r in ranking.rows if r.segment == name and (r.end_wall_time or 0.0) >= wall]
                epoch = min(ends, key=lambda r: r.epoch).epoch if ends else None
                return Divergence(epoch=epoch, step=step, segment=name, value=str(value))
    return Divergence(epoch=first_row.epoch, step=None, segment=first_row.segment, value=str(first_value))


def choose_picks(
    ranking: Ranking,
    files: dict[int, Checkpoint],
    cset: CheckpointSet | None,
    source: RunSource,
    *,
    pick_best: int,
    weight: float,
    finished: bool,
) -> list[Pick]:
    """The best ``pick_best`` epochs and the final one, each checked (:attr:`Pick.problem`)."""
    chosen = _best(ranking, files, pick_best)
    final = _final(ranking, files, cset, finished)
    if final is not None:
        chosen.setdefault(final[0], []).append(final[1])
    picks = []
    for epoch in sorted(chosen, key=lambda e: (0 if "best" in chosen[e] else 1, e)):
        row = ranking.row(epoch)
        cp = files.get(epoch)
        pick = Pick(
            epoch=epoch,
            reasons=chosen[epoch],
            row=row,
            file=cp,
            lora_name=cp.stem if cp is not None else None,
            a1111=None,
            tied_with=_tied_with(ranking, row),
        )
        pick.problem = _problem(pick, ranking, cset)
        if pick.problem is None and pick.lora_name:
            pick.a1111 = a1111_snippet(pick.lora_name, source.sample, weight)
        picks.append(pick)
    return picks


def _tied_with(ranking: Ranking, row: EpochRow | None) -> list[int]:
    if row is None or not row.tied:
        return []
    return [r.epoch for r in ranking.rows if r.rank == row.rank and r.epoch != row.epoch]


def _best(ranking: Ranking, files: dict[int, Checkpoint], pick_best: int) -> dict[int, list[str]]:
    """epoch -> reasons for the ``pick_best`` best epochs; when the best has no file, the best epoch that has one
    is picked too (what the user can actually load)."""
    chosen: dict[int, list[str]] = {}
    ranked = ranking.ranked
    for r in ranked[: max(pick_best, 0)]:
        chosen.setdefault(r.epoch, []).append("best" if r.rank == 1 else f"rank {r.rank}")
    if pick_best > 0 and files and not any(e in files for e in chosen):
        saved = next((r for r in ranked if r.epoch in files), None)
        if saved is not None:
            chosen.setdefault(saved.epoch, []).append(f"best with a file (rank {saved.rank})")
    return chosen


def _final(
    ranking: Ranking, files: dict[int, Checkpoint], cset: CheckpointSet | None, finished: bool
) -> tuple[int, str] | None:
    """The final epoch and why it is called so (for a run that did not finish: the last saved or logged)."""
    if cset is not None and cset.final is not None and cset.final.epoch is not None:
        return cset.final.epoch, "final"
    if files:
        return max(files), "final" if finished else "last saved (no final file: the run did not finish)"
    if ranking.last_epoch is not None:
        # Without checkpoints to look at, a log that ends on an epoch record is taken as a finished run.
        return ranking.last_epoch, "final" if ranking.incomplete is None else "last logged (the run did not finish)"
    return None


def _problem(pick: Pick, ranking: Ranking, cset: CheckpointSet | None) -> str | None:
    """Why ``pick`` cannot be recommended, or None."""
    row = pick.row
    loss = _raw_loss(row, ranking.metric) if row is not None else None
    if loss is not None and not math.isfinite(loss):
        return f"its loss is {loss}: the training had diverged by epoch {pick.epoch}"
    if pick.file is None:
        if cset is None:
            return "no checkpoint folder to look in (give --model-dir): the file cannot be named"
        return (
            f"no checkpoint file for epoch {pick.epoch} in {cset.model_dir} "
            "(not saved: save_every_n_epochs or save_last_n_epochs; or deleted, or overwritten)"
        )
    if not pick.file.path.is_file():
        return f"{pick.file.path.name} is gone (deleted or moved since the folder was read)"
    if pick.file.path.suffix != ".safetensors":
        return None  # .ckpt/.pt: a pickle, not scanned (no torch here)
    pick.weights = scan_tensors(pick.file.path, pick.file.header)
    problem = pick.weights.problem
    return f"{pick.file.path.name}: {problem}" if problem else None
