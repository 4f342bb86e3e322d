"""The step plan: what sd-scripts will print as ``num batches per epoch`` and ``total optimization steps``.

The article's arithmetic (``42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps``) is exact only while
all images share one bucket. sd-scripts batches *per bucket*: every bucket rounds up to whole batches,
regularization images are balanced up to the training count, a validation split removes images before any of
that, and the step count comes from the batches, the processes and gradient accumulation. :func:`make_plan`
replays those rules (``DreamBoothDataset.__init__``, ``BaseDataset.make_buckets``, ``split_train_val`` and the
step arithmetic in ``train_network.py``, sd-scripts v0.10.1) over plain data, so it needs no images, no numpy
and no trainer:

    >>> plan = make_plan([SubsetInput("10_CharacterAI woman", [(768, 768)] * 42, repeats=10)],
    ...                  PlanSettings(resolution=(768, 768), enable_bucket=True, max_train_epochs=8))
    >>> plan.formula
    '42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps'

:func:`plan_from_recipe` builds the settings from a :class:`kohya_recipe.recipe.models.Recipe`;
:func:`subset_from_folder` and :func:`subsets_from_train_data_dir` read image sizes from disk;
:func:`format_plan` renders the terminal table and :meth:`Plan.to_dict` the ``--json`` form.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kohya_recipe.errors import DatasetError
from kohya_recipe.sdscripts.buckets import (
    BucketAssignment,
    BucketManager,
    BucketSettingsError,
    Reso,
    adjust_min_max_bucket_reso_by_steps,
    bucket_manager_for,
    verify_bucket_reso_steps,
)

if TYPE_CHECKING:
    from kohya_recipe.recipe.models import Recipe

# sd-scripts' --max_train_steps default, used when --max_train_epochs is not given (reference §10).
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
class PlanSettings:
    """The training settings that decide buckets and steps. Defaults are sd-scripts' own argparse defaults.

    ``max_train_epochs`` wins over ``max_train_steps`` (sd-scripts prints ``override steps``); with neither,
    sd-scripts trains 1600 steps. ``family`` picks the ``bucket_reso_steps`` divisor sd-scripts enforces (64
    for sd15/sd2, 32 for sdxl). ``cache_latents`` and ``random_crop`` only matter with ``enable_bucket`` off,
    where sd-scripts refuses images that are not exactly ``resolution`` unless latents are cached (caching
    resizes them).
    """

    resolution: Reso
    enable_bucket: bool = False
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    batch_size: int = 1
    grad_accum: int = 1
    num_processes: int = 1
    max_train_epochs: int | None = None
    max_train_steps: int | None = None
    validation_split: float = 0.0
    validation_seed: int | None = None
    family: Literal["sd15", "sd2", "sdxl"] = "sd15"
    cache_latents: bool = False
    random_crop: bool = False

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
    ar_error: float
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
class Plan:
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
    batches_per_epoch: int
    batches_per_epoch_per_process: int
    steps_per_epoch: int
    max_train_steps: int
    max_train_steps_source: Literal["epochs", "max_train_steps", "default"]
    num_epochs: int
    last_epoch_steps: int
    mean_ar_error: float | None
    validation_mean_ar_error: float | None
    formula: str
    formula_note: str | None
    warnings: tuple[PlanWarning, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> tuple[PlanWarning, ...]:
        """The findings sd-scripts would stop or crash on."""
        return tuple(w for w in self.warnings if w.severity == "error")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists; ``nan`` aspect errors become ``None``)."""

        def reso(r: Reso | None) -> list[int] | None:
            return None if r is None else [r[0], r[1]]

        def num(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else x

        s = self.settings
        return {
            "settings": {
                "resolution": reso(s.resolution),
                "enable_bucket": s.enable_bucket,
                "min_bucket_reso": s.min_bucket_reso,
                "max_bucket_reso": s.max_bucket_reso,
                "bucket_reso_steps": s.bucket_reso_steps,
                "bucket_no_upscale": s.bucket_no_upscale,
                "batch_size": s.batch_size,
                "gradient_accumulation_steps": s.grad_accum,
                "num_processes": s.num_processes,
                "max_train_epochs": s.max_train_epochs,
                "max_train_steps": s.max_train_steps,
                "validation_split": s.validation_split,
                "validation_seed": s.validation_seed,
                "family": s.family,
                "cache_latents": s.cache_latents,
                "random_crop": s.random_crop,
            },
            "formula": self.formula,
            "formula_note": self.formula_note,
            "num_train_images": self.num_train_images,
            "num_reg_images": self.num_reg_images,
            "num_validation_images": self.num_validation_images,
            "batches_per_epoch": self.batches_per_epoch,
            "batches_per_epoch_per_process": self.batches_per_epoch_per_process,
            "steps_per_epoch": self.steps_per_epoch,
            "max_train_steps": self.max_train_steps,
            "max_train_steps_source": self.max_train_steps_source,
            "num_epochs": self.num_epochs,
            "last_epoch_steps": self.last_epoch_steps,
            "mean_ar_error": num(self.mean_ar_error),
            "validation_mean_ar_error": num(self.validation_mean_ar_error),
            "min_bucket_reso": self.min_bucket_reso,
            "max_bucket_reso": self.max_bucket_reso,
            "predefined_buckets": [reso(r) for r in self.predefined_buckets],
            "buckets": [_bucket_dict(b) for b in self.buckets],
            "validation_buckets": [_bucket_dict(b) for b in self.validation_buckets],
            "subsets": [
                {
                    "name": r.name,
                    "is_reg": r.is_reg,
                    "repeats": r.repeats,
                    "images": r.images,
                    "train_images": r.train_images,
                    "validation_images": r.validation_images,
                    "items": r.items,
                    "skipped": r.skipped,
                }
                for r in self.subsets
            ],
            "images": [
                {
                    "subset": r.subset,
                    "file": r.file,
                    "size": reso(r.size),
                    "role": r.role,
                    "repeats": r.repeats,
                    "bucket": reso(r.bucket),
                    "resized": reso(r.resized),
                    "upscaled": r.upscaled,
                    "ar_error": num(r.ar_error),
                    "error": r.error,
                }
                for r in self.images
            ],
            "warnings": [{"code": w.code, "severity": w.severity, "message": w.message} for w in self.warnings],
        }


def _bucket_dict(b: BucketRow) -> dict[str, Any]:
    return {
        "index": b.index,
        "resolution": [b.resolution[0], b.resolution[1]],
        "images": b.images,
        "count": b.count,
        "batches": b.batches,
    }


# ----------------------------------------------------------------------------------------------------------
# The simulation


@dataclass(eq=False)
class _Info:
    """sd-scripts' ImageInfo, reduced to what bucketing needs."""

    subset: str
    file: str
    size: Reso
    repeats: int
    is_reg: bool
    order: tuple[int, int]  # (subset, image) position, to list images as the user gave them
    assignment: BucketAssignment | None = None


def _split_train_val(count: int, split: float, seed: int | None) -> tuple[list[int], list[int]]:
    """Indices kept for training and held out, as sd-scripts' ``split_train_val`` picks them.

    sd-scripts shuffles the subset's (path, size) list with ``random.seed(validation_seed)`` on the global RNG
    (saved and restored around it), keeps the first ``ceil(n × (1 − split))`` for training and gives the last
    ``round(n × split)`` to validation. A private ``random.Random(seed)`` draws the same permutation. Without
    a seed sd-scripts shuffles with whatever state the global RNG has; the plan then keeps the listed order.
    """
    order = list(range(count))
    if seed is not None:
        random.Random(seed).shuffle(order)
    train_n = math.ceil(count * (1 - split))
    val_start = count - round(count * split)
    return order[:train_n], order[val_start:]


def numpy_sum(values: Sequence[float]) -> float:
    """Sum floats in numpy's order (pairwise summation, 8 accumulators per block of up to 128 values).

    sd-scripts logs ``mean ar error (without repeats)`` as ``np.mean(np.abs(errors))``; adding in numpy's
    order makes the plan's mean the very float sd-scripts prints.
    """
    n = len(values)
    if n < 8:
        total = -0.0  # numpy starts from -0.0 so that a sum of -0.0 values stays -0.0
        for v in values:
            total += v
        return total
    if n <= 128:  # numpy's PW_BLOCKSIZE
        acc = list(values[:8])
        i = 8
        while i < n - n % 8:
            for j in range(8):
                acc[j] += values[i + j]
            i += 8
        total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        for v in values[i:]:
            total += v
        return total
    half = n // 2
    half -= half % 8
    return numpy_sum(values[:half]) + numpy_sum(values[half:])


def _mean_ar_error(infos: list[_Info]) -> float | None:
    """The mean |aspect-ratio error| over images, not repeats, as ``BaseDataset.make_buckets`` logs it."""
    errors = [abs(i.assignment.ar_error) for i in infos if i.assignment is not None and i.assignment.ok]
    return numpy_sum(errors) / len(errors) if errors else None


def _assign(manager: BucketManager, infos: list[_Info]) -> None:
    for info in infos:
        info.assignment = manager.select_bucket(*info.size)


def _bucket_rows(manager: BucketManager, infos: list[_Info], batch_size: int) -> tuple[BucketRow, ...]:
    """Count images × repeats per bucket and batches per bucket (``BaseDataset.make_buckets``)."""
    counts: dict[Reso, list[int]] = {}
    for info in infos:
        a = info.assignment
        if a is None or a.bucket is None or not a.ok or info.repeats < 1:
            continue
        images_count = counts.setdefault(a.bucket, [0, 0])
        images_count[0] += 1
        images_count[1] += info.repeats
    # sd-scripts sorts its used buckets before numbering them in the log.
    rows = []
    for index, reso in enumerate(sorted(counts)):
        images, count = counts[reso]
        rows.append(BucketRow(index, reso, images, count, math.ceil(count / batch_size)))
    return tuple(rows)


def _build_manager(settings: PlanSettings) -> BucketManager:
    return bucket_manager_for(
        settings.resolution,
        enable_bucket=settings.enable_bucket,
        min_bucket_reso=settings.min_bucket_reso,
        max_bucket_reso=settings.max_bucket_reso,
        bucket_reso_steps=settings.bucket_reso_steps,
        bucket_no_upscale=settings.bucket_no_upscale,
    )


def make_plan(subsets: Sequence[SubsetInput], settings: PlanSettings) -> Plan:
    """Simulate one sd-scripts DreamBooth dataset built from ``subsets`` and count its batches and steps.

    Follows the trainer in order: subsets with repeats < 1, duplicates and empty ones are skipped; a
    validation split (non-reg subsets only) removes images before counting; regularization images are
    balanced round-robin up to the training count (surplus ones are never registered); every image is
    bucketed; each bucket rounds its images × repeats up to whole batches; steps follow ``train_network.py``.
    Raises :class:`PlanError` / :class:`~kohya_recipe.sdscripts.buckets.BucketSettingsError` for settings sd-scripts
    asserts on; per-image crashes and everything else are returned as :class:`PlanWarning` entries.
    """
    settings.check()
    warnings: list[PlanWarning] = []

    # Bucket settings first: DreamBoothDataset.__init__ adjusts and asserts them before reading any image.
    min_reso = max_reso = None
    if settings.enable_bucket:
        adjusted = adjust_min_max_bucket_reso_by_steps(
            settings.resolution,
            settings.min_bucket_reso,
            settings.max_bucket_reso,
            settings.bucket_reso_steps,
        )
        min_reso, max_reso = adjusted.min_bucket_reso, adjusted.max_bucket_reso
        warnings.extend(PlanWarning("bucket_reso_adjusted", m) for m in adjusted.warnings)
        # NetworkTrainer.assert_extra_args: verify_bucket_reso_steps(64), SDXL 32.
        verify_bucket_reso_steps(settings.bucket_reso_steps, settings.family)
        if settings.bucket_no_upscale:
            warnings.append(
                PlanWarning(
                    "no_upscale_ignores_min_max",
                    "bucket_no_upscale: buckets follow each image's own size; min_bucket_reso and "
                    "max_bucket_reso are ignored (sd-scripts logs the same)",
                    "info",
                )
            )

    split = settings.validation_split
    train_infos: list[_Info] = []
    reg_infos: list[_Info] = []
    val_infos: list[_Info] = []
    subset_rows: list[SubsetRow] = []
    seen: set[str] = set()
    num_train_images = num_reg_images = 0
    unseeded_split: list[str] = []

    for k, subset in enumerate(subsets):
        files = subset.file_names()
        for size in subset.sizes:
            if size[0] < 1 or size[1] < 1:
                raise DatasetError(f"image size {size[0]}x{size[1]} is not a picture", field=f"subset {subset.name}")
        skipped = None
        if subset.repeats < 1:
            skipped = f"num_repeats {subset.repeats} is less than 1"
        elif subset.name in seen:
            skipped = "duplicate image folder (sd-scripts uses the first one)"
        elif not subset.sizes:
            skipped = "no images found"
        if skipped:
            warnings.append(PlanWarning("subset_skipped", f"subset {subset.name!r} is ignored: {skipped}"))
            subset_rows.append(
                SubsetRow(subset.name, subset.is_reg, subset.repeats, len(subset.sizes), 0, 0, 0, skipped)
            )
            continue
        seen.add(subset.name)

        n = len(subset.sizes)
        if split > 0.0 and not subset.is_reg:
            train_idx, val_idx = _split_train_val(n, split, settings.validation_seed)
            if settings.validation_seed is None:
                unseeded_split.append(subset.name)
        else:
            train_idx, val_idx = list(range(n)), []

        if subset.is_reg:
            num_reg_images += subset.repeats * n
            reg_infos.extend(
                _Info(subset.name, files[i], subset.sizes[i], subset.repeats, True, (k, i)) for i in range(n)
            )
        else:
            num_train_images += subset.repeats * len(train_idx)
            train_infos.extend(
                _Info(subset.name, files[i], subset.sizes[i], subset.repeats, False, (k, i)) for i in train_idx
            )
            # The validation dataset is a second DreamBoothDataset over the same subsets, repeats forced to 1.
            val_infos.extend(_Info(subset.name, files[i], subset.sizes[i], 1, False, (k, i)) for i in val_idx)
        subset_rows.append(SubsetRow(subset.name, subset.is_reg, subset.repeats, n, len(train_idx), len(val_idx), 0))

    # Regularization balancing, exactly as DreamBoothDataset: register reg images in order (each with its
    # subset's repeats) until the train count is reached, then add one repeat at a time round-robin.
    registered_reg: list[_Info] = []
    if num_reg_images > 0:
        n_items = 0
        first_loop = True
        while n_items < num_train_images:
            for info in reg_infos:
                if first_loop:
                    registered_reg.append(info)
                    n_items += info.repeats
                else:
                    info.repeats += 1
                    n_items += 1
                if n_items >= num_train_images:
                    break
            first_loop = False
        unused = len(reg_infos) - len(registered_reg)
        if unused:
            warnings.append(
                PlanWarning(
                    "reg_unused",
                    f"{unused} of {len(reg_infos)} regularization images are never used: sd-scripts only "
                    f"registers reg images until they match the {num_train_images} training images × repeats",
                )
            )
    registered_ids = {id(i) for i in registered_reg}

    manager = _build_manager(settings)
    dataset_infos = train_infos + registered_reg
    _assign(manager, dataset_infos)
    buckets = _bucket_rows(manager, dataset_infos, settings.batch_size)
    val_buckets: tuple[BucketRow, ...] = ()
    if val_infos:
        val_manager = _build_manager(settings)
        _assign(val_manager, val_infos)
        val_buckets = _bucket_rows(val_manager, val_infos, settings.batch_size)
    # Unused reg images are still shown with the bucket they would have had.
    _assign(_build_manager(settings), [i for i in reg_infos if id(i) not in registered_ids])

    # Per-subset items after balancing.
    items_by_subset: dict[str, int] = {}
    for info in dataset_infos:
        items_by_subset[info.subset] = items_by_subset.get(info.subset, 0) + info.repeats
    subset_rows = [
        r if r.skipped else SubsetRow(r.name, r.is_reg, r.repeats, r.images, r.train_images,
                                      r.validation_images, items_by_subset.get(r.name, 0))
        for r in subset_rows
    ]  # fmt: skip

    rows: list[ImageRow] = []
    roles: list[tuple[Role, _Info]] = [("train", i) for i in train_infos]
    roles += [("reg" if id(i) in registered_ids else "reg-unused", i) for i in reg_infos]
    roles += [("validation", i) for i in val_infos]
    # Listed in the user's order; an image both kept and held out (ceil + round can overlap) shows twice.
    roles.sort(key=lambda ri: ri[1].order)
    for role, info in roles:
        a = info.assignment
        assert a is not None
        repeats = 0 if role == "reg-unused" else info.repeats
        rows.append(
            ImageRow(info.subset, info.file, info.size, role, repeats, a.bucket, a.resized, a.upscaled,
                     a.ar_error, a.error)
        )  # fmt: skip

    warnings.extend(_image_warnings(rows, settings))
    if unseeded_split and len({r.bucket for r in rows if r.role in ("train", "validation")}) > 1:
        warnings.append(
            PlanWarning(
                "validation_unseeded",
                "validation_split without validation_seed: sd-scripts holds out random images, so how many "
                "land in each bucket (and the batches per epoch) can differ from this plan; "
                "set validation_seed",
            )
        )
    if split > 0.0 and not val_infos and num_train_images:
        warnings.append(
            PlanWarning(
                "validation_empty",
                f"validation_split {split} holds out no image (round(images × split) is 0 per subset): "
                "sd-scripts logs no validation loss",
                "info",
            )
        )

    mean_ar_error = _mean_ar_error(dataset_infos) if settings.enable_bucket else None
    val_mean_ar_error = _mean_ar_error(val_infos) if settings.enable_bucket else None

    steps = _steps(sum(b.batches for b in buckets), settings, warnings)
    reg_items = sum(i.repeats for i in registered_reg)
    formula, note = _formula(subset_rows, reg_items, buckets, steps, settings)

    return Plan(
        settings=settings,
        images=tuple(rows),
        buckets=buckets,
        validation_buckets=val_buckets,
        subsets=tuple(subset_rows),
        predefined_buckets=tuple(manager.predefined_resos) if settings.enable_bucket else (),
        min_bucket_reso=min_reso,
        max_bucket_reso=max_reso,
        num_train_images=num_train_images,
        num_reg_images=num_reg_images,
        num_validation_images=len(val_infos),
        mean_ar_error=mean_ar_error,
        validation_mean_ar_error=val_mean_ar_error,
        formula=formula,
        formula_note=note,
        warnings=tuple(warnings),
        **dataclasses.asdict(steps),
    )


@dataclass(frozen=True)
class _Steps:
    batches_per_epoch: int
    batches_per_epoch_per_process: int
    steps_per_epoch: int
    max_train_steps: int
    max_train_steps_source: Literal["epochs", "max_train_steps", "default"]
    num_epochs: int
    last_epoch_steps: int


def _steps(batches: int, s: PlanSettings, warnings: list[PlanWarning]) -> _Steps:
    """train_network.py's step arithmetic for B = ``batches``."""
    source: Literal["epochs", "max_train_steps", "default"]
    if s.max_train_epochs is not None:
        # "override steps. steps for E epochs is": computed before accelerate shards the loader.
        max_steps = s.max_train_epochs * math.ceil(batches / s.num_processes / s.grad_accum)
        source = "epochs"
        if s.max_train_steps is not None:
            warnings.append(
                PlanWarning(
                    "max_train_steps_ignored",
                    f"max_train_steps {s.max_train_steps} is ignored: max_train_epochs {s.max_train_epochs} "
                    "overrides it (sd-scripts prints 'override steps')",
                    "info",
                )
            )
    elif s.max_train_steps is not None:
        max_steps, source = s.max_train_steps, "max_train_steps"
    else:
        max_steps, source = DEFAULT_MAX_TRAIN_STEPS, "default"
        warnings.append(
            PlanWarning(
                "default_step_cap",
                f"max_train_epochs is not set: sd-scripts trains its default max_train_steps of "
                f"{DEFAULT_MAX_TRAIN_STEPS} steps, whatever the epochs; set max_train_epochs",
            )
        )

    # accelerate's prepared DataLoader (even_batches) gives each process ceil(B / processes) batches; that is
    # the "num batches per epoch" sd-scripts prints.
    per_process = math.ceil(batches / s.num_processes)
    steps_per_epoch = math.ceil(per_process / s.grad_accum)
    if batches == 0:
        warnings.append(
            PlanWarning(
                "no_data",
                "no training images: sd-scripts logs 'No data found' and exits with code 0 without training",
                "error",
            )
        )
        return _Steps(0, 0, 0, 0, source, 0, 0)
    num_epochs = math.ceil(max_steps / steps_per_epoch)
    last = max_steps - (num_epochs - 1) * steps_per_epoch
    if last < steps_per_epoch:
        warnings.append(
            PlanWarning(
                "partial_last_epoch",
                f"{max_steps} steps at {steps_per_epoch} steps per epoch: epoch {num_epochs} stops after "
                f"{last} of {steps_per_epoch} steps (its loss/epoch_average mixes in the previous epoch)",
            )
        )
    return _Steps(batches, per_process, steps_per_epoch, max_steps, source, num_epochs, last)


def _image_warnings(rows: list[ImageRow], s: PlanSettings) -> list[PlanWarning]:
    """Group per-image findings: crashes (bucket side 0), upscaling, sizes refused without buckets."""
    out: list[PlanWarning] = []
    used = [r for r in rows if r.role != "reg-unused"]

    crashes = [r for r in used if r.error]
    if crashes:
        sizes = _group(crashes, lambda r: f"{r.size[0]}x{r.size[1]}")
        out.append(
            PlanWarning(
                "zero_bucket_side",
                f"{len(crashes)} image(s) round a bucket side to 0 ({sizes}) with bucket_reso_steps "
                f"{s.bucket_reso_steps} and bucket_no_upscale at resolution {_r(s.resolution)}: "
                f"{crashes[0].error}. Raise the resolution, lower bucket_reso_steps, or turn "
                "bucket_no_upscale off",
                "error",
            )
        )

    # Without buckets and without latent caching sd-scripts never resizes (it crops or stops, below), so
    # only the bucket path and the latent cache upscale.
    resizes = s.enable_bucket or s.cache_latents
    seen: set[tuple[str, str]] = set()
    up = []
    for r in used:
        if resizes and r.upscaled and not r.error and (r.subset, r.file) not in seen:
            seen.add((r.subset, r.file))
            up.append(r)
    if up:
        by_target: dict[tuple[Reso, Reso | None, Reso | None], list[ImageRow]] = {}
        for r in up:
            by_target.setdefault((r.size, r.resized, r.bucket), []).append(r)
        for (size, resized, bucket), group in by_target.items():
            assert resized is not None and bucket is not None
            names = ", ".join(r.file for r in group[:5]) + (f", … (+{len(group) - 5})" if len(group) > 5 else "")
            hint = (
                "set bucket_no_upscale to keep them at their size"
                if s.enable_bucket
                else "enable_bucket with bucket_no_upscale keeps them at their size"
            )
            out.append(
                PlanWarning(
                    "upscaled",
                    f"{len(group)} image(s) of {_r(size)} will be upscaled to {_r(resized)} "
                    f"(bucket {_r(bucket)}): {names}; {hint}",
                )
            )

    if not s.enable_bucket and not s.cache_latents:
        # BaseDataset.__getitem__ without buckets crops only with random_crop and then asserts the exact size.
        w, h = s.resolution
        too_large = [r for r in used if (r.size[0] > w or r.size[1] > h) and not s.random_crop]
        too_small = [r for r in used if r.size[0] < w or r.size[1] < h]
        if too_large:
            out.append(
                PlanWarning(
                    "no_bucket_too_large",
                    f"{len(too_large)} image(s) are larger than {w}x{h} ({_group(too_large, _size)}) with "
                    "bucketing off: sd-scripts stops with 'image too large, but cropping and bucketing are "
                    "disabled'; enable bucketing (or cache latents, which resizes)",
                    "error",
                )
            )
        if too_small:
            out.append(
                PlanWarning(
                    "no_bucket_too_small",
                    f"{len(too_small)} image(s) are smaller than {w}x{h} ({_group(too_small, _size)}) with "
                    "bucketing off: sd-scripts stops with 'image size is small'; enable bucketing",
                    "error",
                )
            )
    return out


def _size(r: ImageRow) -> str:
    return f"{r.size[0]}x{r.size[1]}"


def _group(rows: list[ImageRow], key: Any) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[key(r)] = counts.get(key(r), 0) + 1
    return ", ".join(f"{n}× {k}" for k, n in counts.items())


# ----------------------------------------------------------------------------------------------------------
# The article-style formula


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def _formula(
    subsets: list[SubsetRow], reg_items: int, buckets: tuple[BucketRow, ...], steps: _Steps, s: PlanSettings
) -> tuple[str, str | None]:
    """``42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps``, and a note when the buckets change it."""
    train = [r for r in subsets if not r.is_reg and not r.skipped]
    train_items = sum(r.train_images * r.repeats for r in train)
    repeats = {r.repeats for r in train}
    n_images = sum(r.train_images for r in train)
    if len(repeats) <= 1:
        what = f"{n_images} images × {repeats.pop() if repeats else 0} repeats"
    else:
        what = "(" + " + ".join(f"{r.train_images}×{r.repeats}" for r in train) + ") images×repeats"
    items = train_items
    if reg_items:
        if reg_items == train_items:
            what += " × 2 (regularization)"
        else:
            what += f" + {reg_items} regularization"
        items += reg_items

    divisor = f" / batch {s.batch_size}"
    if s.grad_accum > 1:
        divisor += f" / gradient accumulation {s.grad_accum}"
    if s.num_processes > 1:
        divisor += f" / {s.num_processes} processes"
    per_step = s.batch_size * s.grad_accum * s.num_processes

    if steps.max_train_steps_source == "epochs":
        assert s.max_train_epochs is not None
        naive = items * s.max_train_epochs / per_step
        formula = f"{what} × {s.max_train_epochs} epochs{divisor} = {_num(naive)} steps"
    else:
        naive = items / per_step
        cap = "sd-scripts' default" if steps.max_train_steps_source == "default" else "max_train_steps"
        formula = (
            f"{what}{divisor} = {_num(naive)} steps per epoch; {steps.max_train_steps} steps ({cap}) "
            f"= {_num(steps.max_train_steps / naive) if naive else '∞'} epochs"
        )

    reasons = []
    naive_batches = math.ceil(items / s.batch_size)
    if steps.batches_per_epoch != naive_batches:
        reasons.append(
            f"sd-scripts batches each of the {len(buckets)} buckets separately and rounds each up to whole "
            f"batches of {s.batch_size} ({naive_batches} → {steps.batches_per_epoch} batches per epoch)"
        )
    if steps.batches_per_epoch and steps.batches_per_epoch % (s.num_processes * s.grad_accum):
        reasons.append("each epoch rounds up to whole optimizer steps")
    if steps.max_train_steps_source == "epochs":
        if reasons or not float(naive).is_integer() or int(naive) != steps.max_train_steps:
            note = (
                f"bucket-aware: {steps.steps_per_epoch} steps per epoch × {s.max_train_epochs} epochs = "
                f"{steps.max_train_steps} steps"
            )
            return formula, note + (" (" + "; ".join(reasons) + ")" if reasons else "")
        return formula, None
    if reasons or not float(naive).is_integer() or int(naive) != steps.steps_per_epoch:
        note = f"bucket-aware: {steps.steps_per_epoch} steps per epoch, {steps.num_epochs} epochs"
        return formula, note + (" (" + "; ".join(reasons) + ")" if reasons else "")
    return formula, None


# ----------------------------------------------------------------------------------------------------------
# Terminal table


def _r(r: Reso | None) -> str:
    return "-" if r is None else f"{r[0]}x{r[1]}"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  " + "  ".join(out).rstrip()

    return [line(header), *(line(r) for r in rows)]


def format_plan(plan: Plan) -> str:
    """The plan as the terminal shows it: formula, totals, buckets, images, warnings."""
    s = plan.settings
    out = ["Step plan", f"  {plan.formula}"]
    if plan.formula_note:
        out.append(f"  {plan.formula_note}")
    out.append(
        f"  batches per epoch: {plan.batches_per_epoch_per_process}   "
        f"steps per epoch: {plan.steps_per_epoch}   epochs: {plan.num_epochs}   "
        f"total optimization steps: {plan.max_train_steps}"
    )
    counts = f"  train images × repeats: {plan.num_train_images}"
    if plan.num_reg_images:
        counts += f"   reg images: {plan.num_reg_images}"
    if plan.num_validation_images:
        counts += f"   validation images: {plan.num_validation_images}"
    out.append(counts)

    if s.enable_bucket:
        mode = (
            "no upscaling (bucket_no_upscale)"
            if s.bucket_no_upscale
            else f"buckets {plan.min_bucket_reso}-{plan.max_bucket_reso}"
        )
        out += ["", f"Buckets (resolution {_r(s.resolution)}, {mode}, step {s.bucket_reso_steps})"]
    else:
        out += ["", f"Buckets (bucketing off: every image goes to {_r(s.resolution)})"]
    out += _table(
        ["#", "bucket", "images", "×repeats", "batches"],
        [[str(b.index), _r(b.resolution), str(b.images), str(b.count), str(b.batches)] for b in plan.buckets],
        {0, 2, 3, 4},
    )
    if plan.mean_ar_error is not None:
        out.append(f"  mean aspect-ratio error: {plan.mean_ar_error:.4f}")
    if plan.validation_buckets:
        out += ["", "Validation buckets (a second dataset, repeats 1; not counted in the steps)"]
        out += _table(
            ["#", "bucket", "images", "batches"],
            [[str(b.index), _r(b.resolution), str(b.images), str(b.batches)] for b in plan.validation_buckets],
            {0, 2, 3},
        )

    out += ["", "Images"]
    image_rows = []
    for r in plan.images:
        note = "crash" if r.error else ("upscaled" if r.upscaled else "")
        image_rows.append([r.file, r.subset, r.role, str(r.repeats), _r(r.size), _r(r.bucket), _r(r.resized), note])
    out += _table(["file", "subset", "role", "repeats", "size", "bucket", "resized", "note"], image_rows, {3})

    if plan.warnings:
        out += ["", "Findings"]
        out += [f"  {w.severity}: {w.message}" for w in plan.warnings]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------------
# From a recipe, from folders


def settings_from_recipe(recipe: Recipe) -> PlanSettings:
    """The :class:`PlanSettings` a recipe trains with (``training``, ``dataset``, ``accelerate`` sections)."""
    t = recipe.training
    return PlanSettings(
        resolution=(t.resolution[0], t.resolution[1]),
        enable_bucket=t.enable_bucket,
        min_bucket_reso=t.min_bucket_reso,
        max_bucket_reso=t.max_bucket_reso,
        bucket_reso_steps=t.bucket_reso_steps,
        bucket_no_upscale=t.bucket_no_upscale,
        batch_size=t.batch_size,
        grad_accum=t.gradient_accumulation_steps,
        num_processes=recipe.accelerate.num_processes,
        max_train_epochs=t.max_train_epochs,
        # The recipe always writes max_train_epochs (the trainer's 1600-step default is a trap).
        max_train_steps=None,
        validation_split=recipe.dataset.validation_split,
        validation_seed=recipe.dataset.validation_seed,
        family=recipe.model.family,
        cache_latents=t.cache_latents or t.cache_latents_to_disk,
        random_crop=bool(recipe.extra.get("random_crop", False)),
    )


def plan_from_recipe(recipe: Recipe, subsets: Sequence[SubsetInput]) -> Plan:
    """The step plan for ``recipe`` over ``subsets`` (:func:`subset_from_folder` reads them from disk)."""
    return make_plan(subsets, settings_from_recipe(recipe))


def subset_from_folder(folder: Path, repeats: int, *, is_reg: bool = False, name: str | None = None) -> SubsetInput:
    """Read the images sd-scripts would take from ``folder`` (sizes from the file headers, sorted by name)."""
    from kohya_recipe.dataset.images import image_size, list_trainer_images

    if not folder.is_dir():
        raise DatasetError("image folder not found", source=str(folder))
    paths = list_trainer_images(folder)
    sizes = [image_size(p) for p in paths]  # an unreadable file raises images.ImageReadError (a DatasetError)
    return SubsetInput(
        name=name or folder.name, sizes=sizes, repeats=repeats, is_reg=is_reg, files=[p.name for p in paths]
    )


def subsets_from_train_data_dir(parent: Path, *, is_reg: bool = False) -> list[SubsetInput]:
    """sd-scripts' folder mode: each ``<repeats>_<class tokens>`` sub-folder of ``parent`` is a subset.

    Folders whose name does not start with an integer and ``_``-separated rest are skipped, as sd-scripts
    skips them (reference §4). Folders are taken in name order.
    """
    if not parent.is_dir():
        raise DatasetError("image folder not found", source=str(parent))
    subsets = []
    for sub in sorted(p for p in parent.iterdir() if p.is_dir()):
        try:
            repeats = int(sub.name.split("_")[0])
        except ValueError:
            continue
        subsets.append(subset_from_folder(sub, repeats, is_reg=is_reg, name=f"{parent.name}/{sub.name}"))
    return subsets
