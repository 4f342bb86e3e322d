"""kohya-recipe: turn a proven LoRA recipe and a folder of images into a correct sd-scripts training run.

The library works without the CLI. The verbs are exported here and imported on first use, so that
``import kohya_recipe`` (and the CLI's start-up) stays cheap::

    import kohya_recipe as kr
    recipe = kr.load_recipe("recipe.toml")
    result = kr.build_project("my-images", "CharacterAI", recipe)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Recipe": "kohya_recipe.recipe",
    "load_recipe": "kohya_recipe.recipe",
    "recipe_from_dict": "kohya_recipe.recipe",
    "recipe_to_toml": "kohya_recipe.recipe",
    "recipe_warnings": "kohya_recipe.recipe",
    "list_presets": "kohya_recipe.presets",
    "load_preset": "kohya_recipe.presets",
    "render_config": "kohya_recipe.render_config",
    "render_dataset": "kohya_recipe.render_dataset",
    "render_prompts": "kohya_recipe.render_prompts",
    "render_project": "kohya_recipe.project",
    "build_project": "kohya_recipe.project",
    "load_project": "kohya_recipe.project",
    "plan_project": "kohya_recipe.project",
    "KohyaRecipeError": "kohya_recipe.errors",
    "ExitCode": "kohya_recipe.errors",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kohya_recipe' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
