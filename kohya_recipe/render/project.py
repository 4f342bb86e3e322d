"""A training project on disk: render a recipe into the folder layout and files sd-scripts needs.

Layout (mirrors the kohya_ss GUI's folder preparation, reference/kohya_ss_gui.md §4)::

    PROJECT/resolved-recipe.toml  config.toml  dataset.toml  sample-prompts.txt  train.sh  <output_name>.json
    PROJECT/img/<repeats>_<trigger> <class>/   images (hard-linked or copied, never moved) + captions
    PROJECT/log/  PROJECT/model/  [PROJECT/reg/<repeats>_<class>/]

Writing never clobbers: a file the tool did not write (or wrote and the user changed since) is not overwritten
without ``force``; every write is atomic; if anything fails, only what this call created is removed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kohya_recipe.errors import DatasetError, GuiConfigError, RecipeError, RenderError
from kohya_recipe.files import atomic_write_bytes, read_toml, sha256_bytes, sha256_file
from kohya_recipe.layout import (
    CONFIG_FILE,
    DATASET_FILE,
    IMG_DIR,
    LOG_DIR,
    MANIFEST,
    MODEL_DIR,
    PROMPTS_FILE,
    REG_DIR,
    RESOLVED_RECIPE,
    RUNS_DIR,
    STATE_DIR,
    ProjectFacts,
    SubsetFacts,
    write_facts,
)
from kohya_recipe.recipe.loading import recipe_from_dict, recipe_to_toml
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.render.prompts import prompt_line


@dataclass(frozen=True)
class Project:
    """A rendered project folder and the recipe it was rendered from."""

    root: Path
    recipe: Recipe

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def dataset_file(self) -> Path:
        return self.root / DATASET_FILE

    @property
    def prompts_file(self) -> Path:
        return self.root / PROMPTS_FILE

    @property
    def resolved_recipe_file(self) -> Path:
        return self.root / RESOLVED_RECIPE

    @property
    def img_dir(self) -> Path:
        return self.root / IMG_DIR

    @property
    def subset_dir(self) -> Path:
        return self.img_dir / self.recipe.subset_folder_name

    @property
    def model_dir(self) -> Path:
        return self.root / MODEL_DIR

    @property
    def log_dir(self) -> Path:
        return self.root / LOG_DIR

    @property
    def runs_dir(self) -> Path:
        return self.root / RUNS_DIR

    @property
    def output_name(self) -> str:
        return self.recipe.output.output_name

    @property
    def script_name(self) -> str:
        return self.recipe.script_name


def load_project(path: str | Path) -> Project:
    """Open a rendered project (a folder with ``resolved-recipe.toml``)."""
    root = Path(path)
    if not root.is_dir():
        raise RenderError("project folder not found", source=str(root))
    resolved = root / RESOLVED_RECIPE
    if not resolved.is_file():
        raise RenderError(
            f"not a kohya-recipe project (no {RESOLVED_RECIPE}); run `kohya-recipe build` or `render` first",
            source=str(root),
        )
    recipe = recipe_from_dict(read_toml(resolved, error=RecipeError), source=str(resolved))
    return Project(root.resolve(), recipe)


# ----------------------------------------------------------------------------------------------------------------
# Rendering


@dataclass
class _Item:
    rel: str
    kind: Literal["generated", "data"]
    data: bytes | None = None  # generated content
    source: Path | None = None  # data file to link/copy
    mode: int | None = None
    copy: bool = False  # always copy, never hard-link (captions)


@dataclass
class RenderResult:
    """What a render did (or, with ``dry_run``, would do)."""

    root: Path
    recipe: Recipe
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    images: int = 0
    captions: int = 0
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    command: list[str] = field(default_factory=list)
    plan: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": str(self.root),
            "output_name": self.recipe.output.output_name,
            "dry_run": self.dry_run,
            "written": self.written,
            "unchanged": self.unchanged,
            "folders": self.folders,
            "images": self.images,
            "captions": self.captions,
            "warnings": self.warnings,
            "command": self.command,
            "command_cwd": str(self.root),
            "plan": self.plan,  # a dataset.plan.Plan: data the CLI prints as JSON
        }


def display_command(recipe: Recipe, sd_scripts: str = "<sd-scripts>") -> list[str]:
    """The command that would train the project (run from the project folder)."""
    from kohya_recipe.render.command import accelerate_args, script_args

    return [*accelerate_args(recipe), f"{sd_scripts}/{recipe.script_name}", *script_args()]


def _train_script(recipe: Recipe) -> str:
    from kohya_recipe.render.command import accelerate_args, script_args
    from kohya_recipe.templating import render_template

    return render_template(
        "train.sh.j2",
        output_name=recipe.output.output_name,
        script=recipe.script_name,
        launch_args=shlex.join(accelerate_args(recipe)),
        script_args=shlex.join(script_args()),
    )


def _source_items(recipe: Recipe, src: Path, dest_rel: str, warnings: list[str]) -> list[_Item]:
    """Images sd-scripts would read from ``src`` and their captions, as data items under ``dest_rel``."""
    from kohya_recipe.dataset.images import is_trainer_image

    if not src.is_dir():
        raise DatasetError("image folder not found", source=str(src))
    try:
        entries = sorted(src.iterdir())
    except OSError as exc:
        raise DatasetError(f"cannot list the image folder: {exc.strerror}", source=str(src)) from None
    images = [p for p in entries if p.is_file() and is_trainer_image(p)]
    if not images:
        subs = [p.name for p in entries if p.is_dir()]
        hint = f" (it has folders {', '.join(subs[:3])}: point at the folder that holds the images)" if subs else ""
        raise DatasetError(f"no images sd-scripts would read (.png .jpg .jpeg .webp .bmp){hint}", source=str(src))
    skipped = [p.name for p in entries if p.is_file() and p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp",
                                                                             ".bmp", ".gif", ".avif", ".jxl"}
               and not is_trainer_image(p)]  # fmt: skip
    if skipped:
        warnings.append(
            f"{len(skipped)} image(s) in {src} are not read by sd-scripts (mixed-case or unsupported extension), "
            f"e.g. {skipped[0]}; they are not copied — run `kohya-recipe check`"
        )
    items = []
    ext = recipe.dataset.caption_extension
    missing = 0
    for img in images:
        items.append(_Item(f"{dest_rel}/{img.name}", "data", source=img))
        cap = img.with_suffix(ext)
        if cap.is_file():
            # Captions are copied, not hard-linked: the article edits them in the project ("from side", "from
            # behind"), and an editor that writes in place would change the user's original through the link.
            items.append(_Item(f"{dest_rel}/{cap.name}", "data", source=cap, copy=True))
        else:
            missing += 1
    if missing:
        warnings.append(
            f"{missing} of {len(images)} image(s) have no {ext} caption: sd-scripts will train them with the "
            "folder's class tokens only"
        )
    return items


def _generated_items(recipe: Recipe, root: Path, warnings: list[str]) -> list[_Item]:
    from kohya_recipe.render.config import config_toml
    from kohya_recipe.render.dataset import dataset_toml
    from kohya_recipe.render.prompts import render_prompts

    header = (
        "# The resolved recipe this project was rendered from (preset + recipe + --set).\n"
        "# Edit it and run `kohya-recipe render` (or `train`, which re-renders) to update the project.\n\n"
    )
    items = [
        _Item(RESOLVED_RECIPE, "generated", (header + recipe_to_toml(recipe)).encode()),
        _Item(CONFIG_FILE, "generated", config_toml(recipe).encode()),
        _Item(DATASET_FILE, "generated", dataset_toml(recipe).encode()),
        _Item("train.sh", "generated", _train_script(recipe).encode(), mode=0o755),
    ]
    if recipe.samples.prompts:
        items.append(_Item(PROMPTS_FILE, "generated", render_prompts(recipe).encode()))
    try:
        items.append(_gui_item(recipe, root))
    except GuiConfigError as exc:
        # sd-scripts can train it; only the GUI's widgets cannot hold a value. Say so, skip the JSON.
        warnings.append(f"no kohya_ss GUI JSON written: {exc}")
    return items


def _gui_item(recipe: Recipe, root: Path) -> _Item:
    """The kohya_ss GUI JSON for the project (``<output_name>.json``)."""
    from kohya_recipe.gui.render import gui_json_text, recipe_to_gui_json

    text = gui_json_text(recipe_to_gui_json(recipe, root))
    return _Item(f"{recipe.output.output_name}.json", "generated", text.encode())


def _has_trainer_images(folder: Path) -> bool:
    from kohya_recipe.dataset.images import is_trainer_image

    try:
        return any(p.is_file() and is_trainer_image(p) for p in folder.iterdir())
    except OSError:
        return False


def _read_manifest(root: Path) -> dict[str, str]:
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data.get("files", {})
        return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}
    except (OSError, ValueError):
        # A damaged manifest only means we treat every existing file as not ours: safe.
        return {}


def _same_recipe_file(path: Path, recipe: Recipe) -> bool:
    try:
        return recipe_from_dict(read_toml(path, error=RecipeError), source=str(path)) == recipe
    except RecipeError:
        return False


def _same_content(a: Path, b: Path) -> bool:
    try:
        if a.samefile(b):
            return True
        return a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)
    except OSError:
        return False


def render_project(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    force: bool = False,
    dry_run: bool = False,
    sync_images: bool = True,
    copy_images: bool = False,
) -> RenderResult:
    """Render ``recipe`` into ``out_dir``: folders, configs, prompts, GUI JSON and (from ``dataset.images``) the
    images and captions. Returns what was (or would be) written."""
    if not recipe.output.name:
        # Without a name every file would be called "-1-A..." (output_name = <name>-<major>-<letter>).
        raise RecipeError(
            "no output name: set subject.trigger (e.g. --trigger CharacterAI) or output.name", field="output.name"
        )
    root = Path(out_dir).absolute()
    result = RenderResult(root=root, recipe=recipe, dry_run=dry_run)
    result.command = display_command(recipe)
    folders = [IMG_DIR, f"{IMG_DIR}/{recipe.subset_folder_name}", LOG_DIR, MODEL_DIR]
    items = _generated_items(recipe, root, result.warnings)
    if sync_images and recipe.dataset.images:
        src = Path(recipe.dataset.images)
        dest = f"{IMG_DIR}/{recipe.subset_folder_name}"
        if not (root / dest).exists() or src.resolve() != (root / dest).resolve():
            items += _source_items(recipe, src, dest, result.warnings)
    elif sync_images and not _has_trainer_images(root / IMG_DIR / recipe.subset_folder_name):
        # sd-scripts logs "No data found" and exits 0 on an empty subset (reference/sd_scripts.md §4): say it now.
        result.warnings.append(
            f"dataset.images is unset and {IMG_DIR}/{recipe.subset_folder_name}/ holds no images: the trainer "
            "would find no data; set dataset.images (or use `kohya-recipe build IMAGES`) or put the images there"
        )
    if recipe.dataset.regularization:
        from kohya_recipe.render.dataset import reg_folder_name

        reg_rel = f"{REG_DIR}/{reg_folder_name(recipe)}"
        folders += [REG_DIR, reg_rel]
        if sync_images:
            items += _source_items(recipe, Path(recipe.dataset.regularization), reg_rel, result.warnings)

    manifest = _read_manifest(root)
    conflicts: list[str] = []
    todo: list[_Item] = []
    for item in items:
        target = root / item.rel
        if target.is_symlink() or target.is_dir():
            conflicts.append(item.rel)
            continue
        if not target.exists():
            todo.append(item)
            continue
        if item.kind == "data":
            assert item.source is not None
            if _same_content(item.source, target):
                result.unchanged.append(item.rel)
            elif force:
                todo.append(item)
            else:
                conflicts.append(item.rel)
            continue
        assert item.data is not None
        current = sha256_file(target)
        if current == sha256_bytes(item.data):
            result.unchanged.append(item.rel)
        elif item.rel == RESOLVED_RECIPE and _same_recipe_file(target, recipe):
            # The user's own edit of the resolved recipe is the source we render from: keep it, and own it.
            result.unchanged.append(item.rel)
            manifest[item.rel] = current
        elif manifest.get(item.rel) == current or force:
            todo.append(item)  # ours and untouched since, or the user said --force
        else:
            conflicts.append(item.rel)
    if conflicts:
        shown = ", ".join(conflicts[:3]) + (f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else "")
        raise RenderError(
            f"would overwrite {len(conflicts)} file(s) kohya-recipe did not write or that were changed since: "
            f"{shown} (use --force to overwrite)",
            source=str(root),
        )
    result.folders = [f for f in folders if not (root / f).is_dir()]
    result.written = [i.rel for i in todo]
    result.images = sum(
        1
        for i in items
        if i.kind == "data" and i.source is not None and i.source.suffix != recipe.dataset.caption_extension
    )
    result.captions = sum(
        1
        for i in items
        if i.kind == "data" and i.source is not None and i.source.suffix == recipe.dataset.caption_extension
    )
    if dry_run:
        return result
    _write(root, folders, todo, manifest, copy_images)
    write_facts(root, project_facts(recipe))
    return result


def project_facts(recipe: Recipe) -> ProjectFacts:
    """What later stages read about a project rendered from ``recipe`` (:mod:`kohya_recipe.layout`)."""
    from kohya_recipe.render.dataset import reg_folder_name

    tokens = " ".join(t for t in (recipe.subject.trigger, recipe.subject.class_token) if t)
    subsets = [SubsetFacts(f"{IMG_DIR}/{recipe.subset_folder_name}", recipe.dataset.repeats, tokens)]
    if recipe.dataset.regularization:
        reg = reg_folder_name(recipe)
        subsets.append(SubsetFacts(f"{REG_DIR}/{reg}", recipe.dataset.reg_repeats, recipe.subject.class_token, True))
    tr = recipe.training
    return ProjectFacts(
        output_name=recipe.output.output_name,
        trigger=recipe.subject.trigger,
        class_token=recipe.subject.class_token,
        family=recipe.model.family,
        script=recipe.script_name,
        caption_extension=recipe.dataset.caption_extension,
        max_train_epochs=tr.max_train_epochs,
        save_every_n_epochs=tr.save_every_n_epochs,
        subsets=tuple(subsets),
        sample_prompts=tuple(prompt_line(p) for p in recipe.samples.prompts),
        sampler=recipe.samples.sampler if recipe.samples.prompts else None,
        log_dir=LOG_DIR if tr.log_with else None,
        model_dir=MODEL_DIR,
    )


def _write(root: Path, folders: list[str], todo: list[_Item], manifest: dict[str, str], copy_images: bool) -> None:
    created_files: list[Path] = []
    created_dirs: list[Path] = []
    try:
        for rel in [".", *folders, STATE_DIR, RUNS_DIR]:
            d = root / rel
            missing = []
            p = d
            while not p.exists():
                missing.append(p)
                p = p.parent
            d.mkdir(parents=True, exist_ok=True)
            created_dirs += reversed(missing)
        for item in todo:
            target = root / item.rel
            target.parent.mkdir(parents=True, exist_ok=True)
            existed = target.exists()
            if item.kind == "generated":
                assert item.data is not None
                atomic_write_bytes(target, item.data)
                if item.mode is not None:
                    target.chmod(item.mode)
                manifest[item.rel] = sha256_bytes(item.data)
            else:
                assert item.source is not None
                _link_or_copy(item.source, target, copy_images or item.copy)
            if not existed:
                created_files.append(target)
        atomic_write_bytes(
            root / MANIFEST, (json.dumps({"version": 1, "files": manifest}, indent=2, sort_keys=True) + "\n").encode()
        )
    except OSError as exc:
        # Remove only what this call created; never anything that was there before.
        for f in reversed(created_files):
            f.unlink(missing_ok=True)
        for d in reversed(created_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        where = exc.filename or str(root)
        raise RenderError(f"cannot write: {exc.strerror or exc}", source=str(where)) from None


def _link_or_copy(source: Path, target: Path, copy_images: bool) -> None:
    """Hard-link the user's file into the project (no extra space, source untouched), else copy it."""
    tmp = target.with_name(f".{target.name}.kr-tmp")
    tmp.unlink(missing_ok=True)
    if not copy_images:
        try:
            os.link(source, tmp)
            os.replace(tmp, target)
            return
        except OSError:
            tmp.unlink(missing_ok=True)  # cross-device or unsupported: fall back to a copy
    shutil.copy2(source, tmp)
    os.replace(tmp, target)


# ----------------------------------------------------------------------------------------------------------------
# Build: a folder of images + preset + subject -> project


def build_project(
    images: str | Path,
    out_dir: str | Path,
    recipe: Recipe,
    *,
    force: bool = False,
    dry_run: bool = False,
    copy_images: bool = False,
) -> RenderResult:
    """Render ``recipe`` for the images in ``images`` into ``out_dir`` and attach the step plan."""
    src = Path(images)
    if not src.is_dir():
        raise DatasetError("image folder not found", source=str(src))
    data = recipe.model_dump()
    data["dataset"]["images"] = str(src.resolve())
    recipe = recipe_from_dict(data, source="recipe")
    result = render_project(recipe, out_dir, force=force, dry_run=dry_run, copy_images=copy_images)
    result.plan = plan_recipe(recipe)
    return result


def plan_recipe(recipe: Recipe, images: str | Path | None = None, *, source: str | None = None) -> Any:
    """The bucket-aware step plan for the recipe's images (``images`` overrides ``dataset.images``); ``source``
    names the recipe file in errors."""
    from kohya_recipe.dataset.plan import plan_from_recipe, subset_from_folder

    if images is None and not recipe.dataset.images:
        raise RecipeError("no image folder: set dataset.images or pass --images", source=source, field="dataset.images")
    folder = Path(images) if images is not None else Path(str(recipe.dataset.images))
    subsets = [subset_from_folder(folder, recipe.dataset.repeats, name=recipe.subset_folder_name)]
    if recipe.dataset.regularization:
        subsets.append(
            subset_from_folder(Path(recipe.dataset.regularization), recipe.dataset.reg_repeats, is_reg=True, name="reg")
        )
    return plan_from_recipe(recipe, subsets)


def plan_project(path: str | Path) -> Any:
    """The step plan of a rendered project (its own ``img/`` subset folder)."""
    project = load_project(path)
    return plan_recipe(project.recipe, project.subset_dir)
