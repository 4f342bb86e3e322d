"""Layout detection: what a folder is (project, train_data_dir, one ``N_name`` folder, plain images) and which
subsets sd-scripts would read from it.

sd-scripts' folder mode (``library/config_util.py`` ``generate_dreambooth_subsets_config_by_subdirs``) reads
``train_data_dir/<repeats>_<class tokens>/`` sub-folders only; pointing it at the image folder itself, or at
folders without a repeats prefix, makes it log 'No data found' and exit 0. Every such problem is a finding here.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from kohya_recipe.dataset.captions import normalise_extension
from kohya_recipe.dataset.findings import Finding, Item, Severity, plural, rel
from kohya_recipe.dataset.images import looks_like_image
from kohya_recipe.errors import DatasetError
from kohya_recipe.files import read_toml
from kohya_recipe.layout import DATASET_FILE, IMG_DIR, REG_DIR, RESOLVED_RECIPE, is_project
from kohya_recipe.recipe.loading import load_recipe
from kohya_recipe.sdscripts.folders import parse_repeats_folder

_REG_NAME = re.compile(r"(^|[\W_])(reg|regs|regulari[sz]ation|class[ _-]?images?)($|[\W_])", re.IGNORECASE)
_REG_SIBLINGS = ("reg", "regularization", "regularisation", "reg_data", "reg_images")


@dataclass
class Subset:
    """A folder sd-scripts reads images from, as it would parse it.

    ``image_dir`` is the folder, ``path`` the same relative to the checked folder. ``repeats``/``class_tokens``
    come from the ``N_name`` folder name or the dataset config; ``trained`` is false for a folder sd-scripts
    skips (no repeats prefix, repeats < 1) — its images are still checked. ``images``: how many images
    sd-scripts would read from it (set by the scan).
    """

    image_dir: Path = field(metadata={"json": False})
    path: str
    name: str
    repeats: int | None = None
    class_tokens: str | None = None
    is_reg: bool = False
    caption_extension: str | None = None
    trained: bool = True
    images: int = 0


@dataclass
class Layout:
    """What kind of folder was given and which subsets sd-scripts would read from it.

    ``kind``: ``project`` (a rendered kohya-recipe project), ``train_data_dir`` (parent of ``N_name``
    folders), ``subset`` (one ``N_name`` folder) or ``images`` (a plain folder of images). ``findings`` are the
    layout problems, reported with the check's other findings.
    """

    kind: str
    root: Path
    train_data_dir: Path | None
    subsets: list[Subset]
    recipe_file: Path | None = None
    findings: list[Finding] = field(default_factory=list, metadata={"json": False})


def _has_images(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(not e.name.startswith(".") and looks_like_image(Path(e.name)) for e in it)
    except OSError:
        return False


def _subdirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


def _folder_subsets(parent: Path, root: Path, *, is_reg: bool, findings: list[Finding]) -> list[Subset]:
    """The subsets sd-scripts' folder mode makes of ``parent`` (train_data_dir or reg_data_dir)."""
    subsets: list[Subset] = []
    ignored: list[Item] = []
    for sub in _subdirs(parent):
        folder = parse_repeats_folder(sub.name)
        repeats, tokens = folder.repeats, folder.class_tokens
        if repeats is None:
            if _has_images(sub):
                ignored.append(Item(rel(sub, root), "no repeats prefix"))
                subsets.append(Subset(sub, rel(sub, root), sub.name, is_reg=is_reg, trained=False))
            continue
        if repeats < 1:
            ignored.append(Item(rel(sub, root), f"repeats {repeats} < 1"))
        subsets.append(Subset(sub, rel(sub, root), sub.name, repeats, tokens, is_reg, trained=repeats >= 1))
    if ignored:
        trained = [s for s in subsets if s.trained]
        where = "reg_data_dir" if is_reg else "train_data_dir"
        if trained:
            msg = (
                f"sd-scripts skips {plural(len(ignored), 'folder')} in {where} (no usable `N_` repeats prefix): "
                "their images are not trained"
            )
            severity: Severity = "warning"
        else:
            msg = (
                f"no folder in the {where} {parent} starts with a repeats number (`N_name`): sd-scripts "
                "skips them all, logs 'No data found' and exits with code 0 without training"
            )
            severity = "error"
        findings.append(
            Finding(
                severity,
                "layout",
                msg,
                "rename each image folder to `<repeats>_<trigger> <class>`, e.g. `10_CharacterAI woman` "
                "(the article's 10 repeats)",
                ignored,
            )
        )
    return subsets


def _dataset_config_subsets(project: Path, findings: list[Finding]) -> list[Subset] | None:
    """Subsets of a project's ``dataset.toml`` (image_dir is relative to the project: the trainer's cwd)."""
    try:
        data = read_toml(project / DATASET_FILE, error=DatasetError)
    except DatasetError as exc:
        findings.append(
            Finding(
                "error", "layout", f"{DATASET_FILE} cannot be read: {exc.message}", "re-render it: kohya-recipe render"
            )
        )
        return None
    general = data.get("general", {}) if isinstance(data.get("general"), dict) else {}
    subsets: list[Subset] = []
    for dataset in data.get("datasets", []) or []:
        if not isinstance(dataset, dict):
            continue
        for sub in dataset.get("subsets", []) or []:
            if not isinstance(sub, dict) or not isinstance(sub.get("image_dir"), str):
                continue
            folder = Path(sub["image_dir"])
            folder = folder if folder.is_absolute() else project / folder
            ext = sub.get("caption_extension", dataset.get("caption_extension", general.get("caption_extension")))
            repeats = sub.get("num_repeats", 1)
            subsets.append(
                Subset(
                    folder,
                    rel(folder, project),
                    rel(folder, project),
                    repeats if isinstance(repeats, int) else None,
                    sub.get("class_tokens"),
                    bool(sub.get("is_reg", False)),
                    ext if isinstance(ext, str) else None,
                    trained=isinstance(repeats, int) and repeats >= 1,
                )
            )
    return subsets


def detect_layout(path: str | Path) -> Layout:
    """Work out what ``path`` is (project, train_data_dir, one ``N_name`` folder, plain images) and its subsets.

    Raises :class:`DatasetError` when ``path`` is not a folder; every layout problem is a finding.
    """
    root = Path(path)
    try:
        mode = root.stat().st_mode
    except FileNotFoundError:
        raise DatasetError("folder not found", source=str(root)) from None
    except OSError as exc:  # a name too long, a loop of symlinks, no permission to look
        raise DatasetError(f"cannot use it: {exc.strerror or exc}", source=str(root)) from None
    if not stat.S_ISDIR(mode):
        raise DatasetError("not a folder (give the image folder, the train_data_dir or the project)", source=str(root))
    layout = _project_layout(root) if _looks_like_project(root) else _folder_layout(root)
    _common_layout_findings(layout)
    return layout


def _looks_like_project(root: Path) -> bool:
    """A kohya-recipe project, or a kohya_ss GUI-style project folder (img/ with N_name folders, reg/, model/, log/)."""
    img = root / IMG_DIR
    if is_project(root) or ((root / DATASET_FILE).is_file() and img.is_dir()):
        return True
    return img.is_dir() and any(parse_repeats_folder(d.name).repeats is not None for d in _subdirs(img))


def _project_layout(root: Path) -> Layout:
    """The subsets of a project: from its ``dataset.toml`` (what the trainer reads), else from ``img/`` and ``reg/``."""
    findings: list[Finding] = []
    subsets = _dataset_config_subsets(root, findings) if (root / DATASET_FILE).is_file() else None
    if subsets is None:
        subsets = _folder_subsets(root / IMG_DIR, root, is_reg=False, findings=findings)
        if (root / REG_DIR).is_dir():
            subsets += _folder_subsets(root / REG_DIR, root, is_reg=True, findings=findings)
    for s in subsets:
        if not s.image_dir.is_dir():
            findings.append(
                Finding(
                    "error",
                    "layout",
                    f"{DATASET_FILE} names image_dir '{s.path}', which does not exist: sd-scripts "
                    "logs 'not directory' and skips it",
                    "rebuild the project (kohya-recipe build) or fix image_dir",
                )
            )
    recipe_file = root / RESOLVED_RECIPE if is_project(root) else None
    return Layout("project", root, root / IMG_DIR, subsets, recipe_file, findings)


def _folder_layout(root: Path) -> Layout:
    """A folder that is not a project: a train_data_dir, one ``N_name`` folder, or plain images."""
    subdirs = _subdirs(root)
    direct_images = _has_images(root)
    own = parse_repeats_folder(root.name)
    if any(parse_repeats_folder(d.name).repeats is not None for d in subdirs):
        return _train_data_dir_layout(root, direct_images)
    if own.repeats is not None and direct_images:
        return _subset_layout(root, own.repeats, own.class_tokens)
    if subdirs and not direct_images and any(_has_images(d) for d in subdirs):
        # Folders of images, none with a repeats prefix: exactly sd-scripts' "No data found" case.
        findings: list[Finding] = []
        subsets = _folder_subsets(root, root, is_reg=False, findings=findings)
        return Layout("train_data_dir", root, root, subsets, None, findings)
    finding = Finding(
        "info",
        "layout",
        "a plain image folder: as a train_data_dir sd-scripts would ignore these images (it reads "
        "`N_name` sub-folders only)",
        "kohya-recipe build renders the `img/<repeats>_<trigger> <class>/` layout from it",
    )
    return Layout("images", root, None, [Subset(root, ".", root.name)], None, [finding])


def _train_data_dir_layout(root: Path, direct_images: bool) -> Layout:
    findings: list[Finding] = []
    subsets = _folder_subsets(root, root, is_reg=False, findings=findings)
    if direct_images:
        findings.append(
            Finding(
                "warning",
                "layout",
                "images lie directly in this train_data_dir: sd-scripts reads only the `N_name` sub-folders "
                "and ignores them",
                "move them into the `N_name` folder they belong to",
                [Item(".", "images next to the N_name folders")],
            )
        )
    return Layout("train_data_dir", root, root, subsets, _enclosing_recipe(root), findings)


def _subset_layout(root: Path, repeats: int, class_tokens: str) -> Layout:
    finding = Finding(
        "warning",
        "layout",
        f"'{root.name}' is an image folder (`N_name`), not a train_data_dir: pointed at it, sd-scripts "
        "looks for `N_name` folders *inside* it, finds none, logs 'No data found' and exits 0 "
        "(the most reported kohya_ss mistake)",
        f"set train_data_dir to its parent: {root.resolve().parent}",
    )
    subset = Subset(root, ".", root.name, repeats, class_tokens, trained=repeats >= 1)
    return Layout("subset", root, root.parent, [subset], _enclosing_recipe(root), [finding])


def _enclosing_recipe(root: Path) -> Path | None:
    """The ``resolved-recipe.toml`` of the project whose ``img/`` folder (or ``img/N_name`` folder) ``root`` is.

    ``check PROJECT/img`` must judge the images by the project's own settings (caption extension, resolution,
    trigger), as ``check PROJECT`` does, not by the article's defaults.
    """
    here = root.resolve()
    for project in (here.parent, here.parent.parent):
        if (here == project / IMG_DIR or here.parent == project / IMG_DIR) and is_project(project):
            return project / RESOLVED_RECIPE
    return None


def _common_layout_findings(layout: Layout) -> None:
    reg = [s for s in layout.subsets if s.is_reg]
    named_reg = [s for s in layout.subsets if not s.is_reg and _REG_NAME.search(s.name)]
    siblings: list[Path] = []
    base = layout.train_data_dir if layout.kind != "project" else None
    if base is not None:
        siblings = [base.parent / n for n in _REG_SIBLINGS if (base.parent / n).is_dir() and base.parent / n != base]
    if reg or siblings:
        items = [Item(s.path, "is_reg subset") for s in reg] + [
            Item(str(p), "next to the image folder") for p in siblings
        ]
        layout.findings.append(
            Finding(
                "warning",
                "layout",
                "regularization images are present: the article never uses them for a LoRA (they slow training and "
                "dilute a single subject)",
                "drop the reg folder (and dataset.regularization in the recipe) unless you mean to use it",
                items,
            )
        )
    if named_reg:
        layout.findings.append(
            Finding(
                "warning",
                "layout",
                "a folder inside the train_data_dir looks like regularization images: sd-scripts trains it as a "
                "second subject, not as regularization (reg images go in reg_data_dir)",
                "move it out of the train_data_dir; the article trains without regularization",
                [Item(s.path, s.name) for s in named_reg],
            )
        )
    subjects = [s for s in layout.subsets if s.trained and not s.is_reg]
    if len(subjects) > 1:
        layout.findings.append(
            Finding(
                "warning",
                "layout",
                f"{len(subjects)} subject folders: the article trains one thing per LoRA (combine LoRAs at "
                "generation time instead)",
                "keep one `N_name` folder; train other characters/styles as separate LoRAs",
                [Item(s.path, f"{s.repeats} repeats") for s in subjects],
            )
        )


def dataset_folders(path: str | Path, extension: str | None = None) -> tuple[list[Path], str]:
    """The image folders of a dataset and the caption extension to use.

    ``path`` may be a plain image folder, a train_data_dir, one ``N_name`` folder or a rendered project (the
    same detection as ``kohya-recipe check``); regularization folders are left out. The extension is
    ``extension`` when given, else the project's recipe's ``dataset.caption_extension``, else ``.txt`` (the
    article's; sd-scripts' own default is ``.caption``).
    """
    layout = detect_layout(path)
    folders = [s.image_dir for s in layout.subsets if not s.is_reg and s.image_dir.is_dir()]
    if extension:
        return folders, normalise_extension(extension)
    subset_exts = {s.caption_extension for s in layout.subsets if not s.is_reg and s.caption_extension}
    if len(subset_exts) == 1:
        return folders, subset_exts.pop()
    if layout.recipe_file is not None:
        return folders, load_recipe(layout.recipe_file).dataset.caption_extension
    return folders, ".txt"
