"""A commented ``recipe.toml`` for people to edit (``kohya-recipe init``).

Each value is serialised with tomli-w (never templated); the comments come from the model's field descriptions,
so the file cannot drift from the recipe it documents. Unset values are written as commented-out lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kohya_recipe.errors import RenderError
from kohya_recipe.recipe.loading import apply_sets, deep_merge, recipe_from_dict, recipe_to_data
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


def write_recipe_file(
    path: Path,
    *,
    preset: str = "likeness-sd15",
    trigger: str = "",
    class_token: str | None = None,
    images: str | None = None,
    force: bool = False,
) -> Path:
    """Write a commented recipe from ``preset`` with the subject filled in; refuse to overwrite without ``force``."""
    from kohya_recipe.files import atomic_write_text
    from kohya_recipe.recipe.presets import load_preset

    if path.exists() and not force:
        raise RenderError("already exists (use --force to overwrite)", source=str(path))
    sets = [f"subject.trigger={json.dumps(trigger)}"]
    if class_token is not None:
        sets.append(f"subject.class_token={json.dumps(class_token)}")
    if images is not None:
        sets.append(f"dataset.images={json.dumps(str(Path(images).resolve()))}")
    data = apply_sets(deep_merge(load_preset(preset), {}), sets)
    recipe = recipe_from_dict(data, source=f"preset {preset}")
    if not path.parent.is_dir():
        raise RenderError("folder does not exist", source=str(path.parent))
    try:
        atomic_write_text(path, commented_recipe_toml(recipe, preset=preset))
    except OSError as exc:
        raise RenderError(f"cannot write: {exc.strerror}", source=str(path)) from None
    return path
