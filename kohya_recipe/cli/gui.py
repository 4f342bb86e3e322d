"""CLI adapter for kohya_ss GUI configs: ``kohya-recipe import``."""

from __future__ import annotations

import json
from pathlib import Path

import click


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
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the recipe here (default: print it).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing --output file.")
@click.option("--json", "as_json", is_flag=True, help="Print the recipe, repairs, unknown keys and warnings as JSON.")
def import_cmd(config: str, output: str | None, force: bool, as_json: bool) -> None:
    """Import a kohya_ss GUI JSON config into a recipe.

    Reads a LoRA-tab config or preset saved by any GUI version. It repairs what the GUI repairs when it loads
    a file (numbers stored as text, legacy keys, boolean xformers, LoCon) and lists each repair. It reports keys
    the GUI does not know, and warns about values that do not carry over exactly.
    """
    from kohya_recipe.gui.importer import import_gui_json, recipe_toml_text

    result = import_gui_json(config)
    text, toml_warnings = recipe_toml_text(result)
    written = None
    if output:
        written = _write(Path(output), text, force)
    if as_json:
        data = result.to_dict()
        data["warnings"] = [*data["warnings"], *toml_warnings]
        data["written"] = str(written) if written else None
        click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
        return
    if written is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"Wrote {written} from {config}")
    if result.repairs:
        click.echo("Repaired (as the GUI does when it loads the file):", err=True)
        for line in result.repairs:
            click.echo(f"  {line}", err=True)
    if result.unknown_keys:
        click.echo(f"Unknown keys (the GUI ignores them): {', '.join(result.unknown_keys)}", err=True)
    for line in [*result.warnings, *toml_warnings]:
        click.echo(f"Warning: {line}", err=True)


def _write(path: Path, text: str, force: bool) -> Path:
    from kohya_recipe.errors import RenderError
    from kohya_recipe.files import atomic_write_text

    if path.is_dir():
        raise RenderError("is a folder", source=str(path))
    if path.exists() and not force:
        raise RenderError("already exists (use --force to overwrite)", source=str(path))
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise RenderError(f"cannot write: {exc.strerror or exc}", source=str(path)) from None
    return path
