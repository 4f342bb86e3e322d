"""Caption files: read them the way sd-scripts does, and edit them safely.

sd-scripts reads ``<image stem><caption_extension>`` as UTF-8 and uses only the first line, stripped
(``train_util.py`` ``read_caption``; reference/sd_scripts.md §5). The article writes one short Danbooru tag
list per image (``1girl, CharacterAI, dark skin, braided hair, earrings, 3D render, UHD, 4K``) and then
adjusts the side and back views by hand (add ``from behind``, remove ``earrings``). The editing verbs here
make that fast and safe:

- every write goes to a temporary file in the same folder, then ``os.replace`` (a crash never leaves half a
  caption), with the file's permissions kept;
- the file's own style is kept: the separator between tags (``", "`` or ``","``), a UTF-8 BOM, the line
  ending, a trailing newline and any further lines are written back exactly as they were;
- tag order is kept; added tags go to the end (or the front);
- a caption that exists is never overwritten unless ``force`` is set; a caption that is not UTF-8 text is
  reported and never touched;
- ``dry_run`` writes nothing and returns a unified diff per file.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import glob
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kohya_recipe.dataset.images import is_trainer_image, list_trainer_images
from kohya_recipe.errors import DatasetError
from kohya_recipe.files import open_regular_file

# The caption extensions people use with sd-scripts: its default is ".caption", the kohya_ss GUI and the
# article write ".txt", some taggers ".cap".
CAPTION_EXTENSIONS: tuple[str, ...] = (".txt", ".caption", ".cap")
DEFAULT_SEPARATOR = ", "

_SEPARATOR = re.compile(r"\s*,\s*")
# Control characters that never appear in a hand-written caption; NUL and friends mean binary junk.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class CaptionError(DatasetError):
    """One caption file cannot be read as text (reported per file; the file is left untouched)."""


# ----------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class Caption:
    """A caption file split into the parts that must survive an edit.

    The file is ``bom + line + eol + rest``, where the first ``line`` is ``lead + sep.join(tags) + trail``:
    ``lead``/``trail`` are whatever stood before the first and after the last tag (spaces, a trailing comma),
    ``eol`` the line ending of the first line (``""`` when the file has no newline), ``rest`` every further
    line, verbatim. ``line`` is the first line exactly as read (``None`` once the tags were changed).
    """

    path: Path | None
    bom: bool
    lead: str
    tags: tuple[str, ...]
    separator: str
    trail: str
    eol: str
    rest: str
    raw: bytes = b""
    line: str | None = None

    @property
    def first_line(self) -> str:
        """The first line: as read, or rebuilt in the file's style after an edit."""
        if self.line is not None:
            return self.line
        return self.lead + self.separator.join(self.tags) + self.trail

    @property
    def text(self) -> str:
        """The caption sd-scripts trains with: the first line, stripped."""
        return self.first_line.strip()

    @property
    def line_count(self) -> int:
        """Number of non-empty lines; sd-scripts reads only the first unless ``enable_wildcard`` is set."""
        return sum(1 for line in (self.first_line + "\n" + self.rest).splitlines() if line.strip())

    def with_tags(self, tags: Sequence[str]) -> Caption:
        """The same file style with other tags (empty tags dropped)."""
        kept = tuple(t for t in tags if t)
        return Caption(self.path, self.bom, self.lead, kept, self.separator, self.trail, self.eol, self.rest)

    def render(self) -> bytes:
        """The bytes of the file, in its own style."""
        text = ("\ufeff" if self.bom else "") + self.first_line + self.eol + self.rest
        return text.encode("utf-8")


def decode_caption_bytes(raw: bytes, path: Path | None = None) -> str:
    """UTF-8 text of a caption, or :class:`CaptionError` saying why sd-scripts would fail on it."""
    where = str(path) if path else None
    if _BINARY.search(raw[:65536].decode("latin-1")):
        raise CaptionError("binary data (control bytes such as NUL), not a text caption", source=where)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # sd-scripts opens captions with encoding="utf-8" and stops with UnicodeDecodeError.
        raise CaptionError(
            f"not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); sd-scripts stops with "
            "UnicodeDecodeError on it - re-save it as UTF-8",
            source=where,
        ) from None


def parse_caption(raw: bytes, path: Path | None = None) -> Caption:
    """Split caption bytes into tags and style; raises :class:`CaptionError` for non-text files."""
    text = decode_caption_bytes(raw, path)
    bom = text.startswith("\ufeff")
    if bom:
        text = text[1:]
    first, eol, rest = _split_first_line(text)
    tags, separator, lead, trail = split_tags_with_style(first)
    return Caption(path, bom, lead, tuple(tags), separator, trail, eol, rest, raw, first)


def read_caption(path: Path) -> Caption:
    """Read and parse one caption file (:class:`CaptionError` when unreadable or not text)."""
    try:
        raw = read_regular_file(path)
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        raise CaptionError(f"cannot read: {reason}", source=str(path)) from None
    except ValueError as exc:
        raise CaptionError(str(exc), source=str(path)) from None
    return parse_caption(raw, Path(path))


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file; ``ValueError`` for a FIFO or device (a plain read would hang on a FIFO)."""
    fd = open_regular_file(path)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _split_first_line(text: str) -> tuple[str, str, str]:
    nl, cr = text.find("\n"), text.find("\r")
    if cr != -1 and (nl == -1 or cr < nl):
        if nl == cr + 1:
            return text[:cr], "\r\n", text[cr + 2 :]
        return text[:cr], "\r", text[cr + 1 :]
    if nl != -1:
        return text[:nl], "\n", text[nl + 1 :]
    return text, "", ""


def split_tags(line: str) -> list[str]:
    """The comma-separated tags of one caption line, stripped, empty ones dropped (sd-scripts' own split)."""
    return [t.strip() for t in line.split(",") if t.strip()]


def split_tags_with_style(line: str) -> tuple[list[str], str, str, str]:
    """(tags, separator, lead, trail) of a caption line; empty tags (``a,,b``) are dropped."""
    stripped = line.strip()
    lead = line[: len(line) - len(line.lstrip())]
    trail_ws = line[len(line.rstrip()) :]
    body = stripped
    trail = trail_ws
    # A trailing comma is part of the style ("a, b," stays "a, b, c," after adding c).
    m = re.search(r"\s*,\s*$", body)
    if m and body[: m.start()].strip():
        trail = body[m.start() :] + trail_ws
        body = body[: m.start()]
    separators = _SEPARATOR.findall(body)
    separator = Counter(separators).most_common(1)[0][0] if separators else DEFAULT_SEPARATOR
    tags = [t.strip() for t in body.split(",")]
    return [t for t in tags if t], separator, lead, trail


@functools.lru_cache(maxsize=1 << 16)
def normalize_tag(tag: str) -> str:
    """Compare form of a tag: case-folded, ``_`` as space, single spaces, Danbooru escapes removed.

    CLIP's tokenizer lower-cases text, and Danbooru tags are written with underscores or spaces, so
    ``From_Behind`` and ``from behind`` are the same tag to the trainer. (Cached: a dataset repeats the same
    few dozen tags thousands of times.)
    """
    t = tag.replace("\\(", "(").replace("\\)", ")").replace("_", " ")
    return " ".join(t.casefold().split())


class TagPattern:
    """Tags or globs (``* eyes``) compiled once, matched against normalised tags.

    >>> TagPattern(["earrings", "* eyes"]).match(normalize_tag("Brown_Eyes"))
    True
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        normalised = [normalize_tag(p) for p in self.patterns]
        self.exact = frozenset(p for p in normalised if not any(c in p for c in "*?["))
        globs = [fnmatch.translate(p) for p in normalised if p not in self.exact]
        self.regex = re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None

    def match(self, normalised_tag: str) -> bool:
        """True when the (already normalised) tag is one of the tags or matches one of the globs."""
        if normalised_tag in self.exact:
            return True
        return self.regex is not None and self.regex.match(normalised_tag) is not None

    def any(self, normalised_tags: Sequence[str]) -> bool:
        """True when any of the (already normalised) tags matches."""
        if not self.exact.isdisjoint(normalised_tags):
            return True
        regex = self.regex
        return regex is not None and any(regex.match(t) is not None for t in normalised_tags)


@functools.lru_cache(maxsize=1024)
def _pattern(pattern: str) -> TagPattern:
    return TagPattern([pattern])


def tag_matches(tag: str, pattern: str) -> bool:
    """True when ``tag`` is ``pattern`` (normalised), or matches it as a glob (``* eyes``)."""
    return _pattern(pattern).match(normalize_tag(tag))


def caption_candidates(image: Path, extension: str) -> list[Path]:
    """The caption paths sd-scripts tries for ``image``, in its order.

    The second candidate drops the last four ``_`` pieces of a name with at least five (the naming of
    sd-scripts' face-crop tool), so ``a_1_2_3_4.png`` also takes its caption from ``a.txt``.
    """
    ext = extension if extension.startswith(".") else "." + extension
    base = str(image.with_suffix(""))
    out = [Path(base + ext)]
    pieces = base.split("_")
    if len(pieces) >= 5:
        out.append(Path("_".join(pieces[:-4]) + ext))
    return out


def find_caption(image: Path, extension: str) -> Path | None:
    """The caption file sd-scripts would read for ``image`` (it requires ``os.path.isfile``), or ``None``."""
    for candidate in caption_candidates(image, extension):
        if candidate.is_file():
            return candidate
    return None


def dataset_folders(path: str | Path, extension: str | None = None) -> tuple[list[Path], str]:
    """The image folders of a dataset and the caption extension to use.

    ``path`` may be a plain image folder, a train_data_dir, one ``N_name`` folder or a rendered project (the
    same detection as ``kohya-recipe check``); regularization folders are left out. The extension is
    ``extension`` when given, else the project's recipe's ``dataset.caption_extension``, else ``.txt`` (the
    article's; sd-scripts' own default is ``.caption``).
    """
    from kohya_recipe.dataset.check import detect_layout

    layout = detect_layout(path)
    folders = [s.path for s in layout.subsets if not s.is_reg and s.path.is_dir()]
    if extension:
        return folders, _normalise_extension(extension)
    subset_exts = {s.caption_extension for s in layout.subsets if not s.is_reg and s.caption_extension}
    if len(subset_exts) == 1:
        return folders, subset_exts.pop()
    if layout.recipe_file is not None:
        from kohya_recipe.recipe.loading import load_recipe

        return folders, load_recipe(layout.recipe_file).dataset.caption_extension
    return folders, ".txt"


# ----------------------------------------------------------------------------------------------------
# Writing


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    A symlinked caption is edited where it points (the link stays a link); the file keeps its permissions; on
    any failure the original is untouched. Returns the path actually written.
    """
    from kohya_recipe.files import atomic_write_bytes

    return atomic_write_bytes(Path(path), data)


@dataclass
class CaptionChange:
    """What an edit did (or, in a dry run, would do) to one caption file.

    ``action`` is one of ``created``, ``updated``, ``unchanged``, ``skipped`` (left alone on purpose, e.g. an
    existing caption without ``force``) or ``failed`` (not text, unreadable, no caption to edit).
    """

    path: Path
    action: str
    reason: str = ""
    old: bytes | None = None
    new: bytes | None = None

    @property
    def changed(self) -> bool:
        return self.action in ("created", "updated")

    def diff(self) -> str:
        """Unified diff of the change, as ``diff -u`` writes it (``/dev/null`` for a new file)."""
        if not self.changed or self.new is None:
            return ""
        old = (self.old or b"").decode("utf-8", "replace").splitlines(keepends=True)
        new = self.new.decode("utf-8", "replace").splitlines(keepends=True)
        name = self.path.as_posix()
        a, b = (name, name) if self.path.is_absolute() else (f"a/{name}", f"b/{name}")
        out = []
        for line in difflib.unified_diff(old, new, fromfile="/dev/null" if self.old is None else a, tofile=b):
            # diff(1) marks a last line that has no newline; without it an added "\n" would be invisible.
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        return "".join(out)

    def to_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "action": self.action,
            "reason": self.reason,
            "old": None if self.old is None else self.old.decode("utf-8", "replace"),
            "new": None if self.new is None else self.new.decode("utf-8", "replace"),
        }


@dataclass
class EditReport:
    """The outcome of one caption command: one :class:`CaptionChange` per file considered."""

    changes: list[CaptionChange] = field(default_factory=list)
    dry_run: bool = False

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def failed(self) -> list[CaptionChange]:
        return [c for c in self.changes if c.action == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        parts = [
            f"{self.count(a)} {verb}{a}" if a in ("created", "updated") else f"{self.count(a)} {a}"
            for a in ("created", "updated", "unchanged", "skipped", "failed")
            if self.count(a)
        ]
        return ", ".join(parts) if parts else "no caption files matched"

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "counts": {a: self.count(a) for a in ("created", "updated", "unchanged", "skipped", "failed")},
            "changes": [c.to_dict() for c in self.changes],
        }


def _apply(change: CaptionChange, dry_run: bool) -> CaptionChange:
    if change.changed and not dry_run:
        assert change.new is not None
        try:
            write_atomic(change.path, change.new)
        except OSError as exc:
            change.action, change.reason = "failed", f"cannot write: {exc.strerror or exc}"
    return change


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


def _normalise_extension(extension: str) -> str:
    ext = extension if extension.startswith(".") else "." + extension
    if ext in (".", "") or "/" in ext or os.sep in ext:
        raise DatasetError(f"not a caption extension: {extension!r}")
    return ext


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
    report = EditReport(dry_run=dry_run)
    for folder in folders:
        images = list_trainer_images(folder)
        existing = [c for img in images if (c := find_caption(img, ext)) is not None]
        # New files: the base exactly as the user wrote it, with the line ending the folder's captions use.
        _sep, eol = _folder_style(existing)
        separator = given_sep
        for image in images:
            path = find_caption(image, ext) or caption_candidates(image, ext)[0]
            new_caption = Caption(path, False, "", tuple(tags), separator, "", eol, "")
            if not path.exists():
                report.changes.append(_apply(CaptionChange(path, "created", new=new_caption.render()), dry_run))
                continue
            try:
                current = read_caption(path)
            except CaptionError as exc:
                report.changes.append(CaptionChange(path, "failed", f"{exc.message}; left untouched"))
                continue
            if not current.text:
                change = CaptionChange(path, "updated", "was empty", current.raw, new_caption.render())
            elif not force:
                change = CaptionChange(path, "skipped", "caption exists (pass --force to replace it)")
            else:
                new = current.with_tags(tags).render()
                if new == current.raw:
                    change = CaptionChange(path, "unchanged", "already the base caption")
                else:
                    change = CaptionChange(path, "updated", "replaced (--force)", current.raw, new)
            report.changes.append(_apply(change, dry_run))
    return report


def resolve_caption_targets(
    patterns: Sequence[str], *, root: Path = Path(), extension: str = ".txt"
) -> tuple[list[Path], list[CaptionChange]]:
    """Caption files named by glob ``patterns`` (relative to ``root``, ``**`` allowed).

    A pattern may match images (their caption is used) or caption files. Returns the captions, in order and
    without repeats, and a ``failed`` change for every matched image that has no caption. A pattern that
    matches nothing is an error.
    """
    ext = _normalise_extension(extension)
    found: dict[Path, None] = {}
    problems: list[CaptionChange] = []
    for pattern in patterns:
        # glob.glob, not Path.glob: it takes absolute patterns as well as ones relative to root_dir.
        matches = sorted(glob.glob(pattern, root_dir=root, recursive=True))  # noqa: PTH207
        if not matches:
            raise DatasetError(f"--match {pattern!r}: no file matches (relative to {root})")
        for name in matches:
            path = root / name
            if path.is_dir():
                continue
            if path.suffix in CAPTION_EXTENSIONS or path.suffix == ext:
                found.setdefault(path)
            elif is_trainer_image(path):
                caption = find_caption(path, ext)
                if caption is None:
                    problems.append(
                        CaptionChange(
                            caption_candidates(path, ext)[0],
                            "failed",
                            f"{name} has no {ext} caption (write one first: kohya-recipe caption init)",
                        )
                    )
                else:
                    found.setdefault(caption)
    return list(found), problems


def _edit(
    paths: Sequence[Path],
    edit: Callable[[Caption], list[str] | None],
    dry_run: bool,
    problems: Sequence[CaptionChange] = (),
) -> EditReport:
    report = EditReport(list(problems), dry_run=dry_run)
    for path in paths:
        try:
            current = read_caption(path)
        except CaptionError as exc:
            report.changes.append(CaptionChange(path, "failed", f"{exc.message}; left untouched"))
            continue
        new_tags = edit(current)
        if new_tags is None:
            report.changes.append(CaptionChange(path, "skipped", "does not contain the --where tags"))
            continue
        new = current.with_tags(new_tags).render()
        # Same tags: nothing to write, even if the file's separators are inconsistent (its style is kept).
        if tuple(new_tags) == current.tags or new == current.raw:
            report.changes.append(CaptionChange(path, "unchanged"))
        else:
            report.changes.append(_apply(CaptionChange(path, "updated", "", current.raw, new), dry_run))
    return report


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
    paths, problems = resolve_caption_targets(match, root=Path(root), extension=_default_extension(root, extension))

    def edit(caption: Caption) -> list[str] | None:
        if not _where_ok(caption, where):
            return None
        have = {normalize_tag(t) for t in caption.tags}
        missing = []
        for t in wanted:
            if normalize_tag(t) not in have:
                missing.append(t)
                have.add(normalize_tag(t))
        return [*missing, *caption.tags] if front else [*caption.tags, *missing]

    return _edit(paths, edit, dry_run, problems)


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
    paths, problems = resolve_caption_targets(match, root=Path(root), extension=_default_extension(root, extension))

    def edit(caption: Caption) -> list[str] | None:
        if not _where_ok(caption, where):
            return None
        return [t for t in caption.tags if not any(tag_matches(t, p) for p in patterns)]

    return _edit(paths, edit, dry_run, problems)


def _default_extension(root: str | Path, extension: str | None) -> str:
    """``extension``, else the caption extension of the project ``root`` lies in (``root`` or up to two levels
    above it: ``PROJECT/img/N_name``), else ``.txt``."""
    if extension:
        return _normalise_extension(extension)
    here = Path(root).resolve()
    for folder in (here, here.parent, here.parent.parent):
        if (folder / "resolved-recipe.toml").is_file():
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
        if not file.exists():
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
    report = EditReport(dry_run=dry_run)
    if not path.exists():
        _sep, eol = _folder_style(sorted(path.parent.glob("*" + path.suffix)))
        separator = given_sep
        new = Caption(path, False, "", tuple(tags), separator, "", eol, "").render()
        report.changes.append(_apply(CaptionChange(path, "created", new=new), dry_run))
        return report
    current = read_caption(path)  # CaptionError (not text) stops here: nothing is written
    new = current.with_tags(tags).render()
    if tuple(tags) == current.tags or new == current.raw:
        report.changes.append(CaptionChange(path, "unchanged"))
    elif current.text and not force:
        raise DatasetError(f"exists with other tags ({current.text!r}); pass --force to replace it", source=str(path))
    else:
        report.changes.append(_apply(CaptionChange(path, "updated", "", current.raw, new), dry_run))
    return report


# ----------------------------------------------------------------------------------------------------
# Tag statistics


@dataclass
class TagStats:
    """Tag frequency over a set of captions (the table ``caption show`` prints).

    Tags are counted once per caption under their normalised form; ``spelling`` keeps the most common way
    each is written.
    """

    captions: int = 0
    images: int = 0
    missing: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    extension: str = ".txt"
    counts: Counter[str] = field(default_factory=Counter)
    spelling: dict[str, str] = field(default_factory=dict)
    tag_totals: list[int] = field(default_factory=list)

    def rows(self) -> list[tuple[str, int, float]]:
        """(tag, captions containing it, share of captions), most frequent first, then by name."""
        n = max(self.captions, 1)
        ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(self.spelling[k], c, c / n) for k, c in ordered]

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "extension": self.extension,
            "captions": self.captions,
            "missing": [str(p) for p in self.missing],
            "unreadable": [{"path": str(p), "reason": r} for p, r in self.unreadable],
            "mean_tags": (sum(self.tag_totals) / len(self.tag_totals)) if self.tag_totals else 0.0,
            "tags": [{"tag": t, "count": c, "share": round(s, 4)} for t, c, s in self.rows()],
        }


def tag_stats(dataset: str | Path, *, extension: str | None = None) -> TagStats:
    """Count tags over the captions of the trainer images in ``dataset`` (first line only, as sd-scripts)."""
    folders, ext = dataset_folders(dataset, extension)
    stats = TagStats(extension=ext)
    spellings: dict[str, Counter[str]] = {}
    for folder in folders:
        for image in list_trainer_images(folder):
            stats.images += 1
            path = find_caption(image, ext)
            if path is None:
                stats.missing.append(image)
                continue
            try:
                cap = read_caption(path)
            except CaptionError as exc:
                stats.unreadable.append((path, exc.message))
                continue
            stats.captions += 1
            stats.tag_totals.append(len(cap.tags))
            seen = set()
            for tag in cap.tags:
                key = normalize_tag(tag)
                spellings.setdefault(key, Counter())[tag] += 1
                if key not in seen:
                    seen.add(key)
                    stats.counts[key] += 1
    stats.spelling = {k: c.most_common(1)[0][0] for k, c in spellings.items()}
    return stats
