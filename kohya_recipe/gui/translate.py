"""The kohya_ss GUI's own JSON -> sd-scripts translation, reproduced (``kohya_gui/lora_gui.py`` ``train_model``).

When the GUI trains (or prints the training command) it turns its form into a flat TOML for ``--config_file``
plus an ``accelerate launch`` command. This module does the same from a GUI JSON, so a test can check that the
JSON we render makes the GUI train exactly what our own ``config.toml`` trains, without running the GUI. It is
checked against the real GUI's output for the resaved fixture (tests/data/gui/gui-output).

It covers the SD 1.x/2.x/SDXL LoRA path; Flux.1, SD3 and the other families' keys are not translated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kohya_recipe.gui.form import gui_split, whole
from kohya_recipe.gui.mapping import LORA_TYPES
from kohya_recipe.gui.network import network_args_from_form
from kohya_recipe.sdscripts.folders import parse_repeats_folder

# The image suffixes the GUI counts for its step count (``train_model``), case-insensitive.
GUI_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

# Keys train_model writes to ``config_toml_data`` under the same name (kept when truthy).
SAME_NAME_KEYS = (
    "async_upload",
    "bucket_no_upscale",
    "bucket_reso_steps",
    "cache_latents",
    "cache_latents_to_disk",
    "caption_dropout_rate",
    "caption_extension",
    "color_aug",
    "dataset_config",
    "debiased_estimation_loss",
    "dim_from_weights",
    "dynamo_backend",
    "enable_bucket",
    "flip_aug",
    "fp8_base",
    "full_bf16",
    "full_fp16",
    "gradient_checkpointing",
    "highvram",
    "huber_c",
    "huber_scale",
    "huber_schedule",
    "huggingface_path_in_repo",
    "huggingface_repo_id",
    "huggingface_repo_type",
    "huggingface_repo_visibility",
    "huggingface_token",
    "ip_noise_gamma_random_strength",
    "log_config",
    "log_tracker_config",
    "log_tracker_name",
    "log_with",
    "logging_dir",
    "loss_type",
    "lr_scheduler",
    "lr_scheduler_power",
    "masked_loss",
    "max_bucket_reso",
    "max_grad_norm",
    "mem_eff_attn",
    "metadata_author",
    "metadata_description",
    "metadata_license",
    "metadata_tags",
    "metadata_title",
    "mixed_precision",
    "network_alpha",
    "network_dim",
    "network_dropout",
    "network_weights",
    "noise_offset_type",
    "output_dir",
    "output_name",
    "pretrained_model_name_or_path",
    "prior_loss_weight",
    "random_crop",
    "reg_data_dir",
    "resume",
    "resume_from_huggingface",
    "sample_sampler",
    "save_model_as",
    "save_precision",
    "save_state",
    "save_state_on_train_end",
    "save_state_to_huggingface",
    "scale_v_pred_loss_like_noise_pred",
    "scale_weight_norms",
    "shuffle_caption",
    "skip_cache_check",
    "train_batch_size",
    "train_data_dir",
    "train_inpainting",
    "training_comment",
    "v2",
    "v_parameterization",
    "vae",
    "wandb_api_key",
    "weighted_captions",
)
# Same name, but 0 is written as "absent" explicitly (value if value != 0 else None).
NONZERO_KEYS = (
    "clip_skip",
    "min_snr_gamma",
    "ip_noise_gamma",
    "min_timestep",
    "max_timestep",
    "vae_batch_size",
    "save_every_n_epochs",
    "save_every_n_steps",
    "save_last_n_steps",
    "save_last_n_steps_state",
    "save_last_n_epochs",
    "save_last_n_epochs_state",
    "sample_every_n_epochs",
    "sample_every_n_steps",
    "v_pred_like_loss",
)


def from_browser(values: dict[str, Any]) -> dict[str, Any]:
    """The form as the GUI's Python code receives it: the values travel through the browser as JavaScript
    numbers, which do not tell 1.0 from 1, so a whole float arrives as an int. The real GUI output shows it:
    the resaved file's ``"max_grad_norm": 1.0`` becomes ``max_grad_norm = 1`` in the TOML."""
    return {key: whole(value) for key, value in values.items()}


def count_dataset_steps(train_data_dir: str | Path, *, cwd: str | Path | None = None) -> int | None:
    """Σ repeats × images over the ``<repeats>_<name>`` folders of ``train_data_dir`` (``train_model``), or None if the
    folder is not there. Relative paths are relative to ``cwd`` (the GUI's working directory)."""
    root = Path(train_data_dir)
    if not root.is_absolute() and cwd is not None:
        root = Path(cwd) / root
    if not root.is_dir():
        return None
    total = 0
    for sub in sorted(root.iterdir()):
        if not sub.is_dir():
            continue
        # The GUI reads the count as sd-scripts does (int() of the text before the first "_") and skips a folder
        # without one, but does not skip a count below 1.
        repeats = parse_repeats_folder(sub.name).repeats
        if repeats is None:
            continue
        images = sum(1 for f in sub.iterdir() if f.is_file() and f.name.lower().endswith(GUI_IMAGE_SUFFIXES))
        total += repeats * images
    return total


def gui_max_train_steps(form: dict[str, Any], dataset_steps: int) -> int:
    """``ceil(Σ repeats·images / batch / grad_accum × epoch × reg_factor)`` (``train_model``: not bucket-aware)."""
    reg_factor = 2 if form["reg_data_dir"] else 1
    return math.ceil(
        float(dataset_steps)
        / int(form["train_batch_size"])
        / int(form["gradient_accumulation_steps"])
        * int(form["epoch"])
        * reg_factor
    )


def gui_to_toml(
    values: dict[str, Any],
    *,
    dataset_steps: int | None = None,
    cwd: str | Path | None = None,
) -> dict[str, Any]:
    """The flat ``config_lora-<timestamp>.toml`` content the GUI writes for this form (keys sorted).

    ``dataset_steps`` is Σ repeats × images of ``train_data_dir``; if not given, the folder is counted (relative
    to ``cwd``) when it exists, else ``max_train_steps`` stays as the form has it.
    """
    form = from_browser(values)
    out: dict[str, Any] = {key: form[key] for key in SAME_NAME_KEYS}
    for key in NONZERO_KEYS:
        out[key] = form[key] if form[key] != 0 else None
    sdxl = bool(form["sdxl"])
    out["sdxl"] = None  # the family checkboxes pick the script; they are not trainer options
    # Numbers the GUI converts explicitly.
    for key in (
        "caption_dropout_every_n_epochs",
        "epoch",
        "gradient_accumulation_steps",
        "keep_tokens",
        "min_bucket_reso",
        "max_token_length",
    ):
        out[key] = int(form[key])
    out["seed"] = int(form["seed"]) if int(form["seed"]) != 0 else None
    out["lr_scheduler_num_cycles"] = (
        int(form["lr_scheduler_num_cycles"]) if form["lr_scheduler_num_cycles"] != "" else int(form["epoch"])
    )
    out["max_train_epochs"] = int(form["max_train_epochs"]) if int(form["max_train_epochs"]) != 0 else None
    out["lr_scheduler_type"] = form["lr_scheduler_type"] or None
    # Steps: computed from the folders only when the form says 0 and no dataset_config is used (``train_model``).
    steps = int(form["max_train_steps"])
    if steps == 0 and not form["dataset_config"]:
        if dataset_steps is None:
            dataset_steps = count_dataset_steps(form["train_data_dir"], cwd=cwd)
        if dataset_steps is not None:
            steps = gui_max_train_steps(form, dataset_steps)
    out["max_train_steps"] = steps if steps != 0 else None
    # Warmup: absolute steps win; otherwise the percentage becomes a ratio sd-scripts reads as a share of all
    # steps, or absolute steps when a dataset_config is used with a known step count.
    pct, abs_steps = form["lr_warmup"], form["lr_warmup_steps"]
    if abs_steps and abs_steps > 0:
        out["lr_warmup_steps"] = int(abs_steps)
    elif form["dataset_config"] and steps > 0:
        out["lr_warmup_steps"] = round(pct / 100 * steps)
    else:
        out["lr_warmup_steps"] = float(pct / 100)
    # Learning rates (``resolve_network_train_flags``): te = 0 -> UNet only, unet = 0 -> TE only; zeros are "unset".
    lr = float(form["learning_rate"]) if form["learning_rate"] is not None else 0.0
    te = float(form["text_encoder_lr"]) if form["text_encoder_lr"] is not None else 0.0
    unet = float(form["unet_lr"]) if form["unet_lr"] is not None else 0.0
    t5 = float(form["t5xxl_lr"] or 0)
    out["learning_rate"] = lr
    if te > 0 and t5 > 0:
        out["text_encoder_lr"] = [te, t5]
    elif te > 0:
        out["text_encoder_lr"] = [te, te]
    else:
        out["text_encoder_lr"] = None
    out["unet_lr"] = unet if unet != 0 else None
    out["network_train_text_encoder_only"] = te != 0 and unet == 0
    out["network_train_unet_only"] = te == 0 and unet != 0
    # Names that differ.
    out["resolution"] = form["max_resolution"]
    out["optimizer_type"] = form["optimizer"]
    out["optimizer_args"] = gui_split(form["optimizer_args"])
    out["lr_scheduler_args"] = gui_split(form["lr_scheduler_args"])
    lora_type = form["LoRA_type"]
    out["network_module"] = LORA_TYPES[lora_type].module
    out["network_args"] = [a.replace('"', "") for a in network_args_from_form(form, lora_type)]
    out["xformers"] = True if form["xformers"] == "xformers" else None
    out["sdpa"] = True if form["xformers"] == "sdpa" else None
    out["no_half_vae"] = True if sdxl and form["sdxl_no_half_vae"] else None
    out["cache_text_encoder_outputs"] = True if sdxl and form["sdxl_cache_text_encoder_outputs"] else None
    # noise_offset_type gates the two noise groups.
    original = form["noise_offset_type"] == "Original"
    out["noise_offset"] = form["noise_offset"] if original and form["noise_offset"] != 0 else None
    out["adaptive_noise_scale"] = (
        form["adaptive_noise_scale"] if original and form["adaptive_noise_scale"] != 0 else None
    )
    out["noise_offset_random_strength"] = form["noise_offset_random_strength"] if original else None
    multires = form["noise_offset_type"] == "Multires"
    out["multires_noise_iterations"] = (
        form["multires_noise_iterations"] if multires and form["multires_noise_iterations"] != 0 else None
    )
    out["multires_noise_discount"] = form["multires_noise_discount"] if multires else None
    out["persistent_data_loader_workers"] = int(form["persistent_data_loader_workers"])
    out["wandb_run_name"] = form["wandb_run_name"] if form["wandb_run_name"] != "" else form["output_name"]
    # The GUI writes the prompt text to a file itself and passes its path.
    out["sample_prompts"] = f"{form['output_dir']}/sample/prompt.txt"
    # The filter: every "", False or None goes, and with them every 0 (0 == False in Python); empty lists stay.
    filtered = {k: v for k, v in out.items() if not (v is None or (not isinstance(v, list) and v in ("", False)))}
    filtered["max_data_loader_n_workers"] = int(form["max_data_loader_n_workers"])
    return dict(sorted(filtered.items()))


def gui_prompt_file_text(values: dict[str, Any]) -> str:
    """What the GUI writes to ``<output_dir>/sample/prompt.txt``: the textbox text as it is."""
    return str(values["sample_prompts"])


def gui_script(values: dict[str, Any]) -> str:
    """The training script ``train_model`` picks (sdxl first, then the other families, else train_network.py)."""
    for key, script in (
        ("sdxl", "sdxl_train_network.py"),
        ("flux1_checkbox", "flux_train_network.py"),
        ("sd3_checkbox", "sd3_train_network.py"),
        ("hunyuan_image_checkbox", "hunyuan_image_train_network.py"),
        ("anima_checkbox", "anima_train_network.py"),
        ("lumina_checkbox", "lumina_train_network.py"),
    ):
        if values.get(key):
            return script
    return "train_network.py"


def gui_command(values: dict[str, Any], *, kohya_dir: str = "<kohya_ss>", config_file: str) -> list[str]:
    """The ``accelerate launch`` command the GUI runs (``kohya_gui/class_accelerate_launch.py``
    ``AccelerateLaunch.run_cmd``): every truthy accelerate value as a flag, gpu_ids only when set,
    main_process_port only when > 0."""
    form = from_browser(values)
    cmd = ["accelerate", "launch"]
    for key in ("dynamo_backend", "dynamo_mode"):
        if form[key]:
            cmd += [f"--{key}", str(form[key])]
    for key in ("dynamo_use_fullgraph", "dynamo_use_dynamic"):
        if form[key]:
            cmd.append(f"--{key}")
    cmd += str(form["extra_accelerate_launch_args"]).split()
    if form["gpu_ids"]:
        cmd += ["--gpu_ids", str(form["gpu_ids"])]
    if form["main_process_port"] and form["main_process_port"] > 0:
        cmd += ["--main_process_port", str(form["main_process_port"])]
    if form["mixed_precision"]:
        cmd += ["--mixed_precision", str(form["mixed_precision"])]
    if form["multi_gpu"]:
        cmd.append("--multi_gpu")
    for key in ("num_processes", "num_machines", "num_cpu_threads_per_process"):
        if form[key]:
            cmd += [f"--{key}", str(int(form[key]))]
    cmd += [f"{kohya_dir}/sd-scripts/{gui_script(values)}", "--config_file", config_file]
    cmd += gui_split(form["additional_parameters"])
    return cmd
