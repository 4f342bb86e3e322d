"""How an imported GUI config's values become the recipe's where the file's words are not what the GUI trained.

Each function reads one thing the way the real GUI (45088f04) and sd-scripts together would have trained it, and
returns the sentence saying so, for the import's report:

* :func:`gui_length`: the training length. The GUI trains the form's ``max_train_steps`` (1600 in a fresh form
  when the file has none), a fixed step count as it is, and computes steps from ``epoch`` only when the count is 0
  and no ``dataset_config`` is set (with one, sd-scripts falls back to its own 1600).
* :func:`family_base`: a base model for a file without one (a preset): the GUI would keep whatever its form shows,
  an SD 1.5 model in a fresh form, even for SDXL.
* :func:`trainer_bucket_reso_steps`: the GUI's slider accepts 1, the trainer only multiples of 64 (SD 1.x/2.x) or
  32 (SDXL).
* :func:`dropped_zeros`: a 0 the GUI leaves out of its TOML (:mod:`kohya_recipe.kohya_ss.zeros`) trained as
  sd-scripts' default.
"""

from __future__ import annotations

from typing import Any

from kohya_recipe.kohya_ss.zeros import FieldZero, zero_changes_training
from kohya_recipe.sdscripts.buckets import MIN_BUCKET_RESO_STEPS

# sd-scripts' --max_train_steps default (library/train_util.py add_training_arguments), which is also the GUI's
# fresh-form value of max_train_steps.
TRAINER_DEFAULT_STEPS = 1600

# Base models for a file that names none, by family: the hub ids the GUI's own model list offers.
SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
SD2_BASE = "stabilityai/stable-diffusion-2-1-base"
SD2_V_BASE = "stabilityai/stable-diffusion-2-1"

# Zeros that mean something to the GUI itself, read where their fields are (seed 0: random; learning_rate 0:
# sd-scripts' default rate, which the recipe's unset rate means too).
ZEROS_WITH_GUI_MEANING = frozenset({"seed", "learning_rate"})


def gui_length(form: dict[str, Any], present: set[str] | dict[str, None]) -> tuple[int, int | None, str]:
    """(max_train_epochs, max_train_steps or None, the sentence) for the loaded ``form``; ``present`` holds the keys
    the file sets."""
    epochs_field, steps, epoch = int(form["max_train_epochs"]), int(form["max_train_steps"]), int(form["epoch"])
    if epochs_field > 0:
        ignored = f"; sd-scripts ignores its max_train_steps {steps}" if steps and "max_train_steps" in present else ""
        return epochs_field, None, f"length: {epochs_field} epochs, the file's max_train_epochs{ignored}"
    epochs = max(epoch, 1)
    if "max_train_steps" not in present:
        return (
            epochs,
            TRAINER_DEFAULT_STEPS,
            f"length: {TRAINER_DEFAULT_STEPS} steps: the file has no max_train_steps, so the GUI trains its form's "
            f"value ({TRAINER_DEFAULT_STEPS} in a fresh form, sd-scripts' default too), not epoch = {epoch}; to train "
            "by epochs, remove training.max_train_steps",
        )
    if steps > 0:
        return (
            epochs,
            steps,
            f"length: {steps} steps, the file's max_train_steps (the GUI trains exactly that; epoch = {epoch} only "
            "feeds its own step count)",
        )
    if form["dataset_config"]:
        return (
            epochs,
            TRAINER_DEFAULT_STEPS,
            f"length: {TRAINER_DEFAULT_STEPS} steps: with a dataset_config and max_train_steps 0 the GUI writes no "
            f"length, so sd-scripts trains its default {TRAINER_DEFAULT_STEPS} steps",
        )
    if epoch < 1:
        raise ValueError(f"{form['epoch']}: at least one epoch is needed")
    return (
        epoch,
        None,
        f"length: {epoch} epochs, the file's epoch with max_train_steps 0 (the GUI trains ceil(images x repeats / "
        f"batch / gradient accumulation x {epoch}) steps, the same when the batches fill evenly; sd-scripts' own "
        "count also rounds up each epoch's partly filled buckets)",
    )


def family_base(family: str, v_parameterization: bool, sd15_base: str) -> str:
    """The base model to use for ``family`` when the file names none."""
    if family == "sdxl":
        return SDXL_BASE
    if family == "sd2":
        return SD2_V_BASE if v_parameterization else SD2_BASE
    return sd15_base


def base_note(family: str, base: str, *, in_file: bool) -> str:
    what = "is empty" if in_file else "is not in the file (a preset)"
    name = {"sdxl": "SDXL", "sd2": "SD 2", "sd15": "SD 1.5"}[family]
    return (
        f"pretrained_model_name_or_path {what}: the GUI would keep its form's model (an SD 1.5 model in a fresh "
        f"form, whatever the family); using the {name} base {base!r}: set model.base to your checkpoint"
    )


def trainer_bucket_reso_steps(value: int, family: str, *, enable_bucket: bool) -> tuple[int, str] | None:
    """The value the trainer accepts nearest to ``value`` and the sentence, or None when it accepts ``value``."""
    step = MIN_BUCKET_RESO_STEPS[family]
    if value >= step and value % step == 0:
        return None
    new = max(step, round(value / step) * step)
    script = "sdxl_train_network.py" if family == "sdxl" else "train_network.py"
    when = "" if enable_bucket else " once bucketing is on"
    return new, (
        f"bucket_reso_steps: {value} becomes {new}, the nearest value {script} accepts (a multiple of {step}); the "
        f"GUI takes {value}, but the trainer stops with 'bucket_reso_steps is {value}. it must be divisible by "
        f"{step}.'{when}"
    )


def dropped_zeros(form: dict[str, Any], present: set[str] | dict[str, None], carried: set[str]) -> list[FieldZero]:
    """The fields the file sets to 0 whose 0 the GUI drops while sd-scripts' default differs (and that
    ``additional_parameters`` does not carry to the trainer itself)."""
    out = []
    for z in zero_changes_training():
        value = form[z.key]
        if z.key in ZEROS_WITH_GUI_MEANING or z.key not in present or z.option in carried:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
            out.append(z)
    return out


def zero_note(z: FieldZero) -> str:
    return (
        f"{z.key}: 0 becomes {z.default}: the GUI leaves every 0 out of its TOML, so sd-scripts trained with its "
        f"default {z.default} (a 0 set in the recipe reaches the trainer)"
    )
