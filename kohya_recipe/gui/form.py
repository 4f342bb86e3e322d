"""Form helpers shared by the renderer and the importer: small conversions, the sample-prompt textbox, the
resolution text, and the ``additional_parameters`` command line."""

from __future__ import annotations

import re
from typing import Any

from kohya_recipe.errors import GuiConfigError
from kohya_recipe.gui.mapping import EXTRA_KEYS, MULTIRES_NOISE_KEYS, SDSCRIPTS_UNSET_EQUIVALENT, SDXL_EXTRA_KEYS
from kohya_recipe.recipe.models import SamplePrompt


def recipe_error(recipe_field: str, message: str) -> GuiConfigError:
    """A value of the recipe the GUI cannot hold, naming the recipe field."""
    return GuiConfigError(message, source="recipe", field=recipe_field)


def gui_arg_text(value: Any) -> str:
    """How the GUI writes a form value into ``network_args``: Python's ``f"{value}"`` (True, 0.1, 8)."""
    return f"{value}"


def whole(x: float) -> int | float:
    """A float that is a whole number as an int (the GUI's sliders save whole numbers as JSON ints)."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


def sample_prompts_text(prompts: list[SamplePrompt]) -> str:
    """The GUI's "Sample prompts" textbox: one sd-scripts prompt line per prompt (the GUI writes this text to
    ``<output_dir>/sample/prompt.txt`` itself, §3)."""
    from kohya_recipe.render.prompts import prompt_line

    return "\n".join(prompt_line(p) for p in prompts)


def parse_prompt_line(line: str) -> tuple[dict[str, Any], list[str]]:
    """One sd-scripts prompt line as SamplePrompt fields, plus the inline options a recipe cannot hold.

    sd-scripts splits the line on the literal " --"; the first piece is the prompt, each later piece is an option
    matched case-insensitively (reference/sd_scripts.md §6).
    """
    pieces = line.split(" --")
    data: dict[str, Any] = {"prompt": pieces[0].strip()}
    dropped: list[str] = []
    for piece in pieces[1:]:
        m = re.match(r"(\w+)\s*(.*)$", piece, re.DOTALL)
        if not m:
            dropped.append("--" + piece)
            continue
        opt, arg = m.group(1).lower(), m.group(2).strip()
        try:
            if opt == "n":
                data["negative"] = arg
            elif opt == "w":
                data["width"] = int(arg)
            elif opt == "h":
                data["height"] = int(arg)
            elif opt == "s":
                data["steps"] = int(arg)
            elif opt == "d":
                data["seed"] = int(arg)
            elif opt == "l":
                data["cfg_scale"] = float(arg)
            else:
                dropped.append("--" + piece)
        except ValueError:
            # sd-scripts logs a malformed value and ignores it (§6).
            dropped.append("--" + piece)
    return data, dropped


def parse_sample_prompts(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The textbox text as SamplePrompt field dicts: blank and ``#`` lines are skipped, as sd-scripts does."""
    prompts: list[dict[str, Any]] = []
    dropped: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        data, lost = parse_prompt_line(line)
        prompts.append(data)
        dropped += lost
    return prompts, dropped


def parse_resolution(text: str) -> tuple[int, int] | None:
    """``"768,768"``, ``"768"`` (square) -> (w, h); anything else -> None."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        return None
    if len(nums) == 1:
        return nums[0], nums[0]
    if len(nums) == 2:
        return nums[0], nums[1]
    return None


def cli_options(text: str) -> list[tuple[str, list[str]]]:
    """``--opt v1 v2 --flag --k=v`` as [(opt, [values])], the way argparse reads the GUI's
    ``additional_parameters`` (split on whitespace, quotes removed, §3)."""
    import shlex

    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.replace('"', "").replace("'", "").split()
    out: list[tuple[str, list[str]]] = []
    for token in tokens:
        if token.startswith("--") and len(token) > 2:
            name, eq, value = token[2:].partition("=")
            out.append((name, [value] if eq else []))
        elif out:
            out[-1][1].append(token)
        else:
            out.append(("", [token]))
    return out


def option_value(spec: Any, values: list[str]) -> Any:
    """The value argparse would give an sd-scripts option for these command-line words (ValueError if none)."""

    def conv(text: str, kind: str | None) -> Any:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "int_or_float":
            return float(text) if "." in text or "e" in text.lower() else int(text)
        return text

    if spec.type == "bool_flag":
        if values:
            raise ValueError("takes no value")
        return True
    if spec.type == "list":
        return [conv(v, spec.item_type) for v in values]
    if len(values) != 1:
        raise ValueError("needs one value")
    return conv(values[0], spec.type)


def split_additional(text: str, *, sdxl: bool) -> tuple[list[tuple[str, Any]], list[str]]:
    """``additional_parameters`` as the sd-scripts options kohya-recipe can check (name, value), and the rest
    of the text (options it does not know, or that the project layout decides) as raw pieces."""
    from kohya_recipe.recipe.mapping import DERIVED_OPTIONS
    from kohya_recipe.sdscripts.options import option_specs

    specs = option_specs(sdxl)
    known: list[tuple[str, Any]] = []
    rest: list[str] = []
    for name, values in cli_options(text):
        raw = " ".join(([f"--{name}"] if name else []) + values)
        spec = specs.get(name)
        if spec is None or name in DERIVED_OPTIONS:
            rest.append(raw)
            continue
        try:
            known.append((name, option_value(spec, values)))
        except ValueError:
            rest.append(raw)
    return known, rest


def cli_tokens(option: str, value: Any, spec_type: str, *, where: str) -> list[str]:
    """``--option value`` tokens for the GUI's ``additional_parameters``, which it splits on whitespace and
    strips of quotes (§3): a value with spaces or quotes cannot pass through it."""
    if spec_type == "bool_flag":
        return [f"--{option}"] if value else []
    values = value if isinstance(value, list) else [value]
    texts = [gui_arg_text(v) for v in values]
    for t in texts:
        if not t or any(c.isspace() for c in t) or '"' in t or "'" in t:
            raise GuiConfigError(
                f"{t!r} cannot be passed through the GUI's additional_parameters (it splits on spaces and drops "
                "quotes)",
                source="recipe",
                field=where,
            )
    return [f"--{option}", *texts]


def inert_extra_value(key: str, value: Any, form: dict[str, Any]) -> bool:
    """Whether the GUI, given this value of an extra-backed field, trains exactly as if the option were unset:
    it does not pass a falsy value (§3 filter), passes nothing the noise_offset_type gate closes, and a value
    equal to sd-scripts' own default changes nothing."""
    from kohya_recipe.sdscripts.options import option_specs

    if key in SDXL_EXTRA_KEYS:
        return isinstance(value, bool) and (not value or not form["sdxl"])
    if key in ("adaptive_noise_scale", "noise_offset_random_strength") and form["noise_offset_type"] == "Multires":
        return True
    if key in MULTIRES_NOISE_KEYS and form["noise_offset_type"] != "Multires":
        return True
    if value in ("", False, 0) and not (isinstance(value, bool) and value):
        return True
    if key in SDSCRIPTS_UNSET_EQUIVALENT and value == SDSCRIPTS_UNSET_EQUIVALENT[key]:
        return True
    spec = option_specs(bool(form["sdxl"])).get(EXTRA_KEYS[key])
    return spec is not None and not isinstance(value, bool) and value == spec.default
