"""The folder scan: which files sd-scripts would read from each subset folder, and what each image and its
caption are (header, bucket, caption status) — one :class:`ImageRecord` per image.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_recipe.dataset.captions import CAPTION_EXTENSIONS, Caption, CaptionError, normalize_tag, parse_caption
from kohya_recipe.dataset.detect import Subset
from kohya_recipe.dataset.findings import rel
from kohya_recipe.dataset.images import TRAINER_IMAGE_EXTENSIONS, DecodeResult, ImageHeader, looks_like_image

if TYPE_CHECKING:
    from kohya_recipe.sdscripts.buckets import BucketAssignment

# Files sd-scripts or its tools leave next to images: latent/text-encoder caches (*.npz) and the image-info cache
# of `cache_info` (metadata_cache.json). They are not data problems.
_TRAINER_SIDE_FILES = re.compile(r"(\.npz|metadata_cache\.json)$")


@dataclass
class ImageRecord:
    """Everything the doctor learnt about one image sd-scripts would train on."""

    path: Path
    rel: str
    subset: Subset
    header: ImageHeader | None = None
    error: str | None = None
    decoded: DecodeResult | None = None
    bucket: BucketAssignment | None = None
    caption_path: Path | None = None
    caption: Caption | None = None
    caption_status: str = "missing"  # ok, missing, empty, blank, not-text, unreadable, other-extension
    caption_error: str | None = None
    ntags: tuple[str, ...] = ()  # the caption's tags, normalised (captions.normalize_tag)
    shots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.header is None else (self.header.width, self.header.height)

    @property
    def tags(self) -> tuple[str, ...]:
        return () if self.caption is None else self.caption.tags

    def to_dict(self, root: Path) -> dict[str, Any]:
        h = self.header
        b = self.bucket
        return {
            "path": self.rel,
            "subset": self.subset.name,
            "format": None if h is None else h.format,
            "width": None if h is None else h.width,
            "height": None if h is None else h.height,
            "file_size": None if h is None else h.file_size,
            "orientation": None if h is None else h.orientation,
            "has_alpha": None if h is None else h.has_alpha,
            "suspicious": [] if h is None else list(h.suspicious),
            "error": self.error,
            "decoded": None if self.decoded is None else self.decoded.ok,
            "decode_error": None if self.decoded is None else self.decoded.error,
            "bucket": None if b is None or b.bucket is None else list(b.bucket),
            "resized": None if b is None or b.resized is None else list(b.resized),
            "upscaled": None if b is None else b.upscaled,
            "caption": None if self.caption_path is None else rel(self.caption_path, root),
            "caption_status": self.caption_status,
            "caption_text": None if self.caption is None else self.caption.text,
            "tags": list(self.tags),
            "shots": self.shots,
            "notes": self.notes,
        }


@dataclass
class FolderScan:
    images: list[Path] = field(default_factory=list)
    files: dict[str, os.DirEntry[str]] = field(default_factory=dict)
    skipped_images: list[tuple[Path, str]] = field(default_factory=list)
    hidden_images: list[Path] = field(default_factory=list)
    nested: list[tuple[Path, int]] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)
    not_files: list[tuple[Path, str]] = field(default_factory=list)
    unreadable: str | None = None


def _count_images_below(folder: Path, limit: int = 10000) -> int:
    count = 0
    for _dirpath, _dirs, files in os.walk(folder):
        count += sum(1 for f in files if looks_like_image(Path(f)))
        if count >= limit:
            break
    return count


def scan_folder(folder: Path) -> FolderScan:
    scan = FolderScan()
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        scan.unreadable = exc.strerror or str(exc)
        return scan
    for entry in entries:
        name = entry.name
        scan.files[name] = entry
        suffix = split_name(name)[1]
        if suffix.lower() in CAPTION_EXTENSIONS and not name.startswith("."):
            continue  # the common case first: captions are looked up by name later
        path = folder / name
        if name.startswith("."):
            # sd-scripts globs `*<ext>`, and `*` never matches a leading dot.
            if looks_like_image(path) and not name.endswith(".tmp"):
                scan.hidden_images.append(path)
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if suffix in TRAINER_IMAGE_EXTENSIONS:
            # glob lists broken symlinks and folders named like images too; sd-scripts then fails to open them.
            if is_dir:
                scan.not_files.append((path, "a folder named like an image"))
            else:
                scan.images.append(path)
        elif is_dir:
            n = _count_images_below(path)
            if n:
                scan.nested.append((path, n))
        elif looks_like_image(path):
            low = suffix.lower()
            if low in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
                reason = f"mixed-case extension '{suffix}': sd-scripts matches only '{low}' or '{low.upper()}'"
            elif low in (".avif", ".jxl"):
                plugin = "pillow_avif" if low == ".avif" else "jxlpy or pillow_jxl"
                reason = f"'{suffix}' is read only when {plugin} is installed in sd-scripts' environment"
            else:
                reason = f"sd-scripts does not read '{suffix}' files"
            scan.skipped_images.append((path, reason))
        elif _TRAINER_SIDE_FILES.search(name):
            continue
        else:
            scan.others.append(path)
    return scan


def split_name(name: str) -> tuple[str, str]:
    """(stem, suffix) of a file name, as ``Path.stem``/``Path.suffix`` split it, without building a Path: this
    runs for every file of a 10,000-image folder."""
    stem, suffix = os.path.splitext(name)  # noqa: PTH122
    return stem, suffix


def _is_file(scan: FolderScan, name: str) -> bool:
    entry = scan.files.get(name)
    if entry is None:
        return False
    try:
        return entry.is_file()  # follows symlinks, as sd-scripts' os.path.isfile does
    except OSError:
        return False


def read_caption_for(record: ImageRecord, scan: FolderScan, extension: str) -> None:
    # sd-scripts' candidates (captions.caption_candidates), with plain strings: this runs once per image.
    spath = os.fspath(record.path)
    base = spath[: len(spath) - len(split_name(record.path.name)[1])]
    first = split_name(record.path.name)[0] + extension
    if _is_file(scan, first):
        record.caption_path = record.subset.path / first
    else:
        pieces = base.split("_")
        second = "_".join(pieces[:-4]) + extension if len(pieces) >= 5 else None
        if second is not None and Path(second).is_file():
            record.caption_path = Path(second)
        else:
            # A broken symlink, a folder or a FIFO with the caption's name: os.path.isfile is false, sd-scripts treats
            # the image as uncaptioned.
            if first in scan.files:
                record.caption_status = "not-a-file"
                record.caption_error = "is a broken symlink, a folder or a FIFO, not a file: sd-scripts sees no caption"
            return
    try:
        with open(record.caption_path, "rb") as f:  # noqa: PTH123 - the hot path; Path.open adds overhead
            raw = f.read()
    except OSError as exc:
        record.caption_status = "unreadable"
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        record.caption_error = f"cannot read ({reason}): sd-scripts stops with an exception on it"
        return
    if not raw:
        record.caption_status = "empty"
        record.caption_error = "0 bytes: sd-scripts stops with 'caption file is empty'"
        return
    try:
        record.caption = parse_caption(raw, record.caption_path)
    except CaptionError as exc:
        record.caption_status = "not-text"
        record.caption_error = exc.message
        return
    record.ntags = tuple(normalize_tag(t) for t in record.caption.tags)
    record.caption_status = "ok" if record.caption.text else "blank"
    if not record.caption.text:
        record.caption_error = "has no text: the image trains with an empty caption"
