"""The dataset doctor: everything that ruins a LoRA before any GPU time is spent, checked in one pass.

``check_dataset(DIR)`` takes a plain folder of images, a sd-scripts ``train_data_dir`` (``img/N_name/...``), one
``N_name`` folder or a rendered kohya-recipe project, works out what sd-scripts would read from it, and checks:

- **layout** — ``train_data_dir`` must be the *parent* of ``N_name`` folders (the most reported mistake:
  sd-scripts then finds no data and exits 0), folders without a repeats prefix, regularization folders, more
  than one subject folder (reference/sd_scripts.md §4; peers-and-user-asks.md asks 13-14);
- **count**, **resolution** (the article's 768 px minimum and, through :mod:`kohya_recipe.sdscripts.buckets`, the images
  the trainer will upscale), **aspect** ratios against the generation aspect and the bucket each image lands in;
- **files the trainer silently skips** (``.Png``, ``.gif``, nested folders, hidden files, two images sharing one
  caption), **corrupt** images (header-only scan; a real decode for suspicious headers or on demand),
  **EXIF** rotation and **alpha** channels (sd-scripts ignores both), **duplicates** (exact, and perceptual
  when decoding);
- **captions** — the recipe's extension (``.txt`` vs sd-scripts' ``.caption`` default, ask 15), missing,
  orphan, empty, non-UTF-8 and multi-line files, the **trigger** in every caption, length, Danbooru format,
  the tag table, tags in every caption; **shots** (the article's shot list) and **contradictions** from tags,
  from a configurable rules file.

Thresholds come from the recipe when one is given (or found in a project), else from the article. Nothing is
ever written. Every finding has a severity (error / warning / info), says what is wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from kohya_recipe.dataset.checks.captions import caption_findings
from kohya_recipe.dataset.checks.duplicates import duplicate_findings
from kohya_recipe.dataset.checks.files import file_findings
from kohya_recipe.dataset.checks.images import aspect_findings, image_findings
from kohya_recipe.dataset.checks.layout import count_findings, layout_subset_findings
from kohya_recipe.dataset.checks.shots import contradiction_findings, shot_findings
from kohya_recipe.dataset.detect import Layout, Subset, detect_layout
from kohya_recipe.dataset.findings import SEVERITIES, Finding, rel
from kohya_recipe.dataset.format import format_report
from kohya_recipe.dataset.images import ImageReadError, decode_image, read_header
from kohya_recipe.dataset.result import CheckResult
from kohya_recipe.dataset.rules import Rules, load_rules
from kohya_recipe.dataset.scan import FolderScan, ImageRecord, read_caption_for, scan_folder
from kohya_recipe.dataset.settings import CheckSettings, article_settings, settings_from_recipe
from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.recipe.loading import load_recipe
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.sdscripts.buckets import BucketAssignment

__all__ = ["CheckResult", "CheckSettings", "Rules", "check_dataset", "detect_layout", "format_report", "load_rules"]

Progress = Callable[[int, int], None]  # (images done, images in total)


def check_dataset(
    path: str | Path,
    *,
    recipe: Recipe | str | Path | None = None,
    rules: Rules | str | Path | None = None,
    trigger: str | None = None,
    decode: bool = False,
    progress: Progress | None = None,
    settings: CheckSettings | None = None,
) -> CheckResult:
    """Check ``path`` (images, train_data_dir, ``N_name`` folder or project) and return every finding.

    ``recipe``: a Recipe or a recipe TOML path; a project's ``resolved-recipe.toml`` is used when none is given.
    ``rules``: a :class:`Rules` or a rules TOML path. ``trigger`` overrides the recipe's trigger word.
    ``settings`` replaces the recipe altogether (e.g. settings read from an sd-scripts config by a script).
    ``decode`` decodes every image (pixels verified, alpha use measured, near-duplicates searched); without
    it only images whose header looks wrong are decoded. ``progress(done, total)`` is called per image.
    Nothing is written. Raises only for an unusable input (``path`` missing, recipe or rules invalid).
    """
    layout = detect_layout(path)
    root = layout.root
    if settings is None:
        settings = _resolve_settings(layout, recipe, trigger)
    elif trigger:
        settings = replace(settings, trigger=trigger, trigger_source="--trigger")
    the_rules = rules if isinstance(rules, Rules) else (load_rules(rules) if rules is not None else Rules())
    findings: list[Finding] = list(layout.findings)

    bucketer, bucket_problem = _bucketer(settings)
    if bucket_problem:
        findings.append(bucket_problem)

    scans: list[tuple[Subset, FolderScan]] = []
    for subset in layout.subsets:
        if not subset.path.is_dir():
            continue
        scan = scan_folder(subset.path)
        scans.append((subset, scan))
        subset.image_count = len(scan.images)
        if scan.unreadable:
            findings.append(
                Finding(
                    "error",
                    "files",
                    f"cannot list the folder ({scan.unreadable}): sd-scripts cannot read it either",
                    "fix the folder's permissions",
                    [(rel(subset.path, root), scan.unreadable)],
                )
            )

    total = sum(len(scan.images) for _s, scan in scans)
    records: list[ImageRecord] = []
    for subset, scan in scans:
        ext = subset.caption_extension or settings.caption_extension
        prefix = rel(subset.path, root)
        prefix = "" if prefix == "." else prefix + "/"
        for image in scan.images:
            record = ImageRecord(image, prefix + image.name, subset)
            try:
                record.header = read_header(image)
            except ImageReadError as exc:
                record.error = exc.message
            if record.header is not None and (decode or record.header.suspicious):
                record.decoded = decode_image(image, want_hash=decode)
            if record.header is not None and bucketer is not None:
                record.bucket = bucketer(record.header.width, record.header.height)
            read_caption_for(record, scan, ext)
            records.append(record)
            if progress is not None:
                progress(len(records), total)

    trained = [r for r in records if r.subset.trained and not r.subset.is_reg]
    settings = _infer_trigger(settings, layout)

    findings += layout_subset_findings(layout, scans, settings)
    findings += file_findings(scans, root)
    findings += count_findings(trained, the_rules, layout)
    findings += image_findings(records, settings, the_rules)
    findings += aspect_findings(trained, the_rules, settings)
    findings += duplicate_findings(records, the_rules, settings, decode)
    caption_found, tag_counts = caption_findings(records, scans, settings, the_rules, root)
    findings += caption_found
    shot_found, shot_counts = shot_findings(trained, the_rules)
    findings += shot_found
    findings += contradiction_findings(trained, the_rules, settings)

    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: order[f.severity])
    return CheckResult(root, layout, settings, the_rules, records, findings, tag_counts, shot_counts, decode)


def _resolve_settings(layout: Layout, recipe: Recipe | str | Path | None, trigger: str | None) -> CheckSettings:
    if recipe is None and layout.recipe_file is not None:
        recipe = layout.recipe_file
    if recipe is None:
        settings = article_settings()
    elif isinstance(recipe, (str, Path)):
        settings = settings_from_recipe(load_recipe(recipe), source=str(recipe))
    else:
        settings = settings_from_recipe(recipe)
    if trigger:
        settings = replace(settings, trigger=trigger, trigger_source="--trigger")
    # A dataset config may set the caption extension per subset; the folder-mode default is the recipe's.
    return settings


def _infer_trigger(settings: CheckSettings, layout: Layout) -> CheckSettings:
    """Without a trigger, take it from a `N_<trigger> <class>` folder name (the kohya_ss GUI's convention)."""
    if settings.trigger:
        return settings
    names = {s.class_tokens for s in layout.subsets if s.trained and not s.is_reg and s.class_tokens}
    if len(names) != 1:
        return settings
    tokens = names.pop()
    words = tokens.split()
    trigger = None
    if settings.class_token and tokens.endswith(" " + settings.class_token):
        trigger = tokens[: -len(settings.class_token) - 1].strip()
    elif len(words) >= 2:
        trigger = words[0]
    if not trigger:
        return settings
    folder = next(s.name for s in layout.subsets if s.class_tokens == tokens)
    return replace(settings, trigger=trigger, trigger_source=f"folder name '{folder}'")


def _bucketer(settings: CheckSettings) -> tuple[Callable[[int, int], BucketAssignment] | None, Finding | None]:
    """A cached ``select_bucket`` for the settings, or the finding that says why there is none."""
    try:
        manager = settings.buckets.manager()
    except KohyaRecipeError as exc:
        return None, Finding(
            "error", "resolution", f"the bucket settings stop sd-scripts: {exc}", "fix the recipe's training section"
        )
    cache: dict[tuple[int, int], BucketAssignment] = {}

    def select(width: int, height: int) -> BucketAssignment:
        key = (width, height)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = manager.select_bucket(width, height)
        return hit

    return select, None
