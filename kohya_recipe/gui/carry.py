"""What the GUI JSON does so that the real kohya_ss GUI, loading it into a fresh form, trains what the recipe says.

Three things in the GUI (bmaltais/kohya_ss 45088f04, gradio 6.17.3) change a loaded file's values before training,
each proven on the real GUI and the real trainer (issue 12):

1. **Stale form values.** The "Parameters" accordion is closed in a fresh page, so its widgets are not mounted, and
   their ``change`` callbacks gather the form's *previous* values while the load is still being applied. When the
   file's ``lr_scheduler`` differs from the form's, ``lr_scheduler_changed`` writes the old warmup back (a fresh
   form: 10 %, which sd-scripts refuses for Adafactor's own schedule); when ``LoRA_type`` differs,
   ``update_LoRA_settings`` writes back the old ``network_dim`` and ``conv_dim`` (a fresh form: 8 and 1). No value
   in the file wins against them, and key order changes nothing.
2. **Zeros.** The GUI's TOML leaves out every 0 (:mod:`kohya_recipe.kohya_ss.zeros`); where sd-scripts' default
   means something else, the 0 is lost.
3. **Narrow widgets.** Dropdowns and sliders refuse values the trainer accepts: caption extensions older GUIs
   allowed, ``bucket_reso_steps`` above 128, a rank above the slider.

What survives all of them: ``lr_scheduler = "constant"`` for relative-step Adafactor (sd-scripts replaces the
scheduler with its adafactor schedule anyway, and the GUI's own ``constant`` branch zeroes the warmup), and the
command line: the GUI appends ``additional_parameters`` after ``--config_file``, and sd-scripts lets the command
line win over the TOML. :func:`gui_workarounds` adjusts the form and returns the options to carry, with one note per
kind of change for the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kohya_recipe.gui.form import cli_tokens, whole
from kohya_recipe.gui.network import network_args_from_form
from kohya_recipe.kohya_ss.fields import gui_field
from kohya_recipe.kohya_ss.zeros import zero_changes_training
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.sdscripts.options import option_specs

# Fields whose 0 the GUI drops but that are not carried: a 0 there means something to the GUI itself (a seed of 0 is
# its "random" = the recipe's unset seed, and the renderer refuses a recipe seed of 0; a learning rate of 0 is its
# "unset" = sd-scripts' default, and the recipe refuses a rate of 0).
ZEROS_DECIDED_ELSEWHERE = frozenset({"seed", "learning_rate"})

# The scheduler whose file value survives every form state (the callback's own branch sets both warmups to 0).
SAFE_SCHEDULER = "constant"


@dataclass
class Workarounds:
    """sd-scripts options the GUI JSON carries in ``additional_parameters`` (option -> its words), and the notes."""

    options: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _sdxl: bool = False

    def carry(self, option: str, value: Any, where: str) -> None:
        spec = option_specs(self._sdxl)[option]
        self.options[option] = cli_tokens(option, value, spec.type, where=where)[1:]

    def text(self, *options: str) -> str:
        return " ".join(" ".join([f"--{o}", *self.options[o]]) for o in options)


def gui_workarounds(recipe: Recipe, form: dict[str, Any]) -> Workarounds:
    """Adjust ``form`` (the recipe's own values) where the GUI would not train them, and say what to carry."""
    w = Workarounds(_sdxl=recipe.model.family == "sdxl")
    stale = _scheduler(recipe, form, w) + _network(recipe, form, w)
    if stale:
        w.notes.append(
            f"GUI JSON: additional_parameters carries {w.text(*stale)}: the GUI can load stale values into these "
            "fields (docs/gui.md)"
        )
    _zeros(form, w)
    _caption_extension(recipe, form, w)
    _bucket_reso_steps(form, w)
    return w


def _scheduler(recipe: Recipe, form: dict[str, Any], w: Workarounds) -> list[str]:
    opt = recipe.optimizer
    if opt.is_adafactor and opt.relative_step and form["lr_scheduler"] != SAFE_SCHEDULER:
        w.notes.append(
            f'GUI JSON: lr_scheduler "{SAFE_SCHEDULER}", not "{opt.scheduler}": relative-step Adafactor uses its own '
            "schedule either way, and the GUI would give any other a stale 10 % warmup (docs/gui.md)"
        )
        form["lr_scheduler"] = SAFE_SCHEDULER
    if form["lr_scheduler"] == SAFE_SCHEDULER and not opt.warmup_steps:
        form["lr_warmup"] = form["lr_warmup_steps"] = 0
        return []
    w.carry("lr_warmup_steps", opt.warmup_steps, "optimizer.warmup_steps")
    return ["lr_warmup_steps"]


def _clamp(form: dict[str, Any], key: str, w: Workarounds, carried: str) -> None:
    """A value above the slider's maximum: the field says the maximum, the command line the value. The maximum is
    the one a form has before its LoRA type changes (512): the LyCORIS types whose slider goes higher only raise it
    once their type is selected, and a form with Parameters open checks the loaded value before that."""
    hi = gui_field(key).maximum
    if hi is not None and form[key] > hi:
        w.notes.append(
            f"GUI JSON: {key} {form[key]} is above {whole(float(hi))}, the most the GUI's slider takes in every form "
            f"state: the field says {whole(float(hi))} and additional_parameters carries {carried}"
        )
        form[key] = whole(float(hi))


def _network(recipe: Recipe, form: dict[str, Any], w: Workarounds) -> list[str]:
    lora_type = form["LoRA_type"]
    if recipe.network.alpha == 0:
        w.notes.append(
            f"GUI JSON: network_alpha {recipe.network.rank} (the rank) for the recipe's 0, which the GUI refuses: "
            "sd-scripts reads alpha 0 as alpha = rank"
        )
        form["network_alpha"] = recipe.network.rank
    # A Standard file loaded after a config of another LoRA type gets that config's rank too.
    w.carry("network_dim", recipe.network.rank, "network.rank")
    carried = ["network_dim"]
    if lora_type != "Standard":
        args: list[str] = []
        for item in network_args_from_form(form, lora_type):
            if item not in args:  # the GUI lists use_tucker twice for LyCORIS LoCon/LoHa
                args.append(item)
        if args:
            w.carry("network_args", args, "network.args")
            carried.append("network_args")
        if "conv_dim" in form and isinstance(form["conv_dim"], int | float):
            _clamp(form, "conv_dim", w, "the full --network_args")
    _clamp(form, "network_dim", w, w.text("network_dim"))
    return carried


def _zeros(form: dict[str, Any], w: Workarounds) -> None:
    """Each 0 the GUI's TOML would drop while sd-scripts' default means something else."""
    lost: list[str] = []
    for z in zero_changes_training():
        value = form[z.key]
        if z.key in ZEROS_DECIDED_ELSEWHERE or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value == 0:
            w.carry(z.option, 0, z.key)
            lost.append(z.option)
    if lost:
        defaults = ", ".join(f"{z.option} {z.default}" for z in zero_changes_training() if z.option in lost)
        w.notes.append(
            f"GUI JSON: additional_parameters carries {w.text(*lost)}: the GUI leaves every 0 out of its TOML, and "
            f"sd-scripts would use {defaults}"
        )


def _caption_extension(recipe: Recipe, form: dict[str, Any], w: Workarounds) -> None:
    ext = recipe.dataset.caption_extension
    if ext in (gui_field("caption_extension").choices or ()):
        return
    form["caption_extension"] = ""
    w.carry("caption_extension", ext, "dataset.caption_extension")
    w.notes.append(
        f'GUI JSON: caption_extension "{ext}" is not one of the GUI\'s choices: the field is empty and '
        f"additional_parameters carries {w.text('caption_extension')}"
    )


def _bucket_reso_steps(form: dict[str, Any], w: Workarounds) -> None:
    hi = gui_field("bucket_reso_steps").maximum
    value = form["bucket_reso_steps"]
    if hi is None or value <= hi:
        return
    w.carry("bucket_reso_steps", value, "training.bucket_reso_steps")
    w.notes.append(
        f"GUI JSON: bucket_reso_steps {value} is above the GUI's maximum {whole(float(hi))} (sd-scripts accepts it): "
        f"the field says {whole(float(hi))} and additional_parameters carries {w.text('bucket_reso_steps')}"
    )
    form["bucket_reso_steps"] = whole(float(hi))
