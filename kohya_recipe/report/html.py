"""The self-contained HTML report: ``templates/report.html.j2`` rendered from the report's dataclasses, with the
plots embedded as base64 PNG (no scripts, no links out)."""

from __future__ import annotations

import base64
import math

from kohya_recipe import __version__
from kohya_recipe.report.model import RunReport, SweepReport
from kohya_recipe.report.plots import run_plots, sweep_plot
from kohya_recipe.templating import render_template


def render_html(rep: RunReport | SweepReport, *, plots: bool = True) -> str:
    """The HTML report of a run or a sweep; ``plots=False`` leaves the plots out (and matplotlib unloaded)."""
    runs = rep.runs if isinstance(rep, SweepReport) else [rep]
    images = _images(rep, runs) if plots else {}
    return render_template(
        "report.html.j2", report=rep, runs=runs, images=images, version=__version__, finite=math.isfinite
    )


def _images(rep: RunReport | SweepReport, runs: list[RunReport]) -> dict[str, dict[str, str]]:
    """Base64 PNGs by run position (runs of a sweep may share an output name) and ``__sweep__``."""
    images = {str(i): _b64(run_plots(run)) for i, run in enumerate(runs)}
    if isinstance(rep, SweepReport):
        images["__sweep__"] = _b64(sweep_plot(rep))
    return images


def _b64(pngs: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode("ascii") for k, v in pngs.items()}
