"""Spellings: the exact form an imported GUI file used for a value the recipe holds canonically.

``recipe.gui`` keeps them (``max_train_epochs = 0`` with ``epoch = 4`` instead of 4 and 4, the prompt text
without ``--w 512``). A spelling is used only while it still means the same as the recipe to the GUI and to
sd-scripts, so editing the recipe can never be undone by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from kohya_recipe.gui.form import effective_lrs, inert_extra_value, parse_resolution, textbox_prompts
from kohya_recipe.gui.mapping import (
    EXTRA_KEYS,
    LAYOUT_KEYS,
    NETWORK_FIELDS,
    RECIPE_FIELDS,
    SDXL_EXTRA_KEYS,
    active_network_keys,
)
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.recipe.sections import SamplePrompt
from kohya_recipe.sdscripts.options import option_specs


@dataclass
class Spellings:
    """Which ``recipe.gui`` spellings a render used, and which no longer mean what the recipe says."""

    used: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def _prompts_equal(text: str, prompts: list[SamplePrompt]) -> bool:
    parsed, lost = textbox_prompts(text)
    if lost or len(parsed) != len(prompts):
        return False
    try:
        return [SamplePrompt(**p) for p in parsed] == list(prompts)
    except ValidationError:
        return False


# A spelling of a recipe-owned key: (key) -> predicate(spelled value, canonical form) saying whether it means the
# same to the GUI and to sd-scripts.
def _is_num(a: Any) -> bool:
    return not isinstance(a, bool) and isinstance(a, (int, float))


def _same_number(a: Any, b: Any) -> bool:
    return _is_num(a) and a == b


def _spelling_ok(key: str, value: Any, form: dict[str, Any], recipe: Recipe, *, project: bool) -> bool:
    tr = recipe.training
    if key == "sample_prompts":
        return isinstance(value, str) and _prompts_equal(value, recipe.samples.prompts)
    if key == "max_resolution":
        return isinstance(value, str) and parse_resolution(value) == tuple(tr.resolution)
    if key == "max_train_epochs":
        # 0: the GUI computes the steps from `epoch` with its own formula (kohya_gui/lora_gui.py train_model),
        # which ignores partly filled buckets and multi-GPU: the same run only with one image per step, one
        # process and no reg images. A project's JSON must train what its config.toml trains, so there it is used
        # only in that case; a config rendered without a project keeps its own form.
        exact = (
            tr.batch_size * tr.gradient_accumulation_steps == 1
            and recipe.accelerate.num_processes == 1
            and not recipe.dataset.regularization
        )
        return (
            _same_number(value, 0)
            and form["epoch"] == tr.max_train_epochs
            and form["max_train_steps"] == 0
            and (exact or not project)
        )
    if key == "epoch":
        # With max_train_epochs set, sd-scripts overrides the steps the GUI computed from `epoch`.
        return _is_num(value) and value >= 1 and form["max_train_epochs"] == tr.max_train_epochs
    if key == "max_train_steps":
        return _is_num(value) and value >= 0 and form["max_train_epochs"] == tr.max_train_epochs
    if key == "noise_offset":
        return form["noise_offset_type"] == "Multires" and tr.noise_offset is None and _is_num(value)
    if key == "log_with":
        return value == "" and tr.log_with == "tensorboard" and bool(form["logging_dir"])
    if key == "caption_extension":
        # The GUI's "" writes no caption_extension: sd-scripts' default, ".caption".
        return value == "" and recipe.dataset.caption_extension == ".caption"
    if key == "lr_warmup":
        return _is_num(value) and 0 <= value <= 100 and form["lr_warmup_steps"] > 0
    if key in ("learning_rate", "text_encoder_lr", "unet_lr"):
        return False  # handled as a group in _lr_spelling
    if key in ("conv_dim", "conv_alpha", "unit", "factor") or key in NETWORK_FIELDS:
        return False  # handled with the network fields
    if key in EXTRA_KEYS or key in SDXL_EXTRA_KEYS:
        return _inert_extra(key, value, form, recipe)
    return False


def _inert_extra(key: str, value: Any, form: dict[str, Any], recipe: Recipe) -> bool:
    option = EXTRA_KEYS.get(key) or SDXL_EXTRA_KEYS[key]
    return option not in recipe.extra and inert_extra_value(key, value, form)


def apply_spellings(recipe: Recipe, form: dict[str, Any], *, project: bool) -> Spellings:
    result = Spellings()
    gui = recipe.gui
    lr_keys = ("learning_rate", "text_encoder_lr", "unet_lr")
    if any(k in gui for k in lr_keys):
        default_lr = float(option_specs()["learning_rate"].default)
        spelled = {k: gui.get(k, form[k]) for k in lr_keys}
        mine = effective_lrs(form["learning_rate"], form["text_encoder_lr"], form["unet_lr"], default_lr)
        theirs = None
        if all(_is_num(v) for v in spelled.values()):
            theirs = effective_lrs(spelled["learning_rate"], spelled["text_encoder_lr"], spelled["unet_lr"], default_lr)
        ok = theirs == mine
        if theirs is not None and recipe.optimizer.is_adafactor and recipe.optimizer.relative_step:
            # Relative-step Adafactor ignores every learning rate (sd-scripts sets them to None); only which
            # networks train still depends on them.
            ok = theirs.networks == mine.networks
        for k in lr_keys:
            if k in gui:
                if ok:
                    form[k] = gui[k]
                    result.used.append(k)
                else:
                    result.stale.append(k)
    lora_type = form["LoRA_type"]
    active = active_network_keys(lora_type)
    # max_train_epochs first: whether `epoch` and `max_train_steps` are inert depends on it.
    for key, value in sorted(gui.items(), key=lambda kv: kv[0] != "max_train_epochs"):
        if key in lr_keys or key in LAYOUT_KEYS or key not in form:
            continue
        if key in NETWORK_FIELDS or key in ("network_dim",):
            if key in active:
                result.stale.append(key)
            continue  # an inactive network field is a plain GUI-only value, already in the form
        if key not in RECIPE_FIELDS and key not in EXTRA_KEYS and key not in SDXL_EXTRA_KEYS:
            continue  # GUI-only: already applied
        if form[key] == value and type(form[key]) is type(value):
            continue
        if _spelling_ok(key, value, form, recipe, project=project):
            form[key] = value
            result.used.append(key)
        else:
            result.stale.append(key)
    return result
