"""Editing caption files safely: the verbs behind ``kohya-recipe caption init/add/remove/set``.

The article writes one short Danbooru tag list per image (``1girl, CharacterAI, dark skin, braided hair,
earrings, 3D render, UHD, 4K``) and then adjusts the side and back views by hand (add ``from behind``, remove
``earrings``). The editing verbs here make that fast and safe:

- every write goes to a temporary file in the same folder, then ``os.replace`` (a crash never leaves half a
  caption), with the file's permissions kept;
- the file's own style is kept: the separator between tags (``", "`` or ``","``), a UTF-8 BOM, the line
  ending, a trailing newline and any further lines are written back exactly as they were;
- tag order is kept; added tags go to the end (or the front);
- a caption that exists is never overwritten unless ``force`` is set; a caption that is not UTF-8 text is
  reported and never touched;
- ``dry_run`` writes nothing and returns a unified diff per file;
- Ctrl-C, SIGTERM and SIGHUP stop an edit *between* two files (the report says so, exit 130), so no temp file is
  left behind; temp files left by ``kill -9`` are removed by the next edit of that folder
  (:mod:`kohya_recipe.dataset.leftovers`);
- ``--match`` globs are confined to their folder: a match outside it is refused before anything is written;
- the outcome says whether anything changed: exit 0 (done), 1 (nothing changed), 5 (some files changed, some
  failed), 130 (interrupted).
"""

from __future__ import annotations

import difflib
import glob
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kohya_recipe.dataset.captions import (
    CAPTION_EXTENSIONS,
    DEFAULT_SEPARATOR,
    Caption,
    CaptionError,
    caption_candidates,
    find_caption,
    name_too_long,
    normalise_extension,
    normalize_tag,
    read_caption,
    split_tags_with_style,
    tag_matches,
)
from kohya_recipe.dataset.detect import dataset_folders
from kohya_recipe.dataset.findings import plural
from kohya_recipe.dataset.images import list_trainer_images
from kohya_recipe.dataset.leftovers import remove_leftovers
from kohya_recipe.errors import DatasetError, ExitCode
from kohya_recipe.files import atomic_write_bytes
from kohya_recipe.layout import is_project
from kohya_recipe.sdscripts.folders import is_trainer_image
from kohya_recipe.text import fit_lines

ACTIONS = ("created", "updated", "unchanged", "skipped", "failed")


@dataclass
class CaptionChange:
    """What an edit did (or, in a dry run, would do) to one caption file.

    ``action`` is one of ``created``, ``updated``, ``unchanged``, ``skipped`` (left alone on purpose, e.g. an
    existing caption without ``force``) or ``failed`` (not text, unreadable, no caption to edit). ``before`` and
    ``after`` are the file's bytes (``None``: no file); ``old``/``new`` the same as text.
    """

    path: Path
    action: str
    reason: str = ""
    before: bytes | None = field(default=None, metadata={"json": False})
    after: bytes | None = field(default=None, metadata={"json": False})

    __json_properties__ = ("old", "new")

    @property
    def changed(self) -> bool:
        return self.action in ("created", "updated")

    @property
    def old(self) -> str | None:
        return None if self.before is None else self.before.decode("utf-8", "replace")

    @property
    def new(self) -> str | None:
        return None if self.after is None else self.after.decode("utf-8", "replace")

    def diff(self) -> str:
        """Unified diff of the change, as ``diff -u`` writes it (``/dev/null`` for a new file)."""
        if not self.changed or self.new is None:
            return ""
        old = (self.old or "").splitlines(keepends=True)
        new = self.new.splitlines(keepends=True)
        name = self.path.as_posix()
        a, b = (name, name) if self.path.is_absolute() else (f"a/{name}", f"b/{name}")
        out = []
        for line in difflib.unified_diff(old, new, fromfile="/dev/null" if self.before is None else a, tofile=b):
            # diff(1) marks a last line that has no newline; without it an added "\n" would be invisible.
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        return "".join(out)


@dataclass
class EditReport:
    """The outcome of one caption command: one :class:`CaptionChange` per file considered.

    ``removed``: temp files an earlier, killed edit had left, removed before this one; ``interrupted``: the signal
    that stopped the edit between two files (``not_reached`` files were not looked at).
    """

    changes: list[CaptionChange] = field(default_factory=list)
    dry_run: bool = False
    removed: list[Path] = field(default_factory=list)
    interrupted: str | None = None
    not_reached: int = 0

    __json_properties__ = ("ok", "counts", "outcome")

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def counts(self) -> dict[str, int]:
        """How many files each action concerned."""
        return {a: self.count(a) for a in ACTIONS}

    @property
    def failed(self) -> list[CaptionChange]:
        return [c for c in self.changes if c.action == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and self.interrupted is None

    @property
    def outcome(self) -> str:
        """``done``; ``failed`` (some files failed, none was changed); ``partial`` (some files were changed, some
        failed); ``interrupted`` (stopped by a signal between two files)."""
        if self.interrupted is not None:
            return "interrupted"
        if not self.failed:
            return "done"
        changed = not self.dry_run and any(c.changed for c in self.changes)
        return "partial" if changed else "failed"

    @property
    def exit_code(self) -> int:
        """0 done, 1 nothing changed (:attr:`ExitCode.ERROR`), 5 some changed (:attr:`ExitCode.PARTIAL`), 130
        interrupted."""
        return int(
            {
                "done": ExitCode.OK,
                "failed": ExitCode.ERROR,
                "partial": ExitCode.PARTIAL,
                "interrupted": ExitCode.INTERRUPTED,
            }[self.outcome]
        )

    def summary(self) -> str:
        """``2 updated, 1 skipped`` (``would be updated`` in a dry run), and how it ended when not plainly."""
        verb = "would be " if self.dry_run else ""
        parts = [
            f"{self.count(a)} {verb}{a}" if a in ("created", "updated") else f"{self.count(a)} {a}"
            for a in ACTIONS
            if self.count(a)
        ]
        text = ", ".join(parts) if parts else "no caption files matched"
        if self.outcome == "interrupted":
            text += f"; interrupted by {self.interrupted}: {plural(self.not_reached, 'file')} not looked at"
        elif self.outcome == "partial":
            text += ": some files were changed, others failed (exit 5)"
        elif self.outcome == "failed":
            text += ": nothing was changed"
        return text


def format_changes(report: EditReport) -> str:
    """One line per file that did not stay unchanged (``updated   PATH: reason``, wrapped to the terminal); in a dry
    run, the unified diff of each change instead (never wrapped: it stays a valid patch)."""
    out = [_line(f"{'removed':<9} {path}: temp file left by an interrupted edit") for path in report.removed]
    for change in report.changes:
        if report.dry_run and change.changed:
            out.append(change.diff())
        elif change.action != "unchanged":
            verb = f"would be {change.action}" if report.dry_run and change.changed else change.action
            out.append(_line(f"{verb:<9} {change.path}" + (f": {change.reason}" if change.reason else "")))
    return "".join(out)


def _line(text: str) -> str:
    return "".join(line + "\n" for line in fit_lines([text]))


def _apply(change: CaptionChange, dry_run: bool) -> CaptionChange:
    if change.changed and (too_long := name_too_long(change.path)) is not None:
        change.action, change.reason = "failed", f"cannot write: {too_long}; shorten the image's name"
    elif change.changed and not dry_run:
        assert change.after is not None
        try:
            atomic_write_bytes(change.path, change.after)
        except OSError as exc:
            change.action, change.reason = "failed", f"cannot write: {exc.strerror or exc}"
    return change


_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class _Stop:
    """The signal that asked an edit to stop (``None`` while none did)."""

    signal: str | None = None


@contextmanager
def _stop_between_files() -> Iterator[_Stop]:
    """Ctrl-C, SIGTERM and SIGHUP only *ask* the edit to stop; the edit loop stops before its next file.

    A signal that ended the process (SIGTERM's default) or raised in the middle of a write could leave a temp file
    or skip its clean-up; here the file being written is always finished. The handlers are the caller's again
    afterwards. Outside the main thread (a library user's worker) signals cannot be caught and nothing changes.
    """
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def ask(signum: int, _frame: object) -> None:
        stop.signal = signal.Signals(signum).name

    previous = {}
    for name in _STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None:
            previous[signum] = signal.signal(signum, ask)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stopped(report: EditReport, stop: _Stop, remaining: int) -> bool:
    """True (and the report says so) when a signal asked the edit to stop."""
    if stop.signal is None:
        return False
    report.interrupted, report.not_reached = stop.signal, remaining
    return True


def _folder_style(paths: Iterable[Path]) -> tuple[str, str]:
    """(separator, line ending) most used by the readable captions in ``paths``; the defaults when none."""
    seps: Counter[str] = Counter()
    eols: Counter[str] = Counter()
    for p in paths:
        try:
            cap = read_caption(p)
        except CaptionError:
            continue
        if len(cap.tags) > 1:
            seps[cap.separator] += 1
        eols[cap.eol] += 1
    sep = seps.most_common(1)[0][0] if seps else DEFAULT_SEPARATOR
    eol = eols.most_common(1)[0][0] if eols else "\n"
    return sep, eol


def init_captions(
    dataset: str | Path,
    base: str,
    *,
    extension: str | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> EditReport:
    """Write ``base`` as the caption of every trainer image in ``dataset`` that has none.

    ``dataset`` is any folder :func:`dataset_folders` understands; ``extension`` defaults as described there.

    An existing caption is skipped (``force`` replaces it); an empty one counts as none (sd-scripts stops on
    a 0-byte caption anyway). A caption that is not UTF-8 text is never touched. New files copy the separator
    the user wrote and the line ending the folder's other captions use.
    """
    folders, ext = dataset_folders(dataset, extension)
    tags, given_sep, _lead, _trail = split_tags_with_style(base.strip())
    if not tags:
        raise DatasetError("--base: the base caption has no tags")
    report = EditReport(dry_run=dry_run, removed=[] if dry_run else remove_leftovers(folders, [ext]))
    work = [(folder, list_trainer_images(folder)) for folder in folders]
    remaining = sum(len(images) for _folder, images in work)
    with _stop_between_files() as stop:
        for _folder, images in work:
            existing = [c for img in images if (c := find_caption(img, ext)) is not None]
            # New files: the base exactly as the user wrote it, with the line ending the folder's captions use.
            _sep, eol = _folder_style(existing)
            for image in images:
                if _stopped(report, stop, remaining):
                    return report
                path = find_caption(image, ext) or caption_candidates(image, ext)[0]
                base_caption = Caption(path, False, "", tuple(tags), given_sep, "", eol, "")
                report.changes.append(_apply(_init_change(path, base_caption, force), dry_run))
                remaining -= 1
    return report


def _init_change(path: Path, base: Caption, force: bool) -> CaptionChange:
    """What ``init`` does to one caption path (not yet written)."""
    if not os.path.lexists(path):  # never raises (Path.exists does for a name too long)
        return CaptionChange(path, "created", after=base.render())
    try:
        current = read_caption(path)
    except CaptionError as exc:
        return CaptionChange(path, "failed", f"{exc.message}; left untouched")
    if not current.text:
        return CaptionChange(path, "updated", "was empty", current.raw, base.render())
    if not force:
        return CaptionChange(path, "skipped", "caption exists (pass --force to replace it)")
    new = current.with_tags(base.tags).render()
    if new == current.raw:
        return CaptionChange(path, "unchanged", "already the base caption")
    return CaptionChange(path, "updated", "replaced (--force)", current.raw, new)


def resolve_caption_targets(
    patterns: Sequence[str], *, root: Path = Path(), extension: str = ".txt"
) -> tuple[list[Path], list[CaptionChange]]:
    """Caption files named by glob ``patterns`` (relative to ``root``, ``**`` allowed), all inside ``root``.

    A pattern may match images (their caption is used) or caption files. Returns the captions, in order and
    without repeats, and a ``failed`` change for every matched image that has no caption. A pattern that
    matches nothing, or matches a file outside ``root`` (``../x/*.txt``, an absolute path elsewhere, a symlinked
    folder leading out), is an error: nothing is edited.
    """
    ext = normalise_extension(extension)
    found: dict[Path, None] = {}
    problems: list[CaptionChange] = []
    inside = _confinement(root)
    for pattern in patterns:
        # glob.glob, not Path.glob: it takes absolute patterns as well as ones relative to root_dir.
        matches = sorted(glob.glob(pattern, root_dir=root, recursive=True))  # noqa: PTH207
        if not matches:
            raise DatasetError(f"--match {pattern!r}: no file matches (relative to {root})")
        for name in matches:
            path = root / name
            if not inside(path):
                raise DatasetError(
                    f"--match {pattern!r}: {name} is outside --dir {root} (matches are confined to --dir; point --dir "
                    "at the other folder instead); nothing was changed"
                )
            if path.is_dir():
                continue
            if path.suffix in CAPTION_EXTENSIONS or path.suffix == ext:
                found.setdefault(path)
            elif is_trainer_image(path):
                caption = find_caption(path, ext)
                if caption is None:
                    problems.append(CaptionChange(caption_candidates(path, ext)[0], "failed", _no_caption(path, ext)))
                else:
                    found.setdefault(caption)
    return list(found), problems


def _confinement(root: Path) -> Callable[[Path], bool]:
    """A test that a matched path lies inside ``root``: by its name (no ``..`` out, no absolute path elsewhere) and
    by the folder it is really in (no symlinked folder leading out). The file itself may be a symlink: a symlinked
    caption is edited where it points, on purpose."""
    lexical = os.path.abspath(root)  # noqa: PTH100
    physical = os.path.realpath(root)

    def within(path: str, top: str) -> bool:
        return path == top or path.startswith(top.rstrip(os.sep) + os.sep)

    def inside(path: Path) -> bool:
        name = os.path.normpath(os.path.join(lexical, path))  # noqa: PTH118
        return within(name, lexical) and within(os.path.realpath(os.path.dirname(name)), physical)  # noqa: PTH120

    return inside


def _no_caption(image: Path, ext: str) -> str:
    """Why a matched image has nothing to edit."""
    too_long = name_too_long(caption_candidates(image, ext)[0])
    if too_long is not None:
        return f"{image.name} can have no {ext} caption: {too_long}; shorten the image's name"
    return f"{image.name} has no {ext} caption (write one first: kohya-recipe caption init)"


def _edit(
    edit: Callable[[Caption], list[str]],
    *,
    match: Sequence[str],
    root: str | Path,
    extension: str | None,
    where: Sequence[str],
    dry_run: bool,
) -> EditReport:
    """Apply ``edit`` (the new tags of a caption) to the captions ``match`` names that hold the ``where`` tags."""
    ext = _default_extension(root, extension)
    paths, problems = resolve_caption_targets(match, root=Path(root), extension=ext)
    report = EditReport(list(problems), dry_run=dry_run)
    if not dry_run:
        report.removed = remove_leftovers((p.parent for p in paths), [ext])
    with _stop_between_files() as stop:
        for i, path in enumerate(paths):
            if _stopped(report, stop, len(paths) - i):
                break
            report.changes.append(_edit_one(path, edit, where, dry_run))
    return report


def _edit_one(path: Path, edit: Callable[[Caption], list[str]], where: Sequence[str], dry_run: bool) -> CaptionChange:
    try:
        current = read_caption(path)
    except CaptionError as exc:
        return CaptionChange(path, "failed", f"{exc.message}; left untouched")
    if not _where_ok(current, where):
        return CaptionChange(path, "skipped", "does not contain the --where tags")
    new_tags = edit(current)
    new = current.with_tags(new_tags).render()
    # Same tags: nothing to write, even if the file's separators are inconsistent (its style is kept).
    if tuple(new_tags) == current.tags or new == current.raw:
        return CaptionChange(path, "unchanged")
    return _apply(CaptionChange(path, "updated", "", current.raw, new), dry_run)


def _where_ok(caption: Caption, where: Sequence[str]) -> bool:
    return all(any(tag_matches(t, w) for t in caption.tags) for w in where)


def add_tags(
    tags: Sequence[str],
    *,
    match: Sequence[str],
    root: str | Path = ".",
    extension: str | None = None,
    front: bool = False,
    where: Sequence[str] = (),
    dry_run: bool = False,
) -> EditReport:
    """Add ``tags`` to the captions ``match`` names (globs relative to ``root``), where missing.

    Tag order and the file's style are kept; new tags go to the end (or the front). ``where``: only captions
    that already contain all these tags (globs allowed) are edited. Matching is on the normalised tag, so
    ``From_Behind`` counts as present when adding ``from behind``.
    """
    wanted = [t.strip() for t in tags if t.strip()]
    if not wanted or any("," in t for t in wanted):
        raise DatasetError("tags to add must be non-empty and contain no comma (pass several arguments)")

    def edit(caption: Caption) -> list[str]:
        have = {normalize_tag(t) for t in caption.tags}
        missing = []
        for t in wanted:
            if normalize_tag(t) not in have:
                missing.append(t)
                have.add(normalize_tag(t))
        return [*missing, *caption.tags] if front else [*caption.tags, *missing]

    return _edit(edit, match=match, root=root, extension=extension, where=where, dry_run=dry_run)


def remove_tags(
    tags: Sequence[str],
    *,
    match: Sequence[str],
    root: str | Path = ".",
    extension: str | None = None,
    where: Sequence[str] = (),
    dry_run: bool = False,
) -> EditReport:
    """Remove every tag matching one of ``tags`` (normalised; ``*``/``?`` globs allowed) from the captions
    ``match`` names (globs relative to ``root``)."""
    patterns = [t.strip() for t in tags if t.strip()]
    if not patterns:
        raise DatasetError("give at least one tag to remove")

    def edit(caption: Caption) -> list[str]:
        return [t for t in caption.tags if not any(tag_matches(t, p) for p in patterns)]

    return _edit(edit, match=match, root=root, extension=extension, where=where, dry_run=dry_run)


def _default_extension(root: str | Path, extension: str | None) -> str:
    """``extension``, else the caption extension of the project ``root`` lies in (``root`` or up to two levels
    above it: ``PROJECT/img/N_name``), else ``.txt``."""
    if extension:
        return normalise_extension(extension)
    here = Path(root).resolve()
    for folder in (here, here.parent, here.parent.parent):
        if is_project(folder):
            try:
                return dataset_folders(folder)[1]
            except DatasetError:
                break
    return ".txt"


def set_caption(
    file: str | Path, text: str, *, extension: str | None = None, force: bool = False, dry_run: bool = False
) -> EditReport:
    """Set the caption of ``file`` (an image or its caption file) to the tags in ``text``.

    A caption that exists with other tags is replaced only with ``force``; its style (separator, BOM, line
    ending, further lines) is kept.
    """
    file = Path(file)
    ext = _default_extension(file.parent, extension)
    if is_trainer_image(file):
        if not os.path.isfile(file):  # noqa: PTH113 - never raises
            raise DatasetError("image not found", source=str(file))
        path = find_caption(file, ext) or caption_candidates(file, ext)[0]
    elif file.suffix in CAPTION_EXTENSIONS or file.suffix == ext:
        path = file
    else:
        raise DatasetError(
            f"not an image sd-scripts reads or a caption file ({', '.join(CAPTION_EXTENSIONS)})",
            source=str(file),
        )
    tags, given_sep, _lead, _trail = split_tags_with_style(text.strip())
    if not tags:
        raise DatasetError("the caption has no tags; an empty caption stops sd-scripts", source=str(path))
    report = EditReport(dry_run=dry_run, removed=[] if dry_run else remove_leftovers([path.parent], [ext]))
    if not os.path.lexists(path):  # never raises (Path.exists does for a name too long)
        _sep, eol = _folder_style(sorted(path.parent.glob("*" + path.suffix)))
        new = Caption(path, False, "", tuple(tags), given_sep, "", eol, "").render()
        change = CaptionChange(path, "created", after=new)
    else:
        current = read_caption(path)  # CaptionError (not text) stops here: nothing is written
        new = current.with_tags(tags).render()
        if tuple(tags) == current.tags or new == current.raw:
            change = CaptionChange(path, "unchanged")
        elif current.text and not force:
            raise DatasetError(
                f"exists with other tags ({current.text!r}); pass --force to replace it", source=str(path)
            )
        else:
            change = CaptionChange(path, "updated", "", current.raw, new)
    with _stop_between_files() as stop:  # one file: a signal during its write waits for the write to finish
        report.changes.append(_apply(change, dry_run))
    _stopped(report, stop, 0)
    return report
