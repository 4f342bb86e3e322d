"""sd-scripts option names and the recipe fields they stand for.

``SDSCRIPTS_FIELDS`` maps an option (its argparse dest) to the recipe field that sets it one to one: the config
renderer writes it, ``--set network_alpha=48`` reads it. ``DERIVED_OPTIONS`` are options the recipe derives itself
(layout, family, naming), so ``extra`` may not set them; ``ALIAS_OPTIONS`` are legacy spellings sd-scripts refuses
next to the names we always write.
"""

from __future__ import annotations

# sd-scripts option (dest) -> recipe field path, for options that map one to one. Used by the config renderer
# and to accept sd-scripts names in --set (`network_alpha=48` means `network.alpha=48`).
SDSCRIPTS_FIELDS: dict[str, str] = {
    "pretrained_model_name_or_path": "model.base",
    "v_parameterization": "model.v_parameterization",
    "vae": "model.vae",
    "network_module": "network.module",
    "network_dim": "network.rank",
    "network_alpha": "network.alpha",
    "network_args": "network.args",
    "network_dropout": "network.dropout",
    "network_train_unet_only": "network.train_unet_only",
    "network_train_text_encoder_only": "network.train_text_encoder_only",
    "network_weights": "network.weights",
    "optimizer_type": "optimizer.type",
    "optimizer_args": "optimizer.args",
    "learning_rate": "optimizer.learning_rate",
    "unet_lr": "optimizer.unet_lr",
    "text_encoder_lr": "optimizer.text_encoder_lr",
    "lr_scheduler": "optimizer.scheduler",
    "lr_scheduler_args": "optimizer.scheduler_args",
    "lr_warmup_steps": "optimizer.warmup_steps",
    "lr_scheduler_num_cycles": "optimizer.scheduler_num_cycles",
    "lr_scheduler_power": "optimizer.scheduler_power",
    "max_grad_norm": "optimizer.max_grad_norm",
    "max_train_epochs": "training.max_train_epochs",
    "max_train_steps": "training.max_train_steps",
    "train_batch_size": "training.batch_size",
    "gradient_accumulation_steps": "training.gradient_accumulation_steps",
    "enable_bucket": "training.enable_bucket",
    "min_bucket_reso": "training.min_bucket_reso",
    "max_bucket_reso": "training.max_bucket_reso",
    "bucket_reso_steps": "training.bucket_reso_steps",
    "bucket_no_upscale": "training.bucket_no_upscale",
    "mixed_precision": "training.mixed_precision",
    "save_precision": "training.save_precision",
    "seed": "training.seed",
    "clip_skip": "training.clip_skip",
    "gradient_checkpointing": "training.gradient_checkpointing",
    "cache_latents": "training.cache_latents",
    "cache_latents_to_disk": "training.cache_latents_to_disk",
    "save_every_n_epochs": "training.save_every_n_epochs",
    "save_state": "training.save_state",
    "save_last_n_epochs": "training.save_last_n_epochs",
    "max_data_loader_n_workers": "training.max_data_loader_n_workers",
    "max_token_length": "training.max_token_length",
    "noise_offset": "training.noise_offset",
    "log_with": "training.log_with",
    "log_prefix": "training.log_prefix",
    "caption_extension": "dataset.caption_extension",
    "validation_split": "dataset.validation_split",
    "validation_seed": "dataset.validation_seed",
    "flip_aug": "augmentation.flip",
    "color_aug": "augmentation.color",
    "shuffle_caption": "augmentation.shuffle_caption",
    "keep_tokens": "augmentation.keep_tokens",
    "sample_every_n_epochs": "samples.every_n_epochs",
    "sample_every_n_steps": "samples.every_n_steps",
    "sample_at_first": "samples.at_first",
    "sample_sampler": "samples.sampler",
}

# Options whose value the recipe derives itself (layout, model family, attention, naming): `extra` may not set
# them, so the two cannot disagree.
DERIVED_OPTIONS = frozenset(
    {
        "resolution",
        "v2",
        "xformers",
        "sdpa",
        "mem_eff_attn",
        "output_name",
        "output_dir",
        "logging_dir",
        "sample_prompts",
        "dataset_config",
        "train_data_dir",
        "reg_data_dir",
        "config_file",
        "save_model_as",
        "dataset_repeats",
        "in_json",
        "resume",
        "output_config",
    }
)


# Legacy or misspelled options that stand for a recipe field. We always write optimizer_type and caption_extension, so
# these would conflict: sd-scripts asserts "both option use_8bit_adam and optimizer_type are specified" (likewise
# use_lion_optimizer), and copies the misspelled --caption_extention over caption_extension (library/train_util.py
# get_optimizer, prepare_dataset_args).
ALIAS_OPTIONS = {
    "use_8bit_adam": "legacy alias that sd-scripts refuses next to optimizer_type; set optimizer.type = 'AdamW8bit'",
    "use_lion_optimizer": "legacy alias that sd-scripts refuses next to optimizer_type; set optimizer.type = 'Lion'",
    "caption_extention": "misspelled alias of caption_extension; set dataset.caption_extension",
}
