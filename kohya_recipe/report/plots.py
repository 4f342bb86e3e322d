"""PNG plots for the epoch report (matplotlib, Agg canvas; imported only when plotting).

Figures are made with ``matplotlib.figure.Figure`` on an explicit Agg canvas rather than through pyplot, so no
global backend is switched and nothing needs a display. Step-level and epoch-level tags never share an axis:
sd-scripts logs the first at step = global_step and the second at step = the epoch number (train_network.py
``NetworkTrainer.step_logging`` and ``epoch_logging``). The step plots use global_step (resumed segments shifted
after the epochs before them, since sd-scripts restarts global_step on --resume), the epoch plots the epoch.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kohya_recipe.report.events import TAG_AVERAGE, TAG_CURRENT, EventFile
from kohya_recipe.report.model import RunReport, SweepReport

PLOT_NAMES = ("loss_steps", "loss_epochs", "validation", "learning_rate")
DEFAULT_SMOOTHING = 0.9  # TensorBoard's slider (default 0.6) is tuned for short runs; 0.9 suits 3,000+ steps
_BEST = "#d62728"
_BAR = "#7f9fbf"
_FINAL = "#2ca02c"


def ema(values: list[float], weight: float = DEFAULT_SMOOTHING) -> list[float]:
    """TensorBoard's debiased exponential moving average (the "smoothing" slider)."""
    out = []
    last = 0.0
    n = 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        debias = 1 - weight**n if weight < 1 else 1.0
        out.append(last / debias)
    return out


def _figure(height: float = 3.6) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _legend(ax: Any, fontsize: float = 8) -> None:
    # Outside the axes, on the right: inside, any corner can hide data (a loss spike near the end of a run sat
    # under the upper-right legend of the article-mini plot; a falling loss starts in the upper left).
    # The constrained layout narrows the axes to make room.
    handles, _labels = ax.get_legend_handles_labels()
    ax.legend(
        fontsize=fontsize,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        ncol=1 if len(handles) <= 12 else 2,
    )


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No "Software" chunk: the same data gives the same bytes whatever matplotlib version drew it.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _segment_points(rep: RunReport, tag: str) -> list[tuple[list[float], list[float], str]]:
    """(x = shifted global step, y, segment name) per log segment, cut to the epochs that segment still owns."""
    if rep.log is None:
        return []
    by_path: dict[str, EventFile] = {str(ef.path): ef for ef in rep.log.files}
    rows = rep.ranking.rows
    inc = rep.ranking.incomplete
    out = []
    for seg in rep.ranking.segments:
        ef = by_path.get(seg.path)
        if ef is None or tag not in ef.scalars:
            continue
        owned = [r.end_wall_time for r in rows if r.segment == seg.name and r.end_wall_time is not None]
        if inc is not None and inc.segment == seg.name:
            limit = math.inf
        elif owned:
            limit = max(owned)
        else:
            continue  # every epoch of this segment was trained again later
        s = ef.scalars[tag]
        xs: list[float] = []
        ys: list[float] = []
        for st, v, w in zip(s.steps, s.values, s.wall_times, strict=True):
            if w <= limit:
                xs.append(st + seg.step_offset)
                ys.append(v)
        if xs:
            out.append((xs, ys, seg.name))
    return out


def _epoch_ends(rep: RunReport) -> list[tuple[int, float]]:
    offsets = {s.name: s.step_offset for s in rep.ranking.segments}
    return [
        (r.epoch, r.steps.last_step + offsets.get(r.segment or "", 0)) for r in rep.ranking.rows if r.steps is not None
    ]


def plot_loss_steps(rep: RunReport, smoothing: float = DEFAULT_SMOOTHING) -> bytes | None:
    current = _segment_points(rep, TAG_CURRENT)
    if not current:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, (xs, ys, _name) in enumerate(current):
        ax.plot(xs, ys, color="#1f77b4", alpha=0.25, linewidth=0.7, label="loss/current" if i == 0 else None)
        ax.plot(
            xs,
            ema(ys, smoothing),
            color="#1f77b4",
            linewidth=1.6,
            label=f"loss/current, smoothed ({smoothing:g})" if i == 0 else None,
        )
    for i, (xs, ys, _name) in enumerate(_segment_points(rep, TAG_AVERAGE)):
        ax.plot(xs, ys, color="#ff7f0e", linewidth=1.2, label="loss/average" if i == 0 else None)
    for epoch, x in _epoch_ends(rep):
        ax.axvline(x, color="#999999", linewidth=0.6, linestyle=":")
        ax.annotate(
            str(epoch), (x, 1.0), xycoords=("data", "axes fraction"), ha="right", va="top", fontsize=7, color="#666666"
        )
    if len(current) > 1:
        ax.set_title("Training loss per step (resumed segments placed after the epochs before them)", fontsize=10)
    else:
        ax.set_title("Training loss per step (dotted lines: end of each epoch)", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    _legend(ax)
    return _png(fig)


def plot_loss_epochs(rep: RunReport) -> bytes | None:
    rows = [r for r in rep.ranking.rows if r.train_loss is not None and math.isfinite(r.train_loss)]
    if not rows:
        return None
    z = rep.ranking.z
    fig = _figure()
    ax = fig.add_subplot()
    xs = [r.epoch for r in rows]
    ys = [r.train_loss for r in rows]
    errs = [
        z * r.steps.se if r.steps is not None and r.steps.se is not None and math.isfinite(r.steps.se) else 0.0
        for r in rows
    ]
    final = {p.epoch for p in rep.picks if p.is_final}
    colors = [
        _BEST if (r.best and rep.ranking.metric == "train") else (_FINAL if r.epoch in final else _BAR) for r in rows
    ]
    ax.bar(xs, ys, color=colors, yerr=errs, capsize=4, ecolor="#333333")
    lo = min(y - e for y, e in zip(ys, errs, strict=True))  # type: ignore[operator]
    hi = max(y + e for y, e in zip(ys, errs, strict=True))  # type: ignore[operator]
    pad = (hi - lo) * 0.15 or abs(hi) * 0.05 or 0.01
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(xs)
    tag = rep.ranking.metric_tag if rep.ranking.metric == "train" else "loss/epoch_average"
    ax.set_title(f"{tag} per epoch, ±{z:g} SE (axis does not start at 0; red = best, green = final)", fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    return _png(fig)


def plot_validation(rep: RunReport) -> bytes | None:
    rows = [r for r in rep.ranking.rows if r.validation_loss is not None and math.isfinite(r.validation_loss)]
    if not rows:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(
        [r.epoch for r in rows],
        [r.validation_loss for r in rows],
        marker="o",
        color="#9467bd",
        label="loss/validation/epoch_average",
    )
    best = [r for r in rows if r.best and rep.ranking.metric == "validation"]
    if best:
        ax.plot(
            [r.epoch for r in best],
            [r.validation_loss for r in best],
            "o",
            color=_BEST,
            markersize=9,
            fillstyle="none",
            label="best (ties included)",
        )
    train = [r for r in rep.ranking.rows if r.train_loss is not None]
    if train:
        ax.plot(
            [r.epoch for r in train],
            [r.train_loss for r in train],
            marker=".",
            linestyle="--",
            color="#7f7f7f",
            label="training loss (epoch)",
        )
    ax.set_xticks([r.epoch for r in rows])
    ax.set_title("Validation loss per epoch (fixed timesteps and seeded noise: comparable across epochs)", fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    _legend(ax)
    return _png(fig)


def _lr_tags(rep: RunReport) -> list[str]:
    if rep.log is None:
        return []
    tags = sorted({t for ef in rep.log.files for t in ef.scalars if t.startswith("lr/")})
    named = [t for t in tags if not t.startswith("lr/group")]
    # sd-scripts logs the named groups, then again as lr/group<i>: the else of the for loop in train_network.py
    # NetworkTrainer.generate_step_logs runs after every complete loop.
    return named or tags


def plot_learning_rate(rep: RunReport) -> bytes | None:
    tags = _lr_tags(rep)
    if not tags:
        return None
    fig = _figure(3.0)
    ax = fig.add_subplot()
    drawn = False
    for tag in tags:
        for i, (xs, ys, _name) in enumerate(_segment_points(rep, tag)):
            ax.plot(xs, ys, linewidth=1.2, label=tag if i == 0 else None)
            drawn = True
    if not drawn:
        return None
    ax.set_title("Learning rate per step", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    _legend(ax)
    return _png(fig)


def run_plots(rep: RunReport) -> dict[str, bytes]:
    """Every plot the run has data for, as PNG bytes by name (see :data:`PLOT_NAMES`)."""
    made = {
        "loss_steps": plot_loss_steps(rep),
        "loss_epochs": plot_loss_epochs(rep),
        "validation": plot_validation(rep),
        "learning_rate": plot_learning_rate(rep),
    }
    return {k: v for k, v in made.items() if v is not None}


def sweep_plot(rep: SweepReport) -> dict[str, bytes]:
    """One plot comparing the runs' per-epoch ranking metric."""
    fig = _figure(4.0)
    ax = fig.add_subplot()
    drawn = False
    for name, run in zip(rep.names, rep.runs, strict=True):
        rows = [r for r in run.ranking.rows if r.metric is not None]
        if rows:
            ax.plot(
                [r.epoch for r in rows],
                [r.metric for r in rows],
                marker="o",
                linewidth=1.2,
                label=f"{name} ({run.ranking.metric})",
            )
            drawn = True
    if not drawn:
        return {}
    ax.set_title("Per-epoch ranking metric of each run", fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    _legend(ax, fontsize=7)
    return {"sweep_epochs": _png(fig)}


@dataclass
class ReportPlots:
    """Every plot of a report, drawn once: each run's (in the report's order) and, for a sweep, the comparison."""

    runs: list[dict[str, bytes]]
    sweep: dict[str, bytes]


def report_plots(rep: RunReport | SweepReport) -> ReportPlots:
    """Draw every plot of ``rep`` (the PNG files and the HTML report both use them)."""
    if isinstance(rep, SweepReport):
        return ReportPlots(runs=[run_plots(run) for run in rep.runs], sweep=sweep_plot(rep))
    return ReportPlots(runs=[run_plots(rep)], sweep={})


def plot_files(
    rep: RunReport | SweepReport, out_dir: str | Path, drawn: ReportPlots | None = None
) -> dict[Path, bytes]:
    """Every PNG the report has, by the path it goes to in ``out_dir`` (a sweep: ``sweep_epochs.png`` plus one
    sub-folder per run); ``drawn``: the plots, if already drawn. Nothing is written."""
    drawn = drawn if drawn is not None else report_plots(rep)
    out = Path(out_dir)
    if not isinstance(rep, SweepReport):
        return {out / f"{name}.png": data for name, data in drawn.runs[0].items()}
    files = {out / f"{name}.png": data for name, data in drawn.sweep.items()}
    for run_name, pngs in zip(rep.names, drawn.runs, strict=True):
        files.update({out / run_name / f"{name}.png": data for name, data in pngs.items()})
    return files
