"""Form helpers shared by the renderer and the importer: small conversions, the sample-prompt textbox, the
resolution text, and the ``additional_parameters`` command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kohya_recipe.errors import GuiConfigError
from kohya_recipe.gui.mapping import EXTRA_KEYS, MULTIRES_NOISE_KEYS, SDSCRIPTS_UNSET_EQUIVALENT, SDXL_EXTRA_KEYS
from kohya_recipe.recipe.mapping import DERIVED_OPTIONS
from kohya_recipe.recipe.sections import SamplePrompt
from kohya_recipe.sdscripts.options import option_specs
from kohya_recipe.sdscripts.prompts import PromptLine, parse_prompt_file


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
    ``<output_dir>/sample/prompt.txt`` itself: ``kohya_gui/class_sample_images.py`` ``create_prompt_file``)."""
    return "\n".join(p.line().format() for p in prompts)


# The options of a prompt line a SamplePrompt holds; a per-prompt sampler (--ss) or guidance scale (--g) it cannot.
_HELD_PROMPT_OPTIONS = ("negative", "width", "height", "steps", "cfg_scale", "seed")


def textbox_prompts(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The textbox text read as sd-scripts reads a prompt file (:func:`~kohya_recipe.sdscripts.prompts.
    parse_prompt_file`): SamplePrompt fields per prompt, and the inline options a recipe cannot hold (what
    sd-scripts drops itself, and a per-prompt ``--ss``/``--g``)."""
    prompts: list[dict[str, Any]] = []
    lost: list[str] = []
    for line in parse_prompt_file(text):
        held = {k: getattr(line, k) for k in _HELD_PROMPT_OPTIONS if getattr(line, k) not in (None, "")}
        prompts.append({"prompt": line.prompt, **held})
        lost += line.dropped + _unheld_options(line)
    return prompts, lost


def _unheld_options(line: PromptLine) -> list[str]:
    out = [f"--ss {line.sampler}"] if line.sampler is not None else []
    if line.guidance_scale is not None:
        out.append(f"--g {line.guidance_scale:g}")
    return out


@dataclass(frozen=True)
class EffectiveRates:
    """What sd-scripts trains with, given the GUI's three learning-rate fields. A 0 rate is "unset": the base
    rate, which is sd-scripts' default when ``learning_rate`` is 0 too; a 0 text-encoder rate trains the UNet only
    and a 0 UNet rate the text encoder only (``kohya_gui/lora_gui.py`` ``resolve_network_train_flags``)."""

    base: Any
    text_encoder: Any
    unet: Any
    te_only: bool
    unet_only: bool

    @property
    def networks(self) -> tuple[bool, bool]:
        """Which networks train: (text encoder only, UNet only)."""
        return self.te_only, self.unet_only


def effective_lrs(lr: Any, te: Any, unet: Any, default_lr: float) -> EffectiveRates:
    """:class:`EffectiveRates` for the GUI's ``learning_rate``, ``text_encoder_lr`` and ``unet_lr``."""
    base = lr if lr else default_lr
    te_only = te != 0 and unet == 0
    unet_only = te == 0 and unet != 0
    te_eff = None if unet_only else (te if te else base)
    unet_eff = None if te_only else (unet if unet else base)
    return EffectiveRates(base, te_eff, unet_eff, te_only, unet_only)


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


def gui_split(text: Any) -> list[str]:
    """How the GUI splits ``optimizer_args``, ``lr_scheduler_args`` and ``additional_parameters`` into words:
    ``str(text).replace('"', "").split()`` (``kohya_gui/lora_gui.py`` ``train_model``, ``kohya_gui/common_gui.py``
    ``run_cmd_advanced_training``): no shell quoting, double quotes dropped."""
    return str(text).replace('"', "").split()


def cli_options(text: str) -> list[tuple[str, list[str]]]:
    """``--opt v1 v2 --flag --k=v`` as [(opt, [values])], the way argparse reads the GUI's
    ``additional_parameters`` (split as :func:`gui_split` does)."""
    out: list[tuple[str, list[str]]] = []
    for token in gui_split(text):
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
    strips of quotes (``kohya_gui/common_gui.py`` ``run_cmd_advanced_training``): a value with spaces or quotes
    cannot pass through it."""
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
    it does not pass a falsy value (the filter at the end of ``kohya_gui/lora_gui.py`` ``train_model``), passes
    nothing the noise_offset_type gate closes, and a value equal to sd-scripts' own default changes nothing."""
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
