"""The training settings the dataset checks depend on: from the recipe, or the article's values."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from kohya_recipe.dataset.detect import Subset
from kohya_recipe.recipe.loading import load_recipe, recipe_from_dict
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.recipe.presets import load_preset
from kohya_recipe.sdscripts.buckets import BucketFields, BucketSettings

# The bundled preset that holds the article's settings: the checks use it when no recipe is given.
ARTICLE_PRESET = "likeness-sd15"
ARTICLE_SOURCE = "the article's defaults (no recipe)"


@dataclass(frozen=True)
class CheckSettings(BucketFields):
    """The training settings the checks depend on (:func:`settings_from_recipe`, or :func:`article_settings`).

    ``trigger``/``trigger_source`` name the trigger word every caption must hold and where it came from
    (the recipe, ``--trigger``, a ``N_<trigger> <class>`` folder name); ``repeats`` and ``regularization`` are
    the recipe's, checked against the folders (``None`` without a recipe); ``purpose`` what the LoRA learns
    (``subject.purpose``: likeness, style, concept), which picks the rules' defaults.
    """

    buckets: BucketSettings = field(metadata={"json": False})
    caption_extension: str
    max_token_length: int
    shuffle_caption: bool
    keep_tokens: int
    flip: bool
    trigger: str | None = None
    class_token: str | None = None
    repeats: int | None = None
    regularization: str | None = None
    purpose: str = "likeness"
    source: str = "recipe"
    trigger_source: str = ""

    __json_properties__ = (*BucketFields.BUCKET_FIELDS,)


def settings_from_recipe(recipe: Recipe, source: str = "recipe") -> CheckSettings:
    """The check settings a :class:`kohya_recipe.recipe.models.Recipe` implies."""
    trigger = recipe.subject.trigger or None
    return CheckSettings(
        buckets=recipe.bucket_settings(),
        caption_extension=recipe.dataset.caption_extension,
        # sd-scripts: max_token_length None means 75 tokens (77 with the start/end tokens).
        max_token_length=recipe.training.max_token_length or 75,
        shuffle_caption=recipe.augmentation.shuffle_caption,
        keep_tokens=recipe.augmentation.keep_tokens,
        flip=recipe.augmentation.flip,
        trigger=trigger,
        class_token=recipe.subject.class_token or None,
        repeats=recipe.dataset.repeats,
        regularization=recipe.dataset.regularization,
        purpose=recipe.subject.purpose,
        source=source,
        trigger_source=source if trigger else "",
    )


@functools.lru_cache(maxsize=1)
def article_settings() -> CheckSettings:
    """The settings without a recipe: the article's, as the bundled ``likeness-sd15`` preset holds them
    (resolution 768x768 with buckets 256-1024 in steps of 64, ``.txt`` captions, shuffle off, flip on).

    The preset's subject (class ``woman``) and repeats describe its example character, not every dataset: they
    are left unset, so the trigger comes from ``--trigger`` or a folder name and the folder's repeats stand.
    """
    preset = recipe_from_dict(load_preset(ARTICLE_PRESET), source=f"preset {ARTICLE_PRESET}")
    return replace(settings_from_recipe(preset, ARTICLE_SOURCE), class_token=None, repeats=None)


def resolve_settings(
    recipe: Recipe | str | Path | None,
    *,
    trigger: str | None = None,
    settings: CheckSettings | None = None,
    project_recipe: Path | None = None,
) -> CheckSettings:
    """The settings a check runs with: ``settings`` as given, else those of ``recipe`` (a Recipe or a recipe
    TOML path), else of the project's ``resolved-recipe.toml`` (``project_recipe``), else the article's;
    ``trigger`` (``--trigger``) replaces the trigger word."""
    if settings is None:
        recipe = recipe if recipe is not None else project_recipe
        if recipe is None:
            settings = article_settings()
        elif isinstance(recipe, (str, Path)):
            settings = settings_from_recipe(load_recipe(recipe), source=str(recipe))
        else:
            settings = settings_from_recipe(recipe)
    if trigger:
        settings = replace(settings, trigger=trigger, trigger_source="--trigger")
    return settings


def infer_trigger(settings: CheckSettings, subsets: Sequence[Subset]) -> CheckSettings:
    """Without a trigger, take it from a ``N_<trigger> <class>`` folder name (the kohya_ss GUI's convention)."""
    if settings.trigger:
        return settings
    names = {s.class_tokens for s in subsets if s.trained and not s.is_reg and s.class_tokens}
    if len(names) != 1:
        return settings
    tokens = names.pop()
    words = tokens.split()
    trigger = None
    if settings.class_token and tokens.endswith(" " + settings.class_token):
        trigger = tokens[: -len(settings.class_token) - 1].strip()
    elif len(words) >= 2:
        trigger = words[0]
    if not trigger:
        return settings
    folder = next(s.name for s in subsets if s.class_tokens == tokens)
    return replace(settings, trigger=trigger, trigger_source=f"folder name '{folder}'")
