"""Caption file checks: the extension the trainer reads, missing, empty, non-text and orphan captions, BOM,
several lines."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from kohya_recipe.dataset.captions import CAPTION_EXTENSIONS, caption_candidates
from kohya_recipe.dataset.detect import Subset
from kohya_recipe.dataset.findings import Finding, Item, Severity, plural, rel
from kohya_recipe.dataset.scan import FolderScan, ImageRecord, split_name
from kohya_recipe.dataset.settings import CheckSettings

# Caption files sd-scripts cannot use, by the status the scan gave them: severity, what is wrong, the fix.
_BAD_FILES: tuple[tuple[str, Severity, str, str], ...] = (
    (
        "empty",
        "error",
        "empty caption files (0 bytes): sd-scripts stops with 'caption file is empty'",
        "write the tags into them, or delete them",
    ),
    (
        "blank",
        "error",
        "caption files with no text: these images train with an empty caption",
        "write the tags into them",
    ),
    (
        "not-text",
        "error",
        "caption files that are not UTF-8 text: sd-scripts stops with UnicodeDecodeError",
        "re-save them as UTF-8 (or delete binary junk)",
    ),
    (
        "unreadable",
        "error",
        "caption files that cannot be read: sd-scripts stops when it reaches them",
        "fix their permissions",
    ),
)


# The start of a base caption for `caption init`, by purpose.
BASE_CAPTIONS = {"likeness": "1girl, <trigger>, ...", "style": "<trigger>, ...", "concept": "<trigger>, ..."}


def captioned(records: list[ImageRecord]) -> list[ImageRecord]:
    """The trained images whose caption sd-scripts reads with text in it (the ones tag checks look at)."""
    return [
        r
        for r in records
        if r.folder.trained and not r.folder.is_reg and r.error is None and r.parsed is not None and r.parsed.text
    ]


def caption_findings(
    records: list[ImageRecord], scans: list[tuple[Subset, FolderScan]], settings: CheckSettings, root: Path
) -> list[Finding]:
    """Every problem with the caption files themselves (not with the tags in them)."""
    by_status: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_status[r.caption_status].append(r)
    out = _other_extension_findings(by_status["missing"], settings)
    out += _missing_findings(by_status["missing"] + by_status["not-a-file"], settings)
    out += _bad_file_findings(by_status)
    out += _orphan_findings(scans, settings, root)
    out += _style_findings(captioned(records))
    return out


def _extension(record: ImageRecord, settings: CheckSettings) -> str:
    return record.folder.caption_extension or settings.caption_extension


def _other_extension_findings(missing: list[ImageRecord], settings: CheckSettings) -> list[Finding]:
    """Captions that exist, but with another extension than the trainer is told to read."""
    other_ext: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in missing:
        ext = _extension(r, settings)
        for alt in CAPTION_EXTENSIONS:
            if alt != ext and os.path.isfile(caption_candidates(r.file, alt)[0]):  # noqa: PTH113 - never raises
                other_ext[alt].append(r)
                r.caption_status = "other-extension"
                break
    out = []
    for alt, recs in other_ext.items():
        ext = _extension(recs[0], settings)
        tokens = recs[0].folder.class_tokens
        instead = f"the folder's class tokens '{tokens}'" if tokens else "an empty caption"
        out.append(
            Finding(
                "error",
                "captions",
                f"{plural(len(recs), 'image')} have a '{alt}' caption but the trainer reads '{ext}' "
                f"(caption_extension): sd-scripts will not see them and trains with {instead} instead "
                "(kohya_ss#1370; sd-scripts' own default is '.caption')",
                f"set dataset.caption_extension = \"{alt}\" in the recipe, or rename the captions to '{ext}'",
                [Item(r.path, r.file.stem + alt) for r in recs],
            )
        )
        for r in recs:
            r.notes.append(f"caption is {alt}")
    return out


def _missing_findings(candidates: list[ImageRecord], settings: CheckSettings) -> list[Finding]:
    missing = [r for r in candidates if r.caption_status in ("missing", "not-a-file")]
    if not missing:
        return []
    tokens = missing[0].folder.class_tokens
    instead = f"with only the folder's class tokens '{tokens}' as caption" if tokens else "with an empty caption"
    ext = _extension(missing[0], settings)
    for r in missing:
        r.notes.append("no caption")
    return [
        Finding(
            "error",
            "captions",
            f"{plural(len(missing), 'image')} without a caption file ({ext}): sd-scripts trains them "
            f"{instead} (it only logs a warning)",
            f'write one per image, e.g. kohya-recipe caption init DIR --base "{BASE_CAPTIONS[settings.purpose]}"',
            [Item(r.path, r.caption_error or f"no {r.file.stem}{ext}") for r in missing],
        )
    ]


def _bad_file_findings(by_status: dict[str, list[ImageRecord]]) -> list[Finding]:
    out = []
    for status, severity, message, fix in _BAD_FILES:
        recs = by_status[status]
        if not recs:
            continue
        items = [Item(r.caption or r.path, r.caption_error or "") for r in recs]
        out.append(Finding(severity, "captions", f"{len(recs)} {message}", fix, items))
        for r in recs:
            r.notes.append(f"caption {status}")
    return out


def _orphan_findings(scans: list[tuple[Subset, FolderScan]], settings: CheckSettings, root: Path) -> list[Finding]:
    items: list[Item] = []
    for subset, scan in scans:
        ext = subset.caption_extension or settings.caption_extension
        used = _captions_read(scan, ext)
        skipped = {split_name(p.name)[0]: p for p, _ in scan.skipped_images}
        for name in scan.files:
            stem, suffix = split_name(name)
            if name.startswith(".") or suffix != ext or name in used:
                continue
            path = rel(subset.image_dir / name, root)
            if stem in skipped:
                items.append(Item(path, f"belongs to {skipped[stem].name}, which sd-scripts skips"))
            else:
                items.append(Item(path, "no image with this name"))
    if not items:
        return []
    return [
        Finding(
            "warning",
            "captions",
            f"{plural(len(items), 'caption')} without an image sd-scripts reads (renamed or deleted image?)",
            "restore the image or delete the caption",
            items,
        )
    ]


def _captions_read(scan: FolderScan, ext: str) -> set[str]:
    """The names of the caption files in a folder that some image of it reads."""
    used = {split_name(p.name)[0] + ext for p in scan.images}
    for image in scan.images:  # sd-scripts' face-crop fallback: a_1_2_3_4.png also reads a.txt
        if image.name.count("_") >= 4:
            candidates = caption_candidates(image, ext)
            if len(candidates) > 1 and candidates[1].parent == image.parent:
                used.add(candidates[1].name)
    return used


def _style_findings(captioned: list[ImageRecord]) -> list[Finding]:
    """A byte-order mark, more than one line: parts of the file sd-scripts reads differently than people expect."""
    out = []
    bom = [Item(r.caption or r.path, "starts with a UTF-8 BOM") for r in captioned if r.parsed and r.parsed.bom]
    if bom:
        out.append(
            Finding(
                "warning",
                "captions",
                "captions starting with a byte-order mark: sd-scripts keeps it, so the first tag becomes "
                "'\\ufeff<tag>', a different token",
                "re-save them as UTF-8 without BOM",
                bom,
            )
        )
    multi = [Item(r.path, f"{r.parsed.line_count} lines") for r in captioned if r.parsed and r.parsed.line_count > 1]
    if multi:
        out.append(
            Finding(
                "warning",
                "captions",
                "captions with more than one line: sd-scripts uses only the first line (unless enable_wildcard)",
                "join the tags into one line",
                multi,
            )
        )
    return out
