"""A training project on disk: render a recipe into the folder layout and files sd-scripts needs.

The layout is :mod:`kohya_recipe.layout`'s. Writing never clobbers (:mod:`kohya_recipe.render.safewrite`): a file
the tool did not write (or wrote and the user changed since) is not overwritten without ``force``; every write is
atomic; if anything fails, only what this call created is removed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kohya_recipe.errors import DatasetError, GuiConfigError, RecipeError, RenderError
from kohya_recipe.files import read_toml
from kohya_recipe.layout import (
    CONFIG_FILE,
    DATASET_FILE,
    IMG_DIR,
    LOG_DIR,
    MODEL_DIR,
    PROMPTS_FILE,
    RESOLVED_RECIPE,
    RUNS_DIR,
    STATE_DIR,
    TRAIN_SCRIPT,
    ProjectFacts,
    write_facts,
)
from kohya_recipe.recipe.advice import recipe_warnings
from kohya_recipe.recipe.loading import recipe_from_dict, recipe_to_toml
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.render.prompts import prompt_line
from kohya_recipe.render.safewrite import Item, read_manifest, refuse_conflicts, sort_items, write_items
from kohya_recipe.sdscripts.folders import has_trainer_images


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
class RenderResult:
    """What a render did (or, with ``dry_run``, would do); its JSON form is what ``--json`` prints."""

    root: Path = field(metadata={"json": False})
    recipe: Recipe = field(metadata={"json": False})
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    images: int = 0
    captions: int = 0
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    command: list[str] = field(default_factory=list)
    plan: Any = None
    notes: list[str] = field(default_factory=list)  # how the inputs were read (e.g. kohya folders' repeats)

    __json_properties__: ClassVar[tuple[str, ...]] = ("project", "output_name", "command_cwd")

    @property
    def project(self) -> Path:
        return self.root

    @property
    def output_name(self) -> str:
        return self.recipe.output.output_name

    @property
    def command_cwd(self) -> Path:
        return self.root


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


def _source_items(recipe: Recipe, src: Path, dest_rel: str, warnings: list[str]) -> list[Item]:
    """Images sd-scripts would read from ``src`` and their captions, as data items under ``dest_rel``."""
    from kohya_recipe.dataset.images import looks_like_image
    from kohya_recipe.sdscripts.folders import is_trainer_image

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
    skipped = [p.name for p in entries if p.is_file() and looks_like_image(p) and not is_trainer_image(p)]
    if skipped:
        warnings.append(
            f"{len(skipped)} image(s) in {src} are not read by sd-scripts (mixed-case or unsupported extension), "
            f"e.g. {skipped[0]}; they are not copied — run `kohya-recipe check`"
        )
    items = []
    ext = recipe.dataset.caption_extension
    missing = 0
    for img in images:
        items.append(Item(f"{dest_rel}/{img.name}", "data", source=img))
        cap = img.with_suffix(ext)
        if cap.is_file():
            # Captions are copied, not hard-linked: the article edits them in the project ("from side", "from
            # behind"), and an editor that writes in place would change the user's original through the link.
            items.append(Item(f"{dest_rel}/{cap.name}", "data", source=cap, copy=True))
        else:
            missing += 1
    if missing:
        warnings.append(
            f"{missing} of {len(images)} image(s) have no {ext} caption: sd-scripts will train them with the "
            "folder's class tokens only"
        )
    return items


def _generated_items(recipe: Recipe, root: Path, warnings: list[str], notes: list[str]) -> list[Item]:
    from kohya_recipe.render.config import config_toml
    from kohya_recipe.render.dataset import dataset_toml
    from kohya_recipe.render.prompts import render_prompts

    header = (
        "# The resolved recipe this project was rendered from (preset + recipe + --set).\n"
        "# Edit it and run `kohya-recipe render` (or `train`, which re-renders) to update the project.\n\n"
    )
    items = [
        Item(RESOLVED_RECIPE, "generated", (header + recipe_to_toml(recipe)).encode()),
        Item(CONFIG_FILE, "generated", config_toml(recipe).encode()),
        Item(DATASET_FILE, "generated", dataset_toml(recipe).encode()),
        Item(TRAIN_SCRIPT, "generated", _train_script(recipe).encode(), mode=0o755),
    ]
    if recipe.samples.prompts:
        items.append(Item(PROMPTS_FILE, "generated", render_prompts(recipe).encode()))
    try:
        items.append(_gui_item(recipe, root, notes))
    except GuiConfigError as exc:
        # sd-scripts can train it; only the GUI's widgets cannot hold a value. Say so, skip the JSON.
        warnings.append(f"no kohya_ss GUI JSON written: {exc}")
    return items


def _gui_item(recipe: Recipe, root: Path, notes: list[str]) -> Item:
    """The kohya_ss GUI JSON for the project (``<output_name>.json``); ``notes`` gets what it does for the GUI."""
    from kohya_recipe.gui.render import gui_json_text, render_gui_form

    rendered = render_gui_form(recipe, root)
    notes += rendered.notes
    text = gui_json_text(dict(sorted(rendered.values.items())))
    return Item(f"{recipe.output.output_name}.json", "generated", text.encode())


def _same_recipe_file(item: Item, path: Path, recipe: Recipe) -> bool:
    """Whether ``path`` is the resolved recipe and, edited by the user, still means ``recipe``."""
    if item.rel != RESOLVED_RECIPE:
        return False
    try:
        return recipe_from_dict(read_toml(path, error=RecipeError), source=str(path)) == recipe
    except RecipeError:
        return False


def _project_items(recipe: Recipe, root: Path, sync_images: bool, result: RenderResult) -> tuple[list[str], list[Item]]:
    """The folders and files of the project ``recipe`` renders into ``root``."""
    folders = [IMG_DIR, LOG_DIR, MODEL_DIR]
    items = _generated_items(recipe, root, result.warnings, result.notes)
    for sub in recipe.train_subsets():
        parent = sub.folder.partition("/")[0]
        folders += [f for f in (parent, sub.folder) if f not in folders]
        if not sync_images:
            continue
        if sub.source:
            src = Path(sub.source)
            if not (root / sub.folder).exists() or src.resolve() != (root / sub.folder).resolve():
                items += _source_items(recipe, src, sub.folder, result.warnings)
        elif not has_trainer_images(root / sub.folder):
            # sd-scripts logs "No data found" and exits 0 on an empty dataset (train_network.py NetworkTrainer.train
            # checks len(train_dataset_group) == 0): say it now.
            result.warnings.append(
                f"dataset.images is unset and {sub.folder}/ holds no images: the trainer would find no data; set "
                "dataset.images (or use `kohya-recipe build IMAGES`) or put the images there"
            )
    return folders, items


def _count_data(items: list[Item], caption_extension: str) -> tuple[int, int]:
    data = [i.source for i in items if i.kind == "data" and i.source is not None]
    captions = sum(1 for s in data if s.suffix == caption_extension)
    return len(data) - captions, captions


def render_project(
    recipe: Recipe,
    out_dir: str | Path,
    *,
    force: bool = False,
    dry_run: bool = False,
    sync_images: bool = True,
    copy_images: bool = False,
    source: str | None = None,
) -> RenderResult:
    """Render ``recipe`` into ``out_dir``: folders, configs, prompts, GUI JSON and (from ``dataset.images``) the
    images and captions. Returns what was (or would be) written, with the recipe's warnings. ``source`` names the
    recipe file in errors."""
    if not recipe.output.name:
        # Without a name every file would be called "-1-A..." (output_name = <name>-<major>-<letter>).
        raise RecipeError(
            "no output name: set subject.trigger (e.g. --trigger CharacterAI) or output.name",
            source=source,
            field="output.name",
        )
    root = Path(out_dir).absolute()
    result = RenderResult(root=root, recipe=recipe, dry_run=dry_run, warnings=recipe_warnings(recipe))
    result.command = display_command(recipe)
    folders, items = _project_items(recipe, root, sync_images, result)
    manifest = read_manifest(root)
    ordered = sort_items(
        items, root, manifest, force=force, keep_edit=lambda item, path: _same_recipe_file(item, path, recipe)
    )
    refuse_conflicts(ordered.conflicts, root)
    result.unchanged = ordered.unchanged
    result.folders = [f for f in folders if not (root / f).is_dir()]
    result.written = [i.rel for i in ordered.todo]
    result.images, result.captions = _count_data(items, recipe.dataset.caption_extension)
    if not dry_run:
        write_items(root, [*folders, STATE_DIR, RUNS_DIR], ordered.todo, manifest, copy_images)
        write_facts(root, project_facts(recipe))
    return result


def project_facts(recipe: Recipe) -> ProjectFacts:
    """What later stages read about a project rendered from ``recipe`` (:mod:`kohya_recipe.layout`)."""
    tr = recipe.training
    return ProjectFacts(
        output_name=recipe.output.output_name,
        trigger=recipe.subject.trigger,
        class_token=recipe.subject.class_token,
        family=recipe.model.family,
        script=recipe.script_name,
        caption_extension=recipe.dataset.caption_extension,
        max_train_epochs=tr.epoch_limit,
        save_every_n_epochs=tr.save_every_n_epochs,
        subsets=tuple(s.facts() for s in recipe.train_subsets()),
        sample_prompts=tuple(prompt_line(p) for p in recipe.samples.prompts),
        sampler=recipe.samples.sampler if recipe.samples.prompts else None,
        purpose=recipe.subject.purpose,
        log_dir=LOG_DIR if tr.log_with else None,
        model_dir=MODEL_DIR,
    )


def kohya_subsets(folder: Path) -> list[dict[str, Any]] | None:
    """The subsets of a folder laid out the kohya way, or ``None`` for a plain folder of images.

    A ``train_data_dir`` (no images of its own, ``<repeats>_<class tokens>/`` sub-folders with images) gives one
    subset per sub-folder; a folder that holds images and is itself named ``<repeats>_<class tokens>`` gives
    itself, with its repeats. sd-scripts reads the names this way (``sdscripts.folders``).
    """
    from kohya_recipe.sdscripts.folders import parse_repeats_folder

    if has_trainer_images(folder):
        own = parse_repeats_folder(folder.name)
        return [_subset(folder, own.repeats, own.class_tokens)] if own.trained else None
    try:
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DatasetError(f"cannot list the image folder: {exc.strerror}", source=str(folder)) from None
    found = []
    for sub in subdirs:
        parsed = parse_repeats_folder(sub.name)
        if parsed.trained and has_trainer_images(sub):
            found.append(_subset(sub, parsed.repeats, parsed.class_tokens))
    return found or None


def _subset(folder: Path, repeats: int | None, tokens: str) -> dict[str, Any]:
    return {"images": str(folder.resolve()), "repeats": repeats, "class_tokens": tokens}


def build_project(
    images: str | Path,
    out_dir: str | Path,
    recipe: Recipe,
    *,
    force: bool = False,
    dry_run: bool = False,
    copy_images: bool = False,
    repeats_given: bool = False,
    prompts_given: bool = False,
) -> RenderResult:
    """Render ``recipe`` for the images in ``images`` into ``out_dir`` and attach the step plan.

    ``images`` is a folder of images, or a kohya folder (:func:`kohya_subsets`): then each subset keeps its own
    repeats and class tokens, unless ``repeats_given`` (the user set ``dataset.repeats``), which replaces the
    repeats of every subset. Unless ``prompts_given`` (the user set sample prompts), the sample prompts come from
    the images' captions when the preset's do not fit them (:mod:`kohya_recipe.render.sample_prompts`). The
    result's notes say what happened.
    """
    src = Path(images)
    if not src.is_dir():
        raise DatasetError("image folder not found", source=str(src))
    data = recipe.model_dump()
    found = kohya_subsets(src)
    notes: list[str] = []
    if found is None:
        data["dataset"]["images"] = str(src.resolve())
    else:
        data["dataset"].update(images=None, subsets=found)
        notes = _subset_notes(found, recipe.dataset.repeats, repeats_given)
    recipe = recipe_from_dict(data, source="recipe")
    if not prompts_given:
        recipe = _own_sample_prompts(recipe, data, notes)
    result = render_project(recipe, out_dir, force=force, dry_run=dry_run, copy_images=copy_images)
    result.notes = [*notes, *result.notes]
    result.plan = plan_recipe(recipe)
    return result


def _own_sample_prompts(recipe: Recipe, data: dict[str, Any], notes: list[str]) -> Recipe:
    """``recipe`` with sample prompts derived from its images' captions, when the preset's do not fit them."""
    from kohya_recipe.render.sample_prompts import choose_sample_prompts

    folders = [Path(s.source) for s in recipe.train_subsets() if s.source and not s.is_reg]
    choice = choose_sample_prompts(recipe, folders)
    if choice.source != "captions":
        notes.append(choice.reason)
        return recipe
    data["samples"]["prompts"] = choice.prompts
    try:
        derived = recipe_from_dict(data, source="sample prompts from the captions")
    except RecipeError as exc:
        notes.append(f"the preset's sample prompts are kept: the captions' would not do ({exc})")
        return recipe
    notes.append(choice.reason)
    return derived


def _subset_notes(found: list[dict[str, Any]], repeats: int, repeats_given: bool) -> list[str]:
    """Say where each subset's repeats come from (and apply ``repeats`` to all when the user gave it)."""
    folders = ", ".join(f"{s['repeats']}_{s['class_tokens']}" for s in found)
    if repeats_given:
        for s in found:
            s["repeats"] = repeats
        return [f"dataset.repeats = {repeats} (set by you) replaces the folders' own repeats ({folders})"]
    return [f"kept the repeats and class tokens of the kohya folder(s): {folders}"]


def _own_tables(recipe_file: str | Path | None) -> dict[str, Any]:
    """The user's own recipe file as written (no preset under it); empty without one."""
    return {} if recipe_file is None else read_toml(Path(recipe_file), error=RecipeError)


def user_sets(own: dict[str, Any], sets: list[str] | tuple[str, ...], section: str, key: str) -> bool:
    """Whether the user set ``section.key`` (in their own recipe file, ``own`` as read by :func:`_own_tables`, or a
    ``--set``), not just a preset."""
    from kohya_recipe.recipe.loading import resolve_set_key

    path = f"{section}.{key}"
    if any(resolve_set_key(item.partition("=")[0].strip()).startswith(path) for item in sets):
        return True
    table = own.get(section)
    return isinstance(table, dict) and key in table


def repeats_given(recipe_file: str | Path | None, sets: list[str] | tuple[str, ...]) -> bool:
    """Whether the user set ``dataset.repeats`` (in their recipe file or a ``--set``), not just a preset."""
    return user_sets(_own_tables(recipe_file), sets, "dataset", "repeats")


def build_from_folder(
    images: str | Path,
    out_dir: str | Path,
    *,
    recipe_file: str | Path | None = None,
    preset: str | None = None,
    trigger: str | None = None,
    class_token: str | None = None,
    sets: list[str] | tuple[str, ...] = (),
    force: bool = False,
    dry_run: bool = False,
    copy_images: bool = False,
) -> RenderResult:
    """``kohya-recipe build``: resolve the recipe (:func:`~kohya_recipe.recipe.loading.resolve_recipe`) and build
    the project for ``images`` (:func:`build_project`)."""
    from kohya_recipe.recipe.loading import resolve_recipe

    recipe = resolve_recipe(recipe_file, preset=preset, trigger=trigger, class_token=class_token, sets=sets)
    own = _own_tables(recipe_file)
    given = {
        "repeats_given": user_sets(own, sets, "dataset", "repeats"),
        "prompts_given": user_sets(own, sets, "samples", "prompts"),
    }
    opts = {"force": force, "dry_run": dry_run, "copy_images": copy_images}
    return build_project(images, out_dir, recipe, **given, **opts)


def plan_recipe(
    recipe: Recipe, images: str | Path | None = None, *, source: str | None = None, root: Path | None = None
) -> Any:
    """The bucket-aware step plan for the recipe's images: each subset read from its source folder, or from the
    project at ``root``; ``images`` stands in for a one-folder recipe's ``dataset.images``. ``source`` names the
    recipe file in errors."""
    from kohya_recipe.dataset.plan import plan_from_recipe, subset_from_folder

    subsets = []
    for sub in recipe.train_subsets():
        given = images if images is not None and not sub.is_reg and not recipe.dataset.subsets else None
        folder = Path(given) if given else (root / sub.folder if root is not None else None)
        if folder is None and sub.source:
            folder = Path(sub.source)
        if folder is None:
            raise RecipeError(
                "no image folder: set dataset.images or pass --images", source=source, field="dataset.images"
            )
        name = "reg" if sub.is_reg else sub.folder.rpartition("/")[2]
        subsets.append(subset_from_folder(folder, sub.repeats, is_reg=sub.is_reg, name=name))
    return plan_from_recipe(recipe, subsets)


def plan_project(path: str | Path) -> Any:
    """The step plan of a rendered project (its own subset folders)."""
    project = load_project(path)
    return plan_recipe(project.recipe, root=project.root)


def plan_target(target: str | Path, *, images: str | Path | None = None, sets: list[str] | tuple[str, ...] = ()) -> Any:
    """The step plan of ``target``: a rendered project (its ``img/`` subset unless ``images``) or a recipe file
    (whose warnings join the plan's findings). ``sets`` override the recipe either way."""
    from dataclasses import replace

    from kohya_recipe.dataset.plan import PlanWarning
    from kohya_recipe.recipe.loading import apply_sets, load_recipe

    path = Path(target)
    if path.is_dir():
        project = load_project(path)
        recipe = project.recipe
        if sets:
            data = apply_sets(recipe.model_dump(), sets)
            recipe = recipe_from_dict(data, source=str(project.resolved_recipe_file))
        return plan_recipe(recipe, images, root=project.root)
    recipe = load_recipe(path, sets)
    plan = plan_recipe(recipe, images, source=str(path))
    advice = tuple(PlanWarning("recipe", w) for w in recipe_warnings(recipe))
    return replace(plan, warnings=(*advice, *plan.warnings)) if advice else plan


def write_gui_config(
    recipe: Recipe,
    path: str | Path,
    *,
    recipe_file: str | Path | None = None,
    project: str | Path | None = None,
    preset_only: bool = False,
    force: bool = False,
) -> Path:
    """Write only the kohya_ss GUI JSON of ``recipe`` to ``path``.

    Its folders point at ``project``; without one, an imported recipe keeps the folders and name its GUI config had
    (its ``[gui]`` table holds them), and any other recipe uses the recipe file's folder.
    """
    from kohya_recipe.gui.mapping import LAYOUT_KEYS
    from kohya_recipe.gui.render import write_gui_json

    if project is not None:
        project_dir: Path | None = Path(project)
    elif any(key in recipe.gui for key in LAYOUT_KEYS) or recipe_file is None:
        project_dir = None
    else:
        project_dir = Path(recipe_file).parent
    return write_gui_json(recipe, project_dir, Path(path), preset_only=preset_only, force=force)


def format_render_result(result: RenderResult) -> str:
    """What ``render``/``build`` print: what was written, the step plan, how to train, warnings last."""
    from kohya_recipe.dataset.plan import format_plan

    root = result.root
    prefix = "Would write" if result.dry_run else "Wrote"
    out = [
        f"{prefix} {len(result.written)} file(s) in {root} ({len(result.unchanged)} unchanged).",
        f"  output name: {result.output_name}",
        *(f"  {note}" for note in result.notes),
        *(f"  sample prompt: {prompt_line(p)}" for p in result.recipe.samples.prompts),
    ]
    if result.dry_run:
        out += [f"  mkdir {rel}/" for rel in result.folders]
        out += [f"  write {rel}" for rel in result.written]
    if result.images:
        folders = ", ".join(f"{s.folder}/" for s in result.recipe.train_subsets() if s.source)
        out.append(f"  {result.images} image(s), {result.captions} caption(s) in {folders}")
    if result.plan is not None:
        out += ["", format_plan(result.plan).rstrip("\n")]
    out += [
        "",
        "Train it with:",
        f"  kohya-recipe train {shlex.quote(str(root))}",
        "or run sd-scripts yourself:",
        f"  cd {shlex.quote(str(root))} && {shlex.join(result.command)}",
    ]
    return "\n".join(out)
