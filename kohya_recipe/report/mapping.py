"""Which checkpoint file holds which logged epoch, and whether the file and the log agree.

Each file's epoch comes from its name and metadata (:mod:`kohya_recipe.report.checkpoints`); the log then
confirms it: the file's ``ss_steps`` must be the epoch's last step in the log, and its save time
(``ss_training_finished_at``) must fall after that epoch's record and before the next one's. A file that fails
either comes from another training than the log, and is shown unconfirmed.
"""

from __future__ import annotations

from kohya_recipe.report.checkpoints import Checkpoint, CheckpointSet, EpochFile
from kohya_recipe.report.ranking import EpochRow, Ranking

SAVE_TIME_TOLERANCE = 1.0  # seconds; a checkpoint is saved right after its epoch record (measured 1 ms - 2.4 s)


def map_checkpoints(ranking: Ranking, cset: CheckpointSet | None, warnings: list[str]) -> None:
    """Put each checkpoint on its epoch's row (``row.checkpoint``), confirmed against the log.

    A file whose epoch the log does not show gets a row of its own, noted "not in the log".
    """
    if cset is None:
        return
    for epoch, cp in _epoch_files(ranking, cset, warnings).items():
        row = ranking.row(epoch)
        confirmed = _confirmed(cp, epoch, ranking, warnings)
        if row is None:
            row = EpochRow(epoch=epoch, notes=["not in the log"])
            ranking.rows.append(row)
        row.checkpoint = EpochFile(cp, confirmed)
    ranking.rows.sort(key=lambda r: r.epoch)


def _epoch_files(ranking: Ranking, cset: CheckpointSet, warnings: list[str]) -> dict[int, Checkpoint]:
    files = cset.by_epoch()
    if cset.final is not None and cset.final.epoch is None:
        # No metadata: the final file holds the last epoch the log finished, if no numbered file claims it.
        last = ranking.last_epoch
        if last is not None and last not in files:
            files[last] = cset.final
            warnings.append(
                f"{cset.final.path.name}: taken as epoch {last} (the last epoch in the log); no metadata to confirm it"
            )
    return dict(sorted(files.items()))


def _confirmed(cp: Checkpoint, epoch: int, ranking: Ranking, warnings: list[str]) -> bool:
    steps_agree = _steps_agree(cp, epoch, ranking.row(epoch), warnings)
    time_agrees = _saved_in_time(cp, epoch, ranking, warnings)
    return cp.confirmed and cp.epoch == epoch and steps_agree and time_agrees


def _steps_agree(cp: Checkpoint, epoch: int, row: EpochRow | None, warnings: list[str]) -> bool:
    if row is None or row.steps is None or cp.ss_steps is None or row.steps.last_step == cp.ss_steps:
        return True
    warnings.append(
        f"{cp.path.name}: ss_steps={cp.ss_steps} but the log's epoch {epoch} ends at step "
        f"{row.steps.last_step}: the file and the log come from different trainings"
    )
    return False


def _saved_in_time(cp: Checkpoint, epoch: int, ranking: Ranking, warnings: list[str]) -> bool:
    saved = cp.saved_at
    row, after = ranking.row(epoch), ranking.row(epoch + 1)
    end = row.end_wall_time if row is not None else None
    if saved is None or end is None:
        return True
    if saved < end - SAVE_TIME_TOLERANCE:
        warnings.append(
            f"{cp.path.name}: saved before epoch {epoch} ended in the log: it comes from an earlier training"
        )
        return False
    nxt = after.end_wall_time if after is not None else None
    if nxt is not None and saved > nxt + SAVE_TIME_TOLERANCE:
        warnings.append(
            f"{cp.path.name}: saved after epoch {epoch + 1} ended in the log: it comes from "
            "a later training than the log"
        )
        return False
    return True
