"""Which checkpoint file holds which logged epoch, and whether the file and the log agree."""

from __future__ import annotations

from kohya_recipe.report.checkpoints import Checkpoint, CheckpointSet
from kohya_recipe.report.ranking import Ranking

SAVE_TIME_TOLERANCE = 1.0  # seconds; a checkpoint is saved right after its epoch record (measured 1 ms - 2.4 s)


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
