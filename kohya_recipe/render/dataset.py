"""The sd-scripts ``--dataset_config`` TOML (DreamBooth-style subsets), serialised from the recipe.

Unlike ``--config_file``, this file is validated strictly by sd-scripts (voluptuous: unknown keys, keys at the wrong
level and wrong int/float types are fatal: ``library/config_util.py ConfigSanitizer``). :func:`check_dataset_config`
encodes that schema so we never hand the trainer a file it rejects.
"""

from __future__ import annotations

from typing import Any

from kohya_recipe.errors import RenderError
from kohya_recipe.recipe.models import Recipe

# Key -> accepted Python types, per level (config_util.ConfigSanitizer with dreambooth+finetuning+dropout).
_SUBSET_ASCENDABLE: dict[str, tuple[type, ...]] = {
    "num_repeats": (int,),
    "shuffle_caption": (bool,),
    "keep_tokens": (int,),
    "keep_tokens_separator": (str,),
    "secondary_separator": (str,),
    "caption_separator": (str,),
    "enable_wildcard": (bool,),
    "caption_prefix": (str,),
    "caption_suffix": (str,),
    "color_aug": (bool,),
    "flip_aug": (bool,),
    "random_crop": (bool,),
    "face_crop_aug_range": (list,),
    "token_warmup_min": (int,),
    "token_warmup_step": (float, int),
    "custom_attributes": (dict,),
    "resize_interpolation": (str,),
    "caption_dropout_rate": (float, int),
    "caption_dropout_every_n_epochs": (int,),
    "caption_tag_dropout_rate": (float, int),
}
_DREAMBOOTH: dict[str, tuple[type, ...]] = {"caption_extension": (str,), "class_tokens": (str,), "cache_info": (bool,)}
_DATASET_ONLY: dict[str, tuple[type, ...]] = {
    "batch_size": (int,),
    "resolution": (int, list),
    "enable_bucket": (bool,),
    "min_bucket_reso": (int,),
    "max_bucket_reso": (int,),
    "bucket_reso_steps": (int,),
    "bucket_no_upscale": (bool,),
    "network_multiplier": (float,),
    "validation_seed": (int,),
    "validation_split": (float,),
    "resize_interpolation": (str,),
}
_SUBSET_ONLY: dict[str, tuple[type, ...]] = {"image_dir": (str,), "is_reg": (bool,), "alpha_mask": (bool,)}

GENERAL_KEYS = {**_DATASET_ONLY, **_SUBSET_ASCENDABLE, **_DREAMBOOTH}
DATASET_KEYS = {**GENERAL_KEYS, "subsets": (list,)}
SUBSET_KEYS = {**_SUBSET_ASCENDABLE, **_DREAMBOOTH, **_SUBSET_ONLY}


def render_dataset(recipe: Recipe) -> dict[str, Any]:
    """``{"general": {...}, "datasets": [{..., "subsets": [...]}]}`` for the project layout."""
    aug = recipe.augmentation
    tr = recipe.training
    general: dict[str, Any] = {
        "caption_extension": recipe.dataset.caption_extension,  # explicit: sd-scripts' default is ".caption"
        "shuffle_caption": aug.shuffle_caption,
        "keep_tokens": aug.keep_tokens,
        "flip_aug": aug.flip,
        "color_aug": aug.color,
    }
    dataset: dict[str, Any] = {
        "resolution": list(tr.resolution),
        "batch_size": tr.batch_size,
        "enable_bucket": tr.enable_bucket,
        "min_bucket_reso": tr.min_bucket_reso,
        "max_bucket_reso": tr.max_bucket_reso,
        "bucket_reso_steps": tr.bucket_reso_steps,
        "bucket_no_upscale": tr.bucket_no_upscale,
    }
    if recipe.dataset.validation_split:
        dataset["validation_split"] = float(recipe.dataset.validation_split)  # must be a TOML float
        if recipe.dataset.validation_seed is not None:
            dataset["validation_seed"] = recipe.dataset.validation_seed
    subsets: list[dict[str, Any]] = []
    for sub in recipe.train_subsets():
        # class_tokens: the caption sd-scripts uses for an image without a caption file.
        entry: dict[str, Any] = {"image_dir": sub.folder, "num_repeats": sub.repeats, "class_tokens": sub.class_tokens}
        if sub.is_reg:
            entry["is_reg"] = True
        subsets.append(entry)
    dataset["subsets"] = subsets
    data = {"general": general, "datasets": [dataset]}
    check_dataset_config(data)
    return data


def _check_level(table: dict[str, Any], allowed: dict[str, tuple[type, ...]], where: str) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise RenderError(f"extra keys not allowed @ {where}['{key}']", source="dataset.toml")
        types = allowed[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            want = " or ".join(t.__name__ for t in types)
            raise RenderError(f"expected {want} for {where}['{key}'], got {value!r}", source="dataset.toml")


def check_dataset_config(data: dict[str, Any]) -> None:
    """Apply sd-scripts' dataset schema (``library/config_util.py ConfigSanitizer``): which keys at which level,
    and exact int/float/bool types."""
    for key in data:
        if key not in ("general", "datasets"):
            raise RenderError(f"extra keys not allowed @ data['{key}']", source="dataset.toml")
    _check_level(data.get("general", {}), GENERAL_KEYS, "data['general']")
    for i, ds in enumerate(data.get("datasets", [])):
        _check_level(ds, DATASET_KEYS, f"data['datasets'][{i}]")
        for j, sub in enumerate(ds.get("subsets", [])):
            where = f"data['datasets'][{i}]['subsets'][{j}]"
            _check_level(sub, SUBSET_KEYS, where)
            if "image_dir" not in sub:
                raise RenderError(f"required key not provided @ {where}['image_dir']", source="dataset.toml")


def dataset_toml(recipe: Recipe) -> str:
    import tomli_w

    header = "# sd-scripts --dataset_config, written by kohya-recipe; paths are relative to this folder.\n\n"
    return header + tomli_w.dumps(render_dataset(recipe))
