"""The sd-scripts option spec bundled with the package, and checks of config keys against it.

sd-scripts flattens ``--config_file`` TOML sections and turns every key into an argparse attribute *without* checking
it: a misspelled key is silently ignored and a TOML value skips argparse's ``type=``/``choices=``
(``library/train_util.py read_config_from_file``). So this module is the gate: every key we write is a known option of
the script we launch, with a value of the option's type.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from kohya_recipe.errors import RecipeError

SPEC_FILE = Path(__file__).parent.parent / "data" / "sd-scripts-train_network-options.json"


@dataclass(frozen=True)
class OptionSpec:
    """One sd-scripts command-line option, as its argparse parser defines it."""

    dest: str
    type: str  # int | float | str | bool_flag | list | int_or_float
    default: Any
    choices: tuple[Any, ...] | None
    item_type: str | None
    source: str


@lru_cache(maxsize=2)
def option_specs(sdxl: bool = False) -> dict[str, OptionSpec]:
    """Options of ``train_network.py`` (plus ``sdxl_train_network.py``'s extra ones when ``sdxl``)."""
    raw = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    entries = list(raw["options"])
    if sdxl:
        entries += raw.get("sdxl_train_network_extra_options", [])
    specs = {}
    for e in entries:
        choices = tuple(e["choices"]) if e.get("choices") else None
        specs[e["dest"]] = OptionSpec(
            dest=e["dest"],
            type=e["type"],
            default=e.get("default"),
            choices=choices,
            item_type=e.get("item_type"),
            source=e.get("source", "sdxl_train_network.py"),
        )
    return specs


def spec_version() -> str:
    """The sd-scripts version the bundled spec was read from."""
    raw = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    return str(raw["sd_scripts_version"])


def did_you_mean(name: str, candidates: list[str] | set[str] | dict[str, Any]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_ok(spec: OptionSpec, value: Any) -> bool:
    # TOML values reach sd-scripts unconverted (they bypass argparse's type=), so the native type must be right.
    if spec.type == "bool_flag":
        return isinstance(value, bool)
    if spec.type == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.type == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec.type == "int_or_float":
        # lr_warmup_steps / lr_decay_steps: int = steps, float < 1 = ratio of total steps.
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and 0 <= value < 1)
    if spec.type == "str":
        return isinstance(value, str)
    if spec.type == "list":
        if not isinstance(value, list):
            # text_encoder_lr is a list option (nargs="*") but a plain float from TOML also works (train_network.py
            # NetworkTrainer.train accepts both).
            return spec.item_type == "float" and isinstance(value, (int, float)) and not isinstance(value, bool)
        if spec.item_type == "float":
            return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        return all(isinstance(v, str) for v in value)
    return True


def check_option(key: str, value: Any, *, sdxl: bool = False, source: str = "config") -> None:
    """Raise :class:`RecipeError` unless ``key = value`` is a valid sd-scripts config entry."""
    specs = option_specs(sdxl)
    spec = specs.get(key)
    if spec is None:
        script = "sdxl_train_network.py" if sdxl else "train_network.py"
        raise RecipeError(f"unknown sd-scripts option for {script}{did_you_mean(key, specs)}", source=source, field=key)
    if not _type_ok(spec, value):
        want = {"bool_flag": "a boolean", "int_or_float": "an integer (steps) or a float below 1 (ratio)"}.get(
            spec.type, f"a {spec.type}" + (f" of {spec.item_type}" if spec.item_type else "")
        )
        raise RecipeError(f"must be {want}, got {value!r}", source=source, field=key)
    if spec.choices is not None and value not in spec.choices and not (value is None and None in spec.choices):
        allowed = ", ".join(str(c) for c in spec.choices if c is not None)
        raise RecipeError(f"{value!r} is not one of: {allowed}", source=source, field=key)


def check_config(flat: dict[str, Any], *, sdxl: bool = False, source: str = "config.toml") -> None:
    """Check every key of a flat sd-scripts config against the spec."""
    for key, value in flat.items():
        check_option(key, value, sdxl=sdxl, source=source)


def flatten_config(sections: dict[str, Any]) -> dict[str, Any]:
    """What sd-scripts makes of a ``--config_file``: every section's keys lifted to the top, later sections
    winning (``library/train_util.py read_config_from_file``)."""
    flat: dict[str, Any] = {}
    for key, value in sections.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat
