"""A commented ``recipe.toml`` for people to edit (``kohya-recipe init``).

Each value is serialised with tomli-w (never templated); the comments come from the model's field descriptions,
so the file cannot drift from the recipe it documents. Unset values are written as commented-out lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kohya_recipe.errors import RenderError
from kohya_recipe.recipe.advice import recipe_warnings
from kohya_recipe.recipe.loading import recipe_to_data, resolve_recipe
from kohya_recipe.recipe.models import Recipe


def _comment(text: str) -> list[str]:
    return [f"# {line}" if line else "#" for line in text.splitlines()]


def _value_line(key: str, value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({key: value}).strip()


def _section_lines(model: BaseModel, data: dict[str, Any], name: str) -> list[str]:
    lines = [f"[{name}]"]
    for key, info in type(model).model_fields.items():
        if info.description:
            lines += _comment(info.description)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("article"):
            lines += _comment(f"Article: {extra['article']}")
        if key in data:
            lines.append(_value_line(key, data[key]))
        else:
            lines.append(f"# {key} =   (unset)")
    return lines


def commented_recipe_toml(recipe: Recipe, *, preset: str | None = None) -> str:
    """The full recipe as TOML with a comment above every key."""
    import tomli_w

    data = recipe_to_data(recipe)
    out = [
        "# kohya-recipe recipe" + (f", started from preset {preset!r}" if preset else "") + ".",
        "# Every key is checked: a misspelled key is an error (sd-scripts itself would ignore it silently).",
        "# Reference: docs/recipe.md. Render with: kohya-recipe render recipe.toml --out <project>",
        "",
        _value_line("schema_version", data["schema_version"]),
        "",
    ]
    for name in Recipe.model_fields:
        sub = getattr(recipe, name)
        if not isinstance(sub, BaseModel):
            continue
        body = dict(data.get(name, {}))
        if name == "samples":
            prompts = body.pop("prompts", [])
            out += _section_lines(sub, body, name)
            out += ["", "# Sample prompts: {trigger} and {class} are replaced by the subject's words."]
            out.append(tomli_w.dumps({"samples": {"prompts": prompts}}).strip() if prompts else "# [[samples.prompts]]")
        else:
            out += _section_lines(sub, body, name)
        out.append("")
    out += _comment("Any other sd-scripts option, by its dest name; checked against the bundled option spec.")
    out.append(tomli_w.dumps({"extra": data.get("extra", {})}).strip() if data.get("extra") else "[extra]")
    out.append("")
    if data.get("gui"):
        out.append(tomli_w.dumps({"gui": data["gui"]}).strip())
        out.append("")
    return "\n".join(out)


@dataclass(frozen=True)
class WrittenRecipe:
    """A recipe file ``init`` wrote, and what the user should know about it."""

    path: Path
    warnings: list[str]


def write_recipe_file(
    path: Path,
    *,
    preset: str = "likeness-sd15",
    trigger: str = "",
    class_token: str | None = None,
    images: str | None = None,
    force: bool = False,
) -> WrittenRecipe:
    """Write a commented recipe from ``preset`` with the subject filled in; refuse to overwrite without ``force``.

    A symlink is never written through (a dangling one would create a file somewhere else), and an image folder
    that does not exist yet is written as given, with a warning.
    """
    from kohya_recipe.files import atomic_write_text

    if path.is_symlink():
        raise RenderError("is a symlink; give the real file name", source=str(path))
    if path.exists() and not force:
        raise RenderError("already exists (use --force to overwrite)", source=str(path))
    if not path.parent.is_dir():
        raise RenderError("folder does not exist", source=str(path.parent))
    recipe = resolve_recipe(preset=preset, trigger=trigger, class_token=class_token, images=images)
    warnings = recipe_warnings(recipe)
    if images is not None and not Path(images).is_dir():
        warnings.insert(0, f"dataset.images: {images} is not a folder (yet); create it before `render`")
    try:
        atomic_write_text(path, commented_recipe_toml(recipe, preset=preset))
    except OSError as exc:
        raise RenderError(f"cannot write: {exc.strerror}", source=str(path)) from None
    return WrittenRecipe(path, warnings)
