"""The self-contained HTML report (``templates/report.html.j2``)."""

from __future__ import annotations

from kohya_recipe.report.build import report_to_dict
from kohya_recipe.report.model import RunReport, SweepReport


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
