"""Import a kohya_ss GUI LoRA JSON (any GUI version, full config or preset) into a recipe.

The importer does what the GUI does when it loads a file (``kohya_gui/lora_gui.py`` ``open_configuration``), and
says so: ``update_my_data``'s repairs, Gradio's coercions and the widget checks of the next Save/Train
(:mod:`kohya_recipe.gui.migrate`). Then everything the recipe models becomes recipe fields, other sd-scripts
options go to ``recipe.extra``, and other non-default GUI values (and a config's own folders and spellings) go to
``recipe.gui``, so rendering the recipe back gives the same GUI file (:mod:`kohya_recipe.gui.to_recipe`). Keys
the GUI does not know are reported (the GUI drops them silently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.errors import GuiConfigError, RenderError
from kohya_recipe.files import atomic_write_text, loads_toml, read_json
from kohya_recipe.gui.migrate import unknown_keys
from kohya_recipe.gui.to_recipe import FormImporter
from kohya_recipe.recipe.advice import recipe_warnings
from kohya_recipe.recipe.loading import recipe_from_dict, recipe_to_data, recipe_to_toml
from kohya_recipe.recipe.models import Recipe


@dataclass
class ImportResult:
    """A GUI config turned into a recipe, and what had to be done to get there."""

    recipe: Recipe
    source: str
    repairs: list[str] = field(default_factory=list)  # values changed: as the GUI does on load, or for the trainer
    unknown_keys: list[str] = field(default_factory=list)  # keys the GUI does not know (it ignores them)
    warnings: list[str] = field(default_factory=list)  # values that do not carry over exactly, and advice
    notes: list[str] = field(default_factory=list)  # how values were read: the length, a missing model, kept values


@dataclass
class RecipeImport:
    """What ``kohya-recipe import`` made of a GUI config: the recipe file (its text, and the data it holds), where
    it was written, and what to report. ``warnings`` ends with the values TOML cannot carry."""

    source: str
    recipe: dict[str, Any]  # the recipe as the TOML file holds it (no nulls: recipe_to_data)
    repairs: list[str]
    unknown_keys: list[str]
    warnings: list[str]
    notes: list[str]
    written: Path | None = None
    text: str = field(default="", metadata={"json": False})


# --------------------------------------------------------------------------------------------------------------
# Reading


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return kinds.get(type(value), "null")


def _refuse_non_finite(value: Any, source: str) -> None:
    """Python's json reads NaN and Infinity, which are not JSON numbers (and no GUI field can hold them)."""
    if isinstance(value, float) and not math.isfinite(value):
        name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        raise GuiConfigError(f"invalid JSON: {name} is not a JSON number", source=source)
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        _refuse_non_finite(child, source)


def read_gui_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path`` (read with :func:`kohya_recipe.files.read_json`: a regular file only, UTF-8, a
    byte-order mark dropped); anything else is one :class:`GuiConfigError` line naming the file."""
    p = Path(path)
    data = read_json(p, error=GuiConfigError)
    if not isinstance(data, dict):
        raise GuiConfigError(f"is {_json_kind(data)}, not a JSON object of GUI settings", source=str(p))
    _refuse_non_finite(data, str(p))
    return data


# --------------------------------------------------------------------------------------------------------------
# Importing


def import_gui_values(data: dict[str, Any], source: str = "gui.json", *, base_dir: Path | None = None) -> ImportResult:
    """Turn a GUI JSON mapping into a recipe (see the module docstring for what is repaired and kept)."""
    if not isinstance(data, dict):
        raise GuiConfigError("is not a JSON object of GUI settings", source=source)
    importer = FormImporter(data, source, base_dir)
    recipe = importer.build()
    warnings = importer.warnings + [w for w in recipe_warnings(recipe) if w not in importer.warnings]
    return ImportResult(recipe, source, importer.repairs, unknown_keys(data), warnings, importer.notes)


def import_gui_json(path: str | Path) -> ImportResult:
    """Read a kohya_ss GUI LoRA JSON (any version, full config or preset) and turn it into a recipe.

    Returns the recipe with what was repaired (as the GUI does on load), which keys the GUI does not know
    (reported, not silently dropped) and warnings for values that do not carry over exactly.
    """
    p = Path(path)
    data = read_gui_json(p)
    return import_gui_values(data, str(p), base_dir=p.parent)


def recipe_toml_text(result: ImportResult) -> tuple[str, list[str]]:
    """The imported recipe as TOML text (with a header naming the source), and a warning for every value that
    TOML cannot carry (a ``None`` where the recipe's default is something else is written as nothing)."""
    body = recipe_to_toml(result.recipe)
    header = (
        f"# Imported by kohya-recipe from the kohya_ss GUI config {Path(result.source).name}.\n"
        "# Values the recipe does not model are kept in [extra] (sd-scripts options) and [gui] (GUI-only).\n"
        + "".join(f"# {note}\n" for note in result.notes)
        + "\n"
    )
    again = recipe_from_dict(loads_toml(body, source=result.source, error=GuiConfigError), source=result.source)
    return header + body, _toml_losses(result.recipe, again)


def _toml_losses(recipe: Recipe, again: Recipe) -> list[str]:
    """One warning per value that reads back differently from the TOML text."""
    if again == recipe:
        return []
    warnings: list[str] = []
    before, after = recipe.model_dump(), again.model_dump()
    for section, values in before.items():
        if isinstance(values, dict) and isinstance(after.get(section), dict):
            for key, value in values.items():
                if after[section].get(key) != value:
                    said = after[section].get(key)
                    warnings.append(f"{section}.{key}: {value!r} cannot be written in TOML; the file says {said!r}")
    return warnings


def import_recipe_file(config: str | Path, out: str | Path | None = None, *, force: bool = False) -> RecipeImport:
    """Import the GUI config ``config`` as a recipe file: written to ``out`` (atomically; an existing file only
    with ``force``), or only returned as text when ``out`` is None."""
    result = import_gui_json(config)
    text, toml_warnings = recipe_toml_text(result)
    written = _write_new(Path(out), text, force=force) if out else None
    return RecipeImport(
        source=result.source,
        recipe=recipe_to_data(result.recipe),
        repairs=result.repairs,
        unknown_keys=result.unknown_keys,
        warnings=[*result.warnings, *toml_warnings],
        notes=result.notes,
        written=written,
        text=text,
    )


def _write_new(path: Path, text: str, *, force: bool) -> Path:
    if path.is_dir():
        raise RenderError("is a folder", source=str(path))
    if path.exists() and not force:
        raise RenderError("already exists (use --force to overwrite)", source=str(path))
    try:
        return atomic_write_text(path, text)
    except OSError as exc:
        raise RenderError(f"cannot write: {exc.strerror or exc}", source=str(path)) from None
