"""CLI adapters for recipes and projects: presets, init, plan, render, build."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click

from kohya_recipe.cli.output import jsonable
from kohya_recipe.errors import RecipeError, RenderError

SET_HELP = "Override a recipe value: dotted key or sd-scripts option name, e.g. network.alpha=48 or network_alpha=48."


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(jsonable(data), indent=2, sort_keys=True, default=str))


def _warn(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"Warning: {line}", err=True)


@click.command(
    epilog="""\b
Examples:
  kohya-recipe presets
  kohya-recipe presets --json
"""
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def presets_cmd(as_json: bool) -> None:
    """List the bundled recipe presets."""
    from kohya_recipe.recipe.presets import list_presets

    items = list_presets()
    if as_json:
        _echo_json([{"name": p.name, "description": p.description, "path": str(p.path)} for p in items])
        return
    width = max(len(p.name) for p in items)
    for p in items:
        click.echo(f"{p.name:<{width}}  {p.description}")


@click.command(
    epilog="""\b
Examples:
  kohya-recipe init --trigger CharacterAI --class woman --images ./my-images
  kohya-recipe init --preset likeness-sdxl -o sdxl.toml
"""
)
@click.option("--preset", default="likeness-sd15", show_default=True, help="Preset to start from.")
@click.option("--trigger", default="", help="Trigger word (subject.trigger).")
@click.option("--class", "class_token", default=None, help="Class token (subject.class_token).")
@click.option("--images", type=click.Path(file_okay=False), default=None, help="Image folder (dataset.images).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="recipe.toml", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init_cmd(preset: str, trigger: str, class_token: str | None, images: str | None, output: str, force: bool) -> None:
    """Write a commented recipe.toml from a preset."""
    from kohya_recipe.recipe.writer import write_recipe_file

    path = write_recipe_file(
        Path(output), preset=preset, trigger=trigger, class_token=class_token, images=images, force=force
    )
    click.echo(f"Wrote {path} from preset {preset}. Edit it, then: kohya-recipe render {path} --out <project>")


def _load(recipe_path: str, sets: tuple[str, ...]) -> Any:
    from kohya_recipe.recipe.advice import recipe_warnings
    from kohya_recipe.recipe.loading import load_recipe

    recipe = load_recipe(recipe_path, sets)
    _warn(recipe_warnings(recipe))
    return recipe


@click.command(
    epilog="""\b
Examples:
  kohya-recipe plan ./CharacterAI                  # a rendered project
  kohya-recipe plan recipe.toml --images ./my-images
  kohya-recipe plan recipe.toml --set training.max_train_epochs=10 --json
"""
)
@click.argument("target", type=click.Path(exists=True))
@click.option(
    "--images", type=click.Path(file_okay=False), default=None, help="Image folder (overrides dataset.images)."
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plan_cmd(target: str, images: str | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Show the step plan and the bucket of every image.

    TARGET is a rendered project folder or a recipe file. The plan simulates sd-scripts' bucketing, so its
    total equals the trainer's own `total optimization steps`.
    """
    from kohya_recipe.dataset.plan import format_plan
    from kohya_recipe.render.project import load_project, plan_recipe

    path = Path(target)
    if path.is_dir():
        project = load_project(path)
        recipe = project.recipe
        if sets:
            from kohya_recipe.recipe.loading import apply_sets, recipe_from_dict

            recipe = recipe_from_dict(apply_sets(recipe.model_dump(), sets), source=str(project.resolved_recipe_file))
        plan = plan_recipe(recipe, images or project.subset_dir)
    else:
        plan = plan_recipe(_load(target, sets), images, source=target)
    if as_json:
        _echo_json(plan)
        return
    click.echo(format_plan(plan))  # includes the plan's findings


def _print_result(result: Any, verb: str) -> None:
    root = result.root
    prefix = "Would write" if result.dry_run else "Wrote"
    click.echo(f"{prefix} {len(result.written)} file(s) in {root} ({len(result.unchanged)} unchanged).")
    if result.dry_run:
        for rel in result.folders:
            click.echo(f"  mkdir {rel}/")
        for rel in result.written:
            click.echo(f"  write {rel}")
    if result.images:
        click.echo(
            f"  {result.images} image(s), {result.captions} caption(s) in img/{result.recipe.subset_folder_name}/"
        )
    if result.plan is not None:
        from kohya_recipe.dataset.plan import format_plan

        click.echo("")
        click.echo(format_plan(result.plan))
    click.echo("")
    click.echo("Train it with:")
    click.echo(f"  kohya-recipe train {shlex.quote(str(root))}")
    click.echo("or run sd-scripts yourself:")
    click.echo(f"  cd {shlex.quote(str(root))} && {shlex.join(result.command)}")
    _warn(result.warnings)


@click.command(
    epilog="""\b
Examples:
  kohya-recipe render recipe.toml --out ./CharacterAI
  kohya-recipe render recipe.toml --out ./CharacterAI --dry-run
  kohya-recipe render recipe.toml --out ./CharacterAI --set output.letter=B --force
  kohya-recipe render recipe.toml --gui-json CharacterAI.json
  kohya-recipe render recipe.toml --gui-json my-preset.json --preset-only
"""
)
@click.argument("recipe_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Project folder to render into.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "--gui-json",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write only the kohya_ss GUI JSON config to this file.",
)
@click.option(
    "--preset-only", is_flag=True, help="With --gui-json: a shareable GUI preset (no folders, model, names, samples)."
)
@click.option("--force", is_flag=True, help="Overwrite files kohya-recipe did not write.")
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def render_cmd(
    recipe_file: str,
    out_dir: str | None,
    sets: tuple[str, ...],
    gui_json: str | None,
    preset_only: bool,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Render the trainer's config files from a recipe.

    Writes resolved-recipe.toml, config.toml (--config_file), dataset.toml (--dataset_config),
    sample-prompts.txt, train.sh, the kohya_ss GUI JSON and the img/log/model layout, linking the images of
    dataset.images into img/<repeats>_<trigger> <class>/.
    """
    recipe = _load(recipe_file, sets)
    if gui_json:
        from kohya_recipe.gui.render import LAYOUT_KEYS, write_gui_json

        # Without --out, an imported recipe keeps the folders and name its GUI config had ([gui] holds them);
        # otherwise the project is the recipe's folder.
        keeps_layout = any(key in recipe.gui for key in LAYOUT_KEYS)
        project_dir = Path(out_dir) if out_dir else (None if keeps_layout else Path(recipe_file).parent)
        path = write_gui_json(recipe, project_dir, Path(gui_json), preset_only=preset_only, force=force)
        click.echo(f"Wrote {'GUI preset' if preset_only else 'GUI config'} {path}")
        return
    if preset_only:
        raise RecipeError("--preset-only goes with --gui-json")
    if not out_dir:
        raise RenderError("give --out PROJECT (or --gui-json FILE)")
    from kohya_recipe.render.project import render_project

    result = render_project(recipe, out_dir, force=force, dry_run=dry_run)
    if as_json:
        _echo_json(result.to_dict())
        return
    _print_result(result, "render")


@click.command(
    epilog="""\b
Examples:
  kohya-recipe build ./my-images --preset likeness-sd15 --trigger CharacterAI --class woman --out ./CharacterAI
  kohya-recipe build ./my-images --recipe recipe.toml --out ./CharacterAI-1-B --set output.letter=B
  kohya-recipe build ./my-images --trigger CharacterAI --out ./CharacterAI --dry-run
"""
)
@click.argument("images", type=click.Path(file_okay=False))
@click.option(
    "--preset", default=None, help="Preset to layer under the recipe (default: likeness-sd15 without --recipe)."
)
@click.option(
    "--recipe",
    "recipe_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A recipe file to start from.",
)
@click.option("--trigger", default=None, help="Trigger word (subject.trigger).")
@click.option("--class", "class_token", default=None, help="Class token (subject.class_token).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Project folder to create.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--copy", "copy_images", is_flag=True, help="Copy images instead of hard-linking them.")
@click.option("--force", is_flag=True, help="Overwrite files kohya-recipe did not write.")
@click.option("--dry-run", is_flag=True, help="Show the plan and what would be written; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def build_cmd(
    images: str,
    preset: str | None,
    recipe_file: str | None,
    trigger: str | None,
    class_token: str | None,
    out_dir: str,
    sets: tuple[str, ...],
    copy_images: bool,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Build a ready training project from a folder of images.

    Writes the folder layout, the sd-scripts configs, the sample-prompt file and the resolved recipe, prints
    the step plan and the exact command that would train it. Images are hard-linked (or copied), never moved.
    """
    from kohya_recipe.recipe.advice import recipe_warnings
    from kohya_recipe.recipe.loading import absolute_paths, apply_sets, deep_merge, load_recipe_data, recipe_from_dict
    from kohya_recipe.render.project import build_project

    extra_sets = [f"subject.trigger={json.dumps(trigger)}"] if trigger is not None else []
    if class_token is not None:
        extra_sets.append(f"subject.class_token={json.dumps(class_token)}")
    if recipe_file:
        data = load_recipe_data(Path(recipe_file), (), preset=preset)
        source = recipe_file
    else:
        from kohya_recipe.recipe.presets import load_preset

        name = preset or "likeness-sd15"
        data = deep_merge(load_preset(name), {"preset": name})
        source = f"preset {name}"
    data = apply_sets(data, [*extra_sets, *sets])
    # A --set path is typed relative to the current folder; the trainer runs in the project folder.
    absolute_paths(data, Path.cwd())
    recipe = recipe_from_dict(data, source=source)
    _warn(recipe_warnings(recipe))
    result = build_project(images, out_dir, recipe, force=force, dry_run=dry_run, copy_images=copy_images)
    if as_json:
        _echo_json(result.to_dict())
        return
    _print_result(result, "build")
