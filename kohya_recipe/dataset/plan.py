"""The step plan: what sd-scripts will print as ``num batches per epoch`` and ``total optimization steps``.

The article's arithmetic (``42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps``) is exact only while
all images share one bucket. sd-scripts batches *per bucket*: every bucket rounds up to whole batches,
regularization images are balanced up to the training count, a validation split removes images before any of
that, and the step count comes from the batches, the processes and gradient accumulation. :func:`make_plan`
replays those rules (``DreamBoothDataset.__init__``, ``BaseDataset.make_buckets``, ``split_train_val`` and the
step arithmetic in ``train_network.py``, sd-scripts v0.10.1) over plain data, so it needs no images, no numpy
and no trainer:

    >>> plan = make_plan([SubsetInput("10_CharacterAI woman", [(768, 768)] * 42, repeats=10)],
    ...                  PlanSettings(BucketSettings((768, 768), enable_bucket=True), max_train_epochs=8))
    >>> plan.formula
    '42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps'

:func:`plan_from_recipe` builds the settings from a :class:`kohya_recipe.recipe.models.Recipe`;
:func:`subset_from_folder` and :func:`subsets_from_train_data_dir` read image sizes from disk;
:func:`format_plan` renders the terminal table; a :class:`Plan` is plain data, its fields the ``--json`` form.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kohya_recipe.dataset.images import image_size, list_trainer_images
from kohya_recipe.dataset.plan_model import (
    DEFAULT_MAX_TRAIN_STEPS,
    BucketRow,
    ImageRow,
    Plan,
    PlanError,
    PlanSettings,
    PlanWarning,
    Role,
    Steps,
    SubsetInput,
    SubsetRow,
)
from kohya_recipe.dataset.plan_text import format_plan, formula_text, reso_text
from kohya_recipe.errors import DatasetError
from kohya_recipe.sdscripts.buckets import (
    BucketAssignment,
    BucketManager,
    Reso,
    adjust_min_max_bucket_reso_by_steps,
    verify_bucket_reso_steps,
)
from kohya_recipe.sdscripts.folders import parse_repeats_folder

if TYPE_CHECKING:
    from kohya_recipe.recipe.models import Recipe

__all__ = [
    "DEFAULT_MAX_TRAIN_STEPS",
    "Plan",
    "PlanError",
    "PlanSettings",
    "SubsetInput",
    "format_plan",
    "make_plan",
    "numpy_sum",
    "plan_from_recipe",
    "settings_from_recipe",
    "subset_from_folder",
    "subsets_from_train_data_dir",
]


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


@dataclass
class _Dataset:
    """The DreamBooth dataset sd-scripts builds from the subsets, before balancing and bucketing."""

    train: list[_Info] = field(default_factory=list)
    reg: list[_Info] = field(default_factory=list)
    validation: list[_Info] = field(default_factory=list)
    subset_rows: list[SubsetRow] = field(default_factory=list)
    num_train_images: int = 0  # images × repeats
    num_reg_images: int = 0
    unseeded_split: bool = False


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
    min_reso, max_reso = _bucket_reso(settings, warnings)
    ds = _dataset(subsets, settings, warnings)
    registered = _balance_reg(ds, warnings)
    registered_ids = {id(i) for i in registered}

    manager = settings.buckets.manager()
    used = ds.train + registered
    _assign(manager, used)
    buckets = _bucket_rows(manager, used, settings.batch_size)
    val_buckets: tuple[BucketRow, ...] = ()
    if ds.validation:
        val_manager = settings.buckets.manager()
        _assign(val_manager, ds.validation)
        val_buckets = _bucket_rows(val_manager, ds.validation, settings.batch_size)
    # Unused reg images are still shown with the bucket they would have had.
    _assign(settings.buckets.manager(), [i for i in ds.reg if id(i) not in registered_ids])

    subset_rows = _with_items(ds.subset_rows, used)
    rows = _image_rows(ds, registered_ids)
    warnings.extend(_image_warnings(rows, settings))
    warnings.extend(_validation_warnings(ds, rows, settings.validation_split))
    steps = _steps(sum(b.batches for b in buckets), settings, warnings)
    formula, note = formula_text(subset_rows, sum(i.repeats for i in registered), buckets, steps, settings)
    return Plan(
        settings=settings,
        images=tuple(rows),
        buckets=buckets,
        validation_buckets=val_buckets,
        subsets=tuple(subset_rows),
        predefined_buckets=tuple(manager.predefined_resos) if settings.enable_bucket else (),
        min_bucket_reso=min_reso,
        max_bucket_reso=max_reso,
        num_train_images=ds.num_train_images,
        num_reg_images=ds.num_reg_images,
        num_validation_images=len(ds.validation),
        mean_ar_error=_mean_ar_error(used) if settings.enable_bucket else None,
        validation_mean_ar_error=_mean_ar_error(ds.validation) if settings.enable_bucket else None,
        formula=formula,
        formula_note=note,
        warnings=tuple(warnings),
        **dataclasses.asdict(steps),
    )


def _bucket_reso(settings: PlanSettings, warnings: list[PlanWarning]) -> tuple[int | None, int | None]:
    """The min/max bucket resolution sd-scripts really uses (``None`` without buckets).

    Bucket settings come first: ``DreamBoothDataset.__init__`` adjusts and asserts them before reading any image.
    """
    if not settings.enable_bucket:
        return None, None
    b = settings.buckets
    adjusted = adjust_min_max_bucket_reso_by_steps(
        b.resolution, b.min_bucket_reso, b.max_bucket_reso, b.bucket_reso_steps
    )
    warnings.extend(PlanWarning("bucket_reso_adjusted", m) for m in adjusted.warnings)
    # train_network.py NetworkTrainer.assert_extra_args: verify_bucket_reso_steps(64), SDXL 32.
    verify_bucket_reso_steps(b.bucket_reso_steps, b.family)
    if b.bucket_no_upscale:
        warnings.append(
            PlanWarning(
                "no_upscale_ignores_min_max",
                "bucket_no_upscale: buckets follow each image's own size; min_bucket_reso and "
                "max_bucket_reso are ignored (sd-scripts logs the same)",
                "info",
            )
        )
    return adjusted.min_bucket_reso, adjusted.max_bucket_reso


def _dataset(subsets: Sequence[SubsetInput], settings: PlanSettings, warnings: list[PlanWarning]) -> _Dataset:
    """The images of every subset sd-scripts keeps, split into train, validation and regularization."""
    ds = _Dataset()
    seen: set[str] = set()
    for k, subset in enumerate(subsets):
        for size in subset.sizes:
            if size[0] < 1 or size[1] < 1:
                raise DatasetError(f"image size {size[0]}x{size[1]} is not a picture", field=f"subset {subset.name}")
        skipped = _skip_reason(subset, seen)
        if skipped:
            warnings.append(PlanWarning("subset_skipped", f"subset {subset.name!r} is ignored: {skipped}"))
            row = SubsetRow(subset.name, subset.is_reg, subset.repeats, len(subset.sizes), 0, 0, 0, skipped)
            ds.subset_rows.append(row)
            continue
        seen.add(subset.name)
        _add_subset(ds, k, subset, settings)
    return ds


def _skip_reason(subset: SubsetInput, seen: set[str]) -> str | None:
    """Why sd-scripts ignores a subset, or ``None``."""
    if subset.repeats < 1:
        return f"num_repeats {subset.repeats} is less than 1"
    if subset.name in seen:
        return "duplicate image folder (sd-scripts uses the first one)"
    if not subset.sizes:
        return "no images found"
    return None


def _add_subset(ds: _Dataset, k: int, subset: SubsetInput, settings: PlanSettings) -> None:
    files = subset.file_names()
    n = len(subset.sizes)
    split = settings.validation_split
    if split > 0.0 and not subset.is_reg:
        train_idx, val_idx = _split_train_val(n, split, settings.validation_seed)
        ds.unseeded_split = ds.unseeded_split or settings.validation_seed is None
    else:
        train_idx, val_idx = list(range(n)), []

    def info(i: int, repeats: int) -> _Info:
        return _Info(subset.name, files[i], subset.sizes[i], repeats, subset.is_reg, (k, i))

    if subset.is_reg:
        ds.num_reg_images += subset.repeats * n
        ds.reg.extend(info(i, subset.repeats) for i in range(n))
    else:
        ds.num_train_images += subset.repeats * len(train_idx)
        ds.train.extend(info(i, subset.repeats) for i in train_idx)
        # The validation dataset is a second DreamBoothDataset over the same subsets, repeats forced to 1.
        ds.validation.extend(info(i, 1) for i in val_idx)
    ds.subset_rows.append(SubsetRow(subset.name, subset.is_reg, subset.repeats, n, len(train_idx), len(val_idx), 0))


def _balance_reg(ds: _Dataset, warnings: list[PlanWarning]) -> list[_Info]:
    """The regularization images sd-scripts registers, exactly as ``DreamBoothDataset`` balances them: in order
    (each with its subset's repeats) until the train count is reached, then one more repeat at a time,
    round-robin. Surplus images are never registered."""
    registered: list[_Info] = []
    if ds.num_reg_images == 0:
        return registered
    n_items = 0
    first_loop = True
    while n_items < ds.num_train_images:
        for info in ds.reg:
            if first_loop:
                registered.append(info)
                n_items += info.repeats
            else:
                info.repeats += 1
                n_items += 1
            if n_items >= ds.num_train_images:
                break
        first_loop = False
    unused = len(ds.reg) - len(registered)
    if unused:
        warnings.append(
            PlanWarning(
                "reg_unused",
                f"{unused} of {len(ds.reg)} regularization images are never used: sd-scripts only "
                f"registers reg images until they match the {ds.num_train_images} training images × repeats",
            )
        )
    return registered


def _with_items(subset_rows: list[SubsetRow], used: list[_Info]) -> list[SubsetRow]:
    """The subset rows with the images × repeats each puts into one epoch (after reg balancing)."""
    items_by_subset: dict[str, int] = {}
    for info in used:
        items_by_subset[info.subset] = items_by_subset.get(info.subset, 0) + info.repeats
    return [r if r.skipped else dataclasses.replace(r, items=items_by_subset.get(r.name, 0)) for r in subset_rows]


def _image_rows(ds: _Dataset, registered_ids: set[int]) -> list[ImageRow]:
    """One row per image and role, in the user's order; an image both kept and held out (ceil + round can
    overlap) shows twice."""
    roles: list[tuple[Role, _Info]] = [("train", i) for i in ds.train]
    roles += [("reg" if id(i) in registered_ids else "reg-unused", i) for i in ds.reg]
    roles += [("validation", i) for i in ds.validation]
    roles.sort(key=lambda ri: ri[1].order)
    rows = []
    for role, info in roles:
        a = info.assignment
        assert a is not None
        repeats = 0 if role == "reg-unused" else info.repeats
        ar_error = None if math.isnan(a.ar_error) else a.ar_error
        rows.append(
            ImageRow(
                info.subset, info.file, info.size, role, repeats, a.bucket, a.resized, a.upscaled, ar_error, a.error
            )
        )
    return rows


def _validation_warnings(ds: _Dataset, rows: list[ImageRow], split: float) -> list[PlanWarning]:
    out = []
    if ds.unseeded_split and len({r.bucket for r in rows if r.role in ("train", "validation")}) > 1:
        out.append(
            PlanWarning(
                "validation_unseeded",
                "validation_split without validation_seed: sd-scripts holds out random images, so how many "
                "land in each bucket (and the batches per epoch) can differ from this plan; "
                "set validation_seed",
            )
        )
    if split > 0.0 and not ds.validation and ds.num_train_images:
        out.append(
            PlanWarning(
                "validation_empty",
                f"validation_split {split} holds out no image (round(images × split) is 0 per subset): "
                "sd-scripts logs no validation loss",
                "info",
            )
        )
    return out


def _steps(batches: int, s: PlanSettings, warnings: list[PlanWarning]) -> Steps:
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
        return Steps(0, 0, 0, 0, source, 0, 0)
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
    return Steps(batches, per_process, steps_per_epoch, max_steps, source, num_epochs, last)


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
                f"{s.bucket_reso_steps} and bucket_no_upscale at resolution {reso_text(s.resolution)}: "
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
                    f"{len(group)} image(s) of {reso_text(size)} will be upscaled to {reso_text(resized)} "
                    f"(bucket {reso_text(bucket)}): {names}; {hint}",
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
# From a recipe, from folders


def settings_from_recipe(recipe: Recipe) -> PlanSettings:
    """The :class:`PlanSettings` a recipe trains with (``training``, ``dataset``, ``accelerate`` sections)."""
    t = recipe.training
    return PlanSettings(
        buckets=recipe.bucket_settings(),
        batch_size=t.batch_size,
        grad_accum=t.gradient_accumulation_steps,
        num_processes=recipe.accelerate.num_processes,
        # The recipe writes max_train_epochs (the trainer's 1600-step default is a trap) unless it sets steps.
        max_train_epochs=t.epoch_limit,
        max_train_steps=t.max_train_steps,
        validation_split=recipe.dataset.validation_split,
        validation_seed=recipe.dataset.validation_seed,
        cache_latents=t.cache_latents or t.cache_latents_to_disk,
        random_crop=bool(recipe.extra.get("random_crop", False)),
    )


def plan_from_recipe(recipe: Recipe, subsets: Sequence[SubsetInput]) -> Plan:
    """The step plan for ``recipe`` over ``subsets`` (:func:`subset_from_folder` reads them from disk)."""
    return make_plan(subsets, settings_from_recipe(recipe))


def subset_from_folder(folder: Path, repeats: int, *, is_reg: bool = False, name: str | None = None) -> SubsetInput:
    """Read the images sd-scripts would take from ``folder`` (sizes from the file headers, sorted by name)."""
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
    skips them (``library/config_util.py`` ``generate_dreambooth_subsets_config_by_subdirs``). Folders are taken in
    name order.
    """
    if not parent.is_dir():
        raise DatasetError("image folder not found", source=str(parent))
    subsets = []
    for sub in sorted(p for p in parent.iterdir() if p.is_dir()):
        repeats = parse_repeats_folder(sub.name).repeats
        if repeats is not None:
            subsets.append(subset_from_folder(sub, repeats, is_reg=is_reg, name=f"{parent.name}/{sub.name}"))
    return subsets
