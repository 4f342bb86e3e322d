"""What the kohya_ss GUI does with a config file it loads, each step reported as one sentence.

1. ``kohya_gui/common_gui.py`` ``update_my_data``'s repairs: numbers stored as strings become numbers
   (unparseable ones fall back to 0, 1, 75 or 1.0 as in the GUI), ``LoCon`` becomes ``LyCORIS/LoCon``, a boolean
   ``xformers`` becomes ``"xformers"``/``"none"``, ``use_wandb`` becomes ``log_with``, ``lora_network_weights``
   becomes ``network_weights``, an unknown ``save_model_as`` becomes ``safetensors``, a missing ``optimizer``
   becomes ``AdamW`` (``AdamW8bit`` with ``use_8bit_adam``).
2. Gradio's own coercions when the values reach the widgets: a Checkbox applies ``bool()``, a Textbox ``str()``,
   a precision-0 Number ``int(round())``. Where Gradio would crash (a string in a precision-0 Number) or silently
   turn a value into its opposite (the string ``"false"`` in a Checkbox is true), loading stops with one line
   naming the file, the key and the reason.
3. The widget checks the GUI makes on the next Save/Train (:func:`kohya_recipe.kohya_ss.fields.
   validate_gui_values`): a value outside a dropdown's choices or a number outside its range is an error quoting
   the GUI's own sentence, except where older GUIs accepted a value that sd-scripts still trains, which is kept
   and noted (the GUI JSON kohya-recipe writes carries it on the command line, :mod:`kohya_recipe.gui.carry`): a
   ``caption_extension`` from the days it was a free text box (``.txt2``, ``.none-use-foldername``), a
   ``bucket_reso_steps`` above the slider (256), a ``network_dim``/``conv_dim`` above the slider. An
   ``optimizer_args``/``lr_scheduler_args`` saved in its command-line form (``--optimizer_args "a=1" "b=2"``)
   is repaired. Model families kohya-recipe does not train are refused here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kohya_recipe.errors import GuiConfigError
from kohya_recipe.gui.form import gui_split
from kohya_recipe.gui.mapping import FAMILY_FLAGS, LEGACY_LORA_TYPES, RANKLESS_LORA_TYPES, UNSUPPORTED_LORA_TYPES
from kohya_recipe.kohya_ss.fields import (
    GuiField,
    GuiProblem,
    args_problem,
    args_refusal,
    describe,
    gui_field,
    gui_fields,
    gui_refusal,
    lora_types,
    unknown_gui_keys,
    validate_gui_values,
)

# update_my_data's coercions: key -> the value it uses when int()/float() of the file's value fails.
_INT_KEYS = (
    "clip_skip",
    "epoch",
    "gradient_accumulation_steps",
    "keep_tokens",
    "lr_warmup",
    "max_data_loader_n_workers",
    "max_train_epochs",
    "save_every_n_epochs",
    "seed",
    "max_train_steps",
    "caption_dropout_every_n_epochs",
)
INT_COERCED = dict.fromkeys(_INT_KEYS, 0) | {"lr_scheduler_num_cycles": 1, "max_token_length": 75}
_FLOAT_KEYS = ("adaptive_noise_scale", "noise_offset", "learning_rate", "text_encoder_lr", "unet_lr")
FLOAT_COERCED = dict.fromkeys(_FLOAT_KEYS, 0.0) | {"lr_scheduler_power": 1.0}

# Written by the GUI's own 💾 button (the exclusion list misses it) and ignored on load: not "unknown".
IGNORED_KNOWN_KEYS = frozenset({"save_as_bool"})

# Slider values above the maximum that sd-scripts trains: kept, and carried past the GUI on the command line.
KEPT_ABOVE_MAXIMUM = frozenset({"network_dim", "conv_dim", "bucket_reso_steps"})
# The args fields the GUI checks with validate_args_setting (key=value words).
ARGS_KEYS = ("optimizer_args", "lr_scheduler_args")


@dataclass
class LoadedConfig:
    """A GUI config as the GUI holds it once loaded, and what loading it took."""

    values: dict[str, Any]
    repairs: list[str] = field(default_factory=list)  # what the GUI itself changes on load, or we must
    warnings: list[str] = field(default_factory=list)  # values it accepts that do not do what they say
    notes: list[str] = field(default_factory=list)  # values kept although the current GUI refuses them


def load_gui_values(data: dict[str, Any], source: str = "gui.json") -> LoadedConfig:
    """``data`` as the GUI holds it after loading (steps 1 to 3 of the module docstring), on a copy."""
    values, repairs = migrate_gui_values(data, source)
    loaded = LoadedConfig(values, repairs)
    accept_gui_values(loaded, source)
    return loaded


# --------------------------------------------------------------------------------------------------------------
# 1 and 2: update_my_data and Gradio's postprocess


def migrate_gui_values(data: dict[str, Any], source: str = "gui.json") -> tuple[dict[str, Any], list[str]]:
    """Apply the GUI's load-time repairs (``update_my_data`` and Gradio's postprocess) to a copy of ``data``.

    Returns the repaired mapping and one sentence per repair. A value the GUI would crash on raises
    :class:`GuiConfigError`.
    """
    d = dict(data)
    repairs: list[str] = []
    for step in _LOAD_STEPS:
        repairs += step(d, source)
    return d, repairs


def _fail(source: str, key: str, why: str) -> GuiConfigError:
    return GuiConfigError(why, source=source, field=key)


def _default_optimizer(d: dict[str, Any], source: str) -> list[str]:
    repairs = []
    if "optimizer" not in d:
        d["optimizer"] = "AdamW8bit" if d.get("use_8bit_adam") else "AdamW"
        why = "use_8bit_adam is set" if d.get("use_8bit_adam") else "the GUI's fallback"
        repairs.append(f"optimizer: missing, set to {d['optimizer']!r} ({why})")
    if "use_8bit_adam" in d:
        d.pop("use_8bit_adam")
        repairs.append("use_8bit_adam: legacy key, replaced by optimizer")
    return repairs


def _gui_int(value: Any) -> int | None:
    """Python's ``int(value)`` as update_my_data calls it; None where it raises ValueError."""
    try:
        return int(value)
    except ValueError:
        return None
    except (TypeError, OverflowError):
        raise TypeError from None


def _gui_float(value: Any) -> float | None:
    try:
        result = float(value)
    except ValueError:
        return None
    except TypeError:
        raise TypeError from None
    return result


def _coerce_int(d: dict[str, Any], key: str, fallback: int, source: str) -> str | None:
    value = d[key]
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(source, key, f"{value} is not a number the GUI can hold")
    try:
        parsed = _gui_int(value)
    except TypeError:
        raise _fail(source, key, f"must be a number, not {describe(value)} (the GUI crashes on it)") from None
    new = fallback if parsed is None else parsed
    d[key] = new
    if isinstance(value, str):
        what = f"read as {new}" if parsed is not None else f"is not a whole number: the GUI uses {new}"
        return f"{key}: {describe(value)} {what}"
    if new != value:
        return f"{key}: {describe(value)} truncated to {new} (the GUI's int())"
    return None


def _coerce_float(d: dict[str, Any], key: str, fallback: float, source: str) -> str | None:
    value = d[key]
    try:
        parsed = _gui_float(value)
    except TypeError:
        raise _fail(source, key, f"must be a number, not {describe(value)} (the GUI crashes on it)") from None
    if parsed is not None and not math.isfinite(parsed):
        raise _fail(source, key, f"{describe(value)} is not a number the GUI can hold")
    new = fallback if parsed is None else parsed
    d[key] = new
    if isinstance(value, str):
        what = f"read as {new}" if parsed is not None else f"is not a number: the GUI uses {new}"
        return f"{key}: {describe(value)} {what}"
    return None


def _coerce_numbers(d: dict[str, Any], source: str) -> list[str]:
    repairs = []
    for key, fallback in INT_COERCED.items():
        if d.get(key) is not None and type(d[key]) is not int:
            repairs.append(_coerce_int(d, key, fallback, source))
    for key, fallback_f in FLOAT_COERCED.items():
        if d.get(key) is not None and type(d[key]) is not float:
            repairs.append(_coerce_float(d, key, fallback_f, source))
    return [r for r in repairs if r]


def _legacy_names(d: dict[str, Any], source: str) -> list[str]:
    """The renamed LoRA type, LoRA file formats and attention setting."""
    repairs = []
    if d.get("LoRA_type") is not None and not isinstance(d["LoRA_type"], str):
        raise _fail(source, "LoRA_type", f"must be the name of a LoRA type, not {describe(d['LoRA_type'])}")
    if d.get("LoRA_type") in LEGACY_LORA_TYPES:
        old = d["LoRA_type"]
        d["LoRA_type"] = LEGACY_LORA_TYPES[old]
        repairs.append(f"LoRA_type: {old!r} is now {d['LoRA_type']!r}")
    if "save_model_as" in d and d.get("save_model_as") not in ("safetensors", "ckpt"):
        repairs.append(f"save_model_as: {describe(d['save_model_as'])} is not a LoRA format, set to 'safetensors'")
        d["save_model_as"] = "safetensors"
    if isinstance(d.get("xformers"), bool):
        new_x = "xformers" if d["xformers"] else "none"
        repairs.append(f"xformers: {describe(d['xformers'])} is now {new_x!r}")
        d["xformers"] = new_x
    return repairs


def _legacy_keys(d: dict[str, Any], source: str) -> list[str]:
    """``use_wandb`` and ``lora_network_weights``, the keys update_my_data replaces."""
    repairs = []
    if "use_wandb" in d:
        value = d.pop("use_wandb")
        if value == "True":
            d["log_with"] = "wandb"
            repairs.append("use_wandb: \"True\" is now log_with = 'wandb'")
        else:
            repairs.append(f"use_wandb: legacy key ({describe(value)}) dropped, as the GUI does")
    if d.get("lora_network_weights") is not None:
        # update_my_data renames the key whenever it holds a value, "" included, and the legacy value replaces a
        # network_weights the same file may also have.
        legacy = d.pop("lora_network_weights")
        replaced = d.get("network_weights")
        d["network_weights"] = legacy
        if replaced is not None and replaced != legacy:
            repairs.append(
                f"lora_network_weights: renamed to network_weights, replacing its {describe(replaced)} as the GUI does"
            )
        else:
            repairs.append("lora_network_weights: renamed to network_weights")
    return repairs


def _gradio_value(key: str, value: Any, f: GuiField, source: str) -> tuple[Any, str | None]:
    """What the widget makes of ``value`` (and the repair sentence), or the error where Gradio would fail."""
    if f.widget == "Checkbox" and not isinstance(value, bool):
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value), f"{key}: {describe(value)} read as {describe(bool(value))}"
        raise _fail(
            source,
            key,
            f"must be true or false, not {describe(value)} (the GUI would read it as {describe(bool(value))})",
        )
    if f.widget == "Textbox" and not isinstance(value, str):
        if value is False:
            return "", (
                f'{key}: false read as "" (older GUIs saved false for an empty text; the current GUI would take '
                'the text "False")'
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(source, key, f"must be text, not {describe(value)}")
        return str(value), f"{key}: {describe(value)} read as the text {describe(str(value))}"
    if f.numeric and f.precision == 0:
        if isinstance(value, str | bool) or not isinstance(value, int | float):
            raise _fail(source, key, f"must be a whole number, not {describe(value)} (the GUI crashes loading it)")
        if isinstance(value, float) and not value.is_integer():
            return round(value), f"{key}: {describe(value)} rounded to {round(value)} (a whole-number field)"
    return value, None


def _gradio_postprocess(d: dict[str, Any], source: str) -> list[str]:
    fields = gui_fields()
    repairs = []
    for key, value in list(d.items()):
        f = fields.get(key)
        if f is None or value is None:
            continue
        d[key], repair = _gradio_value(key, value, f, source)
        if repair:
            repairs.append(repair)
    return repairs


# update_my_data's steps in its order, then Gradio's postprocess.
_LOAD_STEPS: tuple[Callable[[dict[str, Any], str], list[str]], ...] = (
    _default_optimizer,
    _coerce_numbers,
    _legacy_names,
    _legacy_keys,
    _gradio_postprocess,
)


# --------------------------------------------------------------------------------------------------------------
# 3: what the GUI refuses on the next Save/Train, and what kohya-recipe does not train


def _refuse_unsupported(d: dict[str, Any], source: str) -> None:
    lora_type = d.get("LoRA_type")
    if lora_type is not None and lora_type not in lora_types():
        raise _fail(
            source, "LoRA_type", f"{describe(lora_type)} is not a LoRA type of the GUI ({', '.join(lora_types())})"
        )
    if lora_type in UNSUPPORTED_LORA_TYPES:
        raise _fail(
            source,
            "LoRA_type",
            f"{lora_type!r} trains a model family kohya-recipe does not support (SD 1.x, SD 2.x and SDXL only)",
        )
    for flag in FAMILY_FLAGS:
        if d.get(flag) is True:
            name = flag.replace("_checkbox", "").replace("hunyuan_image", "HunyuanImage").replace("flux1", "Flux.1")
            raise _fail(source, flag, f"{name} training is not supported by kohya-recipe (SD 1.x, SD 2.x, SDXL)")
    if d.get("sdxl") is True and d.get("v2") is True:
        raise _fail(source, "v2", "v2 and sdxl are both set: a model is one or the other")


def _gui_says(key: str, d: dict[str, Any]) -> str | None:
    """The GUI's own sentence refusing ``d[key]`` (None when it has none)."""
    if key in ARGS_KEYS and isinstance(d.get(key), str):
        return args_refusal(d[key])
    if key not in gui_fields():
        return None
    lora_type = d.get("LoRA_type") if isinstance(d.get("LoRA_type"), str) else None
    said = gui_refusal(gui_field(key), d[key], lora_type=lora_type)
    return f"{key}: {said}" if said else None


def _quote(key: str, d: dict[str, Any]) -> str:
    said = _gui_says(key, d)
    return f' ("{said}")' if said else ""


def _keep_caption_extension(d: dict[str, Any], loaded: LoadedConfig) -> None:
    ext = d["caption_extension"]
    meaning = (
        ": no caption file has it, so sd-scripts captions each image with its folder's class tokens, as that old "
        "choice meant"
        if "none" in str(ext)
        else ""
    )
    loaded.notes.append(
        f"caption_extension: {describe(ext)} (a free-text value of older GUIs) is kept{meaning}; the current GUI "
        f"refuses to train with it{_quote('caption_extension', d)}, so the GUI JSON kohya-recipe writes carries it "
        "on the command line"
    )


def _repair_args(key: str, d: dict[str, Any], loaded: LoadedConfig) -> bool:
    """``--optimizer_args "a=1" "b=2"`` (pasted from a command line; GUI v21 trained it) -> ``a=1 b=2``."""
    text = d[key]
    words = gui_split(text)
    if not words or words[0] != f"--{key}" or args_problem(" ".join(words[1:])):
        return False
    d[key] = " ".join(words[1:])
    loaded.repairs.append(
        f"{key}: the leading --{key} and the quotes removed, giving {describe(d[key])} (older GUIs saved the "
        f'command-line form and trained it; the current GUI refuses it: "{args_refusal(text)}")'
    )
    return True


def _tolerated(p: GuiProblem, loaded: LoadedConfig) -> bool:
    """Handle the problems an import can live with (see the module docstring); False for a real error."""
    d = loaded.values
    if p.kind == "choice" and p.key == "caption_extension":
        _keep_caption_extension(d, loaded)
    elif p.kind == "range" and p.key in KEPT_ABOVE_MAXIMUM and gui_field(p.key).maximum_for(None) is not None:
        if d[p.key] < (gui_field(p.key).minimum or 0):
            return False
        why = (
            f"{d['LoRA_type']} has no rank (LyCORIS ignores it)"
            if p.key == "network_dim" and d.get("LoRA_type") in RANKLESS_LORA_TYPES
            else "sd-scripts trains it"
        )
        loaded.notes.append(
            f"{p.key}: {describe(d[p.key])} is kept: {why}, but the current GUI refuses it{_quote(p.key, d)}, so "
            "the GUI JSON kohya-recipe writes carries it on the command line"
        )
    elif p.kind == "preflight" and p.key in ARGS_KEYS:
        return _repair_args(p.key, d, loaded)
    elif p.severity == "warning":
        loaded.warnings.append(f"{p.key}: {p.message}")
    else:
        return False
    return True


def accept_gui_values(loaded: LoadedConfig, source: str) -> None:
    """Step 3 on ``loaded`` (repairs and warnings are added to it); a value the GUI refuses raises
    :class:`GuiConfigError` naming the first such key."""
    _refuse_unsupported(loaded.values, source)
    problems = validate_gui_values(loaded.values, source, preflight=True)
    errors = [p for p in problems if not _tolerated(p, loaded)]
    if errors:
        p = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        said = _gui_says(p.key, loaded.values) if p.kind in ("range", "choice", "preflight") else None
        quote = f'; the GUI says "{said}"' if said else ""
        raise _fail(source, p.key, p.message + more + quote)


def unknown_keys(data: dict[str, Any]) -> list[str]:
    """Keys of a loaded file the GUI does not know (it ignores them), sorted; the legacy keys a load-time repair
    used up are repairs, not unknown (a null ``lora_network_weights`` is skipped by the GUI's rename, so it stays
    unknown), and ``save_as_bool`` is the GUI's own."""
    consumed = {"use_8bit_adam", "use_wandb"} | (
        {"lora_network_weights"} if data.get("lora_network_weights") is not None else set()
    )
    return [k for k in unknown_gui_keys(data) if k not in IGNORED_KNOWN_KEYS and k not in consumed]
