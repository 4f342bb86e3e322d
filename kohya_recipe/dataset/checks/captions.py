"""Caption file checks: the extension the trainer reads, missing, empty, non-text and orphan captions, BOM,
several lines."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from kohya_recipe.dataset.captions import CAPTION_EXTENSIONS, caption_candidates
from kohya_recipe.dataset.checks.tags import format_findings, tag_table
from kohya_recipe.dataset.checks.trigger import trigger_findings
from kohya_recipe.dataset.detect import Subset
from kohya_recipe.dataset.findings import Finding, plural, rel
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import FolderScan, ImageRecord, split_name
from kohya_recipe.dataset.settings import CheckSettings


def caption_findings(
    records: list[ImageRecord],
    scans: list[tuple[Subset, FolderScan]],
    settings: CheckSettings,
    rules: Rules,
    root: Path,
) -> tuple[list[Finding], list[tuple[str, int]]]:
    out: list[Finding] = []
    trained = [r for r in records if r.subset.trained and not r.subset.is_reg and r.error is None]
    by_status: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_status[r.caption_status].append(r)

    # Captions that exist, but with another extension than the trainer is told to read.
    other_ext: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in by_status["missing"]:
        ext = r.subset.caption_extension or settings.caption_extension
        for alt in CAPTION_EXTENSIONS:
            if alt != ext and caption_candidates(r.path, alt)[0].is_file():
                other_ext[alt].append(r)
                r.caption_status = "other-extension"
                break
    for alt, recs in other_ext.items():
        ext = recs[0].subset.caption_extension or settings.caption_extension
        tokens = recs[0].subset.class_tokens
        instead = f"the folder's class tokens '{tokens}'" if tokens else "an empty caption"
        out.append(
            Finding(
                "error",
                "captions",
                f"{plural(len(recs), 'image')} have a '{alt}' caption but the trainer reads '{ext}' "
                f"(caption_extension): sd-scripts will not see them and trains with {instead} instead "
                "(kohya_ss#1370; sd-scripts' own default is '.caption')",
                f"set dataset.caption_extension = \"{alt}\" in the recipe, or rename the captions to '{ext}'",
                [(r.rel, r.path.stem + alt) for r in recs],
            )
        )
        for r in recs:
            r.notes.append(f"caption is {alt}")

    missing = [r for r in by_status["missing"] if r.caption_status == "missing"] + by_status["not-a-file"]
    if missing:
        tokens = missing[0].subset.class_tokens
        instead = f"with only the folder's class tokens '{tokens}' as caption" if tokens else "with an empty caption"
        ext = missing[0].subset.caption_extension or settings.caption_extension
        out.append(
            Finding(
                "error",
                "captions",
                f"{plural(len(missing), 'image')} without a caption file ({ext}): sd-scripts trains them "
                f"{instead} (it only logs a warning)",
                'write one per image, e.g. kohya-recipe caption init DIR --base "1girl, <trigger>, ..."',
                [(r.rel, r.caption_error or f"no {r.path.stem}{ext}") for r in missing],
            )
        )
        for r in missing:
            r.notes.append("no caption")
    for status, severity, message, fix in (
        ("empty", "error", "empty caption files (0 bytes): sd-scripts stops with 'caption file is empty'",
         "write the tags into them, or delete them"),
        ("blank", "error", "caption files with no text: these images train with an empty caption",
         "write the tags into them"),
        ("not-text", "error", "caption files that are not UTF-8 text: sd-scripts stops with UnicodeDecodeError",
         "re-save them as UTF-8 (or delete binary junk)"),
        ("unreadable", "error", "caption files that cannot be read: sd-scripts stops when it reaches them",
         "fix their permissions"),
    ):  # fmt: skip
        recs = by_status[status]
        if recs:
            out.append(
                Finding(
                    severity,  # type: ignore[arg-type]
                    "captions",
                    f"{len(recs)} {message}",
                    fix,
                    [(rel(r.caption_path, root) if r.caption_path else r.rel, r.caption_error or "") for r in recs],
                )
            )
            for r in recs:
                r.notes.append(f"caption {status}")

    out += _orphan_findings(scans, settings, root)

    captioned = [r for r in trained if r.caption is not None and r.caption.text]
    bom = [
        (rel(r.caption_path, root), "starts with a UTF-8 BOM")
        for r in captioned
        if r.caption and r.caption.bom and r.caption_path
    ]
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
    multi = [(r.rel, f"{r.caption.line_count} lines") for r in captioned if r.caption and r.caption.line_count > 1]
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

    out += trigger_findings(captioned, settings)
    out += format_findings(captioned, settings, rules)
    tag_counts, tag_findings = tag_table(captioned, settings)
    out += tag_findings
    return out, tag_counts


def _orphan_findings(scans: list[tuple[Subset, FolderScan]], settings: CheckSettings, root: Path) -> list[Finding]:
    items: list[tuple[str, str]] = []
    for subset, scan in scans:
        ext = subset.caption_extension or settings.caption_extension
        stems = {split_name(p.name)[0] for p in scan.images}
        used = {stem + ext for stem in stems}
        for image in scan.images:  # sd-scripts' face-crop fallback: a_1_2_3_4.png also reads a.txt
            if image.name.count("_") >= 4:
                candidates = caption_candidates(image, ext)
                if len(candidates) > 1 and candidates[1].parent == image.parent:
                    used.add(candidates[1].name)
        skipped = {split_name(p.name)[0]: p for p, _ in scan.skipped_images}
        for name in scan.files:
            stem, suffix = split_name(name)
            if name.startswith(".") or suffix != ext or name in used:
                continue
            path = subset.path / name
            if stem in skipped:
                items.append((rel(path, root), f"belongs to {skipped[stem].name}, which sd-scripts skips"))
            else:
                items.append((rel(path, root), "no image with this name"))
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
