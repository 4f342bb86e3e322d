"""Helpers for the recipe/render/project tests: small datasets made on the fly with Pillow."""

from __future__ import annotations

from pathlib import Path

from kohya_recipe.recipe.loading import apply_sets, recipe_from_dict
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.recipe.presets import load_preset

ARTICLE_CAPTION = "1girl, CharacterAI, dark skin, braided hair, earrings, 3D render, UHD, 4K"


def make_images(folder: Path, sizes: list[tuple[int, int]], caption: str = ARTICLE_CAPTION, ext: str = ".txt") -> Path:
    """PNG images of the given sizes with one caption each (names img00.png, img01.png, ...)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        Image.new("RGB", (w, h), (30 + i, 60, 90)).save(folder / f"img{i:02d}.png")
        (folder / f"img{i:02d}{ext}").write_text(caption + "\n", encoding="utf-8")
    return folder


def article_recipe(*sets: str, preset: str = "likeness-sd15") -> Recipe:
    return recipe_from_dict(apply_sets(load_preset(preset), ["subject.trigger=CharacterAI", *sets]), source="test")
