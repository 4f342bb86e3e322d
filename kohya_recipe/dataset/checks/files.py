"""Files sd-scripts silently skips (odd extensions, hidden files, sub-folders) or fails to open."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from kohya_recipe.dataset.detect import Subset
from kohya_recipe.dataset.findings import Finding, Item, plural, rel
from kohya_recipe.dataset.leftovers import leftover_names
from kohya_recipe.dataset.scan import FolderScan, split_name
from kohya_recipe.dataset.settings import CheckSettings


def file_findings(scans: list[tuple[Subset, FolderScan]], root: Path) -> list[Finding]:
    """Images sd-scripts skips (extension case, hidden, in sub-folders), names it cannot open, other files, and
    two images sharing one caption."""
    out: list[Finding] = []
    skipped = [Item(rel(p, root), reason) for _s, scan in scans for p, reason in scan.skipped_images]
    if skipped:
        out.append(
            Finding(
                "warning",
                "files",
                f"{plural(len(skipped), 'image')} that sd-scripts silently skips",
                "convert or rename them to .png/.jpg/.jpeg/.webp/.bmp (all lower-case or all upper-case)",
                skipped,
            )
        )
    hidden = [Item(rel(p, root), "name starts with '.'") for _s, scan in scans for p in scan.hidden_images]
    if hidden:
        out.append(
            Finding(
                "warning",
                "files",
                f"{plural(len(hidden), 'hidden image')}: sd-scripts' glob never matches names starting with '.'",
                "rename them without the leading dot, or delete them if they are editor/OS leftovers",
                hidden,
            )
        )
    nested = [Item(rel(p, root), f"{n} images inside") for _s, scan in scans for p, n in scan.nested]
    if nested:
        out.append(
            Finding(
                "warning",
                "files",
                "images in sub-folders of an image folder: sd-scripts does not look into sub-folders",
                "move them up into the image folder (or make the sub-folder its own `N_name` folder)",
                nested,
            )
        )
    not_files = [Item(rel(p, root), why) for _s, scan in scans for p, why in scan.not_files]
    if not_files:
        out.append(
            Finding(
                "error",
                "files",
                "sd-scripts lists these as images and fails to open them",
                "rename or remove them",
                not_files,
            )
        )
    others = [Item(rel(p, root), "") for _s, scan in scans for p in scan.others]
    if others:
        out.append(
            Finding(
                "info",
                "files",
                f"{plural(len(others), 'other file')} in the image folders (ignored by sd-scripts)",
                "",
                others,
            )
        )
    # Same stem, two image extensions: both are trained, and both read the same caption file.
    stems: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for subset, scan in scans:
        for image in scan.images:
            stems[(subset.image_dir, split_name(image.name)[0])].append(image)
    shared = [
        Item(rel(folder / stem, root), ", ".join(p.name for p in ps))
        for (folder, stem), ps in stems.items()
        if len(ps) > 1
    ]
    if shared:
        out.append(
            Finding(
                "warning",
                "files",
                "the same name with two image extensions: sd-scripts trains both and gives both the same caption "
                "file (usually one image saved twice)",
                "keep one of each pair",
                shared,
            )
        )
    return out


def leftover_findings(scans: list[tuple[Subset, FolderScan]], settings: CheckSettings, root: Path) -> list[Finding]:
    """Temp files a killed caption edit left next to the captions (:mod:`kohya_recipe.dataset.leftovers`)."""
    items = [
        Item(rel(subset.image_dir / name, root), "")
        for subset, scan in scans
        for name in leftover_names(scan.files, [subset.caption_extension or settings.caption_extension])
    ]
    if not items:
        return []
    return [
        Finding(
            "info",
            "files",
            f"{plural(len(items), 'temp file')} left by an interrupted caption edit (hidden: sd-scripts ignores them)",
            "the next kohya-recipe caption edit of the folder removes them (check never writes); or delete them",
            items,
        )
    ]
