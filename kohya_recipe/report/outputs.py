"""What the report writes besides itself: the HTML file, the PNG plots, and copies of the picked checkpoints."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kohya_recipe.files import atomic_write_text, sha256_file
from kohya_recipe.report.model import ReportError, RunReport, SweepReport
from kohya_recipe.report.plots import write_plots

_COPY_LABELS = {"copied": "Copied", "replaced": "Replaced", "same": "Already there"}


@dataclass
class Written:
    """One output written: ``kind`` "plots" (``count`` PNGs into the folder ``path``), "html", or a checkpoint
    copy with its ``status`` ("copied", "replaced", or "same": an identical file was already there)."""

    kind: str
    path: Path
    status: str = "written"
    count: int = 1

    def __str__(self) -> str:
        if self.kind == "plots":
            return f"Wrote {self.count} plot{'s' if self.count != 1 else ''} to {self.path}"
        if self.kind == "html":
            return f"Wrote {self.path}"
        return f"{_COPY_LABELS[self.status]}: {self.path}"


def write_outputs(
    rep: RunReport | SweepReport,
    *,
    plots_dir: Path | None = None,
    html_file: Path | None = None,
    copy_to: Path | None = None,
    force: bool = False,
) -> list[Written]:
    """Write the outputs asked for, in this order: plots, the HTML report, copies of the picks."""
    written = []
    if plots_dir is not None:
        written.append(Written("plots", plots_dir, count=len(write_plots(rep, plots_dir))))
    if html_file is not None:
        written.append(write_html(rep, html_file))
    if copy_to is not None:
        written += copy_picks(rep, copy_to, force=force)
    return written


def write_html(rep: RunReport | SweepReport, path: Path) -> Written:
    """Write the self-contained HTML report to ``path`` (atomically)."""
    from kohya_recipe.report.html import render_html  # the templates load only for --html, not on the --json path

    html = render_html(rep)
    try:
        atomic_write_text(path, html)
    except OSError as exc:
        raise ReportError(f"cannot write: {exc.strerror or exc}", source=str(path)) from None
    return Written("html", path)


def copy_picks(rep: RunReport | SweepReport, dest: str | Path, *, force: bool = False) -> list[Written]:
    """Copy each pick's checkpoint into ``dest`` (``Written.status``: "copied", "same" or "replaced").

    A different file already at the target is not overwritten without ``force``. Each copy goes to a temp file in
    ``dest`` and is then renamed, so an interrupted copy never leaves half a checkpoint under the real name.
    """
    dest = Path(dest)
    plan = _copy_plan(_copy_sources(rep, dest), force)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the folder: {exc.strerror or exc}", source=str(dest)) from None
    for src, target, status in plan:
        if status != "same":
            _copy(src, target)
    return [Written("copy", target, status) for _src, target, status in plan]


def _copy_sources(rep: RunReport | SweepReport, dest: Path) -> dict[Path, Path]:
    """target -> source for every pick with a file; two different files may not land on one name."""
    runs = rep.runs if isinstance(rep, SweepReport) else [rep]
    sources: dict[Path, Path] = {}
    for src in (p.checkpoint for r in runs for p in r.picks):
        if src is None:
            continue
        target = dest / src.name
        if sources.setdefault(target, src) != src:
            raise ReportError(
                f"two picks have the same file name ({sources[target]} and {src}); copy those runs one at a time",
                source=str(target),
            )
    if not sources:
        raise ReportError("no picked epoch has a checkpoint file to copy")
    return sources


def _copy_plan(sources: dict[Path, Path], force: bool) -> list[tuple[Path, Path, str]]:
    plan = []
    for target, src in sources.items():
        if not target.exists():
            plan.append((src, target, "copied"))
        elif target.stat().st_size == src.stat().st_size and sha256_file(target) == sha256_file(src):
            plan.append((src, target, "same"))
        elif force:
            plan.append((src, target, "replaced"))
        else:
            raise ReportError("a different file is already there; not overwritten (use --force)", source=str(target))
    return plan


def _copy(src: Path, target: Path) -> None:
    # Streamed, not through files.atomic_write_bytes: a checkpoint can be hundreds of MB.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ReportError(f"cannot copy {src}: {exc.strerror or exc}", source=str(target)) from None
