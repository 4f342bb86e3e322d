"""What sd-scripts trains from a kohya_ss GUI run, compared without the GUI: the pure half of the issue-12 acceptance.

Used by the acceptance tests against the real GUI (tests/real/test_gui_real.py) and by the unit tests over what
they recorded (tests/test_gui_configs.py), so both compare the same way.

* :func:`effective` reads what sd-scripts trains from the GUI's output: its TOML with the command line after
  ``--config_file`` (the GUI's ``additional_parameters``) merged over it, since sd-scripts lets the command line
  win; values normalised (numbers as floats, ``key=value`` lists as dicts, sd-scripts' defaults dropped, the
  scheduler and learning rates relative-step Adafactor replaces, the training length as "N epochs"/"N steps").
* :func:`differences` lists the training-relevant keys (:data:`RELEVANT`) two such readings disagree on, and
  :func:`explain` says which of them are a known fault of the GUI's side (and who is right).
* :func:`localize` points a config's machine-specific paths at this machine (folders into a work folder, missing
  files emptied), touching nothing that changes training.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from kohya_recipe.recipe.models import Recipe
from kohya_recipe.sdscripts.buckets import BucketFields
from kohya_recipe.sdscripts.options import option_specs

# The keys that decide what is trained (length, batch, learning rates, optimizer and args, network,
# resolution/buckets, precision, model and script, loss/noise, data), by group.
RELEVANT: dict[str, tuple[str, ...]] = {
    "length": ("_length",),
    "batch": ("train_batch_size", "gradient_accumulation_steps"),
    "learning rates": (
        "learning_rate",
        "unet_lr",
        "text_encoder_lr",
        "lr_scheduler",
        "lr_warmup_steps",
        "lr_scheduler_num_cycles",
        "lr_scheduler_power",
        "lr_scheduler_args",
        "lr_scheduler_type",
    ),
    "optimizer": ("optimizer_type", "optimizer_args", "max_grad_norm"),
    "network": (
        "network_module",
        "network_dim",
        "network_alpha",
        "network_args",
        "network_dropout",
        "network_train_unet_only",
        "network_train_text_encoder_only",
        "network_weights",
        "dim_from_weights",
        "scale_weight_norms",
    ),
    "resolution": BucketFields.BUCKET_FIELDS,
    "precision": ("mixed_precision", "save_precision", "full_fp16", "full_bf16", "fp8_base", "no_half_vae"),
    "model": ("pretrained_model_name_or_path", "v2", "v_parameterization", "clip_skip", "vae", "_script"),
    "loss and noise": (
        "min_snr_gamma",
        "noise_offset",
        "adaptive_noise_scale",
        "multires_noise_iterations",
        "multires_noise_discount",
        "ip_noise_gamma",
        "loss_type",
        "huber_c",
        "huber_schedule",
        "huber_scale",
        "prior_loss_weight",
        "debiased_estimation_loss",
        "v_pred_like_loss",
        "scale_v_pred_loss_like_noise_pred",
        "min_timestep",
        "max_timestep",
        "masked_loss",
    ),
    "data": (
        "train_data_dir",
        "reg_data_dir",
        "dataset_config",
        "caption_extension",
        "shuffle_caption",
        "keep_tokens",
        "caption_dropout_rate",
        "caption_dropout_every_n_epochs",
        "color_aug",
        "flip_aug",
        "random_crop",
        "max_token_length",
        "seed",
    ),
}
RELEVANT_KEYS = tuple(k for keys in RELEVANT.values() for k in keys)
LIST_OPTIONS = ("network_args", "optimizer_args", "lr_scheduler_args")
TRAINER_DEFAULT_STEPS = 1600  # sd-scripts' --max_train_steps default
SCRIPTS = re.compile(r"\b(\w*train_network\.py)\b")


def _scalar(x: Any) -> Any:
    if isinstance(x, bool):
        return x
    if isinstance(x, int | float):
        return float(x)
    s = str(x).strip().strip('"')
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    try:
        return float(s)
    except ValueError:
        return s


def kv(items: Any) -> dict[str, Any]:
    """``["k=v", ...]`` (a TOML list or command-line words) as an order-free dict of normalised values."""
    out: dict[str, Any] = {}
    for item in items if isinstance(items, list) else [items]:
        key, _, value = str(item).partition("=")
        out[key.strip()] = _scalar(value)
    return out


def command_extra(command: str) -> list[str]:
    """The words after ``--config_file <file>`` of the GUI's printed command: its additional_parameters."""
    words = shlex.split(command)
    if "--config_file" not in words:
        return []
    return words[words.index("--config_file") + 2 :]


def cli_options(words: list[str]) -> dict[str, Any]:
    """``--opt v1 v2 --flag --k=v`` as argparse reads them: the value, a list for the list options, True for a flag."""
    found: dict[str, list[str]] = {}
    key = None
    for word in words:
        if word.startswith("--"):
            key, eq, value = word[2:].partition("=")
            found[key] = [value] if eq else []
        elif key is not None:
            found[key].append(word)
    out: dict[str, Any] = {}
    for key, values in found.items():
        if key in LIST_OPTIONS:
            out[key] = values
        else:
            out[key] = True if not values else values[0] if len(values) == 1 else values
    return out


def _relative_step_adafactor(values: dict[str, Any]) -> bool:
    if str(values.get("optimizer_type", "")).lower() != "adafactor":
        return False
    args = values.get("optimizer_args", {})
    return args.get("relative_step", True) is not False or args.get("warmup_init") is True


def effective(toml: dict[str, Any], extra: list[str], script: str | None) -> dict[str, Any]:
    """What sd-scripts trains with, from the GUI's TOML and the words after ``--config_file``."""
    merged: dict[str, Any] = dict(toml)
    merged.update(cli_options(extra))
    sdxl = script == "sdxl_train_network.py"
    specs = option_specs(sdxl)
    out: dict[str, Any] = {}
    for key, value in merged.items():
        if key in LIST_OPTIONS:
            out[key] = kv(value) if value else {}
        elif isinstance(value, list):
            out[key] = [_scalar(x) for x in value]
        elif key in ("train_data_dir", "reg_data_dir") and isinstance(value, str) and value:
            out[key] = os.path.normpath(value)
        else:
            out[key] = _scalar(value)
    epochs = out.get("max_train_epochs")
    if isinstance(epochs, float) and epochs > 0:
        out["_length"] = f"{int(epochs)} epochs"
    else:
        steps = out.get("max_train_steps")
        out["_length"] = f"{int(steps) if isinstance(steps, float) and steps > 0 else TRAINER_DEFAULT_STEPS} steps"
    out["_script"] = script
    if _relative_step_adafactor(out):
        # library/train_util.py: the adafactor schedule replaces any scheduler, and the learning rates are unused.
        out["lr_scheduler"] = "adafactor"
        for key in ("learning_rate", "unet_lr", "text_encoder_lr"):
            out.pop(key, None)
    if out.get("network_train_unet_only") is True:
        out.pop("text_encoder_lr", None)  # not trained
    for key in list(out):
        spec, value = specs.get(key), out[key]
        if spec is not None and spec.default is not None and value == _scalar(spec.default):
            del out[key]  # the same as leaving it out
        elif value is False or (isinstance(value, dict | list | str) and not value):
            del out[key]
    return out


def relevant(values: dict[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in RELEVANT_KEYS if k in values}


def differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The relevant keys whose values differ: key -> (a's, b's); ``None`` stands for "not set"."""
    ra, rb = relevant(a), relevant(b)
    return {k: (ra.get(k), rb.get(k)) for k in RELEVANT_KEYS if ra.get(k) != rb.get(k)}


# ----------------------------------------------------------------------------------------------------------------
# Configs of other machines, here


HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
FOLDER_KEYS = ("output_dir", "logging_dir")
OPTIONAL_PATHS = ("reg_data_dir", "network_weights", "lora_network_weights", "vae", "dataset_config", "resume")


def localize(config: dict[str, Any], *, gui_root: Path, data: Path, work: Path) -> tuple[dict[str, Any], list[str]]:
    """The config with this machine's paths: relative folders resolved in the GUI checkout (where the GUI runs),
    outputs into ``work``, other folders that do not exist here replaced by ``data``, missing optional files emptied,
    a missing local model replaced by its family's hub model. Returns the copy and the keys changed."""
    d = dict(config)
    changed: list[str] = []

    def here(value: Any) -> Path | None:
        if not isinstance(value, str) or not value or "\\" in value or re.match(r"^[A-Za-z]:", value):
            return None
        p = Path(value)
        return p if p.is_absolute() else gui_root / p

    train = here(d.get("train_data_dir"))
    if "train_data_dir" in d and (train is None or not train.is_dir()) and not d.get("dataset_config"):
        d["train_data_dir"] = str(data)
        changed.append("train_data_dir")
    elif train is not None and not Path(str(d["train_data_dir"])).is_absolute():
        d["train_data_dir"] = str(train)
    for key in FOLDER_KEYS:
        if key in d:
            d[key] = str(work / key)
            changed.append(key)
    for key in OPTIONAL_PATHS:
        p = here(d.get(key))
        if isinstance(d.get(key), str) and d[key] and (p is None or not p.exists()):
            d[key] = ""
            changed.append(key)
        elif p is not None:
            d[key] = str(p)
    model = d.get("pretrained_model_name_or_path")
    local_file = isinstance(model, str) and (model.endswith((".safetensors", ".ckpt")) or not HUB_ID.match(model))
    if isinstance(model, str) and model and local_file and not Path(model).exists():
        sdxl = d.get("sdxl") in (True, "true", "True")
        d["pretrained_model_name_or_path"] = (
            "stabilityai/stable-diffusion-xl-base-1.0" if sdxl else "runwayml/stable-diffusion-v1-5"
        )
        changed.append("pretrained_model_name_or_path")
    return d, changed


# Why the original (A) and the round trip (B) may differ, and who is right. Every other difference fails the test.
STALE_RANK = (
    "B is right: A has the GUI's stale rank (a fresh form's network_dim 8 / conv_dim 1; the file says otherwise)"
)
STALE_WARMUP = "B is right: A has the GUI's stale warmup (a fresh form's 10 %; the file says otherwise)"
BUCKET_ONE = "B is right: the trainer refuses bucket_reso_steps 1 ('it must be divisible by 64/32')"
SAME_SD15 = (
    "B is right: the file names no model, so A keeps a fresh form's runwayml/stable-diffusion-v1-5, which is no "
    "longer on the Hugging Face hub; B names its re-upload stable-diffusion-v1-5/stable-diffusion-v1-5 (SD 1.5 both)"
)
GUI_FORM_MODEL = "runwayml/stable-diffusion-v1-5"


def explain(key: str, a: Any, original: dict[str, Any]) -> str | None:
    """Why A's value of ``key`` differs from B's, when it is a known fault of the GUI or the file."""
    lora_type = original.get("LoRA_type", "Standard")
    if key in ("network_dim", "network_args") and lora_type not in ("Standard", None):
        stale = a == 8.0 if key == "network_dim" else isinstance(a, dict) and a.get("conv_dim") == 1.0
        return STALE_RANK if stale else None
    if key == "lr_warmup_steps" and a == 0.1:
        said = (original.get("lr_warmup"), original.get("lr_warmup_steps"))
        return STALE_WARMUP if said not in ((10, 0), ("10", "0"), (10, None)) else None
    if key == "bucket_reso_steps" and a == 1.0:
        return BUCKET_ONE
    if key == "pretrained_model_name_or_path" and a == GUI_FORM_MODEL and not original.get(key):
        return SAME_SD15
    return None


def gui_steps_for(form: dict[str, Any], cwd: Path | None = None) -> int | None:
    """The steps the GUI computes itself from a form (train_model's formula: Σ repeats × images of the folders),
    when it computes any: no length in the form and no dataset_config."""
    from kohya_recipe.gui.translate import count_dataset_steps, gui_max_train_steps

    if form.get("max_train_epochs") or form.get("max_train_steps") or form.get("dataset_config"):
        return None
    found = count_dataset_steps(str(form.get("train_data_dir", "")), cwd=cwd)
    return None if found is None else gui_max_train_steps({"reg_data_dir": "", **form}, found)


def gui_sentence(reason: str) -> str:
    """The GUI's own sentence in a refusal (``key: sentence / more``), as an import quotes it: no field prefix,
    first line only."""
    return reason.split(" / ")[0].split(": ", 1)[-1]


def _recipe_length(recipe: Recipe) -> str:
    tr = recipe.training
    return f"{tr.max_train_steps} steps" if tr.max_train_steps else f"{tr.max_train_epochs} epochs"


def trains_the_recipe(
    values: dict[str, Any], recipe: Recipe, gui_steps: int | None = None
) -> dict[str, tuple[Any, Any]]:
    """Where the GUI's effective values differ from the recipe's (rank, conv_dim, warmup, scheduler, length).
    ``gui_steps``: the steps the GUI computes itself for the recipe's epochs (a config rendered with its own
    ``max_train_epochs = 0`` spelling trains that count, which is the same epochs when the batches fill evenly)."""
    opt, net = recipe.optimizer, recipe.network
    length = _recipe_length(recipe)
    if gui_steps is not None and values.get("_length") == f"{gui_steps} steps" and length.endswith("epochs"):
        length = f"{gui_steps} steps"
    want: dict[str, Any] = {
        "network_dim": float(net.rank),
        "lr_warmup_steps": float(opt.warmup_steps) or None,
        "lr_scheduler": "adafactor" if opt.is_adafactor and opt.relative_step else opt.scheduler,
        "_length": length,
    }
    if want["lr_scheduler"] == "constant":
        want["lr_scheduler"] = None  # sd-scripts' default: dropped by effective()
    args = kv(net.args)
    got_args = values.get("network_args", {})
    out = {k: (values.get(k), v) for k, v in want.items() if values.get(k) != v}
    for name in ("conv_dim", "conv_alpha"):
        if name in args and got_args.get(name) != args[name]:
            out[f"network_args.{name}"] = (got_args.get(name), args[name])
    return out


# A recipe using what the GUI's form cannot hold: a scheduler with no warmup after the form's 10 %, Kohya LoCon
# (conv_dim after a fresh form's 1), zeros the GUI drops (max_grad_norm, huber_c, prior_loss_weight).
CARRIED_RECIPE = """
[optimizer]
type = "AdamW"
args = []
scheduler = "cosine"
warmup_steps = 0
learning_rate = 0.0001
max_grad_norm = 0.0

[network]
args = ["conv_dim=8", "conv_alpha=4"]

[extra]
loss_type = "huber"
huber_c = 0.0
prior_loss_weight = 0.0
"""
