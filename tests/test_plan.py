"""kohya_recipe.dataset.plan: the bucket-aware step plan equals what the real trainer printed.

tests/data/plan/<run>/ holds pieces of ../shared/fixtures/sd-scripts-runs/<run>/ (real sd-scripts v0.10.1-5
runs): config.toml, dataset.toml and stdout.txt are verbatim copies; stderr-buckets.txt holds the
``bucket N: resolution (w, h), count: C`` and ``mean ar error (without repeats)`` lines grep'ed out of the
run's stderr.txt; image-sizes.json is the (width, height) of each fixture PNG, read with Pillow (the PNGs
themselves are 320 KB, so they stay in ../shared).
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kohya_recipe.cli.output import jsonable
from kohya_recipe.dataset.plan import (
    DEFAULT_MAX_TRAIN_STEPS,
    Plan,
    PlanError,
    PlanSettings,
    SubsetInput,
    format_plan,
    make_plan,
    numpy_sum,
    plan_from_recipe,
    settings_from_recipe,
    subset_from_folder,
    subsets_from_train_data_dir,
)
from kohya_recipe.errors import DatasetError, KohyaRecipeError
from kohya_recipe.files import tomllib
from kohya_recipe.sdscripts.buckets import BucketSettings, BucketSettingsError

DATA = Path(__file__).parent / "data" / "plan"


# ------------------------------------------------------------------------------------------------------------
# Reading the real runs


def _stdout_numbers(run: str) -> dict[str, int]:
    """The trainer's own summary lines (``  num batches per epoch / 1epochのバッチ数: 12`` ...)."""
    text = (DATA / run / "stdout.txt").read_text(encoding="utf-8")
    wanted = {
        "num train images * repeats": "train",
        "num validation images * repeats": "validation",
        "num reg images": "reg",
        "num batches per epoch": "batches",
        "num epochs": "epochs",
        "total optimization steps": "steps",
    }
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s+(.+?) / .*?[:=] (\d+)$", line)
        if m and m.group(1) in wanted:
            out[wanted[m.group(1)]] = int(m.group(2))
        m = re.match(r"^override steps\. steps for \d+ epochs is / .*: (\d+)$", line)
        if m:
            out["override"] = int(m.group(1))
    assert set(out) == {*wanted.values(), "override"}, out
    return out


def _stderr_buckets(run: str) -> tuple[list[list[tuple[int, int, int]]], list[float]]:
    """Per dataset (train first, then validation): [(w, h, count)], and each dataset's mean ar error."""
    datasets: list[list[tuple[int, int, int]]] = []
    means: list[float] = []
    for line in (DATA / run / "stderr-buckets.txt").read_text(encoding="utf-8").splitlines():
        m = re.match(r"bucket (\d+): resolution \((\d+), (\d+)\), count: (\d+)", line)
        if m:
            if m.group(1) == "0":
                datasets.append([])
            datasets[-1].append((int(m.group(2)), int(m.group(3)), int(m.group(4))))
        else:
            means.append(float(line.rsplit(": ", 1)[1]))
    return datasets, means


def _sizes(run: str) -> tuple[list[str], list[tuple[int, int]]]:
    sizes = json.loads((DATA / run / "image-sizes.json").read_text(encoding="utf-8"))
    files = sorted(sizes)  # sd-scripts' glob_images sorts the paths
    return files, [tuple(sizes[f]) for f in files]


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """sd-scripts flattens the sections of --config_file."""
    return {k: v for section in config.values() for k, v in section.items()}


def _resolution(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        parts = [int(p) for p in value.split(",")]
    else:
        parts = [int(p) for p in (value if isinstance(value, list) else [value])]
    return (parts[0], parts[-1])


def _run_plan(run: str) -> Plan:
    """The plan for a fixture run, with settings read from its own config files (not restated here)."""
    args = _flat(tomllib.loads((DATA / run / "config.toml").read_text(encoding="utf-8")))
    files, sizes = _sizes(run)
    if "dataset_config" in args:
        ds_cfg = tomllib.loads((DATA / run / args["dataset_config"]).read_text(encoding="utf-8"))
        assert len(ds_cfg["datasets"]) == 1
        dataset = {**ds_cfg.get("general", {}), **ds_cfg["datasets"][0]}
        subsets = [
            SubsetInput(s["image_dir"], sizes, s.get("num_repeats", 1), s.get("is_reg", False), files)
            for s in dataset["subsets"]
        ]
        batch_size = dataset.get("batch_size", args.get("train_batch_size", 1))
    else:
        dataset = args
        # Folder mode: the one sub-folder of train_data_dir is "<repeats>_<class tokens>".
        folder = {"article-mini": "2_testchar woman"}[run]
        subsets = [SubsetInput(folder, sizes, int(folder.split("_")[0]), False, files)]
        batch_size = args.get("train_batch_size", 1)
    settings_ = PlanSettings(
        BucketSettings(
            _resolution(dataset["resolution"]),
            enable_bucket=dataset.get("enable_bucket", False),
            min_bucket_reso=dataset.get("min_bucket_reso", 256),
            max_bucket_reso=dataset.get("max_bucket_reso", 1024),
            bucket_reso_steps=dataset.get("bucket_reso_steps", 64),
            bucket_no_upscale=dataset.get("bucket_no_upscale", False),
        ),
        batch_size=batch_size,
        grad_accum=args.get("gradient_accumulation_steps", 1),
        max_train_epochs=args.get("max_train_epochs"),
        max_train_steps=args.get("max_train_steps"),
        validation_split=dataset.get("validation_split", 0.0),
        validation_seed=dataset.get("validation_seed"),
    )
    return make_plan(subsets, settings_)


@pytest.mark.parametrize("run", ["article-mini", "validation"])
def test_plan_equals_the_trainers_own_numbers(run: str) -> None:
    expected = _stdout_numbers(run)
    plan = _run_plan(run)
    assert plan.batches_per_epoch_per_process == expected["batches"]
    assert plan.max_train_steps == expected["steps"] == expected["override"]
    assert plan.num_epochs == expected["epochs"]
    assert plan.num_train_images == expected["train"]
    assert plan.num_validation_images == expected["validation"]
    assert plan.num_reg_images == expected["reg"]
    assert plan.errors == ()


def test_article_mini_is_12_batches_and_48_steps() -> None:
    plan = _run_plan("article-mini")
    assert (plan.batches_per_epoch_per_process, plan.max_train_steps) == (12, 48)
    assert plan.formula == "6 images × 2 repeats × 4 epochs / batch 1 = 48 steps"
    assert plan.formula_note is None


@pytest.mark.parametrize("run", ["article-mini", "validation"])
def test_buckets_and_mean_ar_error_equal_the_trainers_log(run: str) -> None:
    datasets, means = _stderr_buckets(run)
    plan = _run_plan(run)
    got = [[(b.resolution[0], b.resolution[1], b.count) for b in plan.buckets]]
    if plan.validation_buckets:
        got.append([(b.resolution[0], b.resolution[1], b.count) for b in plan.validation_buckets])
    assert got == datasets
    # Exact float equality: same images (the seeded validation split held out the same two 128x160 images
    # as the real run) summed in numpy's order.
    got_means = [plan.mean_ar_error] + ([plan.validation_mean_ar_error] if plan.validation_buckets else [])
    assert got_means == means


def test_seeded_validation_split_holds_out_what_sd_scripts_held_out() -> None:
    plan = _run_plan("validation")
    held_out = sorted(r.file for r in plan.images if r.role == "validation")
    kept = sorted(r.file for r in plan.images if r.role == "train")
    # Both held-out images are 128x160 (the real run's validation mean ar error is 0.2 = 0.2 for each).
    assert all(r.size == (128, 160) for r in plan.images if r.role == "validation")
    assert len(held_out) == 2 and len(kept) == 4 and not set(held_out) & set(kept)
    assert all(r.repeats == 1 for r in plan.images if r.role == "validation")
    assert all(r.repeats == 2 for r in plan.images if r.role == "train")


# ------------------------------------------------------------------------------------------------------------
# The article


def _article(sizes: list[tuple[int, int]], *, bucket_no_upscale: bool = False, **kw: Any) -> Plan:
    buckets = BucketSettings((768, 768), enable_bucket=True, bucket_no_upscale=bucket_no_upscale)
    settings_ = PlanSettings(buckets, max_train_epochs=8, **kw)
    return make_plan([SubsetInput("10_CharacterAI woman", sizes, repeats=10)], settings_)


def test_article_42_images_10_repeats_8_epochs_is_3360_steps() -> None:
    plan = _article([(768, 768)] * 20 + [(1024, 1024)] * 12 + [(4096, 4096)] * 10)
    assert plan.formula == "42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps"
    assert plan.formula_note is None
    assert (plan.batches_per_epoch, plan.steps_per_epoch, plan.max_train_steps, plan.num_epochs) == (420, 420, 3360, 8)
    assert [(b.resolution, b.images, b.count) for b in plan.buckets] == [((768, 768), 42, 420)]
    assert plan.warnings == ()
    assert "42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps" in format_plan(plan)


def test_article_portraits_are_upscaled_but_batch_1_keeps_3360() -> None:
    plan = _article([(640, 768)] * 21 + [(768, 768)] * 21)
    assert plan.max_train_steps == 3360 and plan.formula_note is None
    assert [(b.resolution, b.count, b.batches) for b in plan.buckets] == [
        ((704, 832), 210, 210),
        ((768, 768), 210, 210),
    ]
    upscaled = [w for w in plan.warnings if w.code == "upscaled"]
    assert len(upscaled) == 1
    assert upscaled[0].message.startswith("21 image(s) of 640x768 will be upscaled to 704x845 (bucket 704x832)")
    assert "bucket_no_upscale" in upscaled[0].message
    rows = [r for r in plan.images if r.size == (640, 768)]
    assert all(r.upscaled and r.bucket == (704, 832) and r.resized == (704, 845) for r in rows)
    # With bucket_no_upscale the portraits keep their size and nothing is upscaled.
    no_up = _article([(640, 768)] * 21 + [(768, 768)] * 21, bucket_no_upscale=True)
    assert [b.resolution for b in no_up.buckets] == [(640, 768), (768, 768)]
    assert not [w for w in no_up.warnings if w.code == "upscaled"]


def test_buckets_that_split_batches_change_the_step_count_and_say_why() -> None:
    plan = make_plan(
        [SubsetInput("1_x", [(640, 768)] * 21 + [(768, 768)] * 21, repeats=1)],
        PlanSettings(BucketSettings((768, 768), enable_bucket=True), max_train_epochs=8, batch_size=4),
    )
    # 21 per bucket at batch 4 = 6 batches each (the naive 42/4 = 10.5 -> 11).
    assert [b.batches for b in plan.buckets] == [6, 6]
    assert (plan.batches_per_epoch, plan.max_train_steps) == (12, 96)
    assert plan.formula == "42 images × 1 repeats × 8 epochs / batch 4 = 84 steps"
    assert plan.formula_note is not None
    assert plan.formula_note.startswith("bucket-aware: 12 steps per epoch × 8 epochs = 96 steps")
    assert "2 buckets" in plan.formula_note and "11 → 12 batches per epoch" in plan.formula_note
    text = format_plan(plan)
    assert plan.formula in text and plan.formula_note in text


# ------------------------------------------------------------------------------------------------------------
# Regularization, validation, processes


def test_reg_images_are_balanced_round_robin_to_the_train_count() -> None:
    plan = make_plan(
        [
            SubsetInput("10_x", [(768, 768)] * 10, repeats=1),
            SubsetInput("1_woman", [(512, 768), (768, 768), (1024, 1024)], repeats=1, is_reg=True),
        ],
        PlanSettings(BucketSettings((768, 768), enable_bucket=True), max_train_epochs=2, batch_size=2),
    )
    reg = [r for r in plan.images if r.role == "reg"]
    # First pass registers each reg image with its repeats (3), then +1 round-robin until 10.
    assert [r.repeats for r in reg] == [4, 3, 3]
    assert plan.num_reg_images == 3  # sd-scripts prints the count before balancing
    assert [(b.resolution, b.count, b.batches) for b in plan.buckets] == [
        ((640, 896), 4, 2),
        ((768, 768), 16, 8),
    ]
    assert plan.batches_per_epoch == 10 and plan.max_train_steps == 20
    assert plan.formula == "10 images × 1 repeats × 2 (regularization) × 2 epochs / batch 2 = 20 steps"


def test_reference_run_six_train_six_reg_batch_2_is_18_steps() -> None:
    # A real sd-scripts run: 6 train imgs×repeats + 6 balanced reg, batch 2 -> B=6, E=3 -> 18 steps.
    plan = make_plan(
        [
            SubsetInput("2_x", [(64, 64)] * 3, repeats=2),
            SubsetInput("1_reg", [(64, 64)] * 6, repeats=1, is_reg=True),
        ],
        PlanSettings(
            BucketSettings((64, 64), enable_bucket=True, min_bucket_reso=64, max_bucket_reso=128),
            batch_size=2,
            max_train_epochs=3,
        ),
    )
    assert (plan.batches_per_epoch, plan.max_train_steps) == (6, 18)


def test_surplus_reg_images_are_never_used() -> None:
    plan = make_plan(
        [SubsetInput("1_x", [(512, 512)] * 3), SubsetInput("1_reg", [(512, 512)] * 10, is_reg=True)],
        PlanSettings(BucketSettings((512, 512), enable_bucket=True), max_train_epochs=1),
    )
    roles = [r.role for r in plan.images if r.subset == "1_reg"]
    assert roles == ["reg"] * 3 + ["reg-unused"] * 7
    assert plan.batches_per_epoch == 6 and plan.num_reg_images == 10
    (unused,) = [w for w in plan.warnings if w.code == "reg_unused"]
    assert unused.message.startswith("7 of 10 regularization images are never used")


def test_reg_without_train_images_is_no_data() -> None:
    plan = make_plan(
        [SubsetInput("1_reg", [(512, 512)] * 4, is_reg=True)],
        PlanSettings(BucketSettings((512, 512)), max_train_epochs=2),
    )
    assert plan.batches_per_epoch == 0 and plan.max_train_steps == 0 and plan.num_epochs == 0
    assert [w.code for w in plan.errors] == ["no_data"]
    assert "No data found" in plan.errors[0].message and "code 0" in plan.errors[0].message


def test_validation_split_counts_like_sd_scripts() -> None:
    # n = 3, split 0.5: train keeps ceil(1.5) = 2, validation takes the last round(1.5) = 2 -> one overlaps.
    plan = make_plan(
        [SubsetInput("1_x", [(512, 512)] * 3, files=["a.png", "b.png", "c.png"])],
        PlanSettings(BucketSettings((512, 512)), max_train_epochs=1, validation_split=0.5, validation_seed=7),
    )
    assert plan.num_train_images == 2 and plan.num_validation_images == 2
    order = list(range(3))
    random.Random(7).shuffle(order)  # what random.seed(7); random.shuffle(...) gives in sd-scripts
    names = ["a.png", "b.png", "c.png"]
    assert sorted(r.file for r in plan.images if r.role == "train") == sorted(names[i] for i in order[:2])
    assert sorted(r.file for r in plan.images if r.role == "validation") == sorted(names[i] for i in order[1:])
    # Reg subsets are never split.
    reg = make_plan(
        [SubsetInput("1_x", [(512, 512)] * 4), SubsetInput("1_r", [(512, 512)] * 4, is_reg=True)],
        PlanSettings(BucketSettings((512, 512)), max_train_epochs=1, validation_split=0.5, validation_seed=1),
    )
    assert [s.validation_images for s in reg.subsets] == [2, 0]
    assert reg.batches_per_epoch == 4  # 2 train + 2 balanced reg


def test_unseeded_validation_split_warns_when_buckets_differ() -> None:
    sizes = [(640, 768), (768, 768)] * 3
    unseeded = make_plan(
        [SubsetInput("1_x", sizes)],
        PlanSettings(BucketSettings((768, 768), enable_bucket=True), max_train_epochs=1, validation_split=0.34),
    )
    assert "validation_unseeded" in [w.code for w in unseeded.warnings]
    tiny = make_plan(
        [SubsetInput("1_x", [(512, 512)])],
        PlanSettings(BucketSettings((512, 512)), max_train_epochs=1, validation_split=0.34, validation_seed=1),
    )
    assert [w.code for w in tiny.warnings] == ["validation_empty"]
    assert tiny.num_train_images == 1


def test_processes_and_gradient_accumulation() -> None:
    plan = make_plan(
        [SubsetInput("1_x", [(512, 512)] * 10)],
        PlanSettings(BucketSettings((512, 512)), max_train_epochs=3, num_processes=2, grad_accum=2),
    )
    # B = 10; each process gets 5 batches; ceil(5 / 2) = 3 optimizer steps per epoch.
    assert (plan.batches_per_epoch, plan.batches_per_epoch_per_process, plan.steps_per_epoch) == (10, 5, 3)
    assert (plan.max_train_steps, plan.num_epochs, plan.last_epoch_steps) == (9, 3, 3)
    assert (
        plan.formula == "10 images × 1 repeats × 3 epochs / batch 1 / gradient accumulation 2 / 2 processes = 7.5 steps"
    )
    assert (
        plan.formula_note
        == "bucket-aware: 3 steps per epoch × 3 epochs = 9 steps (each epoch rounds up to whole optimizer steps)"
    )


# ------------------------------------------------------------------------------------------------------------
# Step caps and partial epochs


def test_default_1600_steps_when_epochs_are_not_set() -> None:
    plan = make_plan([SubsetInput("10_x", [(512, 512)] * 42, repeats=10)], PlanSettings(BucketSettings((512, 512))))
    assert plan.max_train_steps == DEFAULT_MAX_TRAIN_STEPS == 1600
    assert plan.max_train_steps_source == "default"
    assert (plan.steps_per_epoch, plan.num_epochs, plan.last_epoch_steps) == (420, 4, 340)
    codes = [w.code for w in plan.warnings]
    assert codes == ["default_step_cap", "partial_last_epoch"]
    assert "1600" in plan.warnings[0].message and "max_train_epochs" in plan.warnings[0].message
    assert plan.warnings[1].message.startswith("1600 steps at 420 steps per epoch: epoch 4 stops after 340 of 420")
    assert plan.formula.startswith("42 images × 10 repeats / batch 1 = 420 steps per epoch; 1600 steps")


def test_explicit_max_train_steps_and_the_epoch_override() -> None:
    steps_only = make_plan(
        [SubsetInput("1_x", [(512, 512)] * 5)], PlanSettings(BucketSettings((512, 512)), max_train_steps=12)
    )
    assert (steps_only.max_train_steps, steps_only.num_epochs, steps_only.last_epoch_steps) == (12, 3, 2)
    assert steps_only.max_train_steps_source == "max_train_steps"
    assert [w.code for w in steps_only.warnings] == ["partial_last_epoch"]
    both = make_plan(
        [SubsetInput("1_x", [(512, 512)] * 5)],
        PlanSettings(BucketSettings((512, 512)), max_train_steps=12, max_train_epochs=2),
    )
    assert both.max_train_steps == 10 and both.max_train_steps_source == "epochs"
    assert [w.code for w in both.warnings] == ["max_train_steps_ignored"]


# ------------------------------------------------------------------------------------------------------------
# Crashes and refused settings


def test_zero_bucket_side_is_an_error_not_a_crash() -> None:
    # The fixtures README: bucket_no_upscale + bucket_reso_steps 64 at 64 px crashes sd-scripts.
    files, sizes = _sizes("article-mini")
    plan = make_plan(
        [SubsetInput("2_testchar woman", sizes, repeats=2, files=files)],
        PlanSettings(
            BucketSettings(
                (64, 64), enable_bucket=True, min_bucket_reso=64, max_bucket_reso=128, bucket_no_upscale=True
            ),
            max_train_epochs=4,
        ),
    )
    (err,) = plan.errors
    assert err.code == "zero_bucket_side"
    assert "3 image(s)" in err.message and "3× 128x160" in err.message and "ZeroDivisionError" in err.message
    crashed = [r for r in plan.images if r.error]
    assert [r.file for r in crashed] == ["img00.png", "img01.png", "img04.png"]
    assert all(r.bucket is None for r in crashed)
    assert plan.buckets[0].resolution == (64, 64) and plan.buckets[0].count == 6
    data = jsonable(plan)
    assert data["images"][0]["ar_error"] is None and data["images"][0]["error"]
    json.dumps(data, allow_nan=False)
    assert "crash" in format_plan(plan)


def test_bucketing_off_refuses_other_sizes_unless_latents_are_cached() -> None:
    sizes = [(640, 768), (1024, 1024), (768, 768)]
    plan = make_plan([SubsetInput("1_x", sizes)], PlanSettings(BucketSettings((768, 768)), max_train_epochs=1))
    assert [(b.resolution, b.count) for b in plan.buckets] == [((768, 768), 3)]
    assert [w.code for w in plan.errors] == ["no_bucket_too_large", "no_bucket_too_small"]
    assert "image too large, but cropping and bucketing are disabled" in plan.errors[0].message
    assert "image size is small" in plan.errors[1].message
    assert not [w for w in plan.warnings if w.code == "upscaled"]  # nothing is resized on this path
    cached = make_plan(
        [SubsetInput("1_x", sizes)], PlanSettings(BucketSettings((768, 768)), max_train_epochs=1, cache_latents=True)
    )
    assert cached.errors == ()
    assert [w.code for w in cached.warnings] == ["upscaled"]  # the latent cache resizes 640x768 up to 768x922
    cropped = make_plan(
        [SubsetInput("1_x", [(1024, 1024)])],
        PlanSettings(BucketSettings((768, 768)), max_train_epochs=1, random_crop=True),
    )
    assert cropped.errors == ()


def test_bucket_settings_sd_scripts_asserts_on_raise() -> None:
    subsets = [SubsetInput("1_x", [(512, 512)])]
    with pytest.raises(BucketSettingsError) as info:
        make_plan(subsets, PlanSettings(BucketSettings((384, 384), enable_bucket=True, min_bucket_reso=512)))
    assert str(info.value).startswith("training.min_bucket_reso: 512 is larger than the resolution's short side 384")
    with pytest.raises(BucketSettingsError, match="^training.max_bucket_reso: "):
        make_plan(subsets, PlanSettings(BucketSettings((1024, 1024), enable_bucket=True, max_bucket_reso=768)))
    with pytest.raises(BucketSettingsError, match="^training.bucket_reso_steps: 32 must be divisible by 64"):
        make_plan(subsets, PlanSettings(BucketSettings((512, 512), enable_bucket=True, bucket_reso_steps=32)))
    # SDXL allows 32; with bucketing off the steps are not checked at all (sd-scripts sets them to None).
    make_plan(
        subsets, PlanSettings(BucketSettings((512, 512), enable_bucket=True, bucket_reso_steps=32, family="sdxl"))
    )
    make_plan(subsets, PlanSettings(BucketSettings((512, 512), bucket_reso_steps=32), max_train_epochs=1))


def test_rounded_min_max_bucket_reso_is_reported() -> None:
    plan = make_plan(
        [SubsetInput("1_x", [(512, 512)])],
        PlanSettings(BucketSettings((512, 512), enable_bucket=True, min_bucket_reso=200), max_train_epochs=1),
    )
    assert plan.min_bucket_reso == 192 and plan.max_bucket_reso == 1024
    assert [w.code for w in plan.warnings] == ["bucket_reso_adjusted"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"batch_size": 0}, "training.batch_size"),
        ({"grad_accum": 0}, "training.gradient_accumulation_steps"),
        ({"num_processes": 0}, "accelerate.num_processes"),
        ({"max_train_epochs": 0}, "training.max_train_epochs"),
        ({"validation_split": 1.0}, "dataset.validation_split"),
        ({"resolution": (0, 512)}, "training.resolution"),
    ],
)
def test_bad_settings_name_their_field(change: dict[str, Any], field: str) -> None:
    buckets = BucketSettings(change.pop("resolution", (512, 512)))
    with pytest.raises(PlanError) as info:
        make_plan([SubsetInput("1_x", [(512, 512)])], PlanSettings(buckets, **{"max_train_epochs": 1, **change}))
    assert info.value.field == field and isinstance(info.value, KohyaRecipeError)


def test_bad_subsets() -> None:
    with pytest.raises(DatasetError, match="2 file names for 1 image sizes"):
        make_plan([SubsetInput("x", [(1, 1)], files=["a", "b"])], PlanSettings(BucketSettings((512, 512))))
    with pytest.raises(DatasetError, match="image size 0x5 is not a picture"):
        make_plan([SubsetInput("x", [(0, 5)])], PlanSettings(BucketSettings((512, 512))))


def test_skipped_subsets_follow_sd_scripts() -> None:
    plan = make_plan(
        [
            SubsetInput("0_x", [(512, 512)] * 5, repeats=0),
            SubsetInput("2_y", [(512, 512)] * 2, repeats=2),
            SubsetInput("2_y", [(512, 512)] * 9, repeats=2),
            SubsetInput("3_z", [], repeats=3),
        ],
        PlanSettings(BucketSettings((512, 512)), max_train_epochs=1),
    )
    assert plan.num_train_images == 4 and plan.batches_per_epoch == 4
    assert [s.skipped for s in plan.subsets] == [
        "num_repeats 0 is less than 1",
        None,
        "duplicate image folder (sd-scripts uses the first one)",
        "no images found",
    ]
    assert [w.code for w in plan.warnings] == ["subset_skipped"] * 3


def test_mixed_repeats_formula() -> None:
    plan = make_plan(
        [SubsetInput("10_a", [(512, 512)] * 4, repeats=10), SubsetInput("5_b", [(512, 512)] * 2, repeats=5)],
        PlanSettings(BucketSettings((512, 512)), max_train_epochs=2),
    )
    assert plan.formula == "(4×10 + 2×5) images×repeats × 2 epochs / batch 1 = 100 steps"
    assert plan.max_train_steps == 100


# ------------------------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(
        st.tuples(st.sampled_from([(640, 768), (768, 768), (768, 640), (1024, 576), (512, 1024)]), st.integers(1, 6)),
        min_size=1,
        max_size=5,
    ),
    repeats=st.integers(1, 4),
    batch=st.integers(1, 5),
    epochs=st.integers(1, 5),
)
def test_batches_are_the_sum_of_per_bucket_ceilings(
    groups: list[tuple[tuple[int, int], int]], repeats: int, batch: int, epochs: int
) -> None:
    sizes = [size for size, n in groups for _ in range(n)]
    plan = make_plan(
        [SubsetInput("x", sizes, repeats=repeats)],
        PlanSettings(BucketSettings((768, 768), enable_bucket=True), batch_size=batch, max_train_epochs=epochs),
    )
    assert sum(b.count for b in plan.buckets) == len(sizes) * repeats == plan.num_train_images
    assert plan.batches_per_epoch == sum(math.ceil(b.count / batch) for b in plan.buckets)
    assert plan.batches_per_epoch >= math.ceil(len(sizes) * repeats / batch)
    assert plan.max_train_steps == epochs * plan.batches_per_epoch
    if batch == 1:
        assert plan.formula_note is None  # at batch 1 buckets never change the count


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 10, allow_nan=False), max_size=300))
def test_numpy_sum_matches_numpy(values: list[float]) -> None:
    np = pytest.importorskip("numpy")
    assert numpy_sum(values) == float(np.add.reduce(np.array(values, dtype=np.float64)))


# ------------------------------------------------------------------------------------------------------------
# Output forms


def test_json_form_carries_the_numbers() -> None:
    plan = _run_plan("validation")
    data = json.loads(json.dumps(jsonable(plan), allow_nan=False))
    assert data["batches_per_epoch_per_process"] == 8 and data["max_train_steps"] == 24
    assert data["settings"]["resolution"] == [64, 64] and data["settings"]["validation_seed"] == 1
    assert data["buckets"] == [{"index": 0, "resolution": [64, 64], "images": 4, "count": 8, "batches": 8}]
    assert data["predefined_buckets"] == [[64, 64]]
    assert {r["role"] for r in data["images"]} == {"train", "validation"}
    assert data["formula"] == "4 images × 2 repeats × 3 epochs / batch 1 = 24 steps"
    text = format_plan(plan)
    assert "train images × repeats: 8   validation images: 2" in text
    assert re.search(r"^Validation buckets .*\n\s+#\s+bucket\s+images\s+batches\n\s+0\s+64x64\s+2\s+2$", text, re.M)


def test_format_plan_shows_buckets_images_and_findings() -> None:
    plan = _article([(640, 768)] * 2 + [(768, 768)])
    text = format_plan(plan)
    assert text.startswith("Step plan\n  3 images × 10 repeats × 8 epochs / batch 1 = 240 steps\n")
    assert "total optimization steps: 240" in text
    assert re.search(r"^\s+0\s+704x832\s+2\s+20\s+20$", text, re.M)
    assert re.search(r"^\s+1\s+768x768\s+1\s+10\s+10$", text, re.M)
    assert re.search(r"10_CharacterAI woman#0 .* 640x768\s+704x832\s+704x845\s+upscaled$", text, re.M)
    assert "Findings\n  warning: 2 image(s) of 640x768 will be upscaled" in text


# ------------------------------------------------------------------------------------------------------------
# From a recipe and from folders


def test_plan_from_recipe_uses_the_recipe_fields() -> None:
    from kohya_recipe.recipe.loading import recipe_from_dict

    recipe = recipe_from_dict(
        {
            "subject": {"trigger": "CharacterAI"},
            "dataset": {"repeats": 10, "validation_split": 0.1, "validation_seed": 3},
            "model": {"family": "sdxl"},
            "training": {
                "max_train_epochs": 8,
                "batch_size": 2,
                "gradient_accumulation_steps": 1,
                "resolution": [1024, 1024],
                "bucket_reso_steps": 32,
                "max_bucket_reso": 2048,
            },
            "accelerate": {"num_processes": 2},
        },
        source="test",
    )
    s = settings_from_recipe(recipe)
    assert (s.resolution, s.batch_size, s.num_processes, s.max_train_epochs, s.max_train_steps) == (
        (1024, 1024),
        2,
        2,
        8,
        None,
    )
    assert (s.family, s.bucket_reso_steps, s.validation_split, s.validation_seed) == ("sdxl", 32, 0.1, 3)
    plan = plan_from_recipe(recipe, [SubsetInput("10_CharacterAI woman", [(1024, 1024)] * 20, repeats=10)])
    # 20 images: 18 kept (ceil(18.0)), 2 held out; 180 items / batch 2 = 90 batches; 45 per process.
    assert (plan.num_train_images, plan.num_validation_images) == (180, 2)
    assert (plan.batches_per_epoch, plan.batches_per_epoch_per_process, plan.max_train_steps) == (90, 45, 360)


def _png(path: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    Image.new("RGB", size, (120, 90, 60)).save(path)


def test_folders_read_like_the_trainer(tmp_path: Path) -> None:
    # The article-mini layout, regenerated at the fixture's image sizes.
    files, sizes = _sizes("article-mini")
    folder = tmp_path / "img" / "2_testchar woman"
    folder.mkdir(parents=True)
    for name, size in zip(files, sizes, strict=True):
        _png(folder / name, size)
        (folder / name).with_suffix(".txt").write_text("testchar, 1girl", encoding="utf-8")
    (tmp_path / "img" / "notes").mkdir()  # no "<repeats>_" prefix: sd-scripts skips it
    (tmp_path / "img" / "readme.txt").write_text("x", encoding="utf-8")

    subsets = subsets_from_train_data_dir(tmp_path / "img")
    assert [(s.name, s.repeats, list(s.files or []), list(s.sizes)) for s in subsets] == [
        ("img/2_testchar woman", 2, files, sizes)
    ]
    plan = make_plan(
        subsets,
        PlanSettings(
            BucketSettings((64, 64), enable_bucket=True, min_bucket_reso=64, max_bucket_reso=128),
            max_train_epochs=4,
        ),
    )
    assert (plan.batches_per_epoch_per_process, plan.max_train_steps) == (12, 48)

    single = subset_from_folder(folder, 3, is_reg=True)
    assert (single.name, single.repeats, single.is_reg, len(single.sizes)) == ("2_testchar woman", 3, True, 6)
    with pytest.raises(DatasetError, match="image folder not found"):
        subset_from_folder(tmp_path / "missing", 1)
    with pytest.raises(DatasetError, match="image folder not found"):
        subsets_from_train_data_dir(tmp_path / "missing")
