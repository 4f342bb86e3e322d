"""LoRA types both ways: the ``network_args`` the GUI builds from its form, and the form fields for a recipe's
``network.module``/``network.args``."""

from __future__ import annotations

import math
import re
from typing import Any

from kohya_recipe.gui.form import gui_arg_text, recipe_error, whole
from kohya_recipe.gui.mapping import ALGO_TO_TYPE, LORA_TYPES, LORAPLUS_ARGS, NetArg, network_args_of
from kohya_recipe.recipe.models import Recipe


def network_args_from_form(form: dict[str, Any], lora_type: str) -> list[str]:
    """The ``network_args`` list the GUI builds for ``lora_type`` from the form, in its order, duplicates kept
    (LyCORIS LoCon/LoHa list ``use_tucker`` twice)."""
    t = LORA_TYPES[lora_type]
    out: list[str] = []
    if t.algo:
        for a in t.args:
            out.append(f"{a.name}={gui_arg_text(form[a.key])}")
        # The GUI puts algo before train_norm; its position does not matter to LyCORIS (a kwargs dict).
        pos = len(out) - 1 if t.args[-1].name == "train_norm" else len(out)
        out.insert(pos, f"algo={t.algo}")
    else:
        if lora_type == "Kohya LoCon":
            # kohya_gui/lora_gui.py train_model: network_args += f' conv_dim="{conv_dim}" conv_alpha="{conv_alpha}"';
            # the quotes are stripped when the string is split into the TOML list.
            out += [f"conv_dim={gui_arg_text(form['conv_dim'])}", f"conv_alpha={gui_arg_text(form['conv_alpha'])}"]
        for a in t.args:
            value = form[a.key]
            if lora_type == "Kohya LoKr" and a.name == "factor":
                if value != -1:
                    out.append(f"factor={gui_arg_text(value)}")
                continue
            if lora_type in ("Kohya LoHa", "Kohya LoKr") and a.name == "conv_alpha":
                if form["conv_dim"]:
                    out.append(f"conv_alpha={gui_arg_text(value)}")
                continue
            if value:
                out.append(f"{a.name}={gui_arg_text(value)}")
    for a in LORAPLUS_ARGS:
        if form[a.key]:
            out.append(f"{a.name}={gui_arg_text(form[a.key])}")
    return out


def parse_arg_list(args: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict (later entries win, as in a kwargs dict)."""
    out: dict[str, str] = {}
    for item in args:
        key, _, value = item.partition("=")
        out[key.strip()] = value.strip()
    return out


def _text_number(text: str) -> int | float:
    """A number written in text (``"8"``, ``"0.1"``, ``"1e-05"``), as int when it has no fraction part."""
    s = text.strip()
    if re.fullmatch(r"[+-]?\d+", s):
        return int(s)
    value = float(s)
    if not math.isfinite(value):
        raise ValueError(s)
    return value


def _text_bool(text: str) -> bool:
    s = text.strip().lower()
    if s in ("true", "1"):
        return True
    if s in ("false", "0"):
        return False
    raise ValueError(text)


def _lora_type(recipe: Recipe, args: dict[str, str]) -> str:
    """The GUI's LoRA type for the recipe's network module (and LyCORIS algo)."""
    module = recipe.network.module
    if module == "lycoris.kohya":
        algo = args.get("algo", "lora").strip('"').lower()
        if algo == "lora":
            algo = "locon"  # LyCORIS treats algo=lora as locon
        lora_type = ALGO_TO_TYPE.get(algo)
        if lora_type is None:
            raise recipe_error("network.args", f"algo={algo} has no LoRA type in the GUI")
    elif module == "networks.lora":
        lora_type = "Kohya LoCon" if "conv_dim" in args else "Standard"
    else:
        by_module = {t.module: t.name for t in LORA_TYPES.values() if not t.algo and t.module != "networks.lora"}
        if module not in by_module:
            known = ", ".join(sorted({t.module for t in LORA_TYPES.values()}))
            raise recipe_error("network.module", f"{module!r} has no LoRA type in the GUI (it offers {known})")
        lora_type = by_module[module]
    if lora_type in ("Kohya LoHa", "Kohya LoKr") and recipe.model.family != "sdxl":
        raise recipe_error("network.module", f"the GUI's {lora_type!r} needs an SDXL model (train_model check)")
    return lora_type


def _refuse_unknown_args(args: dict[str, str], allowed: dict[str, NetArg], lora_type: str) -> None:
    for name in args:
        if name == "algo" and LORA_TYPES[lora_type].algo:
            continue
        if name not in allowed:
            have = ", ".join(sorted(allowed)) or "none"
            raise recipe_error(
                "network.args",
                f"{name!r} has no field in the GUI for LoRA_type {lora_type!r} (its network args: {have})",
            )


def _given_value(a: NetArg, given: str) -> Any:
    """A ``network_args`` value as its GUI field holds it."""
    text = given.strip('"')
    try:
        if a.kind == "str":
            return text
        if a.kind == "bool":
            return _text_bool(text)
        value = _text_number(text)
        if a.kind != "int":
            return whole(float(value)) if isinstance(value, float) else value
        if not float(value).is_integer():
            raise ValueError(text)
        return int(value)
    except ValueError:
        raise recipe_error("network.args", f"{a.name}={given}: not a {a.kind} the GUI field can hold") from None


def _lycoris_absent_value(a: NetArg, lora_type: str, recipe: Recipe) -> Any:
    """A LyCORIS type writes every field: an arg the recipe leaves out gets LyCORIS's own default
    (``lycoris/kohya.py`` ``create_network``: conv_dim/conv_alpha fall back to the network's rank and alpha)."""
    t = LORA_TYPES[lora_type]
    if a.name == "conv_dim":
        return recipe.network.rank
    if a.name == "conv_alpha":
        return whole(float(recipe.network.alpha))
    if a.lycoris_default is None and a in t.args:
        raise recipe_error("network.args", f"LyCORIS {t.algo} in the GUI always passes {a.name}=; set it")
    return 0 if a in LORAPLUS_ARGS else a.lycoris_default


# What a kohya type's field holds when the recipe leaves its arg out, where that is not 0/""/false (the GUI writes
# nothing for a falsy field, so 0 is the same as absent): sd-scripts' own defaults.
_KOHYA_ABSENT = {
    ("Kohya LoCon", "conv_alpha"): 1,  # networks/lora.py create_network: conv_alpha 1 when conv_dim is given
    ("Kohya LoKr", "factor"): -1,  # the GUI writes factor only when it is not -1
    ("Kohya DyLoRA", "unit"): 1,  # networks/dylora.py create_network: unit 1
}


def _absent_value(a: NetArg, lora_type: str, recipe: Recipe) -> Any:
    if LORA_TYPES[lora_type].algo:
        return _lycoris_absent_value(a, lora_type, recipe)
    if a.kind == "str":
        return ""
    return _KOHYA_ABSENT.get((lora_type, a.name), False if a.kind == "bool" else 0)


def network_fields(recipe: Recipe, form: dict[str, Any]) -> str:
    """Fill LoRA_type and the network fields from network.module/args; returns the LoRA type."""
    args = parse_arg_list(recipe.network.args)
    lora_type = _lora_type(recipe, args)
    form["LoRA_type"] = lora_type
    allowed = network_args_of(lora_type)
    _refuse_unknown_args(args, allowed, lora_type)
    for a in allowed.values():
        form[a.key] = _given_value(a, args[a.name]) if a.name in args else _absent_value(a, lora_type, recipe)
    return lora_type
