"""What the kohya_ss GUI does to a config file when it loads it: ``update_my_data``'s repairs and Gradio's own
coercions, each reported as one sentence (see :mod:`kohya_recipe.gui.importer`)."""

from __future__ import annotations

import math
from typing import Any

from kohya_recipe.errors import GuiConfigError
from kohya_recipe.gui.mapping import LEGACY_LORA_TYPES
from kohya_recipe.kohya_ss.fields import describe, gui_fields, unknown_gui_keys

# update_my_data's coercions (reference §1): key -> (type, fallback when the value cannot be parsed).
_INT_KEYS = (
    "clip_skip", "epoch", "gradient_accumulation_steps", "keep_tokens", "lr_warmup", "max_data_loader_n_workers",
    "max_train_epochs", "save_every_n_epochs", "seed", "max_train_steps", "caption_dropout_every_n_epochs",
)  # fmt: skip
INT_COERCED = dict.fromkeys(_INT_KEYS, 0) | {"lr_scheduler_num_cycles": 1, "max_token_length": 75}
_FLOAT_KEYS = ("adaptive_noise_scale", "noise_offset", "learning_rate", "text_encoder_lr", "unet_lr")
FLOAT_COERCED = dict.fromkeys(_FLOAT_KEYS, 0.0) | {"lr_scheduler_power": 1.0}

# Written by the GUI's own 💾 button (the exclusion list misses it) and ignored on load: not "unknown".
IGNORED_KNOWN_KEYS = frozenset({"save_as_bool"})


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


def migrate_gui_values(data: dict[str, Any], source: str = "gui.json") -> tuple[dict[str, Any], list[str]]:
    """Apply the GUI's load-time repairs (``update_my_data`` and Gradio's postprocess) to a copy of ``data``.

    Returns the repaired mapping and one sentence per repair. A value the GUI would crash on raises
    :class:`GuiConfigError`.
    """
    d = dict(data)
    repairs: list[str] = []

    def fail(key: str, why: str) -> GuiConfigError:
        return GuiConfigError(why, source=source, field=key)

    # update_my_data, in its order.
    if "optimizer" not in d:
        d["optimizer"] = "AdamW8bit" if d.get("use_8bit_adam") else "AdamW"
        why = "use_8bit_adam is set" if d.get("use_8bit_adam") else "the GUI's fallback"
        repairs.append(f"optimizer: missing, set to {d['optimizer']!r} ({why})")
    if "use_8bit_adam" in d:
        d.pop("use_8bit_adam")
        repairs.append("use_8bit_adam: legacy key, replaced by optimizer")
    for key, fallback in INT_COERCED.items():
        value = d.get(key)
        if value is None or (type(value) is int):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise fail(key, f"{value} is not a number the GUI can hold")
        try:
            parsed = _gui_int(value)
        except TypeError:
            raise fail(key, f"must be a number, not {describe(value)} (the GUI crashes on it)") from None
        new = fallback if parsed is None else parsed
        d[key] = new
        if isinstance(value, str):
            what = f"read as {new}" if parsed is not None else f"is not a whole number: the GUI uses {new}"
            repairs.append(f"{key}: {describe(value)} {what}")
        elif new != value:
            repairs.append(f"{key}: {describe(value)} truncated to {new} (the GUI's int())")
    for key, fallback_f in FLOAT_COERCED.items():
        value = d.get(key)
        if value is None or type(value) is float:
            continue
        try:
            parsed_f = _gui_float(value)
        except TypeError:
            raise fail(key, f"must be a number, not {describe(value)} (the GUI crashes on it)") from None
        if parsed_f is not None and not math.isfinite(parsed_f):
            raise fail(key, f"{describe(value)} is not a number the GUI can hold")
        new_f = fallback_f if parsed_f is None else parsed_f
        d[key] = new_f
        if isinstance(value, str):
            what = f"read as {new_f}" if parsed_f is not None else f"is not a number: the GUI uses {new_f}"
            repairs.append(f"{key}: {describe(value)} {what}")
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
    if "use_wandb" in d:
        value = d.pop("use_wandb")
        if value == "True":
            d["log_with"] = "wandb"
            repairs.append("use_wandb: \"True\" is now log_with = 'wandb'")
        else:
            repairs.append(f"use_wandb: legacy key ({describe(value)}) dropped, as the GUI does")
    if d.get("lora_network_weights") is not None:
        # common_gui.py update_my_data renames the key whenever it holds a value, "" included, and the legacy
        # value replaces a network_weights the same file may also have.
        legacy = d.pop("lora_network_weights")
        replaced = d.get("network_weights")
        d["network_weights"] = legacy
        if replaced is not None and replaced != legacy:
            repairs.append(
                f"lora_network_weights: renamed to network_weights, replacing its {describe(replaced)} as the GUI does"
            )
        else:
            repairs.append("lora_network_weights: renamed to network_weights")
    # Gradio's postprocess, field by field.
    fields = gui_fields()
    for key, value in list(d.items()):
        f = fields.get(key)
        if f is None or value is None:
            continue
        if f.widget == "Checkbox" and not isinstance(value, bool):
            if isinstance(value, int | float) and value in (0, 1):
                d[key] = bool(value)
                repairs.append(f"{key}: {describe(value)} read as {describe(bool(value))}")
            else:
                raise fail(key, f"must be true or false, not {describe(value)} (the GUI would read it as "
                                f"{describe(bool(value))})")  # fmt: skip
        elif f.widget == "Textbox" and not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise fail(key, f"must be text, not {describe(value)}")
            d[key] = str(value)
            repairs.append(f"{key}: {describe(value)} read as the text {describe(str(value))}")
        elif f.numeric and f.precision == 0:
            if isinstance(value, str | bool) or not isinstance(value, int | float):
                raise fail(key, f"must be a whole number, not {describe(value)} (the GUI crashes loading it)")
            if isinstance(value, float) and not value.is_integer():
                d[key] = round(value)
                repairs.append(f"{key}: {describe(value)} rounded to {d[key]} (a whole-number field)")
    return d, repairs


def unknown_keys(data: dict[str, Any]) -> list[str]:
    """Keys of a loaded file the GUI does not know (it ignores them), sorted; the legacy keys a load-time repair
    used up are repairs, not unknown (a null ``lora_network_weights`` is skipped by the GUI's rename, so it stays
    unknown), and ``save_as_bool`` is the GUI's own."""
    consumed = {"use_8bit_adam", "use_wandb"} | (
        {"lora_network_weights"} if data.get("lora_network_weights") is not None else set()
    )
    return [k for k in unknown_gui_keys(data) if k not in IGNORED_KNOWN_KEYS and k not in consumed]
