"""The kohya_ss GUI's LoRA-tab JSON, rendered from a recipe.

What the GUI needs (reference/kohya_ss_gui.md §1, "Implications for a generator"):

* **All 287 fields.** A key missing from the file (or ``null``) keeps whatever the form happens to show, so a
  partial file does not say what will be trained.
* **Native types.** A Checkbox turns the string ``"false"`` into true; a precision-0 Number crashes on a string;
  ``max_resolution``, the args fields and the block-weight fields are strings; text fields are ``""``, not null.
* **Inside every widget's choices and range** (``gui_fields``): the GUI loads anything but refuses to Save,
  Train or Print a value outside them. A recipe value the GUI cannot hold is a :class:`GuiConfigError` naming
  the recipe field and the GUI's limit.
* **GUI semantics.** ``max_train_steps = 0`` (the GUI's default 1600 would cap the run), ``epoch`` and
  ``max_train_epochs`` = the recipe's epochs, SD1.5 = every family checkbox false, ``model_list = "custom"``,
  ``sample_prompts`` holds the prompt *text*, the folders are the project's ``img``/``model``/``log``.

``recipe.gui`` holds what the recipe does not model: values of GUI-only fields (``model_list``, the Flux/SD3
pages, accelerate's dynamo options, ...), the folders and output name of a config that was imported without a
project, and *spellings*: the exact form an imported file used for a value the recipe holds in a canonical way
(``max_train_epochs = 0`` with ``epoch = 4`` instead of 4 and 4, the prompt text without ``--w 512``). A spelling
is only used while it still means the same as the recipe, so editing the recipe can never be undone by it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from kohya_recipe.errors import GuiConfigError
from kohya_recipe.kohya_ss.fields import (
    GuiProblem,
    gui_defaults,
    gui_field,
    gui_fields,
    validate_gui_values,
)
from kohya_recipe.recipe.models import Recipe, SamplePrompt

# ------------------------------------------------------------------------------------------------------------
# Which GUI key means what


# Folder and naming keys: a project decides them (``project_dir``); without one they come from ``recipe.gui``
# (e.g. the paths of an imported config, kept as given: a Windows path stays a Windows path).
LAYOUT_KEYS = (
    "train_data_dir", "reg_data_dir", "output_dir", "logging_dir", "output_name", "dataset_config", "resume",
)  # fmt: skip

# GUI fields that are sd-scripts options the recipe does not model: they live in ``recipe.extra`` under the
# sd-scripts name. The GUI writes each to the TOML under the same name when it is truthy (§3 "All other keys go
# out under the same name when truthy"), except where ``EXTRA_GATES`` says otherwise.
EXTRA_KEYS: dict[str, str] = {
    k: k
    for k in (
        "training_comment", "save_state_on_train_end", "prior_loss_weight", "lr_scheduler_type", "fp8_base",
        "full_fp16", "full_bf16", "highvram", "masked_loss", "random_crop", "persistent_data_loader_workers",
        "v_pred_like_loss", "caption_dropout_every_n_epochs", "caption_dropout_rate",
        "noise_offset_random_strength", "adaptive_noise_scale", "multires_noise_iterations",
        "multires_noise_discount", "ip_noise_gamma", "ip_noise_gamma_random_strength", "loss_type",
        "huber_schedule", "huber_c", "huber_scale", "vae_batch_size", "min_snr_gamma", "save_every_n_steps",
        "save_last_n_steps", "save_last_n_steps_state", "save_last_n_epochs_state", "skip_cache_check",
        "wandb_api_key", "wandb_run_name", "log_tracker_name", "log_tracker_config", "log_config",
        "scale_v_pred_loss_like_noise_pred", "min_timestep", "max_timestep", "weighted_captions",
        "debiased_estimation_loss", "dim_from_weights", "scale_weight_norms", "huggingface_repo_id",
        "huggingface_token", "huggingface_repo_type", "huggingface_repo_visibility", "huggingface_path_in_repo",
        "save_state_to_huggingface", "resume_from_huggingface", "async_upload", "metadata_author",
        "metadata_description", "metadata_license", "metadata_tags", "metadata_title",
    )
}  # fmt: skip
# SDXL-page checkboxes: the GUI writes them under the sd-scripts name, and only when the SDXL box is ticked.
SDXL_EXTRA_KEYS = {"sdxl_no_half_vae": "no_half_vae", "sdxl_cache_text_encoder_outputs": "cache_text_encoder_outputs"}

# noise_offset_type gates these (§3): "Original" writes noise_offset/adaptive_noise_scale/random_strength,
# "Multires" writes the multires pair; the other group stays in the form but does nothing.
ORIGINAL_NOISE_KEYS = ("noise_offset", "adaptive_noise_scale", "noise_offset_random_strength")
MULTIRES_NOISE_KEYS = ("multires_noise_iterations", "multires_noise_discount")

# Every field that encodes network_module/network_args (lora_gui.py train_model, §3 table).
NETWORK_FIELDS = (
    "LyCORIS_preset", "conv_dim", "conv_alpha", "use_tucker", "use_scalar", "rank_dropout_scale", "bypass_mode",
    "dora_wd", "use_cp", "decompose_both", "factor", "constrain", "rescaled", "train_norm", "train_on_input",
    "unit", "rank_dropout", "module_dropout", "down_lr_weight", "mid_lr_weight", "up_lr_weight",
    "block_lr_zero_threshold", "block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas",
    "loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio",
)  # fmt: skip

# GUI key -> the recipe field it is rendered from (used to name the field in an error).
RECIPE_FIELDS: dict[str, str] = {
    "pretrained_model_name_or_path": "model.base", "v2": "model.family", "sdxl": "model.family",
    "v_parameterization": "model.v_parameterization", "vae": "model.vae", "LoRA_type": "network.module",
    "network_dim": "network.rank", "network_alpha": "network.alpha", "network_dropout": "network.dropout",
    "network_weights": "network.weights", "optimizer": "optimizer.type", "optimizer_args": "optimizer.args",
    "learning_rate": "optimizer.learning_rate", "unet_lr": "optimizer.unet_lr",
    "text_encoder_lr": "optimizer.text_encoder_lr", "lr_scheduler": "optimizer.scheduler",
    "lr_scheduler_args": "optimizer.scheduler_args", "lr_warmup": "optimizer.warmup_steps",
    "lr_warmup_steps": "optimizer.warmup_steps", "lr_scheduler_num_cycles": "optimizer.scheduler_num_cycles",
    "lr_scheduler_power": "optimizer.scheduler_power", "max_grad_norm": "optimizer.max_grad_norm",
    "epoch": "training.max_train_epochs", "max_train_epochs": "training.max_train_epochs",
    "max_train_steps": "training.max_train_epochs", "train_batch_size": "training.batch_size",
    "gradient_accumulation_steps": "training.gradient_accumulation_steps", "max_resolution": "training.resolution",
    "enable_bucket": "training.enable_bucket", "min_bucket_reso": "training.min_bucket_reso",
    "max_bucket_reso": "training.max_bucket_reso", "bucket_reso_steps": "training.bucket_reso_steps",
    "bucket_no_upscale": "training.bucket_no_upscale", "mixed_precision": "training.mixed_precision",
    "save_precision": "training.save_precision", "seed": "training.seed", "clip_skip": "training.clip_skip",
    "xformers": "training.attention", "gradient_checkpointing": "training.gradient_checkpointing",
    "cache_latents": "training.cache_latents", "cache_latents_to_disk": "training.cache_latents_to_disk",
    "save_every_n_epochs": "training.save_every_n_epochs", "save_state": "training.save_state",
    "save_last_n_epochs": "training.save_last_n_epochs",
    "max_data_loader_n_workers": "training.max_data_loader_n_workers",
    "max_token_length": "training.max_token_length", "noise_offset": "training.noise_offset",
    "log_with": "training.log_with", "caption_extension": "dataset.caption_extension",
    "flip_aug": "augmentation.flip", "color_aug": "augmentation.color",
    "shuffle_caption": "augmentation.shuffle_caption", "keep_tokens": "augmentation.keep_tokens",
    "sample_every_n_epochs": "samples.every_n_epochs", "sample_every_n_steps": "samples.every_n_steps",
    "sample_sampler": "samples.sampler", "sample_prompts": "samples.prompts", "output_name": "output",
    "num_processes": "accelerate.num_processes", "multi_gpu": "accelerate.num_processes",
    "num_machines": "accelerate.num_machines", "gpu_ids": "accelerate.gpu_ids",
    "num_cpu_threads_per_process": "accelerate.num_cpu_threads_per_process",
    "main_process_port": "accelerate.main_process_port", "dynamo_backend": "accelerate.dynamo_backend",
    "mem_eff_attn": "training.attention", "save_model_as": "output", "stop_text_encoder_training": "training",
    "flux1_checkbox": "model.family", "sd3_checkbox": "model.family", "hunyuan_image_checkbox": "model.family",
    "anima_checkbox": "model.family", "lumina_checkbox": "model.family", "noise_offset_type": "extra",
    "additional_parameters": "extra", "t5xxl_lr": "optimizer.text_encoder_lr",
}  # fmt: skip

# sd-scripts options that have no GUI field: the GUI passes them through `additional_parameters`, raw command
# line tokens appended after --config_file (§3), which override the TOML.
RECIPE_CLI_OPTIONS: dict[str, str] = {
    "log_prefix": "training.log_prefix",
    "sample_at_first": "samples.at_first",
    "validation_split": "dataset.validation_split",
    "validation_seed": "dataset.validation_seed",
}

FAMILY_FLAGS = ("flux1_checkbox", "sd3_checkbox", "hunyuan_image_checkbox", "anima_checkbox", "lumina_checkbox")

# --------------------------------------------------------------------------------------------------------------
# LoRA types: network_module and the network_args the GUI builds from the form (lora_gui.py train_model)


@dataclass(frozen=True)
class NetArg:
    """One ``network_args`` entry the GUI builds from a form field."""

    name: str  # the key inside network_args
    key: str  # the GUI field
    kind: str  # str | float | int | bool
    lycoris_default: Any = None  # LyCORIS create_network's value when the arg is absent (None: rank/alpha)


@dataclass(frozen=True)
class LoraType:
    name: str
    module: str
    args: tuple[NetArg, ...]
    always: bool  # LyCORIS types write every arg; kohya types only the truthy ones
    algo: str | None = None


_BLOCK_KEYS = (
    "down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold", "block_dims", "block_alphas",
    "conv_block_dims", "conv_block_alphas",
)  # fmt: skip
_BLOCK_ARGS = (
    *(NetArg(k, k, "str") for k in _BLOCK_KEYS),
    NetArg("rank_dropout", "rank_dropout", "float"),
    NetArg("module_dropout", "module_dropout", "float"),
)

LORAPLUS_ARGS = tuple(
    NetArg(k, k, "float") for k in ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio")
)


def _ly(name: str, key: str, kind: str, default: Any = None) -> NetArg:
    return NetArg(name, key, kind, default)


# LyCORIS defaults from lycoris/kohya.py create_network: conv_dim/conv_alpha fall back to the network's rank and
# alpha, block_size to 4, the toggles to False, dropouts and constraint to 0, factor to -1.
_P = _ly("preset", "LyCORIS_preset", "str", "full")
_CD = _ly("conv_dim", "conv_dim", "int")
_CA = _ly("conv_alpha", "conv_alpha", "float")
_TU = _ly("use_tucker", "use_tucker", "bool", False)
_RD = _ly("rank_dropout", "rank_dropout", "float", 0.0)
_MD = _ly("module_dropout", "module_dropout", "float", 0.0)
_BY = _ly("bypass_mode", "bypass_mode", "bool", False)
_DW = _ly("dora_wd", "dora_wd", "bool", False)
_US = _ly("use_scalar", "use_scalar", "bool", False)
_RS = _ly("rank_dropout_scale", "rank_dropout_scale", "bool", False)
_TN = _ly("train_norm", "train_norm", "bool", False)
_LOCON_ARGS = (_P, _CD, _CA, _TU, _RD, _BY, _DW, _MD, _TU, _US, _RS)

LORA_TYPES: dict[str, LoraType] = {
    t.name: t
    for t in (
        LoraType("Standard", "networks.lora", _BLOCK_ARGS, always=False),
        LoraType("Kohya LoCon", "networks.lora", _BLOCK_ARGS, always=False),
        LoraType("LoRA-FA", "networks.lora_fa", _BLOCK_ARGS, always=False),
        LoraType(
            "Kohya DyLoRA",
            "networks.dylora",
            (
                NetArg("conv_dim", "conv_dim", "int"),
                NetArg("conv_alpha", "conv_alpha", "float"),
                *_BLOCK_ARGS,
                NetArg("unit", "unit", "int"),
            ),
            always=False,
        ),
        LoraType(
            "Kohya LoHa",
            "networks.loha",
            (
                NetArg("conv_dim", "conv_dim", "int"),
                NetArg("conv_alpha", "conv_alpha", "float"),
                NetArg("use_tucker", "use_tucker", "bool"),
                _RD,
                _MD,
            ),
            always=False,
        ),
        LoraType(
            "Kohya LoKr",
            "networks.lokr",
            (
                NetArg("conv_dim", "conv_dim", "int"),
                NetArg("conv_alpha", "conv_alpha", "float"),
                NetArg("use_tucker", "use_tucker", "bool"),
                NetArg("factor", "factor", "int"),
                _RD,
                _MD,
            ),
            always=False,
        ),
        LoraType("LyCORIS/LoCon", "lycoris.kohya", (*_LOCON_ARGS, _TN), True, "locon"),
        LoraType("LyCORIS/LoHa", "lycoris.kohya", (*_LOCON_ARGS, _TN), True, "loha"),
        LoraType(
            "LyCORIS/LoKr",
            "lycoris.kohya",
            (
                _P,
                _CD,
                _CA,
                _TU,
                _RD,
                _BY,
                _DW,
                _MD,
                _ly("factor", "factor", "int", -1),
                _ly("use_cp", "use_cp", "bool", False),
                _US,
                _ly("decompose_both", "decompose_both", "bool", False),
                _RS,
                _TN,
            ),
            True,
            "lokr",
        ),
        LoraType("LyCORIS/BOFT", "lycoris.kohya", (_P, _CD, _CA, _MD, _TU, _RD, _RS, _TN), True, "boft"),
        LoraType(
            "LyCORIS/Diag-OFT",
            "lycoris.kohya",
            (
                _P,
                _CD,
                _CA,
                _MD,
                _TU,
                _RD,
                _RS,
                _ly("constraint", "constrain", "float", 0.0),
                _ly("rescaled", "rescaled", "bool", False),
                _TN,
            ),
            True,
            "diag-oft",
        ),
        LoraType(
            "LyCORIS/DyLoRA",
            "lycoris.kohya",
            (_P, _CD, _CA, _TU, _ly("block_size", "unit", "int", 4), _RD, _MD, _TN),
            True,
            "dylora",
        ),
        LoraType("LyCORIS/GLoRA", "lycoris.kohya", (_P, _CD, _CA, _TU, _RD, _MD, _RS, _TN), True, "glora"),
        # train_on_input has no LyCORIS default we can vouch for: it must be given explicitly.
        LoraType(
            "LyCORIS/iA3", "lycoris.kohya", (_P, _CD, _CA, _ly("train_on_input", "train_on_input", "bool")), True, "ia3"
        ),
        LoraType("LyCORIS/Native Fine-Tuning", "lycoris.kohya", (_P, _RD, _MD, _RS, _TN), True, "full"),
    )
}
# "LoCon" is the GUI's pre-LyCORIS name, migrated on load (update_my_data).
LEGACY_LORA_TYPES = {"LoCon": "LyCORIS/LoCon"}
# Types for model families kohya-recipe does not train (its recipe models SD1.x, SD2.x and SDXL).
UNSUPPORTED_LORA_TYPES = frozenset({"Flux1", "Flux1 OFT", "HunyuanImage-2.1", "Anima", "Lumina"})
ALGO_TO_TYPE = {t.algo: t.name for t in LORA_TYPES.values() if t.algo}
# LyCORIS types whose network_dim is unused (IA3 and full fine-tuning have no rank).
RANKLESS_LORA_TYPES = frozenset({"LyCORIS/iA3", "LyCORIS/Native Fine-Tuning"})


def gui_arg_text(value: Any) -> str:
    """How the GUI writes a form value into ``network_args``: Python's ``f"{value}"`` (True, 0.1, 8)."""
    return f"{value}"


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
            # lora_gui.py: network_args += f' conv_dim="{conv_dim}" conv_alpha="{conv_alpha}"'; the quotes are
            # stripped when the string is split into the TOML list.
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


# --------------------------------------------------------------------------------------------------------------
# Small conversions


def _whole(x: float) -> int | float:
    """A float that is a whole number as an int (the GUI's sliders save whole numbers as JSON ints)."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


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


def _prompts_equal(text: str, prompts: list[SamplePrompt]) -> bool:
    parsed, dropped = parse_sample_prompts(text)
    if dropped or len(parsed) != len(prompts):
        return False
    from pydantic import ValidationError

    try:
        return [SamplePrompt(**p) for p in parsed] == list(prompts)
    except ValidationError:
        return False


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


# --------------------------------------------------------------------------------------------------------------
# Rendering


@dataclass
class GuiRender:
    """A rendered form and which ``recipe.gui`` spellings were used or ignored (for the importer)."""

    values: dict[str, Any]
    used_spellings: list[str] = field(default_factory=list)
    stale_spellings: list[str] = field(default_factory=list)


def _error(recipe_field: str, message: str) -> GuiConfigError:
    return GuiConfigError(message, source="recipe", field=recipe_field)


def _fresh_form() -> dict[str, Any]:
    # Text fields whose fresh value is None (network_weights, the block-weight fields) are written as "": a null
    # would mean "keep what the form shows".
    return {k: ("" if v is None else v) for k, v in gui_defaults().items()}


def _join(root: str, name: str) -> str:
    """``root/name`` in the style of ``root`` (a Windows project path keeps backslashes)."""
    if "\\" in root and "/" not in root.replace("\\", ""):
        return str(PureWindowsPath(root) / name)
    return root.rstrip("/") + "/" + name if root not in ("/", "") else "/" + name


def _network(recipe: Recipe, form: dict[str, Any]) -> str:
    """Fill LoRA_type and the network fields from network.module/args; returns the LoRA type."""
    net = recipe.network
    args = parse_arg_list(net.args)
    module = net.module
    if module == "lycoris.kohya":
        algo = args.get("algo", "lora").strip('"').lower()
        if algo == "lora":
            algo = "locon"  # LyCORIS treats algo=lora as locon
        lora_type = ALGO_TO_TYPE.get(algo)
        if lora_type is None:
            raise _error("network.args", f"algo={algo} has no LoRA type in the GUI")
    elif module == "networks.lora":
        lora_type = "Kohya LoCon" if "conv_dim" in args else "Standard"
    else:
        by_module = {t.module: t.name for t in LORA_TYPES.values() if not t.algo and t.module != "networks.lora"}
        if module not in by_module:
            known = ", ".join(sorted({t.module for t in LORA_TYPES.values()}))
            raise _error("network.module", f"{module!r} has no LoRA type in the GUI (it offers {known})")
        lora_type = by_module[module]
    t = LORA_TYPES[lora_type]
    if lora_type in ("Kohya LoHa", "Kohya LoKr") and recipe.model.family != "sdxl":
        raise _error("network.module", f"the GUI's {lora_type!r} needs an SDXL model (train_model check)")
    form["LoRA_type"] = lora_type
    allowed = {a.name: a for a in (*t.args, *LORAPLUS_ARGS)}
    if lora_type == "Kohya LoCon":
        allowed["conv_dim"] = NetArg("conv_dim", "conv_dim", "int")
        allowed["conv_alpha"] = NetArg("conv_alpha", "conv_alpha", "float")
    for name in args:
        if name == "algo" and t.algo:
            continue
        if name not in allowed:
            have = ", ".join(sorted(allowed)) or "none"
            raise _error(
                "network.args",
                f"{name!r} has no field in the GUI for LoRA_type {lora_type!r} (its network args: {have})",
            )
    # Fields of this type that the args leave out: kohya types write nothing for a falsy field, so 0/"" is
    # the same as absent; LyCORIS types always write every field, so an absent arg gets LyCORIS's own default.
    for a in allowed.values():
        if a.name in args:
            text = args[a.name].strip('"')
            try:
                if a.kind == "str":
                    value: Any = text
                elif a.kind == "bool":
                    value = _text_bool(text)
                else:
                    value = _text_number(text)
                    if a.kind == "int":
                        if not float(value).is_integer():
                            raise ValueError(text)
                        value = int(value)
                    else:
                        value = _whole(float(value)) if isinstance(value, float) else value
            except ValueError:
                raise _error(
                    "network.args", f"{a.name}={args[a.name]}: not a {a.kind} the GUI field can hold"
                ) from None
        elif t.algo:
            if a.name in ("conv_dim",):
                value = net.rank
            elif a.name == "conv_alpha":
                value = _whole(float(net.alpha))
            elif a.lycoris_default is None and a in t.args:
                raise _error("network.args", f"LyCORIS {t.algo} in the GUI always passes {a.name}=; set it")
            elif a in LORAPLUS_ARGS:
                value = 0
            else:
                value = a.lycoris_default
        elif lora_type == "Kohya LoCon" and a.name == "conv_alpha":
            value = 1  # networks.lora: conv_alpha defaults to 1 when conv_dim is given
        elif a.kind == "str":
            value = ""
        elif lora_type == "Kohya LoKr" and a.name == "factor":
            value = -1
        elif lora_type == "Kohya DyLoRA" and a.name == "unit":
            value = 1  # networks.dylora: unit defaults to 1
        else:
            value = 0 if a.kind != "bool" else False
        form[a.key] = value
    return lora_type


def _learning_rates(recipe: Recipe, form: dict[str, Any]) -> None:
    """learning_rate / text_encoder_lr / unet_lr as the GUI turns them into sd-scripts' (§3, §9 of the
    implications): te = 0 means UNet-only, unet = 0 means TE-only, all three 0 is refused, 0 is "unset"."""
    from kohya_recipe.sdscripts.options import option_specs

    opt, net = recipe.optimizer, recipe.network
    default_lr = float(option_specs()["learning_rate"].default)
    # An unset learning rate is sd-scripts' default; the GUI cannot leave it unset, so write that default.
    lr = opt.learning_rate if opt.learning_rate is not None else default_lr
    te = opt.text_encoder_lr if opt.text_encoder_lr is not None else lr
    unet = opt.unet_lr if opt.unet_lr is not None else lr
    if net.train_unet_only:
        te = 0.0
        if unet == 0:
            raise _error("optimizer.unet_lr", "is 0 while network.train_unet_only is set: nothing would train")
    elif net.train_text_encoder_only:
        unet = 0.0
        if te == 0:
            raise _error("optimizer.text_encoder_lr", "is 0 while network.train_text_encoder_only is set")
    else:
        if te == 0:
            raise _error(
                "optimizer.text_encoder_lr",
                "0 means UNet-only training in the GUI; set network.train_unet_only = true instead",
            )
        if unet == 0:
            raise _error(
                "optimizer.unet_lr",
                "0 means text-encoder-only training in the GUI; set network.train_text_encoder_only = true instead",
            )
    form["learning_rate"] = lr
    form["text_encoder_lr"] = te
    form["unet_lr"] = unet
    form["t5xxl_lr"] = 0


def _warmup(recipe: Recipe, form: dict[str, Any]) -> None:
    w = recipe.optimizer.warmup_steps
    if isinstance(w, float) and not float(w).is_integer():
        # A ratio of all steps: the GUI's "LR warmup (% of total steps)" slider, written as lr_warmup/100.
        form["lr_warmup"] = _whole(round(w * 100, 10))
        form["lr_warmup_steps"] = 0
    else:
        form["lr_warmup"] = 0
        form["lr_warmup_steps"] = int(w)


def _additional_parameters(recipe: Recipe) -> list[str]:
    """Tokens for recipe values and ``extra`` options that have no GUI field."""
    from kohya_recipe.sdscripts.options import option_specs

    specs = option_specs(recipe.model.family == "sdxl")
    tokens: list[str] = []
    for option, path in RECIPE_CLI_OPTIONS.items():
        section, name = path.split(".")
        value = getattr(getattr(recipe, section), name)
        if value in (None, False) or (option == "validation_split" and not value):
            continue
        tokens += cli_tokens(option, value, specs[option].type, where=path)
    handled = set(EXTRA_KEYS.values()) | set(SDXL_EXTRA_KEYS.values())
    for option, value in recipe.extra.items():
        if option in handled:
            continue
        if value is None or value is False:
            continue
        tokens += cli_tokens(option, value, specs[option].type, where=f"extra.{option}")
    return tokens


def _extra_fields(recipe: Recipe, form: dict[str, Any]) -> None:
    extra = recipe.extra
    sdxl = recipe.model.family == "sdxl"
    for key, option in EXTRA_KEYS.items():
        if option in extra:
            value = extra[option]
            form[key] = _whole(value) if isinstance(value, float) and gui_field(key).numeric else value
    for key, option in SDXL_EXTRA_KEYS.items():
        if option in extra:
            if not sdxl:
                raise _error(f"extra.{option}", "the GUI passes it only for SDXL (its SDXL page)")
            form[key] = bool(extra[option])
    if "cache_text_encoder_outputs_to_disk" in extra:
        raise _error("extra.cache_text_encoder_outputs_to_disk", "the GUI offers it for Flux.1 and SD3 only")
    multires = "multires_noise_iterations" in extra
    original = [k for k in ("adaptive_noise_scale", "noise_offset_random_strength") if extra.get(k)]
    if recipe.training.noise_offset:
        original.insert(0, "training.noise_offset")
    if multires and original:
        raise _error(
            "extra.multires_noise_iterations",
            f"the GUI applies either multires noise or {', '.join(original)} (noise_offset_type), not both",
        )
    form["noise_offset_type"] = "Multires" if multires else "Original"


def _base_form(recipe: Recipe, project_dir: str | Path | None) -> dict[str, Any]:
    """The canonical form for ``recipe`` (no spellings applied yet)."""
    form = _fresh_form()
    form["model_list"] = "custom"  # reference §1: a hidden legacy field; the loader forces "custom" anyway
    gui = recipe.gui
    # GUI-only values first; everything the recipe decides is written over them below.
    for key, value in gui.items():
        if key in form and not is_recipe_owned(key):
            form[key] = value
    tr, opt, acc, model = recipe.training, recipe.optimizer, recipe.accelerate, recipe.model
    form["pretrained_model_name_or_path"] = model.base
    form["v2"] = model.family == "sd2"
    form["v_parameterization"] = model.v_parameterization
    form["sdxl"] = model.family == "sdxl"
    for flag in FAMILY_FLAGS:
        form[flag] = False
    form["vae"] = model.vae or ""
    form["save_model_as"] = "safetensors"  # what config.toml writes: the only format with ss_* metadata
    # Layout.
    if project_dir is not None:
        root = str(project_dir)
        form["train_data_dir"] = _join(root, "img")
        form["reg_data_dir"] = _join(root, "reg") if recipe.dataset.regularization else ""
        form["output_dir"] = _join(root, "model")
        form["logging_dir"] = _join(root, "log") if tr.log_with else ""
        form["output_name"] = recipe.output.output_name
        form["dataset_config"] = ""
        form["resume"] = ""
    else:
        for key in LAYOUT_KEYS:
            form[key] = gui.get(key, "")
        form["output_name"] = gui.get("output_name", recipe.output.output_name)
        if recipe.dataset.regularization and not form["reg_data_dir"]:
            raise _error(
                "dataset.regularization",
                "the GUI needs reg_data_dir, a folder of <repeats>_<class> folders: render with a project",
            )
    # Network.
    _network(recipe, form)
    form["network_dim"] = recipe.network.rank
    alpha = recipe.network.alpha
    if alpha == 0:
        raise _error(
            "network.alpha",
            f"0 is below the GUI's network_alpha minimum 0.00001; sd-scripts treats 0 as alpha = rank, so write "
            f"alpha = {recipe.network.rank}",
        )
    form["network_alpha"] = _whole(float(alpha))
    form["network_dropout"] = recipe.network.dropout or 0
    form["network_weights"] = recipe.network.weights or ""
    # Optimizer.
    form["optimizer"] = opt.type
    for key, values, path in (
        ("optimizer_args", opt.args, "optimizer.args"),
        ("lr_scheduler_args", opt.scheduler_args, "optimizer.scheduler_args"),
    ):
        for item in values:
            if any(c.isspace() for c in item) or '"' in item:
                raise _error(
                    path,
                    f"{item!r}: the GUI splits {key} on spaces and drops '\"', so an argument must have neither",
                )
        form[key] = " ".join(values)
    _learning_rates(recipe, form)
    form["lr_scheduler"] = opt.scheduler
    _warmup(recipe, form)
    form["lr_scheduler_num_cycles"] = opt.scheduler_num_cycles
    form["lr_scheduler_power"] = opt.scheduler_power
    form["max_grad_norm"] = opt.max_grad_norm
    # Length: epochs drive the run. max_train_steps = 0 makes the GUI compute steps from `epoch` (its default
    # 1600 would cap the run, §5); max_train_epochs is written too because sd-scripts lets it override those
    # steps with its own bucket-aware count (the GUI's formula ignores partly filled buckets).
    form["epoch"] = tr.max_train_epochs
    form["max_train_epochs"] = tr.max_train_epochs
    form["max_train_steps"] = 0
    form["stop_text_encoder_training"] = 0
    # Training.
    form["train_batch_size"] = tr.batch_size
    form["gradient_accumulation_steps"] = tr.gradient_accumulation_steps
    w, h = tr.resolution
    form["max_resolution"] = f"{w},{h}"
    form["enable_bucket"] = tr.enable_bucket
    form["min_bucket_reso"] = tr.min_bucket_reso
    form["max_bucket_reso"] = tr.max_bucket_reso
    form["bucket_reso_steps"] = tr.bucket_reso_steps
    form["bucket_no_upscale"] = tr.bucket_no_upscale
    mixed = acc.mixed_precision or tr.mixed_precision
    if mixed != tr.mixed_precision:
        raise _error(
            "accelerate.mixed_precision",
            "the GUI has one mixed_precision field for both accelerate and the trainer; make them equal",
        )
    form["mixed_precision"] = tr.mixed_precision
    form["save_precision"] = tr.save_precision
    if tr.seed == 0:
        raise _error("training.seed", "0 means 'random' in the GUI (it omits the seed); choose another seed")
    form["seed"] = tr.seed if tr.seed is not None else 0
    form["clip_skip"] = tr.clip_skip if tr.clip_skip is not None else 0  # 0 = not written = sd-scripts' default
    form["xformers"] = tr.attention
    form["mem_eff_attn"] = False
    form["gradient_checkpointing"] = tr.gradient_checkpointing
    form["cache_latents"] = tr.cache_latents
    form["cache_latents_to_disk"] = tr.cache_latents_to_disk
    form["save_every_n_epochs"] = tr.save_every_n_epochs or 0
    form["save_state"] = tr.save_state
    form["save_last_n_epochs"] = tr.save_last_n_epochs or 0
    from kohya_recipe.sdscripts.options import option_specs

    if tr.max_data_loader_n_workers is None:
        # The GUI always writes this key; an unset recipe value means sd-scripts' default.
        form["max_data_loader_n_workers"] = option_specs()["max_data_loader_n_workers"].default
    else:
        form["max_data_loader_n_workers"] = tr.max_data_loader_n_workers
    form["max_token_length"] = tr.max_token_length or 75  # sd-scripts' unset = 75 tokens
    form["noise_offset"] = _whole(tr.noise_offset) if tr.noise_offset else 0
    form["log_with"] = tr.log_with or ""
    # Dataset and augmentation.
    form["caption_extension"] = recipe.dataset.caption_extension
    aug = recipe.augmentation
    form["flip_aug"] = aug.flip
    form["color_aug"] = aug.color
    form["shuffle_caption"] = aug.shuffle_caption
    form["keep_tokens"] = aug.keep_tokens
    # Samples.
    s = recipe.samples
    form["sample_every_n_epochs"] = s.every_n_epochs or 0
    form["sample_every_n_steps"] = s.every_n_steps or 0
    form["sample_sampler"] = s.sampler
    form["sample_prompts"] = sample_prompts_text(s.prompts)
    # Accelerate.
    form["num_processes"] = acc.num_processes
    form["multi_gpu"] = acc.num_processes > 1  # as command.py launches it
    form["num_machines"] = acc.num_machines
    form["gpu_ids"] = ",".join(acc.gpu_ids)
    form["num_cpu_threads_per_process"] = acc.num_cpu_threads_per_process
    form["main_process_port"] = acc.main_process_port or 0
    form["dynamo_backend"] = acc.dynamo_backend
    # sd-scripts options the recipe keeps in `extra` (the form holds their fresh values otherwise).
    _extra_fields(recipe, form)
    tokens = _additional_parameters(recipe)
    form["additional_parameters"] = " ".join(tokens)
    spelled = str(gui.get("additional_parameters", "")).strip()
    if spelled:
        sdxl = model.family == "sdxl"
        known, rest = split_additional(spelled, sdxl=sdxl)
        mine, _ = split_additional(form["additional_parameters"], sdxl=sdxl)
        if sorted(map(repr, known)) == sorted(map(repr, mine)):
            form["additional_parameters"] = spelled  # the config's own text, meaning the same
        else:
            # The recipe changed what the checked options say; keep only the options kohya-recipe cannot check.
            form["additional_parameters"] = " ".join([*tokens, *rest])
    return form


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
        # 0: the GUI computes the steps from `epoch` with its own formula (§5), which ignores partly filled
        # buckets and multi-GPU: the same run only with one image per step, one process and no reg images. A
        # project's JSON must train what its config.toml trains, so there it is used only in that case; a
        # config rendered without a project keeps its own form.
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


# GUI values that sd-scripts treats exactly like the option being unset.
SDSCRIPTS_UNSET_EQUIVALENT: dict[str, Any] = {"max_timestep": 1000}  # train_util: None -> 1000 timesteps


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


def _inert_extra(key: str, value: Any, form: dict[str, Any], recipe: Recipe) -> bool:
    option = EXTRA_KEYS.get(key) or SDXL_EXTRA_KEYS[key]
    return option not in recipe.extra and inert_extra_value(key, value, form)


def _effective_lrs(lr: Any, te: Any, unet: Any, default_lr: float) -> tuple[Any, ...]:
    """What sd-scripts trains with, from the GUI's three learning-rate fields (§3 translation)."""
    base = lr if lr else default_lr
    te_only = te != 0 and unet == 0
    unet_only = te == 0 and unet != 0
    te_eff = None if unet_only else (te if te else base)
    unet_eff = None if te_only else (unet if unet else base)
    return base, te_eff, unet_eff, te_only, unet_only


def _apply_spellings(recipe: Recipe, form: dict[str, Any], result: GuiRender, *, project: bool) -> None:
    from kohya_recipe.sdscripts.options import option_specs

    gui = recipe.gui
    lr_keys = ("learning_rate", "text_encoder_lr", "unet_lr")
    if any(k in gui for k in lr_keys):
        default_lr = float(option_specs()["learning_rate"].default)
        spelled = {k: gui.get(k, form[k]) for k in lr_keys}
        mine = _effective_lrs(form["learning_rate"], form["text_encoder_lr"], form["unet_lr"], default_lr)
        theirs = None
        if all(_is_num(v) for v in spelled.values()):
            theirs = _effective_lrs(
                spelled["learning_rate"], spelled["text_encoder_lr"], spelled["unet_lr"], default_lr
            )
        ok = theirs == mine
        if theirs is not None and recipe.optimizer.is_adafactor and recipe.optimizer.relative_step:
            # Relative-step Adafactor ignores every learning rate (sd-scripts sets them to None); only which
            # networks train still depends on them.
            ok = theirs[3:] == mine[3:]
        for k in lr_keys:
            if k in gui:
                if ok:
                    form[k] = gui[k]
                    result.used_spellings.append(k)
                else:
                    result.stale_spellings.append(k)
    lora_type = form["LoRA_type"]
    active = _active_network_keys(lora_type)
    # max_train_epochs first: whether `epoch` and `max_train_steps` are inert depends on it.
    for key, value in sorted(gui.items(), key=lambda kv: kv[0] != "max_train_epochs"):
        if key in lr_keys or key in LAYOUT_KEYS or key not in form:
            continue
        if key in NETWORK_FIELDS or key in ("network_dim",):
            if key in active:
                result.stale_spellings.append(key)
            continue  # an inactive network field is a plain GUI-only value, already in the form
        if key not in RECIPE_FIELDS and key not in EXTRA_KEYS and key not in SDXL_EXTRA_KEYS:
            continue  # GUI-only: already applied
        if form[key] == value and type(form[key]) is type(value):
            continue
        if _spelling_ok(key, value, form, recipe, project=project):
            form[key] = value
            result.used_spellings.append(key)
        else:
            result.stale_spellings.append(key)


def _active_network_keys(lora_type: str) -> set[str]:
    t = LORA_TYPES[lora_type]
    keys = {a.key for a in (*t.args, *LORAPLUS_ARGS)}
    if lora_type == "Kohya LoCon":
        keys |= {"conv_dim", "conv_alpha"}
    return keys


def is_recipe_owned(key: str) -> bool:
    """Whether the recipe (not ``recipe.gui``) decides this GUI key's value, apart from spellings."""
    return key in RECIPE_FIELDS or key in LAYOUT_KEYS or key in EXTRA_KEYS or key in SDXL_EXTRA_KEYS


def _problem_field(p: GuiProblem) -> str:
    if p.key in NETWORK_FIELDS:
        return "network.args"
    if p.key in EXTRA_KEYS:
        return f"extra.{EXTRA_KEYS[p.key]}"
    if p.key in SDXL_EXTRA_KEYS:
        return f"extra.{SDXL_EXTRA_KEYS[p.key]}"
    return RECIPE_FIELDS.get(p.key, f"gui.{p.key}")


def render_gui_form(recipe: Recipe, project_dir: str | Path | None = None, *, check: bool = True) -> GuiRender:
    """The full 287-field form for ``recipe`` and what happened to ``recipe.gui`` spellings.

    With ``check`` (the default) any value the GUI would refuse raises :class:`GuiConfigError` naming the recipe
    field, the GUI key and its limit.
    """
    form = _base_form(recipe, project_dir)
    result = GuiRender(values=form)
    _apply_spellings(recipe, form, result, project=project_dir is not None)
    if check:
        problems = [p for p in validate_gui_values(form, "gui", complete=True) if p.severity == "error"]
        if problems:
            p = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise GuiConfigError(f"GUI field {p.key}: {p.message}{more}", source="recipe", field=_problem_field(p))
    return result


def recipe_to_gui_json(recipe: Recipe, project_dir: str | Path | None = None) -> dict[str, Any]:
    """The kohya_ss GUI LoRA JSON for ``recipe``: all 287 fields, native types, sorted keys.

    ``project_dir`` is the project folder *as the GUI host sees it* (used verbatim, never resolved here): the
    folders become ``<project>/img``, ``<project>/model``, ``<project>/log`` (and ``<project>/reg`` with
    regularization). Without it the folders and output name come from ``recipe.gui`` (an imported config's own
    paths) or stay empty.
    """
    values = render_gui_form(recipe, project_dir).values
    return dict(sorted(values.items()))


# tools/prepare_presets.py removes every key whose name contains one of these (folders, model, naming,
# samples, the wandb secret). "dir" alone covers every *_dir key.
PRESET_STRIP_KEYWORDS = (
    "pretrained_model_name_or_path", "train_dir", "output_dir", "logging_dir", "image_folder", "dir",
    "caption_metadata_filename", "latent_metadata_filename", "save_model_as", "save_state", "resume",
    "output_name", "model_list", "sample_", "wandb_api_key",
)  # fmt: skip
# Secrets prepare_presets.py forgets; a shareable file must not carry them either.
PRESET_EXTRA_SECRETS = ("huggingface_token",)


def preset_keys() -> list[str]:
    """The GUI keys a shareable preset keeps."""
    return [
        k
        for k in sorted(gui_fields())
        if not any(w in k for w in PRESET_STRIP_KEYWORDS) and k not in PRESET_EXTRA_SECRETS
    ]


def recipe_to_gui_preset(recipe: Recipe) -> dict[str, Any]:
    """A shareable GUI preset (for ``presets/lora/user_presets/``), made the way the GUI's own presets are:
    the full form minus folder, model, naming, sample and secret keys (tools/prepare_presets.py).

    Applying a preset changes only the keys it has, so ``max_train_steps = 0`` is kept on purpose: without it
    the preset would inherit the form's 1600-step cap (reference §2).
    """
    values = render_gui_form(recipe, None).values
    return {k: values[k] for k in preset_keys()}


def gui_json_text(data: dict[str, Any]) -> str:
    """JSON text the way the GUI saves it: keys sorted, 2-space indent, UTF-8 characters kept, newline at end."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_gui_json(
    recipe: Recipe,
    project_dir: str | Path | None,
    path: str | Path,
    *,
    preset_only: bool = False,
    force: bool = False,
) -> Path:
    """Write the GUI JSON (or, with ``preset_only``, the shareable preset) for ``recipe`` to ``path``.

    ``project_dir`` is made absolute (the GUI does not run in the project folder); an existing ``path`` is
    only replaced with ``force``. The write is atomic.
    """
    from kohya_recipe.errors import RenderError
    from kohya_recipe.files import atomic_write_bytes

    if preset_only:
        data = recipe_to_gui_preset(recipe)
    else:
        root = Path(project_dir).absolute() if project_dir is not None else None
        data = recipe_to_gui_json(recipe, root)
    target = Path(path)
    if target.is_dir():
        raise RenderError("is a folder, not a JSON file", source=str(target))
    if target.exists() and not force:
        raise RenderError("already exists (use --force to overwrite)", source=str(target))
    try:
        atomic_write_bytes(target, gui_json_text(data).encode("utf-8"))
    except OSError as exc:
        raise RenderError(f"cannot write: {exc.strerror or exc}", source=str(target)) from None
    return target


__all__ = [
    "EXTRA_KEYS",
    "LAYOUT_KEYS",
    "LORA_TYPES",
    "GuiRender",
    "gui_json_text",
    "recipe_to_gui_json",
    "recipe_to_gui_preset",
    "render_gui_form",
    "write_gui_json",
]
