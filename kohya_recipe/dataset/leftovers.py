"""Temp files an interrupted caption edit leaves behind: recognised exactly, and removed by the next edit.

Every caption write goes through :func:`kohya_recipe.files.atomic_write_bytes`: a temp file
``.<caption name>.<8 random characters>.tmp`` in the caption's folder, then a rename over the caption. Ctrl-C,
SIGTERM and SIGHUP stop an edit between two files (:mod:`kohya_recipe.dataset.caption_edits`), but ``kill -9`` or a
power cut in the middle of a write leaves the temp file. Such a file is *provably ours* when its name has exactly
that form, it is a regular file (not a symlink, not a folder), and the caption it was written for exists next to it
with a caption extension. Nothing else is ever touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from kohya_recipe.dataset.captions import CAPTION_EXTENSIONS
from kohya_recipe.files import atomic_temp_target


def leftover_names(entries: Mapping[str, os.DirEntry[str]], extensions: Iterable[str] = ()) -> list[str]:
    """The names among a folder's ``entries`` (name -> entry) that are leftover temp files of caption writes.

    ``extensions``: caption extensions besides ``.txt``, ``.caption`` and ``.cap`` (e.g. the command's ``--ext``).
    """
    caption_exts = {*CAPTION_EXTENSIONS, *extensions}
    captions = [n for n in entries if not n.startswith(".") and os.path.splitext(n)[1] in caption_exts]  # noqa: PTH122
    out = []
    for name, entry in entries.items():
        parsed = atomic_temp_target(name) if name.startswith(".") and name.endswith(".tmp") else None
        if parsed is None or not _is_file(entry, follow_symlinks=False):
            continue
        target, maybe_cut = parsed
        # A temp name at the length limit holds only the start of a long caption name.
        targets = [c for c in captions if c.startswith(target)] if maybe_cut else [c for c in (target,) if c in entries]
        if any(t in captions and _is_file(entries[t]) for t in targets):
            out.append(name)
    return sorted(out)


def _is_file(entry: os.DirEntry[str], *, follow_symlinks: bool = True) -> bool:
    try:
        return entry.is_file(follow_symlinks=follow_symlinks)
    except OSError:
        return False


def find_leftovers(folder: Path, extensions: Iterable[str] = ()) -> list[Path]:
    """The leftover temp files of caption writes in ``folder`` (see :func:`leftover_names`)."""
    try:
        with os.scandir(folder) as it:
            entries = {e.name: e for e in it}
    except OSError:
        return []
    return [folder / name for name in leftover_names(entries, extensions)]


def remove_leftovers(folders: Iterable[Path], extensions: Iterable[str] = ()) -> list[Path]:
    """Remove the leftover temp files of caption writes in ``folders``; return the ones removed."""
    exts = list(extensions)
    removed = []
    for folder in dict.fromkeys(folders):
        for path in find_leftovers(folder, exts):
            try:
                path.unlink()
            except FileNotFoundError:  # a concurrent edit finished its write meanwhile
                continue
            except OSError:
                continue  # not ours to force; check reports it
            removed.append(path)
    return removed
