"""The step plan's data: what goes in (:class:`SubsetInput`, :class:`PlanSettings`) and what comes out
(:class:`Plan` with its image, bucket and subset rows and findings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from kohya_recipe.errors import DatasetError
from kohya_recipe.sdscripts.buckets import BucketFields, BucketSettings, BucketSettingsError, Reso

# sd-scripts' --max_train_steps default (library/train_util.py add_training_arguments), used when --max_train_epochs
# is not given.
DEFAULT_MAX_TRAIN_STEPS = 1600

Severity = Literal["info", "warning", "error"]
Role = Literal["train", "reg", "reg-unused", "validation"]


class PlanError(BucketSettingsError):
    """A training setting the step plan cannot work with (sd-scripts would stop on it, too)."""


# ----------------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class SubsetInput:
    """One image folder as sd-scripts sees it: a DreamBooth-style subset.

    ``sizes`` are the images' (width, height) in the order sd-scripts lists them (sorted by path, as its
    ``glob_images`` does); that order decides which images a seeded validation split holds out and which
    regularization images get the extra repeats. ``files`` names the images for the report (defaults to
    ``<name>#<index>``). ``name`` identifies the folder: sd-scripts ignores a second subset with the same
    ``image_dir``, and so does the plan.
    """

    name: str
    sizes: Sequence[Reso]
    repeats: int = 1
    is_reg: bool = False
    files: Sequence[str] | None = None

    def file_names(self) -> list[str]:
        if self.files is None:
            return [f"{self.name}#{i}" for i in range(len(self.sizes))]
        if len(self.files) != len(self.sizes):
            raise DatasetError(
                f"{len(self.files)} file names for {len(self.sizes)} image sizes", field=f"subset {self.name}"
            )
        return list(self.files)


@dataclass(frozen=True)
class PlanSettings(BucketFields):
    """The training settings that decide buckets and steps. Defaults are sd-scripts' own argparse defaults.

    ``buckets`` are the bucketing options (:class:`~kohya_recipe.sdscripts.buckets.BucketSettings`, whose
    ``family`` picks the ``bucket_reso_steps`` divisor sd-scripts enforces: 64 for sd15/sd2, 32 for sdxl).
    ``max_train_epochs`` wins over ``max_train_steps`` (sd-scripts prints ``override steps``); with neither,
    sd-scripts trains 1600 steps. ``cache_latents`` and ``random_crop`` only matter with ``enable_bucket`` off,
    where sd-scripts refuses images that are not exactly ``resolution`` unless latents are cached (caching
    resizes them).
    """

    buckets: BucketSettings = field(metadata={"json": False})
    batch_size: int = 1
    grad_accum: int = field(default=1, metadata={"json": False})
    num_processes: int = 1
    max_train_epochs: int | None = None
    max_train_steps: int | None = None
    validation_split: float = 0.0
    validation_seed: int | None = None
    cache_latents: bool = False
    random_crop: bool = False

    __json_properties__ = (
        *BucketFields.BUCKET_FIELDS,
        "family",
        "gradient_accumulation_steps",
    )

    @property
    def family(self) -> str:
        return self.buckets.family

    @property
    def gradient_accumulation_steps(self) -> int:
        """``grad_accum`` under the recipe's (and sd-scripts') name."""
        return self.grad_accum

    def check(self) -> None:
        """Raise :class:`PlanError` for values sd-scripts cannot run with (named by their recipe field)."""
        checks: list[tuple[str, bool, str]] = [
            ("training.resolution", min(self.resolution) >= 1, "both sides must be >= 1"),
            ("training.batch_size", self.batch_size >= 1, "must be >= 1"),
            ("training.gradient_accumulation_steps", self.grad_accum >= 1, "must be >= 1"),
            ("accelerate.num_processes", self.num_processes >= 1, "must be >= 1"),
            (
                "training.max_train_epochs",
                self.max_train_epochs is None or self.max_train_epochs >= 1,
                "must be >= 1",
            ),
            ("max_train_steps", self.max_train_steps is None or self.max_train_steps >= 1, "must be >= 1"),
            ("dataset.validation_split", 0.0 <= self.validation_split < 1.0, "must be >= 0 and < 1"),
            ("training.bucket_reso_steps", self.bucket_reso_steps >= 1, "must be >= 1"),
        ]
        for fld, ok, message in checks:
            if not ok:
                raise PlanError(message, field=fld)


# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ImageRow:
    """One image: its bucket, and how often an epoch shows it (``repeats``; 0 for unused reg images)."""

    subset: str
    file: str
    size: Reso
    role: Role
    repeats: int
    bucket: Reso | None
    resized: Reso | None
    upscaled: bool
    ar_error: float | None  # None when sd-scripts cannot bucket the image (``error``)
    error: str | None = None


@dataclass(frozen=True)
class BucketRow:
    """One bucket as sd-scripts logs it (``bucket 0: resolution (704, 832), count: 210``) plus its batches."""

    index: int
    resolution: Reso
    images: int
    count: int
    batches: int


@dataclass(frozen=True)
class SubsetRow:
    """What became of one subset: images found, kept for training, held out for validation, repeats used."""

    name: str
    is_reg: bool
    repeats: int
    images: int
    train_images: int
    validation_images: int
    items: int  # images × repeats this subset puts into one epoch (reg: after balancing)
    skipped: str | None = None


@dataclass(frozen=True)
class PlanWarning:
    """A finding about the plan; ``error`` means sd-scripts will stop or crash on it."""

    code: str
    message: str
    severity: Severity = "warning"


@dataclass(frozen=True)
class Steps:
    """The batch and step counts of a plan (:class:`Plan` holds them, with their meaning)."""

    batches_per_epoch: int
    batches_per_epoch_per_process: int
    steps_per_epoch: int
    max_train_steps: int
    max_train_steps_source: Literal["epochs", "max_train_steps", "default"]
    num_epochs: int
    last_epoch_steps: int


@dataclass(frozen=True)
class Plan(Steps):
    """The bucket-aware step plan, equal to what sd-scripts prints before its first step.

    ``batches_per_epoch`` is the dataset length B (all processes); ``batches_per_epoch_per_process`` is what
    sd-scripts prints as ``num batches per epoch`` (ceil(B / num_processes), accelerate's even batches);
    ``steps_per_epoch`` is ceil(B / processes / gradient accumulation); ``max_train_steps`` is the printed
    ``total optimization steps``; ``num_epochs`` the printed ``num epochs``; ``last_epoch_steps`` the steps
    the last epoch really runs (fewer than ``steps_per_epoch`` when it is partial).
    """

    settings: PlanSettings
    images: tuple[ImageRow, ...]
    buckets: tuple[BucketRow, ...]
    validation_buckets: tuple[BucketRow, ...]
    subsets: tuple[SubsetRow, ...]
    predefined_buckets: tuple[Reso, ...]
    min_bucket_reso: int | None
    max_bucket_reso: int | None
    num_train_images: int
    num_reg_images: int
    num_validation_images: int
    mean_ar_error: float | None
    validation_mean_ar_error: float | None
    formula: str
    formula_note: str | None
    warnings: tuple[PlanWarning, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[PlanWarning, ...]:
        """The findings sd-scripts would stop or crash on."""
        return tuple(w for w in self.warnings if w.severity == "error")
