"""Layout checks that need the scan: the subsets against the recipe, and the number of images."""

from __future__ import annotations

from kohya_recipe.dataset.detect import Layout, Subset
from kohya_recipe.dataset.findings import Finding, Item
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import FolderScan, ImageRecord
from kohya_recipe.dataset.settings import CheckSettings


def layout_subset_findings(
    layout: Layout, scans: list[tuple[Subset, FolderScan]], settings: CheckSettings
) -> list[Finding]:
    """The subsets against the recipe (regularization, repeats) and folders without an image sd-scripts reads."""
    out: list[Finding] = []
    if settings.regularization and not any(s.is_reg for s in layout.subsets):
        out.append(
            Finding(
                "warning",
                "layout",
                f"the recipe trains with regularization images ({settings.regularization}): the article never does "
                "for a LoRA (they slow training and dilute a single subject)",
                "remove dataset.regularization from the recipe",
            )
        )
    empty = [
        Item(s.path, "no image sd-scripts reads")
        for s, scan in scans
        if s.trained and not scan.images and not scan.unreadable
    ]
    if empty:
        out.append(
            Finding(
                "warning" if len(empty) < len([s for s, _ in scans if s.trained]) else "error",
                "layout",
                "image folder without any image sd-scripts reads: it logs 'no images' and skips the folder",
                "put the images (.png/.jpg/.jpeg/.webp/.bmp) directly in the folder",
                empty,
            )
        )
    if settings.repeats is not None and layout.kind in ("train_data_dir", "subset"):
        differ = [
            Item(s.path, f"{s.repeats} repeats")
            for s in layout.subsets
            if s.trained and not s.is_reg and s.repeats != settings.repeats
        ]
        if differ:
            out.append(
                Finding(
                    "warning",
                    "layout",
                    f"the folder's repeats differ from the recipe's dataset.repeats = {settings.repeats}: in folder "
                    "mode sd-scripts takes the repeats from the folder name",
                    "rename the folder or change dataset.repeats so the step plan is what you expect",
                    differ,
                )
            )
    return out


def count_findings(trained: list[ImageRecord], rules: Rules) -> list[Finding]:
    """The number of trained images against the article's (none at all is sd-scripts' 'No data found')."""
    n = len(trained)
    if n == 0:
        return [
            Finding(
                "error",
                "count",
                "no image sd-scripts would train on: it logs 'No data found' and exits 0 without a LoRA",
                "check the layout findings above; train_data_dir must contain `N_name` folders with images",
            )
        ]
    repeats = sorted({r.folder.repeats for r in trained if r.folder.repeats})
    per_epoch = sum(r.folder.repeats or 1 for r in trained)
    detail = f"{n} images" + (f" × {repeats[0]} repeats = {per_epoch} images per epoch" if len(repeats) == 1 else "")
    if n < rules.count_min:
        return [
            Finding(
                "warning",
                "count",
                f'only {detail}: the article takes {rules.count_ideal} ("any number close-ish to 40"); fewer '
                "images give the LoRA too few views of the subject",
                f"add images until you have about {rules.count_ideal} (mostly close front portraits)",
            )
        ]
    if n > rules.count_max:
        return [
            Finding(
                "warning",
                "count",
                f"{detail}: more than the article's ~{rules.count_ideal} for a single-subject LoRA; more images mean "
                "more steps per epoch and usually a less focused likeness",
                f"pick the best ~{rules.count_ideal}, or lower the repeats",
            )
        ]
    return [Finding("info", "count", f"{detail} (the article: {rules.count_ideal})")]
