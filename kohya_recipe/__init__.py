"""kohya-recipe: turn a proven LoRA recipe and a folder of images into a correct sd-scripts training run.

The library works without the CLI. The verbs are exported here and imported on first use, so that
``import kohya_recipe`` (and the CLI's start-up) stays cheap::

    import kohya_recipe as kr
    recipe = kr.load_recipe("recipe.toml")
    result = kr.build_project("my-images", "CharacterAI", recipe)   # layout, configs, step plan
    findings = kr.check_dataset("CharacterAI")                       # dataset doctor
    record = kr.train_project("CharacterAI", sd_scripts="~/sd-scripts")
    report = kr.build_report("CharacterAI")                          # ranked epochs, picks
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
    # (not render_config/render_dataset/render_prompts: importing a submodule sets the package attribute of the
    # same name to the module, which would shadow a lazily exported function)
    "config_toml": "kohya_recipe.render_config",
    "dataset_toml": "kohya_recipe.render_dataset",
    "render_project": "kohya_recipe.project",
    "build_project": "kohya_recipe.project",
    "load_project": "kohya_recipe.project",
    "plan_project": "kohya_recipe.project",
    "plan_recipe": "kohya_recipe.project",
    "make_plan": "kohya_recipe.plan",
    "format_plan": "kohya_recipe.plan",
    "import_gui_json": "kohya_recipe.gui_import",
    "recipe_to_gui_json": "kohya_recipe.gui_render",
    "recipe_to_gui_preset": "kohya_recipe.gui_render",
    "write_gui_json": "kohya_recipe.gui_render",
    "validate_gui_values": "kohya_recipe.gui_fields",
    "check_dataset": "kohya_recipe.dataset_check",
    "load_rules": "kohya_recipe.dataset_check",
    "init_captions": "kohya_recipe.captions",
    "add_tags": "kohya_recipe.captions",
    "remove_tags": "kohya_recipe.captions",
    "set_caption": "kohya_recipe.captions",
    "tag_stats": "kohya_recipe.captions",
    "train_project": "kohya_recipe.train",
    "find_resume_state": "kohya_recipe.train",
    "build_launch": "kohya_recipe.launch",
    "doctor": "kohya_recipe.sdscripts_doctor",
    "expand_grid": "kohya_recipe.sweep",
    "write_sweep": "kohya_recipe.sweep",
    "load_sweep": "kohya_recipe.sweep",
    "add_to_queue": "kohya_recipe.queue",
    "list_queue": "kohya_recipe.queue",
    "remove_from_queue": "kohya_recipe.queue",
    "run_queue": "kohya_recipe.queue",
    "read_log_dir": "kohya_recipe.events",
    "epoch_ranking": "kohya_recipe.ranking",
    "scan_checkpoints": "kohya_recipe.checkpoints",
    "read_metadata": "kohya_recipe.safetensors_meta",
    "build_report": "kohya_recipe.report",
    "render_html": "kohya_recipe.report",
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
