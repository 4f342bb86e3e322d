"""Plots: produced for every kind of run (real runs from tests/data/runs, i.e. shared/fixtures/sd-scripts-runs,
and generated ones), valid PNGs of the expected size, on the right axes."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from _report_util import materialise_runs, synthetic_rows, write_run

from kohya_recipe.report.build import build_report
from kohya_recipe.report.outputs import write_plots
from kohya_recipe.report.plots import _epoch_ends, _lr_tags, _segment_points, ema, run_plots
from kohya_recipe.report.run import report_run

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    w, h = struct.unpack(">II", data[16:24])  # IHDR
    return w, h


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return materialise_runs(tmp_path_factory.mktemp("runs"), ("article-mini", "validation", "resume", "interrupted"))


def test_ema_matches_tensorboard_smoothing() -> None:
    # TensorBoard: last = last * w + (1 - w) * v; smoothed = last / (1 - w ** n)
    assert ema([1.0, 2.0, 3.0], 0.5) == pytest.approx([1.0, (0.25 + 1.0) / 0.75, (0.625 + 1.5) / 0.875])
    assert ema([4.0, 4.0], 0.0) == [4.0, 4.0]
    nan = ema([1.0, float("nan"), 1.0], 0.9)
    assert nan[0] == 1.0 and nan[2] == pytest.approx(1.0) and nan[1] != nan[1]


def test_article_mini_plots(runs: Path) -> None:
    rep = report_run(runs / "article-mini", with_lr=True)
    plots = run_plots(rep)
    assert sorted(plots) == ["learning_rate", "loss_epochs", "loss_steps"]  # no validation in this run
    assert png_size(plots["loss_steps"]) == (800, 360)
    assert png_size(plots["learning_rate"]) == (800, 300)
    # lr/group1 duplicates lr/unet (sd-scripts' for…else), so it is left out
    assert _lr_tags(rep) == ["lr/textencoder", "lr/unet"]
    assert _epoch_ends(rep) == [(1, 12), (2, 24), (3, 36), (4, 48)]


def test_validation_plot(runs: Path) -> None:
    plots = run_plots(report_run(runs / "validation", with_lr=True))
    assert "validation" in plots and png_size(plots["validation"]) == (800, 360)


def test_resumed_segment_is_shifted(runs: Path) -> None:
    rep = report_run(runs / "resume", with_lr=True)
    ((xs, _ys, _name),) = _segment_points(rep, "loss/current")
    assert xs == list(range(17, 25))  # steps 1-8 of the resumed process, after epochs 1-2 of 8 steps
    assert "loss_steps" in run_plots(rep)


def test_interrupted_run_plots_the_unfinished_epoch(runs: Path) -> None:
    rep = report_run(runs / "interrupted", with_lr=True)
    ((xs, _ys, _name),) = _segment_points(rep, "loss/current")
    assert xs[-1] == 43


def test_superseded_attempt_is_not_plotted(tmp_path: Path) -> None:
    old, _ = synthetic_rows(epochs=4, steps_per_epoch=5, start_wall=1000.0)
    new, _ = synthetic_rows(epochs=2, steps_per_epoch=5, start_wall=9000.0)
    write_run(tmp_path / "log", old, folder="a")
    write_run(tmp_path / "log", new, folder="b", pid=2)
    rep = report_run(tmp_path / "log", with_lr=True)
    points = _segment_points(rep, "loss/current")
    assert [name for _, _, name in points] == ["b/network_train"]


def test_no_lr_without_with_lr(runs: Path) -> None:
    assert "learning_rate" not in run_plots(report_run(runs / "article-mini"))


def test_write_plots_for_a_sweep(runs: Path, tmp_path: Path) -> None:
    for name in ("article-mini", "validation"):
        shutil.copytree(runs / name, tmp_path / "sweep" / name)
    rep = build_report(tmp_path / "sweep", with_lr=True)
    written = write_plots(rep, tmp_path / "plots")
    rel = sorted(p.relative_to(tmp_path / "plots").as_posix() for p in written)
    assert "sweep_epochs.png" in rel
    assert "article-mini/loss_steps.png" in rel and "validation/validation.png" in rel  # one folder per run
    assert all(p.read_bytes().startswith(PNG) for p in written)


def test_plots_are_deterministic(runs: Path) -> None:
    rep = report_run(runs / "article-mini", with_lr=True)
    assert run_plots(rep)["loss_epochs"] == run_plots(rep)["loss_epochs"]


def test_legends_never_cover_the_data(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In article-mini the loss spike at step 40 and the last epoch's label sat under an upper-right legend.
    import kohya_recipe.report.plots as plots

    figures: list[Any] = []

    def keep(fig: Any) -> bytes:
        figures.append(fig)
        return PNG

    monkeypatch.setattr(plots, "_png", keep)
    for name in ("article-mini", "validation"):
        run_plots(report_run(runs / name, with_lr=True))
    shutil.copytree(runs / "validation", tmp_path / "sweep" / "validation")
    shutil.copytree(runs / "resume", tmp_path / "sweep" / "resume")
    plots.sweep_plot(build_report(tmp_path / "sweep"))  # type: ignore[arg-type]
    legends = 0
    for fig in figures:
        fig.canvas.draw()
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is not None:
                legends += 1
                assert not legend.get_window_extent().overlaps(ax.get_window_extent())
    assert legends == 6  # loss per step and learning rate of both runs, validation, and the sweep's
