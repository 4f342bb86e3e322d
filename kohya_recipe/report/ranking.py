"""Per-epoch losses from a run's event files, ranked, with honest uncertainty.

Where the numbers come from (sd-scripts ``train_network.py`` ``NetworkTrainer``: ``generate_step_logs`` and
``step_logging`` per step, ``epoch_logging`` at the end of each epoch in ``train``):

* ``loss/epoch_average`` (``loss/epoch`` up to sd-scripts 0.9.1) is logged once per epoch at step = the epoch
  number (``epoch_logging`` passes the epoch as TensorBoard's step): the mean of that epoch's ``loss/current``
  values (``library/train_util.py`` ``LossRecorder.moving_average``).
* ``loss/validation/epoch_average`` (validation split on) is logged at the same step. It uses fixed timesteps and
  re-seeded noise, so it is comparable across epochs and is the preferred ranking metric.
* ``loss/current`` is logged per micro-batch at step = global_step. Its points are assigned to epochs by
  **wall time**: an epoch's first epoch-level record is written right after its last step. (The step axis cannot
  do it: a resumed run restarts global_step at 1 while epoch numbers continue.) Their spread gives each epoch's
  standard error, sd/sqrt(n), treating batch losses as independent draws — diffusion loss noise is dominated by
  the random timestep and noise of each batch, so this is a fair first approximation.

The article's caution — "a loss graph is a hint, not a verdict" — becomes a flag: an epoch is *indistinguishable
from the best* when its distance from the best is within ``z`` standard errors of the difference. Validation
losses have no per-batch values in the log, so no standard error; there only near-equal values (``tie_rtol``)
count as ties.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kohya_recipe.report.events import (
    TAG_CURRENT,
    TAG_EPOCH_AVERAGE,
    TAG_EPOCH_OLD,
    TAG_VAL_DIVERGENCE,
    TAG_VAL_EPOCH,
    EventFile,
    LogDir,
    Scalars,
)

if TYPE_CHECKING:
    from kohya_recipe.report.checkpoints import EpochFile
    from kohya_recipe.report.samplenames import SampleImage

METRICS = ("auto", "validation", "train")
# The tags ranking needs (prefixes): loss/average and lr/* only feed the plots, so the JSON path skips them.
RANKING_TAGS = (TAG_CURRENT, TAG_EPOCH_OLD, "loss/validation/")
DEFAULT_Z = 2.0  # ~95 % two-sided under a normal approximation
DEFAULT_TIE_RTOL = 1e-5  # below this relative difference float32 losses are the same number (≈ 80 ulps)


@dataclass
class StepStats:
    """``loss/current`` over one epoch."""

    n: int
    mean: float
    sd: float | None
    se: float | None
    first_step: int
    last_step: int


def step_stats(values: list[float], steps: list[int]) -> StepStats | None:
    n = len(values)
    if n == 0:
        return None
    mean = math.fsum(values) / n
    sd = se = None
    if n > 1:
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        se = sd / math.sqrt(n)
    return StepStats(n=n, mean=mean, sd=sd, se=se, first_step=min(steps), last_step=max(steps))


@dataclass
class EpochRow:
    """One epoch: what the log says, its step statistics, (after ranking) its metric, rank and flags, and (in a
    report) the checkpoint file that holds it and its sample images."""

    epoch: int
    segment: str | None = None
    train_loss: float | None = None
    validation_loss: float | None = None
    validation_divergence: float | None = None
    end_wall_time: float | None = None
    steps: StepStats | None = None
    metric: float | None = None
    se: float | None = None
    rank: int | None = None
    tied: bool = False
    indistinguishable_from_best: bool = False
    best: bool = False
    notes: list[str] = field(default_factory=list)
    checkpoint: EpochFile | None = None
    samples: list[SampleImage] = field(default_factory=list)  # the epoch's sample images, by prompt index

    @property
    def logged(self) -> bool:
        return self.train_loss is not None or self.validation_loss is not None


@dataclass
class SegmentInfo:
    """One training process's log (one event file). ``step_offset`` is added to its steps to put resumed
    segments on one step axis (plots only)."""

    name: str
    path: str
    first_epoch: int | None
    last_epoch: int | None
    steps_logged: int
    step_offset: int
    first_wall_time: float | None
    superseded: bool = False


@dataclass
class Incomplete:
    """Step points after the last epoch record: an epoch that never finished (interrupted, or still training)."""

    epoch: int | None
    segment: str
    steps: StepStats


@dataclass
class Ranking:
    """The epoch table of a run and how it was ranked (``metric``: "validation", "train" or "none")."""

    rows: list[EpochRow]
    metric: str
    metric_tag: str | None
    segments: list[SegmentInfo]
    incomplete: Incomplete | None
    warnings: list[str]
    z: float
    tie_rtol: float

    @property
    def ranked(self) -> list[EpochRow]:
        return sorted((r for r in self.rows if r.rank is not None), key=lambda r: (r.rank, r.metric, r.epoch))

    @property
    def best(self) -> list[EpochRow]:
        return [r for r in self.rows if r.best]

    @property
    def last_epoch(self) -> int | None:
        logged = [r.epoch for r in self.rows if r.logged]
        return max(logged) if logged else None

    def row(self, epoch: int) -> EpochRow | None:
        for r in self.rows:
            if r.epoch == epoch:
                return r
        return None

    @property
    def metric_label(self) -> str:
        if self.metric == "validation":
            return f"validation loss ({self.metric_tag})"
        if self.metric == "train":
            return f"training loss ({self.metric_tag})"
        return "no epoch loss logged"


# --- assembling epochs from segments ------------------------------------------------------------------------------


@dataclass
class _SegEpochs:
    rows: dict[int, EpochRow]
    trailing: StepStats | None
    points_by_epoch: dict[int, tuple[list[float], list[int]]]
    notes: list[str]
    first_epoch: int | None
    epoch_tag: str | None


def _epoch_values(s: Scalars | None) -> dict[int, tuple[float, float]]:
    if s is None:
        return {}
    # Last write wins if an epoch appears twice in one file (it should not).
    return {int(st): (v, w) for st, v, w in zip(s.steps, s.values, s.wall_times, strict=True)}


def _segment_epochs(ef: EventFile, name: str) -> _SegEpochs:
    sc = ef.scalars
    epoch_tag = TAG_EPOCH_AVERAGE if TAG_EPOCH_AVERAGE in sc else (TAG_EPOCH_OLD if TAG_EPOCH_OLD in sc else None)
    train = _epoch_values(sc.get(epoch_tag)) if epoch_tag else {}
    val = _epoch_values(sc.get(TAG_VAL_EPOCH))
    div = _epoch_values(sc.get(TAG_VAL_DIVERGENCE))
    rows: dict[int, EpochRow] = {}
    for tag_vals in (train, val, div):
        for e, (_v, w) in tag_vals.items():
            row = rows.setdefault(e, EpochRow(epoch=e, segment=name))
            # The epoch ends at its first epoch-level record: validation is written before loss/epoch_average.
            row.end_wall_time = w if row.end_wall_time is None else min(row.end_wall_time, w)
    for e, row in rows.items():
        row.train_loss = train[e][0] if e in train else None
        row.validation_loss = val[e][0] if e in val else None
        row.validation_divergence = div[e][0] if e in div else None
    notes: list[str] = []
    order = sorted(rows.values(), key=lambda r: (r.end_wall_time or 0.0, r.epoch))
    for prev, cur in itertools.pairwise(order):
        if cur.epoch <= prev.epoch:
            notes.append(
                f"{name}: epoch records out of order ({prev.epoch} then {cur.epoch}); the clock may have "
                "jumped — step statistics may be misassigned"
            )
    bounds = [r.end_wall_time or 0.0 for r in order]
    points: dict[int, tuple[list[float], list[int]]] = {r.epoch: ([], []) for r in order}
    trailing_v: list[float] = []
    trailing_s: list[int] = []
    current = sc.get(TAG_CURRENT)
    if current is not None:
        for st, v, w in zip(current.steps, current.values, current.wall_times, strict=True):
            i = bisect_left(bounds, w)
            if i == len(order):
                trailing_v.append(v)
                trailing_s.append(st)
            else:
                bucket = points[order[i].epoch]
                bucket[0].append(v)
                bucket[1].append(st)
    # A missing epoch record (lost to damage) merges two epochs' steps into the next one: don't split them wrongly.
    for prev, cur_row in itertools.pairwise(order):
        if cur_row.epoch > prev.epoch + 1:
            missing = ", ".join(str(e) for e in range(prev.epoch + 1, cur_row.epoch))
            notes.append(
                f"{name}: no epoch record for epoch {missing} (lost or not logged); the loss/current "
                f"points of epochs {missing}-{cur_row.epoch} cannot be split, so epoch {cur_row.epoch} "
                "has no step statistics"
            )
            points[cur_row.epoch] = ([], [])
            cur_row.notes.append(f"step statistics unavailable: epoch {missing} has no epoch record")
    for e, (vals, steps) in points.items():
        rows[e].steps = step_stats(vals, steps)
    counts = sorted(r.steps.n for r in rows.values() if r.steps is not None)
    if len(counts) >= 3:
        mid = len(counts) // 2
        usual = counts[mid] if len(counts) % 2 else (counts[mid - 1] + counts[mid]) / 2
        for r in rows.values():
            if r.steps is not None and r.steps.n > 1.5 * usual:
                r.notes.append(
                    f"{r.steps.n} loss/current points where epochs usually have {usual:g}: an epoch "
                    "record may be missing before it"
                )
    return _SegEpochs(
        rows=rows,
        trailing=step_stats(trailing_v, trailing_s),
        points_by_epoch=points,
        notes=notes,
        first_epoch=order[0].epoch if order else None,
        epoch_tag=epoch_tag,
    )


def collect_epochs(log: LogDir) -> tuple[list[EpochRow], list[SegmentInfo], Incomplete | None, list[str], str | None]:
    """Merge the segments (oldest first) into one epoch table.

    A segment starting at epoch E (a ``--resume``, or a fresh start at 1) replaces every epoch >= E that earlier
    segments logged: that is what the trainer re-did, and what the checkpoints on disk now hold.
    """
    merged = _Merged()
    for ef in log.segments:
        _merge_segment(merged, ef, log.segment_name(ef))
    tags = merged.epoch_tags
    if len(tags) > 1:
        merged.warnings.append(
            "segments use both loss/epoch (sd-scripts <= 0.9.1) and loss/epoch_average; treated as the same value"
        )
    tag = TAG_EPOCH_AVERAGE if TAG_EPOCH_AVERAGE in tags else (TAG_EPOCH_OLD if tags else None)
    rows = [merged.rows[e] for e in sorted(merged.rows)]
    return rows, merged.segments, merged.incomplete, merged.warnings, tag


@dataclass
class _Merged:
    """The epoch table while segments are merged into it, oldest first."""

    rows: dict[int, EpochRow] = field(default_factory=dict)
    segments: list[SegmentInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    incomplete: Incomplete | None = None
    epoch_tags: set[str] = field(default_factory=set)
    last_step: dict[int, int] = field(default_factory=dict)  # epoch -> its last step on the shifted step axis


def _merge_segment(merged: _Merged, ef: EventFile, name: str) -> None:
    seg = _segment_epochs(ef, name)
    merged.warnings.extend(seg.notes)
    if seg.epoch_tag:
        merged.epoch_tags.add(seg.epoch_tag)
    cur = ef.scalars.get(TAG_CURRENT)
    offset = 0
    if seg.first_epoch is not None:
        _replace_from(merged, seg.first_epoch, name)
        offset = _step_offset(merged, seg, cur)
        for e, row in seg.rows.items():
            merged.rows[e] = row
            if row.steps is not None:
                merged.last_step[e] = row.steps.last_step + offset
        if seg.trailing is not None:
            merged.incomplete = Incomplete(epoch=max(seg.rows) + 1, segment=name, steps=seg.trailing)
    elif seg.trailing is not None:
        # Steps but no finished epoch in this segment: its epoch number is unknown.
        newest = max(merged.rows) if merged.rows else None
        merged.incomplete = Incomplete(
            epoch=(newest + 1) if newest is not None else None, segment=name, steps=seg.trailing
        )
        merged.warnings.append(f"{name}: {seg.trailing.n} loss/current points but no finished epoch in this log")
    merged.segments.append(
        SegmentInfo(
            name=name,
            path=str(ef.path),
            first_epoch=seg.first_epoch,
            last_epoch=max(seg.rows) if seg.rows else None,
            steps_logged=len(cur) if cur is not None else 0,
            step_offset=offset,
            first_wall_time=ef.first_wall_time,
        )
    )


def _replace_from(merged: _Merged, e0: int, name: str) -> None:
    """A segment starting at epoch ``e0`` replaces every epoch >= e0 logged before it."""
    replaced = sorted(e for e in merged.rows if e >= e0)
    if replaced:
        complete = [e for e in replaced if merged.rows[e].logged]
        for s in merged.segments:
            if s.first_epoch is not None and s.first_epoch >= e0:
                s.superseded = True
        if complete:
            what = "a new training from epoch 1" if e0 == 1 else f"a resumed training from epoch {e0}"
            merged.warnings.append(
                f"{name}: {what} replaces epoch{'s' if len(complete) > 1 else ''} "
                f"{span(complete)} logged earlier; using the newer values"
            )
        for e in replaced:
            del merged.rows[e]
    inc = merged.incomplete
    if inc is not None and (inc.epoch is None or inc.epoch >= e0):
        merged.incomplete = None  # the interrupted epoch was trained again here


def _step_offset(merged: _Merged, seg: _SegEpochs, cur: Scalars | None) -> int:
    """Where a resumed segment's steps go on one step axis (for the step plots only).

    sd-scripts restarts global_step at 1 on ``--resume`` (train_network.py ``NetworkTrainer.train`` sets
    ``global_step = 0`` before its epoch loop, which starts at the resumed epoch), so a resumed segment is shifted
    after the epochs before it.
    """
    e0 = seg.first_epoch
    first_row = seg.rows.get(e0) if e0 is not None else None
    if e0 is None or e0 <= 1 or first_row is None or first_row.steps is None:
        return 0
    before = merged.last_step.get(e0 - 1)
    if before is None:
        before = (e0 - 1) * first_row.steps.n
    min_step = min(cur.steps) if cur is not None and len(cur) else 0
    return before if min_step <= before else 0


def span(epochs: list[int]) -> str:
    if len(epochs) > 2 and epochs == list(range(epochs[0], epochs[-1] + 1)):
        return f"{epochs[0]}-{epochs[-1]}"
    return ", ".join(str(e) for e in epochs)


# --- ranking ------------------------------------------------------------------------------------------------------


def rank_values(values: list[float | None], tie_rtol: float = DEFAULT_TIE_RTOL) -> list[int | None]:
    """Competition ranks ("1, 1, 3"), lowest value first; values within ``tie_rtol`` of a group's first value tie.

    Groups are anchored on their lowest value so that a slow drift does not chain into one long tie.
    """
    order = sorted((i for i, v in enumerate(values) if v is not None), key=lambda i: values[i])  # type: ignore
    ranks: list[int | None] = [None] * len(values)
    anchor: float | None = None
    rank = 0
    for pos, i in enumerate(order):
        v = values[i]
        assert v is not None
        if anchor is None or abs(v - anchor) > tie_rtol * max(abs(v), abs(anchor)) + 1e-12:
            anchor = v
            rank = pos + 1
        ranks[i] = rank
    return ranks


def indistinguishable(value: float, se: float | None, best: float, best_se: float | None, z: float) -> bool:
    """Whether ``value`` is within ``z`` standard errors (of the difference) of ``best``."""
    if se is None or best_se is None:
        return False
    return (value - best) <= z * math.sqrt(se * se + best_se * best_se)


def rank_rows(
    rows: list[EpochRow],
    metric: str = "auto",
    *,
    z: float = DEFAULT_Z,
    tie_rtol: float = DEFAULT_TIE_RTOL,
    train_tag: str | None = TAG_EPOCH_AVERAGE,
) -> tuple[str, str | None, list[str]]:
    """Fill metric, se, rank, tied, best and indistinguishable on ``rows``; returns (metric, tag, warnings)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    warnings: list[str] = []
    metric = _choose_metric(rows, metric, warnings)
    if metric == "none":
        return "none", None, warnings
    _set_metric(rows, metric, warnings)
    ranks = rank_values([r.metric for r in rows], tie_rtol)
    for r, k in zip(rows, ranks, strict=True):
        r.rank = k
    _flag_best(rows, ranks, z)
    return metric, TAG_VAL_EPOCH if metric == "validation" else train_tag, warnings


def _choose_metric(rows: list[EpochRow], metric: str, warnings: list[str]) -> str:
    """ "validation" or "train" as asked and logged ("auto": validation when logged), or "none"."""
    has_val = any(r.validation_loss is not None for r in rows)
    has_train = any(r.train_loss is not None for r in rows)
    if metric == "validation" and not has_val:
        warnings.append(
            "no loss/validation/epoch_average in the log (no validation split); ranking by training loss instead"
        )
        metric = "train"
    if metric == "auto":
        metric = "validation" if has_val else "train"
    if metric == "train" and not has_train:
        return "validation" if has_val else "none"
    return metric


def _set_metric(rows: list[EpochRow], metric: str, warnings: list[str]) -> None:
    """Each row's metric and standard error; a NaN/inf loss (training diverged) is left unranked."""
    for r in rows:
        if metric == "validation":
            r.metric = r.validation_loss
            r.se = None  # no per-batch validation values are logged
        else:
            r.metric = r.train_loss
            r.se = r.steps.se if r.steps is not None else None
        r.rank = None
        r.tied = r.best = r.indistinguishable_from_best = False
    if metric == "validation":
        missing = [r.epoch for r in rows if r.validation_loss is None and r.train_loss is not None]
        if missing:
            warnings.append(
                f"epoch{'s' if len(missing) > 1 else ''} {span(missing)} had no validation "
                "(validate_every_n_epochs?) and are not ranked"
            )
    for r in rows:
        if r.metric is not None and not math.isfinite(r.metric):
            # A NaN/inf loss (training diverged, e.g. fp16 overflow) cannot be ordered: leave it unranked.
            r.notes.append(f"loss is {r.metric}: training diverged; not ranked")
            warnings.append(f"epoch {r.epoch}: loss is {r.metric} (training diverged?); not ranked")
            r.metric = None
            r.se = None


def _flag_best(rows: list[EpochRow], ranks: list[int | None], z: float) -> None:
    """Mark ties, the best epoch(s), and the epochs indistinguishable from the best."""
    counts = Counter(k for k in ranks if k is not None)
    ranked = [r for r in rows if r.rank is not None]
    if not ranked:
        return
    top = min(ranked, key=lambda r: (r.metric, r.epoch))
    for r in ranked:
        r.tied = counts[r.rank] > 1  # type: ignore[index]
        r.best = r.rank == 1
        r.indistinguishable_from_best = r.best or indistinguishable(r.metric, r.se, top.metric, top.se, z)  # type: ignore


def cross_check(rows: list[EpochRow], rtol: float = 1e-4) -> list[str]:
    """Compare each ``loss/epoch_average`` with the mean of the epoch's ``loss/current`` points.

    They are the same number in an intact log (float32 rounding aside: 1.1579166452 vs 1.1579166651 on a real
    run). A difference means lost step records, or a partial last epoch, whose average sd-scripts mixes with the
    previous epoch's tail: ``library/train_util.py`` ``LossRecorder.add`` overwrites the previous epoch's loss at
    each step index, and keeps the rest.
    """
    notes = []
    for r in rows:
        if r.train_loss is None or r.steps is None:
            continue
        if abs(r.steps.mean - r.train_loss) > rtol * max(abs(r.train_loss), 1e-12):
            msg = (
                f"epoch loss {r.train_loss:.6g} differs from the mean of its {r.steps.n} loss/current points "
                f"({r.steps.mean:.6g}): step records lost, or a partial epoch"
            )
            r.notes.append(msg)
            notes.append(f"epoch {r.epoch}: {msg}")
    return notes


def epoch_ranking(
    log: LogDir,
    metric: str = "auto",
    *,
    z: float = DEFAULT_Z,
    tie_rtol: float = DEFAULT_TIE_RTOL,
) -> Ranking:
    """Read → epochs → ranks, in one call."""
    rows, segments, incomplete, warnings, train_tag = collect_epochs(log)
    warnings = list(warnings) + cross_check(rows)
    used, tag, more = rank_rows(rows, metric, z=z, tie_rtol=tie_rtol, train_tag=train_tag or TAG_EPOCH_AVERAGE)
    warnings.extend(more)
    return Ranking(
        rows=rows,
        metric=used,
        metric_tag=tag,
        segments=segments,
        incomplete=incomplete,
        warnings=warnings,
        z=z,
        tie_rtol=tie_rtol,
    )
