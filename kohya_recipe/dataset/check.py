"""The dataset doctor: everything that ruins a LoRA before any GPU time is spent, checked in one pass.

``check_dataset(DIR)`` takes a plain folder of images, a sd-scripts ``train_data_dir`` (``img/N_name/...``), one
``N_name`` folder or a rendered kohya-recipe project, works out what sd-scripts would read from it, and checks:

- **layout** — ``train_data_dir`` must be the *parent* of ``N_name`` folders (the most reported mistake:
  sd-scripts then finds no data and exits 0), folders without a repeats prefix, regularization folders, more
  than one subject folder (sd-scripts ``library/config_util.py`` ``generate_dreambooth_subsets_config_by_subdirs``);
- **count**, **resolution** (the article's 768 px minimum and, through :mod:`kohya_recipe.sdscripts.buckets`, the images
  the trainer will upscale), **aspect** ratios against the generation aspect and the bucket each image lands in;
- **files the trainer silently skips** (``.Png``, ``.gif``, nested folders, hidden files, two images sharing one
  caption), **corrupt** images (header-only scan; a real decode for suspicious headers or on demand),
  **EXIF** rotation and **alpha** channels (sd-scripts ignores both), **duplicates** (exact, and perceptual
  when decoding);
- **captions** — the recipe's extension (``.txt`` vs sd-scripts' ``.caption`` default), missing,
  orphan, empty, non-UTF-8 and multi-line files, the **trigger** in every caption, length, Danbooru format,
  the tag table, tags in every caption (in most captions: a style's subjects, a concept's contexts); **shots** (the
  article's shot list, for a likeness) and **contradictions** from tags, from a configurable rules file.

Thresholds come from the recipe when one is given (or found in a project), else from the article; the rules'
defaults from what the LoRA learns (``subject.purpose``: likeness, style, concept). Nothing is ever written.
Every finding has a severity (error / warning / info), says what is wrong and what to do.
"""

from __future__ import annotations

from pathlib import Path

from kohya_recipe.dataset.checks.captions import caption_findings, captioned
from kohya_recipe.dataset.checks.duplicates import duplicate_clusters, duplicate_findings
from kohya_recipe.dataset.checks.files import file_findings, leftover_findings
from kohya_recipe.dataset.checks.images import aspect_findings, image_findings
from kohya_recipe.dataset.checks.layout import count_findings, layout_subset_findings
from kohya_recipe.dataset.checks.shots import contradiction_findings, shot_findings
from kohya_recipe.dataset.checks.tags import format_findings, tag_table
from kohya_recipe.dataset.checks.trigger import trigger_findings
from kohya_recipe.dataset.detect import detect_layout
from kohya_recipe.dataset.findings import SEVERITIES, Finding
from kohya_recipe.dataset.format import format_report
from kohya_recipe.dataset.result import CheckResult
from kohya_recipe.dataset.rules import Rules, load_rules, rules_for
from kohya_recipe.dataset.scan import Progress, scan_dataset
from kohya_recipe.dataset.settings import CheckSettings, infer_trigger, resolve_settings
from kohya_recipe.recipe.models import Recipe

__all__ = ["CheckResult", "CheckSettings", "Rules", "check_dataset", "detect_layout", "format_report", "load_rules"]


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
    ``rules``: a :class:`Rules`, or a rules TOML path that changes the defaults of the recipe's purpose
    (``subject.purpose``: likeness, the article's rules; style; concept - see :func:`rules_for`).
    ``trigger`` overrides the recipe's trigger word.
    ``settings`` replaces the recipe altogether (e.g. settings read from an sd-scripts config by a script).
    ``decode`` decodes every image (pixels verified, alpha use measured, near-duplicates searched); without
    it only images whose header looks wrong are decoded. ``progress(done, total)`` is called per image.
    Nothing is written. Raises only for an unusable input (``path`` missing, recipe or rules invalid).
    """
    layout = detect_layout(path)
    settings = resolve_settings(recipe, trigger=trigger, settings=settings, project_recipe=layout.recipe_file)
    if isinstance(rules, Rules):
        the_rules = rules
    else:
        the_rules = load_rules(rules, settings.purpose) if rules is not None else rules_for(settings.purpose)
    scan = scan_dataset(layout, settings, decode=decode, progress=progress)
    settings = infer_trigger(settings, layout.subsets)
    records, trained, root = scan.records, scan.trained, layout.root

    findings: list[Finding] = [*layout.findings, *scan.findings]
    findings += layout_subset_findings(layout, scan.folders, settings)
    findings += file_findings(scan.folders, root)
    findings += leftover_findings(scan.folders, settings, root)
    findings += count_findings(trained, the_rules)
    findings += image_findings(records, settings, the_rules)
    findings += aspect_findings(trained, the_rules, settings)
    duplicates = duplicate_clusters(records, the_rules, decode)
    findings += duplicate_findings(duplicates, settings, decode, bool(records))
    findings += caption_findings(records, scan.folders, settings, root)
    findings += trigger_findings(captioned(records), settings)
    findings += format_findings(captioned(records), settings, the_rules)
    tags, tag_findings = tag_table(captioned(records), settings, the_rules)
    findings += tag_findings
    shot_found, shots = shot_findings(trained, the_rules)
    findings += shot_found
    findings += contradiction_findings(trained, the_rules, settings)

    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: order[f.severity])
    return CheckResult(root, layout, settings, the_rules, records, findings, tags, shots, decode, duplicates)
