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


# What a count means for each purpose: (why fewer images hurt, how to add, why more do, what to do).
_COUNT_WORDS: dict[str, tuple[str, str, str, str]] = {
    "likeness": (
        'the article takes {ideal} ("any number close-ish to 40"); fewer images give the LoRA too few views of the '
        "subject",
        "add images until you have about {ideal} (mostly close front portraits)",
        "more than the article's ~{ideal} for a single-subject LoRA; more images mean more steps per epoch and "
        "usually a less focused likeness",
        "pick the best ~{ideal}, or lower the repeats",
    ),
    "style": (
        "a style needs many examples of the look, about {ideal} (the rules for a style); with fewer it learns the "
        "pictures rather than the look",
        "add images in the same style, with other subjects, until you have about {ideal}",
        "more than {max} for a style: more steps per epoch",
        "pick the most typical ~{ideal}, or lower the repeats",
    ),
    "concept": (
        "a concept needs about {ideal} images (the rules for a concept), showing it in varied contexts",
        "add images of the concept in other contexts until you have about {ideal}",
        "more than {max} for a concept: more steps per epoch and a less focused concept",
        "pick the clearest ~{ideal}, or lower the repeats",
    ),
}


def count_findings(trained: list[ImageRecord], rules: Rules) -> list[Finding]:
    """The number of trained images against the rules' (none at all is sd-scripts' 'No data found')."""
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
    few, add, many, fewer = (
        w.format(ideal=rules.count_ideal, max=rules.count_max) for w in _COUNT_WORDS[rules.purpose]
    )
    if n < rules.count_min:
        return [Finding("warning", "count", f"only {detail}: {few}", add)]
    if n > rules.count_max:
        return [Finding("warning", "count", f"{detail}: {many}", fewer)]
    source = "the article" if rules.purpose == "likeness" else f"the rules for a {rules.purpose}"
    return [Finding("info", "count", f"{detail} ({source}: {rules.count_ideal})")]
