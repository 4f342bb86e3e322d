"""The training settings the dataset checks depend on: from the recipe, or the article's values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kohya_recipe.recipe.models import Recipe


@dataclass(frozen=True)
class CheckSettings:
    """The training settings the checks depend on.

    Without a recipe these are the article's (resolution 768,768, ``.txt`` captions, shuffle off, flip on)
    with sd-scripts' bucket defaults (256-1024 in steps of 64, upscaling allowed).
    """

    trigger: str | None = None
    class_token: str | None = None
    caption_extension: str = ".txt"
    resolution: tuple[int, int] = (768, 768)
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    max_token_length: int = 75
    shuffle_caption: bool = False
    keep_tokens: int = 0
    flip: bool = True
    repeats: int | None = None
    regularization: str | None = None
    source: str = "the article's defaults (no recipe)"
    trigger_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def settings_from_recipe(recipe: Recipe, source: str = "recipe") -> CheckSettings:
    """The check settings a :class:`kohya_recipe.recipe.models.Recipe` implies."""
    tr = recipe.training
    trigger = recipe.subject.trigger or None
    return CheckSettings(
        trigger=trigger,
        class_token=recipe.subject.class_token or None,
        caption_extension=recipe.dataset.caption_extension,
        resolution=(int(tr.resolution[0]), int(tr.resolution[1])),
        enable_bucket=tr.enable_bucket,
        min_bucket_reso=tr.min_bucket_reso,
        max_bucket_reso=tr.max_bucket_reso,
        bucket_reso_steps=tr.bucket_reso_steps,
        bucket_no_upscale=tr.bucket_no_upscale,
        # sd-scripts: max_token_length None means 75 tokens (77 with the start/end tokens).
        max_token_length=tr.max_token_length or 75,
        shuffle_caption=recipe.augmentation.shuffle_caption,
        keep_tokens=recipe.augmentation.keep_tokens,
        flip=recipe.augmentation.flip,
        repeats=recipe.dataset.repeats,
        regularization=recipe.dataset.regularization,
        source=source,
        trigger_source=source if trigger else "",
    )
