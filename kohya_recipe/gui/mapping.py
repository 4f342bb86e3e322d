"""The kohya_ss GUI's vocabulary as data: which GUI key means which recipe field or sd-scripts option, the LoRA
types and the network_args each builds, and the keys a preset leaves out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kohya_recipe.kohya_ss.fields import gui_fields
from kohya_recipe.recipe.mapping import SDSCRIPTS_FIELDS

# Folder and naming keys: a project decides them (``project_dir``); without one they come from ``recipe.gui``
# (e.g. the paths of an imported config, kept as given: a Windows path stays a Windows path).
LAYOUT_KEYS = (
    "train_data_dir",
    "reg_data_dir",
    "output_dir",
    "logging_dir",
    "output_name",
    "dataset_config",
    "resume",
)

# GUI fields that are sd-scripts options the recipe does not model: they live in ``recipe.extra`` under the
# sd-scripts name. The GUI writes each to the TOML under the same name when it is truthy (``kohya_gui/lora_gui.py``
# ``train_model`` builds ``config_toml_data`` and drops every "", False and None), except where the noise gates
# below or the SDXL checkbox say otherwise.
EXTRA_KEYS: dict[str, str] = {
    k: k
    for k in (
        "training_comment",
        "save_state_on_train_end",
        "prior_loss_weight",
        "lr_scheduler_type",
        "fp8_base",
        "full_fp16",
        "full_bf16",
        "highvram",
        "masked_loss",
        "random_crop",
        "persistent_data_loader_workers",
        "v_pred_like_loss",
        "caption_dropout_every_n_epochs",
        "caption_dropout_rate",
        "noise_offset_random_strength",
        "adaptive_noise_scale",
        "multires_noise_iterations",
        "multires_noise_discount",
        "ip_noise_gamma",
        "ip_noise_gamma_random_strength",
        "loss_type",
        "huber_schedule",
        "huber_c",
        "huber_scale",
        "vae_batch_size",
        "min_snr_gamma",
        "save_every_n_steps",
        "save_last_n_steps",
        "save_last_n_steps_state",
        "save_last_n_epochs_state",
        "skip_cache_check",
        "wandb_api_key",
        "wandb_run_name",
        "log_tracker_name",
        "log_tracker_config",
        "log_config",
        "scale_v_pred_loss_like_noise_pred",
        "min_timestep",
        "max_timestep",
        "weighted_captions",
        "debiased_estimation_loss",
        "dim_from_weights",
        "scale_weight_norms",
        "huggingface_repo_id",
        "huggingface_token",
        "huggingface_repo_type",
        "huggingface_repo_visibility",
        "huggingface_path_in_repo",
        "save_state_to_huggingface",
        "resume_from_huggingface",
        "async_upload",
        "metadata_author",
        "metadata_description",
        "metadata_license",
        "metadata_tags",
        "metadata_title",
    )
}
# SDXL-page checkboxes: the GUI writes them under the sd-scripts name, and only when the SDXL box is ticked.
SDXL_EXTRA_KEYS = {"sdxl_no_half_vae": "no_half_vae", "sdxl_cache_text_encoder_outputs": "cache_text_encoder_outputs"}

# noise_offset_type gates these (``train_model``): "Original" writes noise_offset/adaptive_noise_scale/random_strength,
# "Multires" writes the multires pair; the other group stays in the form but does nothing.
ORIGINAL_NOISE_KEYS = ("noise_offset", "adaptive_noise_scale", "noise_offset_random_strength")
MULTIRES_NOISE_KEYS = ("multires_noise_iterations", "multires_noise_discount")

# Every field that encodes network_module/network_args (``kohya_gui/lora_gui.py`` ``train_model``).
NETWORK_FIELDS = (
    "LyCORIS_preset",
    "conv_dim",
    "conv_alpha",
    "use_tucker",
    "use_scalar",
    "rank_dropout_scale",
    "bypass_mode",
    "dora_wd",
    "use_cp",
    "decompose_both",
    "factor",
    "constrain",
    "rescaled",
    "train_norm",
    "train_on_input",
    "unit",
    "rank_dropout",
    "module_dropout",
    "down_lr_weight",
    "mid_lr_weight",
    "up_lr_weight",
    "block_lr_zero_threshold",
    "block_dims",
    "block_alphas",
    "conv_block_dims",
    "conv_block_alphas",
    "loraplus_lr_ratio",
    "loraplus_unet_lr_ratio",
    "loraplus_text_encoder_lr_ratio",
)

# GUI key -> the recipe field it is rendered from (used to name the field in an error). A GUI key spelled like the
# sd-scripts option it sets names the same field as that option (recipe.mapping.SDSCRIPTS_FIELDS); these are the
# GUI's own keys.
_GUI_ONLY_FIELDS: dict[str, str] = {
    "v2": "model.family",
    "sdxl": "model.family",
    "LoRA_type": "network.module",
    "optimizer": "optimizer.type",
    "lr_warmup": "optimizer.warmup_steps",
    "epoch": "training.max_train_epochs",
    "max_resolution": "training.resolution",
    "xformers": "training.attention",
    "sample_prompts": "samples.prompts",
    "output_name": "output",
    "num_processes": "accelerate.num_processes",
    "multi_gpu": "accelerate.num_processes",
    "num_machines": "accelerate.num_machines",
    "gpu_ids": "accelerate.gpu_ids",
    "num_cpu_threads_per_process": "accelerate.num_cpu_threads_per_process",
    "main_process_port": "accelerate.main_process_port",
    "dynamo_backend": "accelerate.dynamo_backend",
    "mem_eff_attn": "training.attention",
    "save_model_as": "output",
    "stop_text_encoder_training": "training",
    "flux1_checkbox": "model.family",
    "sd3_checkbox": "model.family",
    "hunyuan_image_checkbox": "model.family",
    "anima_checkbox": "model.family",
    "lumina_checkbox": "model.family",
    "noise_offset_type": "extra",
    "additional_parameters": "extra",
    "t5xxl_lr": "optimizer.text_encoder_lr",
}
RECIPE_FIELDS: dict[str, str] = {
    **{key: field for key, field in SDSCRIPTS_FIELDS.items() if key in gui_fields()},
    **_GUI_ONLY_FIELDS,
}

# sd-scripts options that have no GUI field: the GUI passes them through `additional_parameters`, raw command
# line tokens appended after --config_file (``kohya_gui/common_gui.py`` ``run_cmd_advanced_training``), which
# override the TOML.
RECIPE_CLI_OPTIONS: dict[str, str] = {
    "log_prefix": "training.log_prefix",
    "sample_at_first": "samples.at_first",
    "validation_split": "dataset.validation_split",
    "validation_seed": "dataset.validation_seed",
}

FAMILY_FLAGS = ("flux1_checkbox", "sd3_checkbox", "hunyuan_image_checkbox", "anima_checkbox", "lumina_checkbox")

# --------------------------------------------------------------------------------------------------------------
# LoRA types: network_module and the network_args the GUI builds from the form (kohya_gui/lora_gui.py train_model)


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
    algo: str | None = None  # LyCORIS types (an algo) write every arg; kohya types only the truthy ones


_BLOCK_KEYS = (
    "down_lr_weight",
    "mid_lr_weight",
    "up_lr_weight",
    "block_lr_zero_threshold",
    "block_dims",
    "block_alphas",
    "conv_block_dims",
    "conv_block_alphas",
)
_BLOCK_ARGS = (
    *(NetArg(k, k, "str") for k in _BLOCK_KEYS),
    NetArg("rank_dropout", "rank_dropout", "float"),
    NetArg("module_dropout", "module_dropout", "float"),
)

# The kohya types' conv and tucker fields (no LyCORIS default: the GUI writes them only when set).
_KOHYA_CONV = (NetArg("conv_dim", "conv_dim", "int"), NetArg("conv_alpha", "conv_alpha", "float"))
_KOHYA_TUCKER = NetArg("use_tucker", "use_tucker", "bool")

LORAPLUS_ARGS = tuple(
    NetArg(k, k, "float") for k in ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio")
)


def _ly(name: str, key: str, kind: str, default: Any = None) -> NetArg:
    return NetArg(name, key, kind, default)


# LyCORIS defaults from LyCORIS's lycoris/kohya.py create_network: conv_dim/conv_alpha fall back to the network's
# rank and alpha, block_size to 4, the toggles to False, dropouts and constraint to 0, factor to -1.
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
        LoraType("Standard", "networks.lora", _BLOCK_ARGS),
        LoraType("Kohya LoCon", "networks.lora", _BLOCK_ARGS),
        LoraType("LoRA-FA", "networks.lora_fa", _BLOCK_ARGS),
        LoraType("Kohya DyLoRA", "networks.dylora", (*_KOHYA_CONV, *_BLOCK_ARGS, NetArg("unit", "unit", "int"))),
        LoraType("Kohya LoHa", "networks.loha", (*_KOHYA_CONV, _KOHYA_TUCKER, _RD, _MD)),
        LoraType(
            "Kohya LoKr",
            "networks.lokr",
            (*_KOHYA_CONV, _KOHYA_TUCKER, NetArg("factor", "factor", "int"), _RD, _MD),
        ),
        LoraType("LyCORIS/LoCon", "lycoris.kohya", (*_LOCON_ARGS, _TN), "locon"),
        LoraType("LyCORIS/LoHa", "lycoris.kohya", (*_LOCON_ARGS, _TN), "loha"),
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
            "lokr",
        ),
        LoraType("LyCORIS/BOFT", "lycoris.kohya", (_P, _CD, _CA, _MD, _TU, _RD, _RS, _TN), "boft"),
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
            "diag-oft",
        ),
        LoraType(
            "LyCORIS/DyLoRA",
            "lycoris.kohya",
            (_P, _CD, _CA, _TU, _ly("block_size", "unit", "int", 4), _RD, _MD, _TN),
            "dylora",
        ),
        LoraType("LyCORIS/GLoRA", "lycoris.kohya", (_P, _CD, _CA, _TU, _RD, _MD, _RS, _TN), "glora"),
        # train_on_input has no LyCORIS default we can vouch for: it must be given explicitly.
        LoraType(
            "LyCORIS/iA3", "lycoris.kohya", (_P, _CD, _CA, _ly("train_on_input", "train_on_input", "bool")), "ia3"
        ),
        LoraType("LyCORIS/Native Fine-Tuning", "lycoris.kohya", (_P, _RD, _MD, _RS, _TN), "full"),
    )
}
# "LoCon" is the GUI's pre-LyCORIS name, migrated on load (update_my_data).
LEGACY_LORA_TYPES = {"LoCon": "LyCORIS/LoCon"}
# Types for model families kohya-recipe does not train (its recipe models SD1.x, SD2.x and SDXL).
UNSUPPORTED_LORA_TYPES = frozenset({"Flux1", "Flux1 OFT", "HunyuanImage-2.1", "Anima", "Lumina"})
ALGO_TO_TYPE = {t.algo: t.name for t in LORA_TYPES.values() if t.algo}
# LyCORIS types whose network_dim is unused (IA3 and full fine-tuning have no rank).
RANKLESS_LORA_TYPES = frozenset({"LyCORIS/iA3", "LyCORIS/Native Fine-Tuning"})


# GUI values that sd-scripts treats exactly like the option being unset.
SDSCRIPTS_UNSET_EQUIVALENT: dict[str, Any] = {
    "max_timestep": 1000,  # sd-scripts library/train_util.py get_noise_noisy_latents_and_timesteps: None -> 1000
    "max_token_length": 75,  # sd-scripts library/train_util.py get_hidden_states: None -> one 75-token chunk
}


def network_args_of(lora_type: str) -> dict[str, NetArg]:
    """Every ``network_args`` entry the GUI can build for ``lora_type``, by its name in network_args."""
    t = LORA_TYPES[lora_type]
    # Kohya LoCon is networks.lora with conv_dim/conv_alpha in network_args (kohya_gui/lora_gui.py train_model).
    extra = _KOHYA_CONV if lora_type == "Kohya LoCon" else ()
    return {a.name: a for a in (*t.args, *LORAPLUS_ARGS, *extra)}


def active_network_keys(lora_type: str) -> set[str]:
    """The GUI fields that go into ``network_args`` for ``lora_type``."""
    return {a.key for a in network_args_of(lora_type).values()}


def is_recipe_owned(key: str) -> bool:
    """Whether the recipe (not ``recipe.gui``) decides this GUI key's value, apart from spellings."""
    return key in RECIPE_FIELDS or key in LAYOUT_KEYS or key in EXTRA_KEYS or key in SDXL_EXTRA_KEYS


# tools/prepare_presets.py removes every key whose name contains one of these (folders, model, naming,
# samples, the wandb secret). "dir" alone covers every *_dir key.
PRESET_STRIP_KEYWORDS = (
    "pretrained_model_name_or_path",
    "train_dir",
    "output_dir",
    "logging_dir",
    "image_folder",
    "dir",
    "caption_metadata_filename",
    "latent_metadata_filename",
    "save_model_as",
    "save_state",
    "resume",
    "output_name",
    "model_list",
    "sample_",
    "wandb_api_key",
)
# Secrets prepare_presets.py forgets; a shareable file must not carry them either.
PRESET_EXTRA_SECRETS = ("huggingface_token",)


# Extra-backed GUI fields that hold secrets: kept (nothing is lost) but the user is told.
SECRET_KEYS = frozenset({"wandb_api_key", "huggingface_token"})
