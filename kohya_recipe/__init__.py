"""kohya-recipe: turn a proven LoRA recipe and a folder of images into a correct sd-scripts training run.

The library works without the CLI. The verbs are exported here and imported on first use, so that
``import kohya_recipe`` (and the CLI's start-up) stays cheap::

    import kohya_recipe as kr
    recipe = kr.load_recipe("recipe.toml")
    result = kr.build_project("my-images", "CharacterAI", recipe)   # layout, configs, step plan
    findings = kr.check_dataset("CharacterAI")                       # dataset doctor
    record = kr.train_project("CharacterAI", sd_scripts="~/sd-scripts")
    report = kr.build_report("CharacterAI")                          # ranked epochs, picks
    scalars = kr.read_scalars("CharacterAI")                         # every logged scalar, a pandas DataFrame
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Recipe": "kohya_recipe.recipe.models",
    "load_recipe": "kohya_recipe.recipe.loading",
    "recipe_from_dict": "kohya_recipe.recipe.loading",
    "recipe_to_toml": "kohya_recipe.recipe.loading",
    "recipe_warnings": "kohya_recipe.recipe.advice",
    "list_presets": "kohya_recipe.recipe.presets",
    "load_preset": "kohya_recipe.recipe.presets",
    # (not render_config/render_dataset/render_prompts: importing a submodule sets the package attribute of the
    # same name to the module, which would shadow a lazily exported function)
    "config_toml": "kohya_recipe.render.config",
    "dataset_toml": "kohya_recipe.render.dataset",
    "render_project": "kohya_recipe.render.project",
    "build_project": "kohya_recipe.render.project",
    "load_project": "kohya_recipe.render.project",
    "plan_project": "kohya_recipe.render.project",
    "plan_recipe": "kohya_recipe.render.project",
    "make_plan": "kohya_recipe.dataset.plan",
    "format_plan": "kohya_recipe.dataset.plan",
    "import_gui_json": "kohya_recipe.gui.importer",
    "recipe_to_gui_json": "kohya_recipe.gui.render",
    "recipe_to_gui_preset": "kohya_recipe.gui.render",
    "write_gui_json": "kohya_recipe.gui.render",
    "validate_gui_values": "kohya_recipe.kohya_ss.fields",
    "check_dataset": "kohya_recipe.dataset.check",
    "load_rules": "kohya_recipe.dataset.rules",
    "init_captions": "kohya_recipe.dataset.caption_edits",
    "add_tags": "kohya_recipe.dataset.caption_edits",
    "remove_tags": "kohya_recipe.dataset.caption_edits",
    "set_caption": "kohya_recipe.dataset.caption_edits",
    "tag_stats": "kohya_recipe.dataset.tag_stats",
    "train_project": "kohya_recipe.train.run",
    "find_resume_state": "kohya_recipe.train.run",
    "build_launch": "kohya_recipe.train.launch",
    "doctor": "kohya_recipe.train.doctor",
    "expand_grid": "kohya_recipe.train.sweep",
    "write_sweep": "kohya_recipe.train.sweep",
    "load_sweep": "kohya_recipe.train.sweepfile",
    "add_to_queue": "kohya_recipe.train.queue_edit",
    "list_queue": "kohya_recipe.train.queue_edit",
    "remove_from_queue": "kohya_recipe.train.queue_edit",
    "run_queue": "kohya_recipe.train.runqueue",
    "read_log_dir": "kohya_recipe.report.events",
    "epoch_ranking": "kohya_recipe.report.ranking",
    "scan_checkpoints": "kohya_recipe.report.checkpoints",
    "read_metadata": "kohya_recipe.report.safetensors_meta",
    "build_report": "kohya_recipe.report.build",
    "read_scalars": "kohya_recipe.report.export",
    "render_html": "kohya_recipe.report.html",
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
