"""A faithful, pure-Python replay of sd-scripts' aspect-ratio bucketing (``library/train_util.py`` v0.10.1).

sd-scripts puts every training image into a *bucket* (a width×height the image is resized and cropped to);
batches are formed per bucket, so the buckets decide the number of batches per epoch and therefore the step
count. This module reproduces, number for number, what the trainer does:

- :func:`make_bucket_resolutions` — ``library/model_util.make_bucket_resolutions``: the predefined bucket list
  used when ``bucket_no_upscale`` is off.
- :class:`BucketManager` — ``train_util.BucketManager``: ``select_bucket`` picks the predefined bucket with
  the nearest aspect ratio (upscaling mode) or rounds the downscaled image to ``bucket_reso_steps``
  (no-upscale mode), and returns the resized size before the crop and the aspect-ratio error.
- :func:`adjust_min_max_bucket_reso_by_steps` and :func:`verify_bucket_reso_steps` — the dataset's checks,
  raised here as :class:`BucketSettingsError` instead of sd-scripts' ``AssertionError`` tracebacks.
- :class:`BucketSettings` — the bucketing options, with sd-scripts' defaults, in one place.
- :func:`bucket_manager_for` — the manager the dataset builds for a given setting (one fixed bucket when
  ``enable_bucket`` is off).

sd-scripts uses numpy only for ``np.abs(errors).argmin()``; numpy's argmin returns the *first* index of
the minimum, which a strict ``<`` scan over the same sorted list reproduces, and the float64 arithmetic is the
same as Python's ``float``. The answers are checked against the real ``BucketManager`` in
``tests/data/buckets/sd-scripts-bucket-assignments.json`` (every row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kohya_recipe.errors import RecipeError

Reso = tuple[int, int]

# train_network.py NetworkTrainer.assert_extra_args calls verify_bucket_reso_steps(64) for SD1.x/2.x;
# sdxl_train_network.py calls it with 32 (the SDXL U-Net downsamples less relative to the latent).
MIN_BUCKET_RESO_STEPS: dict[str, int] = {"sd15": 64, "sd2": 64, "sdxl": 32}


class BucketSettingsError(RecipeError):
    """A bucketing setting that sd-scripts rejects with an ``AssertionError`` before training starts."""


@dataclass(frozen=True)
class BucketSettings:
    """sd-scripts' bucketing options, the one copy every stage reads (plan, check, GUI import).

    Defaults are ``train_network.py``'s argparse defaults: bucketing is *off* unless ``--enable_bucket`` is given
    (the article and every preset turn it on). ``family`` picks the ``bucket_reso_steps`` divisor sd-scripts
    enforces (:data:`MIN_BUCKET_RESO_STEPS`).
    """

    resolution: Reso
    enable_bucket: bool = False
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    family: str = "sd15"

    def manager(self) -> BucketManager:
        """The :class:`BucketManager` the dataset builds with these settings (see :func:`bucket_manager_for`)."""
        return bucket_manager_for(
            self.resolution,
            enable_bucket=self.enable_bucket,
            min_bucket_reso=self.min_bucket_reso,
            max_bucket_reso=self.max_bucket_reso,
            bucket_reso_steps=self.bucket_reso_steps,
            bucket_no_upscale=self.bucket_no_upscale,
        )


class BucketFields:
    """Read-only access to the fields of a ``buckets`` :class:`BucketSettings`, for settings that embed one (the
    plan's and the dataset check's), so that each reads ``settings.resolution`` without copying the value."""

    buckets: BucketSettings

    BUCKET_FIELDS = (
        "resolution",
        "enable_bucket",
        "min_bucket_reso",
        "max_bucket_reso",
        "bucket_reso_steps",
        "bucket_no_upscale",
    )

    @property
    def resolution(self) -> Reso:
        return self.buckets.resolution

    @property
    def enable_bucket(self) -> bool:
        return self.buckets.enable_bucket

    @property
    def min_bucket_reso(self) -> int:
        return self.buckets.min_bucket_reso

    @property
    def max_bucket_reso(self) -> int:
        return self.buckets.max_bucket_reso

    @property
    def bucket_reso_steps(self) -> int:
        return self.buckets.bucket_reso_steps

    @property
    def bucket_no_upscale(self) -> bool:
        return self.buckets.bucket_no_upscale


@dataclass(frozen=True)
class BucketAssignment:
    """Where one image goes, as sd-scripts' ``BucketManager.select_bucket`` decides.

    ``bucket`` is the (width, height) the image is finally cropped to, ``resized`` the size it is resized to
    before that crop, ``ar_error`` is ``bucket_w / bucket_h - image_w / image_h`` (sd-scripts' sign
    convention) and ``upscaled`` is true when either side of ``resized`` is larger than the image.

    ``error`` is set when sd-scripts itself would crash on this image (a bucket side that rounds to 0 in
    ``bucket_no_upscale`` mode raises ``ZeroDivisionError`` in ``select_bucket``). The fields sd-scripts never
    computed are then ``None`` (``bucket``/``resized``) or ``nan`` (``ar_error``).
    """

    image: Reso
    bucket: Reso | None
    resized: Reso | None
    ar_error: float
    upscaled: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when sd-scripts gets through ``select_bucket`` for this image with a usable bucket."""
        return self.error is None


def make_bucket_resolutions(
    max_reso: Reso, min_size: int = 256, max_size: int = 1024, divisible: int = 64
) -> list[Reso]:
    """The predefined buckets for ``max_reso`` = (width, height), sorted as sd-scripts sorts them.

    Same integer arithmetic as ``library/model_util.make_bucket_resolutions``: the square bucket of the
    resolution's area rounded down to ``divisible``, then for every width from ``min_size`` to ``max_size`` in
    steps of ``divisible`` the tallest height (a multiple of ``divisible``, capped at ``max_size``) whose area
    fits in the resolution's area, plus its transpose; heights below ``min_size`` are dropped.
    """
    max_width, max_height = max_reso
    max_area = max_width * max_height

    square = int(math.sqrt(max_area) // divisible) * divisible
    resos: set[Reso] = {(square, square)}
    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // divisible) * divisible)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += divisible
    return sorted(resos)


class BucketManager:
    """sd-scripts' ``BucketManager`` without numpy: same constructor, same ``select_bucket`` answers.

    Besides the assignment it keeps what the trainer keeps: ``resos`` (the buckets used, in first-use order
    until :meth:`sort`) so a caller can number buckets the way sd-scripts logs them (``bucket 0: resolution
    (64, 64), count: 12``).
    """

    def __init__(
        self,
        no_upscale: bool,
        max_reso: Reso | None,
        min_size: int | None,
        max_size: int | None,
        reso_steps: int | None,
    ) -> None:
        # The constructor's own asserts; the dataset's adjust_min_max_bucket_reso_by_steps asserts the same
        # (and more) first, so these only fire when the class is used directly.
        if max_size is not None:
            if max_reso is not None and (max_size < max_reso[0] or max_size < max_reso[1]):
                raise BucketSettingsError(
                    f"max_bucket_reso {max_size} must be >= the resolution {max_reso[0]}x{max_reso[1]}",
                    field="training.max_bucket_reso",
                )
            if min_size is not None and max_size < min_size:
                raise BucketSettingsError(
                    f"max_bucket_reso {max_size} must be >= min_bucket_reso {min_size}",
                    field="training.max_bucket_reso",
                )
        self.no_upscale = no_upscale
        self.max_reso = max_reso
        self.max_area = None if max_reso is None else max_reso[0] * max_reso[1]
        self.min_size = min_size
        self.max_size = max_size
        self.reso_steps = reso_steps
        self.resos: list[Reso] = []
        self.predefined_resos: list[Reso] = []
        self._predefined_set: set[Reso] = set()
        self._predefined_ars: list[float] = []

    def make_buckets(self) -> None:
        """Fill the predefined list from the settings (upscaling mode only, as in sd-scripts)."""
        assert self.max_reso is not None and self.reso_steps is not None
        self.set_predefined_resos(
            make_bucket_resolutions(self.max_reso, self.min_size or 0, self.max_size or 0, self.reso_steps)
        )

    def set_predefined_resos(self, resos: list[Reso]) -> None:
        """Use ``resos`` as the predefined buckets (sd-scripts passes ``[(w, h)]`` when bucketing is off)."""
        self.predefined_resos = list(resos)
        self._predefined_set = set(resos)
        self._predefined_ars = [w / h for w, h in resos]

    def add_if_new_reso(self, reso: Reso) -> None:
        if reso not in self.resos:
            self.resos.append(reso)

    def sort(self) -> None:
        """Sort the used buckets; sd-scripts does this before numbering them in its log."""
        self.resos.sort()

    def round_to_steps(self, x: float) -> int:
        """Round half up, then *down* to a multiple of ``reso_steps`` (sd-scripts' ``round_to_steps``)."""
        assert self.reso_steps is not None
        n = int(x + 0.5)
        return n - n % self.reso_steps

    def select_bucket(self, image_width: int, image_height: int) -> BucketAssignment:
        """The bucket, resized size and aspect-ratio error sd-scripts gives an image of this size.

        Never raises for an image: where sd-scripts would raise ``ZeroDivisionError`` the result carries an
        ``error`` message instead.
        """
        image = (image_width, image_height)
        aspect_ratio = image_width / image_height
        if not self.no_upscale:
            # An image already at a predefined size keeps it, even if another bucket has the same ratio.
            if image in self._predefined_set:
                reso = image
            else:
                # np.abs(ar_errors).argmin(): the first index of the smallest |error|.
                best = 0
                best_err = abs(self._predefined_ars[0] - aspect_ratio)
                for i in range(1, len(self._predefined_ars)):
                    err = abs(self._predefined_ars[i] - aspect_ratio)
                    if err < best_err:
                        best, best_err = i, err
                reso = self.predefined_resos[best]

            ar_reso = reso[0] / reso[1]
            # Wider than the bucket: fit the height and crop the width; otherwise fit the width.
            scale = reso[1] / image_height if aspect_ratio > ar_reso else reso[0] / image_width
            resized = (int(image_width * scale + 0.5), int(image_height * scale + 0.5))
        else:
            assert self.max_area is not None and self.reso_steps is not None
            if image_width * image_height > self.max_area:
                # Too large: downscale to the resolution's area keeping the aspect ratio, then make the width
                # or the height a multiple of reso_steps, whichever keeps the aspect ratio closer.
                resized_width = math.sqrt(self.max_area * aspect_ratio)
                resized_height = self.max_area / resized_width

                b_width_rounded = self.round_to_steps(resized_width)
                b_height_in_wr = self.round_to_steps(b_width_rounded / aspect_ratio)
                b_height_rounded = self.round_to_steps(resized_height)
                b_width_in_hr = self.round_to_steps(b_height_rounded * aspect_ratio)
                if b_height_in_wr == 0 or b_height_rounded == 0:
                    return self._zero_side(image, f"{resized_width:.1f}x{resized_height:.1f}")
                ar_width_rounded = b_width_rounded / b_height_in_wr
                ar_height_rounded = b_width_in_hr / b_height_rounded
                if abs(ar_width_rounded - aspect_ratio) < abs(ar_height_rounded - aspect_ratio):
                    resized = (b_width_rounded, int(b_width_rounded / aspect_ratio + 0.5))
                else:
                    resized = (int(b_height_rounded * aspect_ratio + 0.5), b_height_rounded)
            else:
                resized = image  # small enough: no resize at all

            # The bucket is the resized size cut down to reso_steps (crop, never pad).
            reso = (resized[0] - resized[0] % self.reso_steps, resized[1] - resized[1] % self.reso_steps)
            if reso[1] == 0:
                # sd-scripts computes reso[0] / reso[1] next: ZeroDivisionError.
                return self._zero_side(image, f"{resized[0]}x{resized[1]}")

        self.add_if_new_reso(reso)
        ar_error = reso[0] / reso[1] - aspect_ratio
        upscaled = resized[0] > image_width or resized[1] > image_height
        error = None
        if reso[0] == 0:
            # No exception inside select_bucket, but a 0-pixel-wide bucket cannot be trained on.
            error = (
                f"image {image_width}x{image_height} gets a bucket {reso[0]}x{reso[1]} with a side of 0 "
                f"(narrower than bucket_reso_steps {self.reso_steps}); sd-scripts cannot train on it"
            )
        return BucketAssignment(image, reso, resized, ar_error, upscaled, error)

    def _zero_side(self, image: Reso, resized: str) -> BucketAssignment:
        message = (
            f"image {image[0]}x{image[1]} (resized {resized}) rounds a bucket side to 0 with "
            f"bucket_reso_steps {self.reso_steps} and bucket_no_upscale: sd-scripts crashes with "
            "ZeroDivisionError in select_bucket"
        )
        return BucketAssignment(image, None, None, math.nan, False, message)


@dataclass(frozen=True)
class AdjustedBucketReso:
    """min/max bucket reso after sd-scripts' rounding to ``bucket_reso_steps``, with the warnings it logs."""

    min_bucket_reso: int
    max_bucket_reso: int
    warnings: tuple[str, ...] = ()


def adjust_min_max_bucket_reso_by_steps(
    resolution: Reso, min_bucket_reso: int, max_bucket_reso: int, bucket_reso_steps: int
) -> AdjustedBucketReso:
    """Replay ``BaseDataset.adjust_min_max_bucket_reso_by_steps`` (run when ``enable_bucket`` is on).

    min is rounded down and max rounded up to a multiple of ``bucket_reso_steps`` (sd-scripts logs a WARNING
    for each change); then sd-scripts asserts ``min(resolution) >= min_bucket_reso`` and
    ``max(resolution) <= max_bucket_reso``. Those asserts become :class:`BucketSettingsError`.
    """
    if bucket_reso_steps < 1:
        raise BucketSettingsError(f"must be >= 1, got {bucket_reso_steps}", field="training.bucket_reso_steps")
    warnings: list[str] = []
    if min_bucket_reso % bucket_reso_steps != 0:
        adjusted = min_bucket_reso - min_bucket_reso % bucket_reso_steps
        warnings.append(
            f"min_bucket_reso {min_bucket_reso} is not a multiple of bucket_reso_steps {bucket_reso_steps}: "
            f"sd-scripts rounds it down to {adjusted}"
        )
        min_bucket_reso = adjusted
    if max_bucket_reso % bucket_reso_steps != 0:
        adjusted = max_bucket_reso + bucket_reso_steps - max_bucket_reso % bucket_reso_steps
        warnings.append(
            f"max_bucket_reso {max_bucket_reso} is not a multiple of bucket_reso_steps {bucket_reso_steps}: "
            f"sd-scripts rounds it up to {adjusted}"
        )
        max_bucket_reso = adjusted
    if min(resolution) < min_bucket_reso:
        raise BucketSettingsError(
            f"{min_bucket_reso} is larger than the resolution's short side {min(resolution)}; sd-scripts "
            "stops with 'min_bucket_reso must be equal or less than resolution'",
            field="training.min_bucket_reso",
        )
    if max(resolution) > max_bucket_reso:
        raise BucketSettingsError(
            f"{max_bucket_reso} is smaller than the resolution's long side {max(resolution)}; sd-scripts "
            "stops with 'max_bucket_reso must be equal or greater than resolution'",
            field="training.max_bucket_reso",
        )
    return AdjustedBucketReso(min_bucket_reso, max_bucket_reso, tuple(warnings))


def verify_bucket_reso_steps(bucket_reso_steps: int, family: str = "sd15") -> None:
    """sd-scripts' ``verify_bucket_reso_steps``: steps must divide by 64 (SD1.x/2.x) or 32 (SDXL)."""
    min_steps = MIN_BUCKET_RESO_STEPS[family]
    if bucket_reso_steps % min_steps != 0:
        raise BucketSettingsError(
            f"{bucket_reso_steps} must be divisible by {min_steps} for {family} (sd-scripts stops with "
            f"'bucket_reso_steps is {bucket_reso_steps}. it must be divisible by {min_steps}.')",
            field="training.bucket_reso_steps",
        )


def bucket_manager_for(
    resolution: Reso,
    *,
    enable_bucket: bool = True,
    min_bucket_reso: int = 256,
    max_bucket_reso: int = 1024,
    bucket_reso_steps: int = 64,
    bucket_no_upscale: bool = False,
) -> BucketManager:
    """The manager a sd-scripts dataset builds for these settings (``BaseDataset.make_buckets``).

    With ``enable_bucket`` off every image goes to the single ``resolution`` bucket (resized to cover it, then
    cropped); the min/max/steps settings are not used. With it on, min/max are first adjusted and checked by
    :func:`adjust_min_max_bucket_reso_by_steps`; ``bucket_no_upscale`` ignores them afterwards (sd-scripts
    logs a WARNING saying so).
    """
    if resolution[0] < 1 or resolution[1] < 1:
        raise BucketSettingsError(
            f"both sides must be >= 1, got {resolution[0]}x{resolution[1]}", field="training.resolution"
        )
    if not enable_bucket:
        manager = BucketManager(False, resolution, None, None, None)
        manager.set_predefined_resos([resolution])
        return manager
    adjusted = adjust_min_max_bucket_reso_by_steps(resolution, min_bucket_reso, max_bucket_reso, bucket_reso_steps)
    manager = BucketManager(
        bucket_no_upscale, resolution, adjusted.min_bucket_reso, adjusted.max_bucket_reso, bucket_reso_steps
    )
    if not bucket_no_upscale:
        manager.make_buckets()
    return manager
