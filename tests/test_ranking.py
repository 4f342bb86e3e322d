"""Epoch assembly and ranking: the real runs (tests/data/runs, from shared/fixtures/sd-scripts-runs) checked
against independent computations, and generated logs for resume, restart, lost records and old tags."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from _report_util import DATA, synthetic_rows, write_run

from kohya_recipe.report.events import TAG_EPOCH_AVERAGE, find_event_files, read_log_dir
from kohya_recipe.report.ranking import epoch_ranking, indistinguishable, rank_values


def fixture_ranking(run: str, metric: str = "auto"):  # type: ignore[no-untyped-def]
    return epoch_ranking(read_log_dir(DATA / run / "log"), metric)


def ea(run: str, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (path,) = find_event_files(DATA / run / "log")
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    return [(s.step, s.value) for s in acc.Scalars(tag)]


# --- pure functions -----------------------------------------------------------------------------------------------


def test_rank_values_competition_and_ties() -> None:
    assert rank_values([0.3, 0.1, 0.2]) == [3, 1, 2]
    assert rank_values([0.2, 0.1, 0.1, 0.3]) == [3, 1, 1, 4]
    assert rank_values([None, 0.5, None]) == [None, 1, None]
    assert rank_values([1.0, 1.0 + 5e-6, 1.0 + 2e-5]) == [1, 1, 3]
    # anchored on the group's lowest value: a slow drift does not chain into one tie
    assert rank_values([1.0, 1.0 + 8e-6, 1.0 + 1.6e-5], tie_rtol=1e-5) == [1, 1, 3]
    assert rank_values([]) == []


def test_indistinguishable() -> None:
    assert indistinguishable(1.1, 0.05, 1.0, 0.05, z=2.0)  # 0.1 <= 2*0.0707
    assert not indistinguishable(1.2, 0.05, 1.0, 0.05, z=2.0)
    assert not indistinguishable(1.0001, None, 1.0, 0.05, z=2.0)


# --- real runs ----------------------------------------------------------------------------------------------------


def test_article_mini_ranking_matches_independent_computation() -> None:
    rk = fixture_ranking("article-mini")
    assert rk.metric == "train" and rk.metric_tag == TAG_EPOCH_AVERAGE
    epoch_values = dict(ea("article-mini", "loss/epoch_average"))
    assert [r.metric for r in rk.rows] == [epoch_values[e] for e in (1, 2, 3, 4)]
    # Independent split by step (12 steps per epoch in this run), not by wall time.
    current = ea("article-mini", "loss/current")
    for row in rk.rows:
        vals = [v for s, v in current if (row.epoch - 1) * 12 < s <= row.epoch * 12]
        assert row.steps is not None and row.steps.n == 12
        assert row.se == pytest.approx(statistics.stdev(vals) / math.sqrt(12), rel=1e-12)
        assert row.steps.mean == pytest.approx(epoch_values[row.epoch], rel=1e-6)  # train_util.py LossRecorder
    order = sorted(epoch_values, key=epoch_values.get)  # type: ignore[arg-type]
    assert [r.epoch for r in rk.ranked] == order == [1, 4, 3, 2]
    assert [r.epoch for r in rk.best] == [1]
    best = rk.row(1)
    assert best is not None
    for r in rk.rows:
        expected = (r.metric - best.metric) <= 2.0 * math.hypot(r.se, best.se)  # type: ignore[operator,arg-type]
        assert r.indistinguishable_from_best == expected
    assert rk.warnings == [] and rk.incomplete is None


def test_validation_run_ties() -> None:
    rk = fixture_ranking("validation")
    assert rk.metric == "validation" and rk.metric_tag == "loss/validation/epoch_average"
    # the three validation losses agree to 6 digits: all rank 1, shown as ties
    assert [(r.rank, r.tied, r.best) for r in rk.rows] == [(1, True, True)] * 3
    assert all(r.se is None for r in rk.rows)  # no per-batch validation values are logged
    assert [r.validation_divergence for r in rk.rows] == [
        v for _, v in ea("validation", "loss/validation/epoch_divergence")
    ]
    by_train = fixture_ranking("validation", "train")
    assert [r.rank for r in by_train.rows] == [1, 2, 3]


def test_interrupted_run_has_incomplete_epoch() -> None:
    rk = fixture_ranking("interrupted")
    assert [r.epoch for r in rk.rows] == [1, 2, 3]
    assert rk.incomplete is not None
    assert rk.incomplete.epoch == 4
    assert (rk.incomplete.steps.n, rk.incomplete.steps.first_step, rk.incomplete.steps.last_step) == (7, 37, 43)


def test_resume_run_epoch_three_from_restarted_steps() -> None:
    rk = fixture_ranking("resume")
    (row,) = rk.rows
    assert row.epoch == 3 and row.steps is not None
    assert (row.steps.first_step, row.steps.last_step) == (1, 8)  # global_step restarted (NetworkTrainer.train)
    (seg,) = rk.segments
    assert seg.first_epoch == 3 and seg.step_offset == 16  # plotted after the two epochs of 8 steps before it


# --- generated logs -----------------------------------------------------------------------------------------------


def test_generated_means_and_cross_check(tmp_path: Path) -> None:
    rows, means = synthetic_rows(epochs=5, steps_per_epoch=40, seed=7)
    write_run(tmp_path / "log", rows)
    rk = epoch_ranking(read_log_dir(tmp_path / "log"))
    for r in rk.rows:
        assert r.steps is not None and r.steps.mean == pytest.approx(means[r.epoch], rel=1e-12)
    assert rk.warnings == []


def test_cross_check_flags_a_disagreeing_epoch_loss(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=3, steps_per_epoch=20, seed=2)
    rows = [(t, s, v + 0.01 if t == TAG_EPOCH_AVERAGE and s == 2 else v, w) for t, s, v, w in rows]
    write_run(tmp_path / "log", rows)
    rk = epoch_ranking(read_log_dir(tmp_path / "log"))
    (w,) = rk.warnings
    assert w.startswith("epoch 2: epoch loss") and "mean of its 20 loss/current points" in w


def test_old_tag_is_ranked(tmp_path: Path) -> None:
    rows, _means = synthetic_rows(
        epochs=4, steps_per_epoch=20, epoch_tag="loss/epoch", epoch_means=[0.2, 0.1, 0.15, 0.3], noise=0.001
    )
    write_run(tmp_path / "log", rows)
    rk = epoch_ranking(read_log_dir(tmp_path / "log"))
    assert rk.metric_tag == "loss/epoch" and rk.metric_label == "training loss (loss/epoch)"
    assert [r.rank for r in rk.rows] == [3, 1, 2, 4]
    assert [r.indistinguishable_from_best for r in rk.rows] == [False, True, False, False]


def test_resume_after_crash_merges_segments(tmp_path: Path) -> None:
    # First process: epochs 1-3, then killed 5 steps into epoch 4. Second: resumed at epoch 4, steps restart at 1.
    first, _ = synthetic_rows(epochs=4, steps_per_epoch=10, start_wall=1000.0, seed=1)
    cut = next(i for i, r in enumerate(first) if r[0] == "loss/current" and r[1] == 36)
    write_run(tmp_path / "log", first[:cut], folder="20260101000000")
    second, _ = synthetic_rows(epochs=2, steps_per_epoch=10, start_wall=9000.0, first_epoch=4, seed=2)
    write_run(tmp_path / "log", second, folder="20260101010000", pid=2)
    rk = epoch_ranking(read_log_dir(tmp_path / "log"))
    assert [r.epoch for r in rk.rows] == [1, 2, 3, 4, 5]
    assert [r.segment for r in rk.rows] == ["20260101000000/network_train"] * 3 + ["20260101010000/network_train"] * 2
    assert rk.incomplete is None  # the interrupted epoch 4 was trained again
    assert rk.warnings == []  # an interrupted epoch being redone is normal, not news
    assert [s.step_offset for s in rk.segments] == [0, 30]


def test_new_training_replaces_old_attempt(tmp_path: Path) -> None:
    old, _ = synthetic_rows(epochs=8, steps_per_epoch=5, start_wall=1000.0, seed=1)
    new, _ = synthetic_rows(epochs=3, steps_per_epoch=5, start_wall=9000.0, seed=2)
    write_run(tmp_path / "log", old, folder="20260101000000")
    write_run(tmp_path / "log", new, folder="20260102000000", pid=2)
    rk = epoch_ranking(read_log_dir(tmp_path / "log"))
    assert [r.epoch for r in rk.rows] == [1, 2, 3]
    assert rk.segments[0].superseded and not rk.segments[1].superseded
    assert "a new training from epoch 1 replaces epochs 1-8 logged earlier" in rk.warnings[0]


def test_lost_epoch_record_does_not_misassign_steps(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=5, steps_per_epoch=10, seed=4)
    rows = [r for r in rows if not (r[0] == TAG_EPOCH_AVERAGE and r[1] == 3)]
    write_run(tmp_path / "log", rows)
    rk = epoch_ranking(read_log_dir(tmp_path / "log"))
    assert [r.epoch for r in rk.rows] == [1, 2, 4, 5]
    row4 = rk.row(4)
    assert row4 is not None and row4.steps is None and row4.se is None
    assert "step statistics unavailable: epoch 3 has no epoch record" in row4.notes
    assert any("no epoch record for epoch 3" in w for w in rk.warnings)


def test_validation_requested_without_validation(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=2, steps_per_epoch=5)
    write_run(tmp_path / "log", rows)
    rk = epoch_ranking(read_log_dir(tmp_path / "log"), "validation")
    assert rk.metric == "train" and "no loss/validation/epoch_average" in rk.warnings[0]
    with pytest.raises(ValueError, match="metric must be one of"):
        epoch_ranking(read_log_dir(tmp_path / "log"), "accuracy")


def test_no_finished_epoch(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=1, steps_per_epoch=6)
    write_run(tmp_path / "log", [r for r in rows if r[0] != TAG_EPOCH_AVERAGE])
    rk = epoch_ranking(read_log_dir(tmp_path / "log"))
    assert rk.metric == "none" and rk.rows == [] and rk.best == []
    assert rk.incomplete is not None and rk.incomplete.epoch is None and rk.incomplete.steps.n == 6


def test_larger_z_widens_the_indistinguishable_set(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=6, steps_per_epoch=30, seed=5, noise=0.05)
    write_run(tmp_path / "log", rows)
    log = read_log_dir(tmp_path / "log")
    narrow = sum(r.indistinguishable_from_best for r in epoch_ranking(log, z=0.5).rows)
    wide = sum(r.indistinguishable_from_best for r in epoch_ranking(log, z=6.0).rows)
    assert 1 <= narrow <= wide and wide == 6
