"""The self-contained HTML report: ``templates/report.html.j2`` rendered from the report's dataclasses, with the
sample images and the plots embedded as ``data:`` URIs (no scripts, no links out).

The sample grid is the report's centre: a LoRA trainer picks the epoch by looking. Each run gets a grid of epochs
× prompts next to each epoch's loss and rank, the best and final picks marked and each prompt's text under its
column; a sweep adds, per prompt, the epochs of every run side by side. Samples are embedded as thumbnails
(reduced with Pillow, at most :data:`THUMB_SIZE` px; a clicked one opens the file itself), or full size with
``samples="full"`` (a click shows it enlarged, still inside the page), or not at all with ``samples="off"``.
"""

from __future__ import annotations

import base64
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from kohya_recipe import __version__
from kohya_recipe.report.model import RunReport, SweepReport
from kohya_recipe.report.plots import ReportPlots, report_plots
from kohya_recipe.report.samplenames import SampleImage
from kohya_recipe.templating import render_template

THUMB_SIZE = 256  # px, the longer side of an embedded thumbnail
THUMB_QUALITY = 85  # JPEG quality of a reduced thumbnail (a 512 px sample: ~10 KB instead of ~400 KB of PNG)


@dataclass
class Embedded:
    """A sample image as the page shows it: ``src`` (a data: URI) unless it could not be read (``error``), and
    ``href``, what a click opens (the embedded full image's anchor, or the file)."""

    image: SampleImage
    src: str | None
    href: str
    full_src: str | None = None  # samples="full": the original PNG, shown enlarged on click
    error: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class GridRow:
    """One row of a run's sample grid: an epoch (or "before training", or a step) and its image per prompt."""

    label: str
    epoch: int | None
    loss: float | None
    rank: str
    marks: list[str]  # "best", "final", "≈best"
    cells: list[Embedded | None]
    note: str | None = None  # why the row has no samples


@dataclass
class SweepGrid:
    """One prompt of a sweep: its text (per run when they differ) and, per epoch, each run's image."""

    index: int
    texts: list[str | None]
    rows: list[tuple[str, list[Embedded | None]]] = field(default_factory=list)


def render_html(
    rep: RunReport | SweepReport,
    *,
    plots: bool = True,
    samples: str = "thumbs",
    html_path: Path | None = None,
    drawn: ReportPlots | None = None,
) -> str:
    """The HTML report of a run or a sweep; ``plots=False`` leaves the plots out (and matplotlib unloaded).

    ``samples``: "thumbs" (default), "full" or "off". ``html_path``: where the page will be written, so that a
    thumbnail's link to its file is relative to it (else the link is an absolute file: URI). ``drawn``: the plots,
    if already drawn (:func:`kohya_recipe.report.plots.report_plots`).
    """
    runs = rep.runs if isinstance(rep, SweepReport) else [rep]
    names = rep.names if isinstance(rep, SweepReport) else [rep.name]
    images = _images(rep, drawn if drawn is not None else report_plots(rep)) if plots else {}
    embed = _Embedder(samples, html_path)
    grids = [_run_grid(run, embed) for run in runs]
    sweep_grids = _sweep_grids(runs, embed) if isinstance(rep, SweepReport) else []
    return render_template(
        "report.html.j2",
        report=rep,
        runs=runs,
        names=names,
        images=images,
        grids=grids,
        sweep_grids=sweep_grids,
        samples_mode=samples,
        version=__version__,
        finite=math.isfinite,
    )


def _images(rep: RunReport | SweepReport, drawn: ReportPlots) -> dict[str, dict[str, str]]:
    """Base64 PNGs by run position (runs of a sweep may share an output name) and ``__sweep__``."""
    images = {str(i): _b64(pngs) for i, pngs in enumerate(drawn.runs)}
    if isinstance(rep, SweepReport):
        images["__sweep__"] = _b64(drawn.sweep)
    return images


def _b64(pngs: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode("ascii") for k, v in pngs.items()}


# --- sample images ------------------------------------------------------------------------------------------------


class _Embedder:
    """Reads, reduces and encodes each sample image once (a sweep shows it twice)."""

    def __init__(self, mode: str, html_path: Path | None) -> None:
        self.mode = mode
        self.base = html_path.parent if html_path is not None else None
        self.cache: dict[Path, Embedded] = {}

    def __call__(self, image: SampleImage) -> Embedded:
        found = self.cache.get(image.path)
        if found is None:
            found = self.cache[image.path] = self._embed(image)
        return found

    def _link(self, path: Path) -> str:
        if self.base is not None:
            try:
                return quote(os.path.relpath(path.resolve(), self.base.resolve()).replace(os.sep, "/"))
            except ValueError:  # another drive (Windows)
                pass
        return path.resolve().as_uri()

    def _embed(self, image: SampleImage) -> Embedded:
        out = Embedded(image=image, src=None, href=self._link(image.path))
        if self.mode == "off":
            return out
        try:
            raw = image.path.read_bytes()
            thumb, out.width, out.height = _thumbnail(raw)
        except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, DecompressionBombError, ...)
            out.error = f"cannot read: {exc}"
            return out
        out.src = thumb
        if self.mode == "full":
            out.full_src = "data:image/png;base64," + base64.b64encode(raw).decode("ascii")
        return out


def _thumbnail(raw: bytes) -> tuple[str, int, int]:
    """A data: URI of the image reduced to :data:`THUMB_SIZE` (the original bytes when it is that small already),
    and the size shown."""
    from PIL import Image  # Pillow loads only for --html

    with Image.open(io.BytesIO(raw)) as im:
        im.load()
        if max(im.size) <= THUMB_SIZE and im.format == "PNG":
            return "data:image/png;base64," + base64.b64encode(raw).decode("ascii"), im.width, im.height
        small = im.convert("RGB")
        small.thumbnail((THUMB_SIZE, THUMB_SIZE))
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=THUMB_QUALITY)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), small.width, small.height


def _marks(run: RunReport, epoch: int) -> list[str]:
    """How the grid marks an epoch: "best", "final" (or last saved), "pick" (another pick), "not recommended"."""
    marks = []
    for p in run.picks:
        if p.epoch == epoch:
            for reason in p.reasons:
                marks.append(
                    "best" if reason == "best" else "final" if reason.startswith(("final", "last")) else "pick"
                )
            if not p.recommended:
                marks.append("not recommended")
    return list(dict.fromkeys(marks))


def _run_grid(run: RunReport, embed: _Embedder) -> list[GridRow]:
    """The rows of a run's sample grid (empty when the run has no sample images at all)."""
    sset = run.samples
    if sset is None or not sset.images:
        return []
    columns = sset.prompt_indexes

    def cells(images: list[SampleImage]) -> list[Embedded | None]:
        by_index = {i.prompt_index: i for i in images}
        return [embed(by_index[c]) if c in by_index else None for c in columns]

    rows = []
    if sset.before_training:
        rows.append(GridRow("before training", 0, None, "", [], cells(sset.before_training)))
    missing = {m.epoch: m.reason for m in sset.missing}
    metric = run.ranking.metric
    for r in run.ranking.rows:
        loss = r.validation_loss if metric == "validation" else r.train_loss
        rank = "" if r.rank is None else (f"={r.rank}" if r.tied else str(r.rank))
        rows.append(
            GridRow(
                f"epoch {r.epoch}", r.epoch, loss, rank, _marks(run, r.epoch), cells(r.samples), missing.get(r.epoch)
            )
        )
    for group in (sset.other, sset.steps):
        labels = dict.fromkeys(i.label for i in group)
        for label in labels:
            rows.append(GridRow(label, None, None, "", [], cells([i for i in group if i.label == label])))
    return rows


def _sweep_grids(runs: list[RunReport], embed: _Embedder) -> list[SweepGrid]:
    """Per prompt index: the epochs of every run side by side (runs without samples are left out)."""
    with_samples = [r for r in runs if r.samples is not None and r.samples.images]
    if len(with_samples) < 2:
        return []
    indexes = sorted({i for r in with_samples for i in r.samples.prompt_indexes})  # type: ignore[union-attr]
    grids = []
    for index in indexes:
        grid = SweepGrid(index=index, texts=[r.samples.prompt_text(index) if r.samples else None for r in runs])
        per_run = [
            {i.epoch: i for i in (r.samples.images if r.samples is not None else []) if i.prompt_index == index}
            for r in runs
        ]
        epochs = sorted({e for found in per_run for e in found if e is not None})
        for e in epochs:
            label = "before training" if e == 0 else f"epoch {e}"
            grid.rows.append((label, [embed(found[e]) if e in found else None for found in per_run]))
        grids.append(grid)
    return grids
