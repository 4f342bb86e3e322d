"""The vocabulary of the recipe models: choice types, bounds and their reasons, the strict base model, and the
checks that run before pydantic (no silent coercion) — shared by :mod:`kohya_recipe.recipe.models`."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kohya_recipe.errors import RecipeError

SCHEMA_VERSION = 1

Family = Literal["sd15", "sd2", "sdxl"]
MixedPrecision = Literal["no", "fp16", "bf16"]
SavePrecision = Literal["float", "fp16", "bf16"]
Attention = Literal["sdpa", "xformers", "none"]
# Any extension sd-scripts accepts: ".txt", ".caption", ".cap", and what older kohya_ss GUIs let users type
# (".txt2"; ".none-use-foldername", an extension without files, so the folder name's class tokens caption).
CaptionExtension = str
CAPTION_EXTENSION = re.compile(r"\.[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LogWith = Literal["tensorboard", "wandb", "all"]
Purpose = Literal["likeness", "style", "concept"]
# sd-scripts --sample_sampler choices (library/train_util.py add_training_arguments).
Sampler = Literal[
    "ddim",
    "pndm",
    "lms",
    "euler",
    "euler_a",
    "heun",
    "dpm_2",
    "dpm_2_a",
    "dpmsolver",
    "dpmsolver++",
    "dpmsingle",
    "k_lms",
    "k_euler",
    "k_euler_a",
    "k_dpm_2",
    "k_dpm_2_a",
]

# Schedulers sd-scripts' train_network accepts by name; reduce_lr_on_plateau and cosine_warmup_with_min_lr fail
# with a TypeError at start-up (library/train_util.py get_scheduler_fix), so they are not offered.
SCHEDULERS = (
    "adafactor",
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
    "piecewise_constant",
)

# A name that becomes a file name and a shell word: no path separators, no "..", no shell metacharacters.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def file_safe_name(text: str, limit: int = 100) -> str:
    """``text`` as a name for files and shell words: every run of other characters becomes ``_``, and the name
    starts with a letter or digit (``"darius kawasaki"`` -> ``"darius_kawasaki"``); empty when nothing is left."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"^[^A-Za-z0-9]+", "", name)[:limit]
    return name.rstrip("_.-")


def doc(description: str, article: str | None = None, *, why: str | None = None, **kw: Any) -> Any:
    """A Field with a description and, where the article says something, its words (for docs/recipe.md).

    ``why`` explains a bound (``le``/``ge``/...): it is added to the error when a value crosses it.
    """
    extra: dict[str, Any] = {}
    if article:
        extra["article"] = article
    if why:
        extra["why"] = why
    return Field(description=description, json_schema_extra=extra or None, **kw)


# Reasons for upper bounds, said once.
WHY_REPEATS = "each image is shown this often per epoch; beyond 10,000 an epoch of even one image is absurd"
WHY_DIM = "the kohya_ss GUI's own limit, on its LyCORIS network_dim slider: a LoRA this size outgrows its model"
WHY_LR = "a learning rate above 10 diverges with every optimizer sd-scripts offers (Prodigy and D-Adaptation use 1)"
WHY_SEED = "sd-scripts seeds numpy (accelerate set_seed), whose seed must fit in 32 bits"
WHY_PIXELS = "no GPU trains or samples an image side beyond 8,192 pixels"
WHY_COUNT = "far beyond any real training run"
WHY_HARDWARE = "beyond any machine sd-scripts runs on"
SEED_MAX = 2**32 - 1


def _kinds(annotation: Any) -> set[type]:
    """The Python types a field annotation admits (Literal values by their type); ``object`` when unknown."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {type(a) for a in typing.get_args(annotation)}
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_kinds(a) for a in typing.get_args(annotation)))
    if isinstance(annotation, type) and origin is None:
        return {annotation}
    return {object}


def reject_coercion(data: Any, model: type[BaseModel], *, source: str = "recipe", loc: str = "") -> None:
    """Refuse values pydantic's lax mode would silently convert: ``rank = true`` (read as 1), ``flip = "yes"``
    (read as True), ``max_train_epochs = "8"``. A recipe says what it means, in native TOML types."""
    if not isinstance(data, dict):
        return
    for name, info in model.model_fields.items():
        if name not in data:
            continue
        value, where = data[name], f"{loc}.{name}" if loc else name
        ann = info.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is None and typing.get_origin(ann) is list:
            (item,) = typing.get_args(ann) or (object,)
            if isinstance(item, type) and issubclass(item, BaseModel) and isinstance(value, list):
                for i, element in enumerate(value):
                    reject_coercion(element, item, source=source, loc=f"{where}[{i}]")
            continue
        if sub is not None:
            reject_coercion(value, sub, source=source, loc=where)
            continue
        kinds = _kinds(ann)
        if object in kinds:
            continue
        if isinstance(value, bool) and bool not in kinds and kinds & {int, float}:
            raise RecipeError(f"must be a number, not {str(value).lower()}", source=source, field=where)
        if isinstance(value, str) and str not in kinds and kinds & {int, float, bool}:
            want = "true or false" if bool in kinds else "a number"
            raise RecipeError(f"must be {want}, not the string {value!r}", source=source, field=where)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
