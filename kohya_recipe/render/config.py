"""The sd-scripts ``--config_file`` TOML, serialised from the recipe (never templated).

sd-scripts flattens every section of this file one level (``library/train_util.py read_config_from_file``), so section
names only help people read it; keys are argparse dest names with native TOML types. Paths are relative to the project
folder, which is the trainer's working directory.
"""

from __future__ import annotations

from typing import Any

from kohya_recipe.layout import CONFIG_FILE, LOG_DIR, MODEL_DIR, PROMPTS_FILE
from kohya_recipe.recipe.mapping import SDSCRIPTS_FIELDS
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.sdscripts.options import check_config, option_specs

# Project layout, relative to the project folder (the trainer's cwd).

# spec "source" (the sd-scripts function that adds the option) -> section name people recognise from
# sd-scripts' own example configs.
_SECTIONS = {
    "library/train_util.py:add_sd_models_arguments": "model_arguments",
    "library/train_util.py:add_dataset_arguments": "dataset_arguments",
    "library/train_util.py:add_training_arguments": "training_arguments",
    "library/train_util.py:add_optimizer_arguments": "optimizer_arguments",
    "train_network.py:setup_parser": "network_arguments",
}
_SECTION_ORDER = [
    "model_arguments",
    "network_arguments",
    "optimizer_arguments",
    "dataset_arguments",
    "training_arguments",
    "sample_prompt_arguments",
    "additional_arguments",
]


def _get(recipe: Recipe, path: str) -> Any:
    node: Any = recipe
    for part in path.split("."):
        node = getattr(node, part)
    return node


def config_values(recipe: Recipe) -> dict[str, Any]:
    """The flat ``dest -> value`` mapping the trainer will see (``None`` = not written = sd-scripts default)."""
    flat: dict[str, Any] = {}
    for dest, path in SDSCRIPTS_FIELDS.items():
        value = _get(recipe, path)
        if isinstance(value, tuple):
            value = list(value)
        flat[dest] = value
    opt, tr = recipe.optimizer, recipe.training
    # Adafactor in relative-step mode drops every learning rate and forces the adafactor scheduler
    # (library/train_util.py get_optimizer / get_scheduler_fix); writing
    # them would only mislead a reader of the file.
    if opt.is_adafactor and opt.relative_step:
        flat["learning_rate"] = flat["unet_lr"] = flat["text_encoder_lr"] = None
    # Flags are only written when on: a flag set true in TOML cannot be switched off from the command line.
    for dest, value in list(flat.items()):
        if value is False or value == [] or value == "":
            flat[dest] = None
    w, h = tr.resolution
    # `resolution` must be a TOML string: later code calls .split(",") on it (an int crashes).
    flat["resolution"] = f"{w},{h}"
    flat["v2"] = True if recipe.model.family == "sd2" else None
    flat["sdpa"] = True if tr.attention == "sdpa" else None
    flat["xformers"] = True if tr.attention == "xformers" else None
    flat["output_name"] = recipe.output.output_name
    flat["output_dir"] = MODEL_DIR
    flat["save_model_as"] = (
        "safetensors"  # the only format that carries ss_epoch metadata (train_network.py save_model)
    )
    flat["logging_dir"] = LOG_DIR if tr.log_with else None
    flat["sample_prompts"] = PROMPTS_FILE if recipe.samples.prompts else None
    # Always explicit: without max_train_epochs sd-scripts stops at its 1600-step default (--max_train_steps in
    # library/train_util.py add_training_arguments). A fixed step count replaces it (max_train_epochs would win).
    flat["max_train_epochs"] = tr.epoch_limit
    flat["mixed_precision"] = tr.mixed_precision
    flat["caption_extension"] = recipe.dataset.caption_extension
    flat["keep_tokens"] = recipe.augmentation.keep_tokens or None
    flat["lr_warmup_steps"] = opt.warmup_steps or None
    flat["validation_split"] = recipe.dataset.validation_split or None
    # 75 is the tokenizer's own length, what sd-scripts uses when the option is unset; its choices are only
    # None/150/225, so 75 is left out rather than written as a value the trainer's parser would refuse.
    if tr.max_token_length == 75:
        flat["max_token_length"] = None
    if not recipe.samples.prompts:
        for dest in ("sample_every_n_epochs", "sample_every_n_steps", "sample_at_first", "sample_sampler"):
            flat[dest] = None
    if recipe.samples.every_n_epochs is not None:
        flat["sample_every_n_steps"] = None  # sd-scripts: every_n_epochs wins; say only what takes effect
    flat.update(recipe.extra)
    return {k: v for k, v in flat.items() if v is not None}


def render_config(recipe: Recipe) -> dict[str, dict[str, Any]]:
    """The ``--config_file`` content as ``{section: {dest: value}}``, every key checked against the spec."""
    flat = config_values(recipe)
    sdxl = recipe.model.family == "sdxl"
    check_config(flat, sdxl=sdxl, source=CONFIG_FILE)
    specs = option_specs(sdxl)
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTION_ORDER}
    for dest, value in flat.items():
        source = specs[dest].source
        section = (
            "sample_prompt_arguments" if dest.startswith("sample_") else _SECTIONS.get(source, "additional_arguments")
        )
        sections[section][dest] = value
    return {name: dict(sorted(body.items())) for name, body in sections.items() if body}


def config_toml(recipe: Recipe) -> str:
    import tomli_w

    header = (
        f"# sd-scripts --config_file for {recipe.output.output_name}, written by kohya-recipe from "
        "resolved-recipe.toml.\n# sd-scripts flattens the sections; paths are relative to this folder.\n\n"
    )
    return header + tomli_w.dumps(render_config(recipe))
