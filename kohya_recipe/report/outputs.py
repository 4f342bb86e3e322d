"""What the report writes besides itself: the HTML file, the CSV epoch table, the PNG plots, and copies of the
picked checkpoints.

Never clobber: every output is made in memory first, then every target is checked, and only then is anything
written. A file already at a target is not replaced without ``force`` (``--force``), so ``--html my.html`` cannot
silently replace a user's file; each write goes to a temp file in the same folder and is renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kohya_recipe.files import atomic_write_bytes, sha256_file
from kohya_recipe.report.model import ReportError, RunReport, SweepReport, require_recommendation

_COPY_LABELS = {"copied": "Copied", "replaced": "Replaced", "same": "Already there"}
SAMPLE_MODES = ("thumbs", "full", "off")  # --samples: thumbnails embedded, full-size images embedded, none


@dataclass
class Written:
    """One output written: ``kind`` "plots" (``count`` PNGs into the folder ``path``), "html", "csv", or a
    checkpoint copy with its ``status`` ("copied", "replaced", or "same": an identical file was already there)."""

    kind: str
    path: Path
    status: str = "written"
    count: int = 1

    def __str__(self) -> str:
        if self.kind == "plots":
            return f"Wrote {self.count} plot{'s' if self.count != 1 else ''} to {self.path}"
        if self.kind in ("html", "csv"):
            return f"Wrote {self.path}"
        return f"{_COPY_LABELS[self.status]}: {self.path}"


def write_outputs(
    rep: RunReport | SweepReport,
    *,
    plots_dir: Path | None = None,
    html_file: Path | None = None,
    csv_file: Path | None = None,
    copy_to: Path | None = None,
    force: bool = False,
    samples: str = "thumbs",
) -> Iterator[Written]:
    """Write the outputs asked for (plots, the HTML report, the CSV table, copies of the picks), yielding each as it
    is done. Nothing is written when a target exists and ``force`` is not given, or a copy cannot be made."""
    files: dict[Path, bytes] = {}
    plots: dict[Path, bytes] = {}
    if plots_dir is not None or html_file is not None:
        from kohya_recipe.report.plots import plot_files, report_plots  # matplotlib loads only for --plots/--html

        drawn = report_plots(rep)  # once, for both the PNG files and the HTML report
        if plots_dir is not None:
            plots = plot_files(rep, plots_dir, drawn)
        if html_file is not None:
            from kohya_recipe.report.html import render_html  # jinja2 and Pillow load only for --html

            files[html_file] = render_html(rep, samples=samples, html_path=html_file, drawn=drawn).encode("utf-8")
    if csv_file is not None:
        from kohya_recipe.report.export import csv_text

        files[csv_file] = csv_text(rep).encode("utf-8")
    refuse_existing([*plots, *files], force)
    copies = _copy_plan(_copy_sources(rep, copy_to), force) if copy_to is not None else []
    if plots_dir is not None:
        yield Written("plots", plots_dir, count=len(write_files(plots, plots_dir)))
    for path in files:
        write_files({path: files[path]})
        yield Written("html" if path == html_file else "csv", path)
    if copy_to is not None:
        yield from _copy_all(copies, copy_to)


def write_plots(rep: RunReport | SweepReport, out_dir: str | Path, *, force: bool = False) -> list[Path]:
    """Write the report's PNG plots into ``out_dir``; a file already there is not replaced without ``force``."""
    from kohya_recipe.report.plots import plot_files

    files = plot_files(rep, out_dir)
    refuse_existing(list(files), force)
    return write_files(files, Path(out_dir))


def refuse_existing(targets: list[Path], force: bool) -> None:
    """Raise :class:`ReportError` if a target is a folder or a special file, or (without ``force``) exists."""
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    for t in existing:
        if t.is_dir():
            raise ReportError("is a folder; give a file name", source=str(t))
        if not t.is_file():
            raise ReportError("not a regular file; not replaced", source=str(t))
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ReportError(f"already exists{more}; not overwritten (use --force to replace it)", source=str(existing[0]))


def write_files(files: dict[Path, bytes], folder: Path | None = None) -> list[Path]:
    """Write each file atomically, creating ``folder`` (and the files' folders) first."""
    where = folder if folder is not None else next(iter(files), Path())
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        for path, data in files.items():
            where = path
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
    except OSError as exc:
        raise ReportError(f"cannot write: {exc.strerror or exc}", source=str(where)) from None
    return list(files)


def copy_picks(rep: RunReport | SweepReport, dest: str | Path, *, force: bool = False) -> list[Written]:
    """Copy each recommended pick's checkpoint into ``dest`` (``Written.status``: "copied", "same" or "replaced").

    A different file already at the target is not overwritten without ``force``. Each copy goes to a temp file in
    ``dest`` and is then renamed, so an interrupted copy never leaves half a checkpoint under the real name.
    """
    dest = Path(dest)
    return list(_copy_all(_copy_plan(_copy_sources(rep, dest), force), dest))


def _copy_all(plan: list[tuple[Path, Path, str]], dest: Path) -> Iterator[Written]:
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the folder: {exc.strerror or exc}", source=str(dest)) from None
    for src, target, status in plan:
        if status != "same":
            _copy(src, target)
        yield Written("copy", target, status)


def _copy_sources(rep: RunReport | SweepReport, dest: Path) -> dict[Path, Path]:
    """target -> source for every recommended pick; two different files may not land on one name."""
    runs = rep.runs if isinstance(rep, SweepReport) else [rep]
    sources: dict[Path, Path] = {}
    for src in (p.checkpoint for r in runs for p in r.picks if p.recommended):
        if src is None:
            continue
        target = dest / src.name
        if sources.setdefault(target, src) != src:
            raise ReportError(
                f"two picks have the same file name ({sources[target]} and {src}); copy those runs one at a time",
                source=str(target),
            )
    if not sources:
        require_recommendation(rep)  # a diverged run says so (exit 6), not "nothing to copy"
        raise ReportError("no recommended pick has a checkpoint file to copy (see the picks above)")
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
