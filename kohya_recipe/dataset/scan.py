"""The folder scan: which files sd-scripts would read from each subset folder, and what each image and its
caption are (header, bucket, caption status) — one :class:`ImageRecord` per image.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kohya_recipe.dataset.captions import (
    CAPTION_EXTENSIONS,
    Caption,
    CaptionError,
    name_too_long,
    normalize_tag,
    parse_caption,
    read_regular_file,
)
from kohya_recipe.dataset.detect import Layout, Subset
from kohya_recipe.dataset.findings import Finding, Item, rel
from kohya_recipe.dataset.images import (
    DecodeResult,
    ImageHeader,
    ImageReadError,
    decode_images,
    looks_like_image,
    read_header,
)
from kohya_recipe.dataset.settings import CheckSettings
from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.sdscripts.buckets import BucketAssignment, BucketSettings, Reso
from kohya_recipe.sdscripts.folders import TRAINER_IMAGE_EXTENSIONS

# Files sd-scripts or its tools leave next to images: latent/text-encoder caches (*.npz) and the image-info cache
# of `cache_info` (metadata_cache.json). They are not data problems.
_TRAINER_SIDE_FILES = re.compile(r"(\.npz|metadata_cache\.json)$")


@dataclass
class ImageRecord:
    """Everything the doctor learnt about one image sd-scripts would train on.

    ``file`` is the image, ``path`` the same relative to the checked folder; ``folder`` the subset it lies in;
    ``header`` what its header says (``error`` when it cannot be read); ``decoding`` the result of a real
    decode (``--decode``, or a suspicious header); ``assignment`` the bucket sd-scripts puts it in;
    ``caption_path``/``caption`` its caption file (absolute / relative), ``parsed`` that file read, with
    ``caption_status`` ok, missing, not-a-file, empty, blank, not-text, unreadable or other-extension; ``ntags``
    the caption's tags normalised (:func:`~kohya_recipe.dataset.captions.normalize_tag`); ``shots`` and
    ``notes`` what the checks found. The properties are the ``--json`` view of the header, decode and bucket.
    """

    file: Path = field(metadata={"json": False})
    path: str
    folder: Subset = field(metadata={"json": False})
    header: ImageHeader | None = field(default=None, metadata={"json": False})
    error: str | None = None
    decoding: DecodeResult | None = field(default=None, metadata={"json": False})
    assignment: BucketAssignment | None = field(default=None, metadata={"json": False})
    caption_path: Path | None = field(default=None, metadata={"json": False})
    caption: str | None = None
    parsed: Caption | None = field(default=None, metadata={"json": False})
    caption_status: str = "missing"
    caption_error: str | None = field(default=None, metadata={"json": False})
    ntags: tuple[str, ...] = field(default=(), metadata={"json": False})
    shots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    __json_properties__ = (
        "subset",
        "format",
        "width",
        "height",
        "file_size",
        "orientation",
        "has_alpha",
        "suspicious",
        "decoded",
        "decode_error",
        "bucket",
        "resized",
        "upscaled",
        "caption_text",
        "tags",
    )

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.header is None else (self.header.width, self.header.height)

    @property
    def tags(self) -> tuple[str, ...]:
        return () if self.parsed is None else self.parsed.tags

    @property
    def subset(self) -> str:
        return self.folder.name

    @property
    def format(self) -> str | None:
        return None if self.header is None else self.header.format

    @property
    def width(self) -> int | None:
        return None if self.header is None else self.header.width

    @property
    def height(self) -> int | None:
        return None if self.header is None else self.header.height

    @property
    def file_size(self) -> int | None:
        return None if self.header is None else self.header.file_size

    @property
    def orientation(self) -> int | None:
        return None if self.header is None else self.header.orientation

    @property
    def has_alpha(self) -> bool | None:
        return None if self.header is None else self.header.has_alpha

    @property
    def suspicious(self) -> tuple[str, ...]:
        return () if self.header is None else tuple(self.header.suspicious)

    @property
    def decoded(self) -> bool | None:
        """Whether a real decode succeeded (``None``: not decoded)."""
        return None if self.decoding is None else self.decoding.ok

    @property
    def decode_error(self) -> str | None:
        return None if self.decoding is None else self.decoding.error

    @property
    def bucket(self) -> Reso | None:
        return None if self.assignment is None else self.assignment.bucket

    @property
    def resized(self) -> Reso | None:
        return None if self.assignment is None else self.assignment.resized

    @property
    def upscaled(self) -> bool | None:
        return None if self.assignment is None else self.assignment.upscaled

    @property
    def caption_text(self) -> str | None:
        return None if self.parsed is None else self.parsed.text


@dataclass
class FolderScan:
    """One image folder as sd-scripts lists it: the images it reads, every entry by name, and what it passes over
    (``skipped_images`` with the reason, ``hidden_images``, ``nested`` folders with images, ``others``,
    ``not_files`` named like images); ``unreadable`` when the folder cannot be listed."""

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
    """List ``folder`` the way sd-scripts' ``glob_images`` would, noting everything it would pass over."""
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
            if low in TRAINER_IMAGE_EXTENSIONS:
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
    """Find and read the caption sd-scripts would use for ``record``; set its caption fields and status."""
    # sd-scripts' candidates (captions.caption_candidates), with plain strings: this runs once per image.
    spath = os.fspath(record.file)
    base = spath[: len(spath) - len(split_name(record.file.name)[1])]
    first = split_name(record.file.name)[0] + extension
    if _is_file(scan, first):
        record.caption_path = record.folder.image_dir / first
    else:
        pieces = base.split("_")
        second = "_".join(pieces[:-4]) + extension if len(pieces) >= 5 else None
        if second is not None and os.path.isfile(second):  # noqa: PTH113 - as sd-scripts; never raises
            record.caption_path = Path(second)
        else:
            # A broken symlink, a folder or a FIFO with the caption's name: os.path.isfile is false, sd-scripts treats
            # the image as uncaptioned.
            if first in scan.files:
                record.caption_status = "not-a-file"
                record.caption_error = "is a broken symlink, a folder or a FIFO, not a file: sd-scripts sees no caption"
            elif (too_long := name_too_long(record.folder.image_dir / first)) is not None:
                record.caption_error = f"no caption can exist: {too_long}; shorten the image's name"
            return
    try:
        raw = read_regular_file(record.caption_path)  # a FIFO put there since the listing is refused, never read
    except OSError as exc:
        record.caption_status = "unreadable"
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        record.caption_error = f"cannot read ({reason}): sd-scripts stops with an exception on it"
        return
    except ValueError as exc:
        record.caption_status = "not-a-file"
        record.caption_error = f"{exc}: sd-scripts sees no caption"
        return
    if not raw:
        record.caption_status = "empty"
        record.caption_error = "0 bytes: sd-scripts stops with 'caption file is empty'"
        return
    try:
        record.parsed = parse_caption(raw, record.caption_path)
    except CaptionError as exc:
        record.caption_status = "not-text"
        record.caption_error = exc.message
        return
    record.ntags = tuple(normalize_tag(t) for t in record.parsed.tags)
    record.caption_status = "ok" if record.parsed.text else "blank"
    if not record.parsed.text:
        record.caption_error = "has no text: the image trains with an empty caption"


# ----------------------------------------------------------------------------------------------------------
# The whole dataset

Progress = Callable[[int, int], None]  # (images done, images in total)
Bucketer = Callable[[int, int], BucketAssignment]


@dataclass
class DatasetScan:
    """What the scan found: each subset folder's listing, one record per image, and the problems met on the way
    (bucket settings sd-scripts refuses, folders that cannot be listed)."""

    folders: list[tuple[Subset, FolderScan]]
    records: list[ImageRecord]
    findings: list[Finding]

    @property
    def trained(self) -> list[ImageRecord]:
        """The records of the images sd-scripts trains on (not in a skipped or regularization folder)."""
        return [r for r in self.records if r.folder.trained and not r.folder.is_reg]


def scan_dataset(
    layout: Layout, settings: CheckSettings, *, decode: bool = False, progress: Progress | None = None
) -> DatasetScan:
    """List every subset folder of ``layout`` and read each image's header, bucket and caption.

    ``decode`` decodes every image (else only those whose header looks wrong); ``progress(done, total)`` is
    called per image (per image decoded, with ``decode``).
    """
    findings: list[Finding] = []
    bucketer = _bucketer(settings.buckets, findings)
    folders = _list_folders(layout, findings)
    total = sum(len(scan.images) for _s, scan in folders)
    records: list[ImageRecord] = []
    for subset, scan in folders:
        ext = subset.caption_extension or settings.caption_extension
        prefix = "" if subset.path == "." else subset.path + "/"
        folder = os.fspath(subset.image_dir) + os.sep
        for image in scan.images:
            record = _image_record(ImageRecord(image, prefix + image.name, subset), scan, ext, bucketer)
            if record.caption_path is not None:
                # Next to its image (nearly always): the image's folder prefix, without a relative_to per image.
                path = os.fspath(record.caption_path)
                near = path.startswith(folder) and os.sep not in path[len(folder) :]
                record.caption = prefix + path[len(folder) :] if near else rel(record.caption_path, layout.root)
            records.append(record)
            if progress is not None and not decode:
                progress(len(records), total)
    todo = [r for r in records if r.header is not None and (decode or r.header.suspicious)]
    decoded = decode_images([r.file for r in todo], want_hash=decode, progress=progress if decode else None)
    for record, result in zip(todo, decoded, strict=True):
        record.decoding = result
    return DatasetScan(folders, records, findings)


def _list_folders(layout: Layout, findings: list[Finding]) -> list[tuple[Subset, FolderScan]]:
    folders: list[tuple[Subset, FolderScan]] = []
    for subset in layout.subsets:
        if not subset.image_dir.is_dir():
            continue
        scan = scan_folder(subset.image_dir)
        folders.append((subset, scan))
        subset.images = len(scan.images)
        if scan.unreadable:
            findings.append(
                Finding(
                    "error",
                    "files",
                    f"cannot list the folder ({scan.unreadable}): sd-scripts cannot read it either",
                    "fix the folder's permissions",
                    [Item(subset.path, scan.unreadable)],
                )
            )
    return folders


def _image_record(record: ImageRecord, scan: FolderScan, extension: str, bucketer: Bucketer | None) -> ImageRecord:
    try:
        record.header = read_header(record.file)
    except ImageReadError as exc:
        record.error = exc.message
    if record.header is not None and bucketer is not None:
        record.assignment = bucketer(record.header.width, record.header.height)
    read_caption_for(record, scan, extension)
    return record


def _bucketer(buckets: BucketSettings, findings: list[Finding]) -> Bucketer | None:
    """A cached ``select_bucket`` for the settings; ``None`` (and a finding saying why) when sd-scripts refuses
    them."""
    try:
        manager = buckets.manager()
    except KohyaRecipeError as exc:
        findings.append(
            Finding(
                "error",
                "resolution",
                f"the bucket settings stop sd-scripts: {exc}",
                "fix the recipe's training section",
            )
        )
        return None
    cache: dict[tuple[int, int], BucketAssignment] = {}

    def select(width: int, height: int) -> BucketAssignment:
        key = (width, height)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = manager.select_bucket(width, height)
        return hit

    return select
