"""CLI adapter for kohya_ss GUI configs: ``kohya-recipe import``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kohya_recipe.cli.options import force_option, json_option, out_option
from kohya_recipe.cli.output import echo_json, warn

if TYPE_CHECKING:
    from kohya_recipe.gui.importer import RecipeImport


@click.command(
    epilog="""\b
Examples:
  kohya-recipe import my-lora.json -o recipe.toml
  kohya-recipe import "presets/lora/SDXL - LoRA adafactor v1.0.json"   (recipe TOML on stdout)
  kohya-recipe import my-lora.json --json
  kohya-recipe import my-lora.json -o recipe.toml --force
"""
)
@click.argument("config", type=click.Path(dir_okay=False))
@out_option("Write the recipe here (default: print it).")
@force_option("Overwrite an existing --out file.")
@json_option
def import_cmd(config: str, out: str | None, force: bool, as_json: bool) -> None:
    """Import a kohya_ss GUI JSON config into a recipe.

    Reads a LoRA-tab config or preset saved by any GUI version. It repairs what the GUI repairs when it loads
    a file (numbers stored as text, legacy keys, boolean xformers, LoCon) and what the trainer would refuse
    (bucket_reso_steps 1), and lists each repair with its reason. Notes say how the training length and a
    missing base model were read (the recipe trains as long as the GUI would have). It reports keys the GUI does
    not know, and warns about values that do not carry over exactly.
    """
    from kohya_recipe.gui.importer import import_recipe_file

    result = import_recipe_file(config, out, force=force)
    if as_json:
        echo_json(result)
        return
    click.echo(result.text if result.written is None else f"Wrote {result.written} from {config}\n", nl=False)
    _report(result)


def _report(result: RecipeImport) -> None:
    """Repairs, notes, unknown keys and warnings, on stderr."""
    if result.repairs:
        click.echo("Repaired:", err=True)
        for line in result.repairs:
            click.echo(f"  {line}", err=True)
    if result.notes:
        click.echo("Notes:", err=True)
        for line in result.notes:
            click.echo(f"  {line}", err=True)
    if result.unknown_keys:
        click.echo(f"Unknown keys (the GUI ignores them): {', '.join(result.unknown_keys)}", err=True)
    warn(result.warnings)
