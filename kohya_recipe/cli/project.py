"""CLI adapters for recipes and projects: presets, init, plan, render, build."""

from __future__ import annotations

from pathlib import Path

import click

from kohya_recipe.cli.options import dry_run_option, force_option, json_option, out_option, set_option
from kohya_recipe.cli.output import emit, warn


@click.command(
    epilog="""\b
Examples:
  kohya-recipe presets
  kohya-recipe presets --json
"""
)
@json_option
def presets_cmd(as_json: bool) -> None:
    """List the bundled recipe presets."""
    from kohya_recipe.recipe.presets import format_presets, list_presets

    emit(list_presets(), as_json, format_presets)


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
@out_option("Recipe file to write.", default="recipe.toml")
@force_option("Overwrite an existing file.")
def init_cmd(preset: str, trigger: str, class_token: str | None, images: str | None, out: str, force: bool) -> None:
    """Write a commented recipe.toml from a preset."""
    from kohya_recipe.recipe.writer import write_recipe_file

    written = write_recipe_file(
        Path(out), preset=preset, trigger=trigger, class_token=class_token, images=images, force=force
    )
    click.echo(f"Wrote {written.path} from preset {preset}. Edit it, then: kohya-recipe render {out} --out <project>")
    warn(written.warnings)


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
@set_option
@json_option
def plan_cmd(target: str, images: str | None, sets: tuple[str, ...], as_json: bool) -> None:
    """Show the step plan and the bucket of every image.

    TARGET is a rendered project folder or a recipe file. The plan simulates sd-scripts' bucketing, so its
    total equals the trainer's own `total optimization steps`.
    """
    from kohya_recipe.dataset.plan import format_plan
    from kohya_recipe.render.project import plan_target

    emit(plan_target(target, images=images, sets=sets), as_json, format_plan)


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
@out_option("Project folder to render into.")
@set_option
@click.option(
    "--gui-json",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write only the kohya_ss GUI JSON config to this file.",
)
@click.option(
    "--preset-only", is_flag=True, help="With --gui-json: a shareable GUI preset (no folders, model, names, samples)."
)
@force_option()
@dry_run_option("Show what would be written; write nothing.")
@json_option
def render_cmd(
    recipe_file: str,
    out: str | None,
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
    from kohya_recipe.gui.render import gui_json_notes
    from kohya_recipe.recipe.advice import recipe_warnings
    from kohya_recipe.recipe.loading import load_recipe
    from kohya_recipe.render.project import format_render_result, render_project, write_gui_config

    recipe = load_recipe(recipe_file, sets)
    if gui_json:
        path = write_gui_config(
            recipe, gui_json, recipe_file=recipe_file, project=out, preset_only=preset_only, force=force
        )
        click.echo(f"Wrote {'GUI preset' if preset_only else 'GUI config'} {path}")
        click.echo("".join(f"  {note}\n" for note in gui_json_notes(recipe)), nl=False)
        return warn(recipe_warnings(recipe))
    if preset_only or not out:
        raise click.UsageError(
            "--preset-only goes with --gui-json" if preset_only else "give --out PROJECT (or --gui-json FILE)"
        )
    result = render_project(recipe, out, force=force, dry_run=dry_run, source=recipe_file)
    emit(result, as_json, format_render_result)
    warn([] if as_json else result.warnings)


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
@out_option("Project folder to create.", required=True)
@set_option
@click.option("--copy", "copy_images", is_flag=True, help="Copy images instead of hard-linking them.")
@force_option()
@dry_run_option("Show the plan and what would be written; write nothing.")
@json_option
def build_cmd(
    images: str,
    preset: str | None,
    recipe_file: str | None,
    trigger: str | None,
    class_token: str | None,
    out: str,
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
    from kohya_recipe.render.project import build_from_folder, format_render_result

    given = {"recipe_file": recipe_file, "preset": preset, "trigger": trigger, "class_token": class_token}
    result = build_from_folder(images, out, **given, sets=sets, force=force, dry_run=dry_run, copy_images=copy_images)
    emit(result, as_json, format_render_result)
    warn([] if as_json else result.warnings)
