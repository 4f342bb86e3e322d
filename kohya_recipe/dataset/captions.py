"""Caption files, read the way sd-scripts reads them.

sd-scripts reads ``<image stem><caption_extension>`` as UTF-8 and uses only the first line, stripped
(``library/train_util.py`` ``DreamBoothDataset.__init__`` ``read_caption``). A :class:`Caption` keeps everything
else of the file too (separator, BOM, line ending, further lines), so that an edit
(:mod:`kohya_recipe.dataset.caption_edits`) writes the file back in its own style. Tags compare in a normalised
form (:func:`normalize_tag`), as CLIP sees them.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    """The caption file sd-scripts would read for ``image`` (it requires ``os.path.isfile``), or ``None``.

    ``os.path.isfile`` as sd-scripts calls it: a name the file system refuses (too long) is no caption, not an error.
    """
    for candidate in caption_candidates(image, extension):
        if os.path.isfile(candidate):  # noqa: PTH113 - Path.is_file raises for a name that is too long
            return candidate
    return None


@functools.lru_cache(maxsize=64)
def _name_max(folder: str) -> int:
    """The longest file name (bytes) ``folder``'s file system takes: 255 on most, fewer on some (eCryptfs: 143)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or the folder is gone
        return 255


def name_too_long(path: Path) -> str | None:
    """Why no file can have ``path``'s name (longer than its folder's file system allows), or ``None``.

    A legal 251-character ``NAME.png`` has a caption ``NAME.caption`` of 259 characters: no such file can exist,
    so sd-scripts trains the image without a caption, and writing one fails.
    """
    size = len(os.fsencode(path.name))
    limit = _name_max(os.fspath(path.parent))
    if size <= limit:
        return None
    return f"the name {path.name[:24]}...{path.suffix} is {size} bytes, more than the file system allows ({limit})"


def normalise_extension(extension: str) -> str:
    ext = extension if extension.startswith(".") else "." + extension
    if ext in (".", "") or "/" in ext or os.sep in ext:
        raise DatasetError(f"not a caption extension: {extension!r}")
    return ext
