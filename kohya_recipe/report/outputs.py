"""What the report writes besides itself: copies of the picked checkpoints."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from kohya_recipe.report.model import ReportError, RunReport, SweepReport


def copy_picks(rep: RunReport | SweepReport, dest: str | Path, *, force: bool = False) -> list[tuple[Path, str]]:
    """Copy each pick's checkpoint into ``dest``; returns ``(target, "copied"|"same"|"replaced")``.

    A different file already at the target is not overwritten without ``force``. Each copy goes to a temp file in
    ``dest`` and is then renamed, so an interrupted copy never leaves half a checkpoint under the real name.
    """
    dest = Path(dest)
    runs = rep.runs if isinstance(rep, SweepReport) else [rep]
    todo = [
        (p.checkpoint.path, dest / p.checkpoint.path.name) for r in runs for p in r.picks if p.checkpoint is not None
    ]
    if not todo:
        raise ReportError("no picked epoch has a checkpoint file to copy")
    sources: dict[Path, Path] = {}
    for src, target in todo:
        if sources.setdefault(target, src) != src:
            raise ReportError(
                f"two picks have the same file name ({sources[target]} and {src}); copy those runs one at a time",
                source=str(target),
            )
    plan: list[tuple[Path, Path, str]] = []
    for src, target in dict.fromkeys(todo):
        if target.exists():
            from kohya_recipe.files import sha256_file

            if target.stat().st_size == src.stat().st_size and sha256_file(target) == sha256_file(src):
                plan.append((src, target, "same"))
                continue
            if not force:
                raise ReportError(
                    "a different file is already there; not overwritten (use --force)", source=str(target)
                )
            plan.append((src, target, "replaced"))
        else:
            plan.append((src, target, "copied"))
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the folder: {exc.strerror or exc}", source=str(dest)) from None
    done = []
    for src, target, status in plan:
        if status != "same":
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=dest)
            os.close(fd)
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, target)
            except OSError as exc:
                Path(tmp).unlink(missing_ok=True)
                raise ReportError(f"cannot copy {src}: {exc.strerror or exc}", source=str(target)) from None
        done.append((target, status))
    return done
