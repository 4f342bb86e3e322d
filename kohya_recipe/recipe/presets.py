"""Recipe presets: partial recipes (``presets/*.toml``) layered under a user's recipe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kohya_recipe.errors import RecipeError
from kohya_recipe.resources import resource_dir


@dataclass(frozen=True)
class PresetInfo:
    name: str
    description: str
    path: Path


def presets_dir() -> Path:
    return resource_dir("presets")


def list_presets() -> list[PresetInfo]:
    """The bundled presets, sorted by name; the description is the file's first comment line."""
    out = []
    for path in sorted(presets_dir().glob("*.toml")):
        first = path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
        out.append(PresetInfo(path.stem, first.lstrip("# ").strip(), path))
    return out


def format_presets(presets: list[PresetInfo]) -> str:
    """One line per preset: its name and description."""
    width = max((len(p.name) for p in presets), default=0)
    return "\n".join(f"{p.name:<{width}}  {p.description}" for p in presets)


def load_preset(name: str) -> dict[str, Any]:
    """The raw data of preset ``name``; an unknown name is an error listing the known ones."""
    from kohya_recipe.files import read_toml
    from kohya_recipe.sdscripts.options import did_you_mean

    names = [p.name for p in list_presets()]
    if name not in names:
        raise RecipeError(
            f"unknown preset{did_you_mean(name, names)}; known presets: {', '.join(names)}", field="preset"
        )
    data = read_toml(presets_dir() / f"{name}.toml", error=RecipeError)
    data.pop("preset", None)
    return data
