"""kohya_recipe.sdscripts.buckets against the real sd-scripts BucketManager.

tests/data/buckets/sd-scripts-bucket-assignments.json is a verbatim copy of
../shared/fixtures/buckets/sd-scripts-bucket-assignments.json: sd-scripts v0.10.1-5 (48d368fa)
``library/train_util.py`` ``BucketManager`` called directly for 30 image sizes under 8 settings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kohya_recipe.errors import KohyaRecipeError, RecipeError
from kohya_recipe.sdscripts.buckets import (
    BucketManager,
    BucketSettingsError,
    adjust_min_max_bucket_reso_by_steps,
    bucket_manager_for,
    make_bucket_resolutions,
    verify_bucket_reso_steps,
)

FIXTURE = Path(__file__).parent / "data" / "buckets" / "sd-scripts-bucket-assignments.json"
CASES = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]


def _case_id(case: dict) -> str:
    w, h = case["resolution"]
    mode = "noup" if case["bucket_no_upscale"] else "up"
    return f"{w}x{h}-{case['min_bucket_reso']}-{case['max_bucket_reso']}-s{case['bucket_reso_steps']}-{mode}"


def _manager(case: dict) -> BucketManager:
    return bucket_manager_for(
        tuple(case["resolution"]),
        enable_bucket=True,
        min_bucket_reso=case["min_bucket_reso"],
        max_bucket_reso=case["max_bucket_reso"],
        bucket_reso_steps=case["bucket_reso_steps"],
        bucket_no_upscale=case["bucket_no_upscale"],
    )


def test_fixture_has_eight_cases_of_thirty_images() -> None:
    assert len(CASES) == 8
    assert all(len(c["assignments"]) == 30 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_every_fixture_row_is_reproduced(case: dict) -> None:
    manager = _manager(case)
    if not case["bucket_no_upscale"]:
        assert [list(r) for r in manager.predefined_resos] == case["predefined_buckets"]
        direct = make_bucket_resolutions(
            tuple(case["resolution"]),
            case["min_bucket_reso"],
            case["max_bucket_reso"],
            case["bucket_reso_steps"],
        )
        assert [list(r) for r in direct] == case["predefined_buckets"]
    else:
        # sd-scripts does not build a predefined list in no-upscale mode.
        assert manager.predefined_resos == []
    mismatches = []
    for row in case["assignments"]:
        got = manager.select_bucket(*row["image"])
        assert got.ok, got.error
        assert got.bucket is not None and got.resized is not None
        if (
            list(got.bucket) != row["bucket"]
            or list(got.resized) != row["resized"]
            # The fixture stores the error rounded to 6 decimals.
            or round(got.ar_error, 6) != row["ar_error"]
        ):
            mismatches.append((row, got))
        assert got.upscaled == (got.resized[0] > row["image"][0] or got.resized[1] > row["image"][1])
    assert mismatches == []


def test_article_portrait_is_upscaled_into_704x832_at_768() -> None:
    # The fixture's headline example: a 640x768 image at resolution 768 goes to 704x832, upscaled.
    up = bucket_manager_for((768, 768), enable_bucket=True).select_bucket(640, 768)
    assert (up.bucket, up.resized, up.upscaled) == ((704, 832), (704, 845), True)
    no_up = bucket_manager_for((768, 768), enable_bucket=True, bucket_no_upscale=True).select_bucket(640, 768)
    assert (no_up.bucket, no_up.resized, no_up.upscaled) == ((640, 768), (640, 768), False)


def test_argmin_ties_pick_the_first_bucket_in_list_order() -> None:
    # 384x512 has aspect 0.75: exactly 0.25 away from both 256x512 (0.5) and 512x512 (1.0).
    manager = BucketManager(False, (512, 512), None, None, None)
    manager.set_predefined_resos([(256, 512), (512, 512)])
    assert manager.select_bucket(384, 512).bucket == (256, 512)
    manager.set_predefined_resos([(512, 512), (256, 512)])
    assert manager.select_bucket(384, 512).bucket == (512, 512)


def test_image_at_a_predefined_size_keeps_it() -> None:
    manager = bucket_manager_for((768, 768), enable_bucket=True)
    got = manager.select_bucket(576, 960)
    assert (got.bucket, got.resized, got.ar_error, got.upscaled) == ((576, 960), (576, 960), 0.0, False)


@settings(max_examples=150, deadline=None)
@given(
    w=st.integers(1, 5000),
    h=st.integers(1, 5000),
    reso=st.sampled_from([(512, 512), (768, 768), (1024, 1024), (640, 768), (1024, 576)]),
    steps=st.sampled_from([32, 64]),
)
def test_nearest_bucket_matches_numpy_argmin(w: int, h: int, reso: tuple[int, int], steps: int) -> None:
    np = pytest.importorskip("numpy")
    manager = bucket_manager_for(reso, enable_bucket=True, max_bucket_reso=2048, bucket_reso_steps=steps)
    resos = manager.predefined_resos
    got = manager.select_bucket(w, h)
    if (w, h) in resos:
        assert got.bucket == (w, h)
    else:
        # sd-scripts: np.abs(self.predefined_aspect_ratios - aspect_ratio).argmin()
        expected = resos[int(np.abs(np.array([a / b for a, b in resos]) - w / h).argmin())]
        assert got.bucket == expected


def test_no_upscale_zero_division_is_reported_not_raised() -> None:
    # The fixtures README quirk: resolution 64, steps 64 and bucket_no_upscale crash sd-scripts.
    manager = bucket_manager_for(
        (64, 64), enable_bucket=True, min_bucket_reso=64, max_bucket_reso=128, bucket_no_upscale=True
    )
    got = manager.select_bucket(128, 160)
    assert not got.ok
    assert got.bucket is None and got.resized is None and math.isnan(got.ar_error)
    assert "ZeroDivisionError" in (got.error or "")
    assert "128x160" in (got.error or "")
    # The square image fits: 128x128 -> 64x64.
    assert manager.select_bucket(128, 128).bucket == (64, 64)


def test_no_upscale_small_image_rounding_to_zero() -> None:
    manager = bucket_manager_for((512, 512), enable_bucket=True, bucket_no_upscale=True)
    flat = manager.select_bucket(300, 40)  # not resized; height 40 -> bucket height 0 -> ZeroDivisionError
    assert not flat.ok and flat.bucket is None and "ZeroDivisionError" in (flat.error or "")
    narrow = manager.select_bucket(40, 300)  # width 0: no exception in select_bucket, but untrainable
    assert not narrow.ok
    assert narrow.bucket == (0, 256)
    assert "side of 0" in (narrow.error or "")


def test_disabled_bucketing_uses_the_resolution_bucket() -> None:
    manager = bucket_manager_for((768, 768), enable_bucket=False, min_bucket_reso=9999)  # min/max unused
    assert manager.predefined_resos == [(768, 768)]
    got = manager.select_bucket(640, 768)
    assert (got.bucket, got.resized, got.upscaled) == ((768, 768), (768, 922), True)
    big = manager.select_bucket(1536, 1024)
    assert (big.bucket, big.resized, big.upscaled) == ((768, 768), (1152, 768), False)


def test_min_max_are_rounded_to_steps_with_warnings() -> None:
    adjusted = adjust_min_max_bucket_reso_by_steps((768, 768), 250, 1000, 64)
    assert (adjusted.min_bucket_reso, adjusted.max_bucket_reso) == (192, 1024)
    assert len(adjusted.warnings) == 2
    assert "rounds it down to 192" in adjusted.warnings[0]
    assert "rounds it up to 1024" in adjusted.warnings[1]
    unchanged = adjust_min_max_bucket_reso_by_steps((768, 768), 256, 1024, 64)
    assert unchanged.warnings == ()


def test_min_bucket_reso_above_resolution_is_a_clear_error() -> None:
    with pytest.raises(BucketSettingsError) as info:
        adjust_min_max_bucket_reso_by_steps((384, 768), 512, 1024, 64)
    assert info.value.field == "training.min_bucket_reso"
    assert str(info.value) == (
        "training.min_bucket_reso: 512 is larger than the resolution's short side 384; sd-scripts stops with "
        "'min_bucket_reso must be equal or less than resolution'"
    )
    assert isinstance(info.value, RecipeError) and isinstance(info.value, KohyaRecipeError)


def test_max_bucket_reso_below_resolution_is_a_clear_error() -> None:
    with pytest.raises(BucketSettingsError, match=r"^training.max_bucket_reso: 896 is smaller than .* 1024"):
        bucket_manager_for((1024, 1024), enable_bucket=True, min_bucket_reso=256, max_bucket_reso=896)
    # Rounding happens before the check: 1000 rounds up to 1024, which covers a 1024 resolution.
    bucket_manager_for((1024, 1024), enable_bucket=True, max_bucket_reso=1000)


def test_bucket_manager_constructor_asserts() -> None:
    with pytest.raises(BucketSettingsError, match="max_bucket_reso 512 must be >= the resolution 768x768"):
        BucketManager(False, (768, 768), 256, 512, 64)
    with pytest.raises(BucketSettingsError, match="must be >= min_bucket_reso 512"):
        BucketManager(False, None, 512, 256, 64)


def test_bucket_reso_steps_must_suit_the_model_family() -> None:
    verify_bucket_reso_steps(64, "sd15")
    verify_bucket_reso_steps(32, "sdxl")
    with pytest.raises(BucketSettingsError, match="32 must be divisible by 64 for sd15"):
        verify_bucket_reso_steps(32, "sd15")
    with pytest.raises(BucketSettingsError, match="must be >= 1"):
        adjust_min_max_bucket_reso_by_steps((512, 512), 256, 1024, 0)


def test_used_buckets_are_sorted_like_sd_scripts_logs_them() -> None:
    manager = bucket_manager_for((768, 768), enable_bucket=True)
    for size in [(768, 768), (640, 768), (768, 640)]:
        manager.select_bucket(*size)
    assert manager.resos == [(768, 768), (704, 832), (832, 704)]
    manager.sort()
    assert manager.resos == [(704, 832), (768, 768), (832, 704)]
