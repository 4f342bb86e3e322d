"""The dataset doctor: every check on small datasets built on the fly, plus the real article-mini images."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kohya_recipe.cli.output import jsonable
from kohya_recipe.dataset.check import check_dataset
from kohya_recipe.dataset.detect import detect_layout
from kohya_recipe.dataset.findings import Finding, Item
from kohya_recipe.dataset.format import format_report
from kohya_recipe.dataset.rules import Rules, load_rules
from kohya_recipe.dataset.settings import article_settings
from kohya_recipe.errors import DatasetError, ExitCode
from kohya_recipe.recipe.loading import recipe_from_dict
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.sdscripts.buckets import BucketSettings, bucket_manager_for
from tests._dataset_util import ARTICLE_CAPTION, copy_article_mini, dataset, finishes, image, is_root, snapshot

# Small thresholds so tiny images exercise the same code paths as the article's 768 px / 42 images.
SMALL = Rules(count_min=2, count_max=10, min_side=48)


def findings(result, check: str | None = None, severity: str | None = None) -> list[Finding]:
    return [f for f in result.findings if (check is None or f.check == check) and (severity in (None, f.severity))]


def one(result, check: str, severity: str, text: str) -> Finding:
    hits = [f for f in findings(result, check, severity) if text in f.message]
    assert len(hits) == 1, [jsonable(f) for f in result.findings]
    return hits[0]


def paths(finding: Finding) -> list[str]:
    return [item.path for item in finding.items]


def train_dir(tmp_path: Path, n: int = 3, name: str = "10_Zed woman", **kw) -> Path:
    root = tmp_path / "img"
    dataset(root / name, n, caption=kw.pop("caption", "1girl, Zed, braided hair"), **kw)
    return root


def recipe(**training: Any) -> Recipe:
    data = {"subject": {"trigger": "Zed", "class_token": "woman"}, "training": training}
    return recipe_from_dict(data, source="test")


# ----------------------------------------------------------------------------------------------------------
# The real trainer's data


def test_article_mini_matches_what_sd_scripts_did(tmp_path: Path) -> None:
    img = copy_article_mini(tmp_path)
    # The run's own settings (tests/data/dataset/README.md): resolution 64, buckets 64-128 step 64, .txt captions.
    r = recipe_from_dict(
        {
            "subject": {"trigger": "testchar", "class_token": "woman"},
            "dataset": {"repeats": 2},
            "training": {"resolution": [64, 64], "min_bucket_reso": 64, "max_bucket_reso": 128},
        },
        source="article-mini config.toml",
    )
    result = check_dataset(img, recipe=r, rules=SMALL)
    assert result.layout.kind == "train_data_dir"
    [subset] = result.layout.subsets
    assert (subset.name, subset.repeats, subset.class_tokens, subset.images) == (
        "2_testchar woman",
        2,
        "testchar woman",
        6,
    )
    # sd-scripts logged "bucket 0: resolution (64, 64), count: 12" (6 images × 2 repeats).
    assert {rec.bucket for rec in result.images} == {(64, 64)}
    assert all(rec.caption_status == "ok" for rec in result.images)
    assert result.ok, [jsonable(f) for f in findings(result, severity="error")]
    assert not findings(result, "trigger", "warning") and not findings(result, "captions")
    assert result.shots["from side"] == 1 and result.shots["from behind"] == 1
    assert {t.tag: t.count for t in result.tags}["testchar"] == 6


def test_article_mini_with_the_articles_defaults(tmp_path: Path) -> None:
    result = check_dataset(copy_article_mini(tmp_path))
    assert result.settings.trigger == "testchar"
    assert result.settings.trigger_source == "folder name '2_testchar woman'"
    small = one(result, "resolution", "warning", "shorter than 768 px")
    assert len(small.items) == 6
    upscaled = one(result, "resolution", "warning", "will upscale 6 images")
    # The foundation's bucket replay says where a 128x160 image goes at 768: reuse, do not re-derive.
    expected = bucket_manager_for((768, 768)).select_bucket(128, 160)
    assert expected.bucket is not None
    assert f"bucket {expected.bucket[0]}x{expected.bucket[1]}" in upscaled.details()["2_testchar woman/img00.png"]
    one(result, "count", "warning", "only 6 images × 2 repeats = 12 images per epoch")
    assert result.exit_code() == ExitCode.OK


# ----------------------------------------------------------------------------------------------------------
# Layout


def test_leaf_folder_given_as_train_data_dir(tmp_path: Path) -> None:
    root = train_dir(tmp_path)
    result = check_dataset(root / "10_Zed woman", rules=SMALL)
    assert result.layout.kind == "subset"
    f = one(result, "layout", "warning", "not a train_data_dir")
    assert str(root.resolve()) in f.fix and "No data found" in f.message
    assert len(result.images) == 3  # its images are still checked


def test_folders_without_repeats_prefix_mean_no_data(tmp_path: Path) -> None:
    # The real `no-data` fixture run: folder "testchar woman", sd-scripts exits 0 with "No data found".
    root = tmp_path / "img"
    dataset(root / "Zed woman", 3)
    result = check_dataset(root, rules=SMALL)
    f = one(result, "layout", "error", "starts with a repeats number")
    assert paths(f) == ["Zed woman"] and "exits with code 0" in f.message
    one(result, "count", "error", "No data found")
    assert result.exit_code() == ExitCode.CHECK_FAILED
    assert len(result.images) == 3  # checked anyway, reported as not trained


def test_skipped_folders_next_to_a_good_one(tmp_path: Path) -> None:
    root = train_dir(tmp_path)
    dataset(root / "extra", 2)
    dataset(root / "0_off", 2)
    image(root / "loose.png")
    result = check_dataset(root, rules=SMALL)
    f = one(result, "layout", "warning", "sd-scripts skips 2 folders")
    assert f.details() == {"extra": "no repeats prefix", "0_off": "repeats 0 < 1"}
    one(result, "layout", "warning", "images lie directly in this train_data_dir")
    one(result, "count", "info", "3 images × 10 repeats")


def test_plain_folder_regularization_and_two_subjects(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    dataset(plain, 3)
    one(check_dataset(plain, rules=SMALL), "layout", "info", "a plain image folder")

    root = train_dir(tmp_path)
    dataset(root / "5_Other man", 2)
    dataset(root / "1_reg woman", 2)
    dataset(tmp_path / "reg" / "1_woman", 2)
    result = check_dataset(root, rules=SMALL)
    f = one(result, "layout", "warning", "subject folders")
    assert len(f.items) == 3
    one(result, "layout", "warning", "looks like regularization images")
    reg = one(result, "layout", "warning", "regularization images are present")
    assert paths(reg) == [str(tmp_path / "reg")]


def test_project_layout_uses_dataset_toml_and_resolved_recipe(tmp_path: Path) -> None:
    from kohya_recipe.render.project import build_project

    src = tmp_path / "src"
    dataset(src, 3, size=(64, 64), caption="1girl, Zed")
    r = recipe_from_dict(
        {
            "subject": {"trigger": "Zed", "class_token": "woman"},
            "training": {"resolution": [64, 64], "min_bucket_reso": 64},
        },
        source="test",
    )
    build_project(src, tmp_path / "proj", r)
    layout = detect_layout(tmp_path / "proj")
    assert layout.kind == "project" and layout.recipe_file == tmp_path / "proj" / "resolved-recipe.toml"
    assert [(s.name, s.repeats) for s in layout.subsets] == [("img/10_Zed woman", 10)]
    result = check_dataset(tmp_path / "proj", rules=SMALL)
    assert result.settings.source.endswith("resolved-recipe.toml") and result.settings.trigger == "Zed"
    assert result.settings.resolution == (64, 64)
    assert all(rec.bucket == (64, 64) and not rec.upscaled for rec in result.images)


def test_img_folder_of_a_project_uses_the_projects_recipe(tmp_path: Path) -> None:
    # `check PROJECT/img` (or one N_name folder in it) judges by the project's resolved recipe, like
    # `check PROJECT`: here its .caption extension, which the article's defaults (.txt) would call missing.
    from kohya_recipe.render.project import build_project

    src = tmp_path / "src"
    dataset(src, 3, size=(64, 64), caption="1girl, Zed", ext=".caption")
    r = recipe_from_dict(
        {
            "subject": {"trigger": "Zed", "class_token": "woman"},
            "dataset": {"caption_extension": ".caption"},
            "training": {"resolution": [64, 64], "min_bucket_reso": 64},
        },
        source="test",
    )
    build_project(src, tmp_path / "proj", r)
    recipe_file = tmp_path / "proj" / "resolved-recipe.toml"
    for folder in (tmp_path / "proj" / "img", tmp_path / "proj" / "img" / "10_Zed woman"):
        result = check_dataset(folder, rules=SMALL)
        assert result.layout.recipe_file == recipe_file.resolve()
        assert result.settings.caption_extension == ".caption" and result.settings.resolution == (64, 64)
        assert all(rec.caption_status == "ok" for rec in result.images) and result.ok
    # A train_data_dir outside any project keeps the article's defaults.
    plain = train_dir(tmp_path / "plain")
    assert detect_layout(plain).recipe_file is None
    assert check_dataset(plain, rules=SMALL).settings.caption_extension == ".txt"


def test_missing_folder_is_an_error_not_a_finding(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="folder not found"):
        check_dataset(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="not a folder"):
        check_dataset(tmp_path / "file.png")


def test_repeats_differ_from_recipe(tmp_path: Path) -> None:
    root = train_dir(tmp_path, name="3_Zed woman")
    result = check_dataset(root, recipe=recipe(resolution=[64, 64], min_bucket_reso=64), rules=SMALL)
    one(result, "layout", "warning", "repeats differ from the recipe's dataset.repeats = 10")


# ----------------------------------------------------------------------------------------------------------
# Count, resolution, aspect


def test_count_thresholds(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=3)
    one(check_dataset(root, rules=Rules(count_min=5, min_side=48)), "count", "warning", "only 3 images")
    one(check_dataset(root, rules=Rules(count_min=1, count_max=2, min_side=48)), "count", "warning", "more than")
    one(check_dataset(root, rules=SMALL), "count", "info", "3 images")


def test_resolution_and_upscaling_follow_the_recipe(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    image(folder / "big_square.png", (768, 768), color=1)
    image(folder / "big_portrait.png", (800, 960), color=2)
    image(folder / "article_portrait.png", (640, 768), color=3)
    image(folder / "small.png", (300, 300), color=4)
    for p in folder.glob("*.png"):
        p.with_suffix(".txt").write_text("1girl, Zed")
    result = check_dataset(folder.parent, rules=Rules(count_min=1))
    small = one(result, "resolution", "warning", "shorter than 768 px")
    assert sorted(paths(small)) == ["10_Zed woman/article_portrait.png", "10_Zed woman/small.png"]
    up = one(result, "resolution", "warning", "will upscale 2 images").details()
    # At 768 a 640x768 image is upscaled into the 704x832 bucket (the bucket fixture's example).
    assert up["10_Zed woman/article_portrait.png"] == "640x768 -> 704x845 (×1.10), bucket 704x832"
    assert up["10_Zed woman/small.png"] == "300x300 -> 768x768 (×2.56), bucket 768x768"
    no_up = check_dataset(folder.parent, rules=Rules(count_min=1), recipe=recipe(bucket_no_upscale=True))
    assert not [f for f in findings(no_up, "resolution") if "upscale" in f.message]


def test_bucket_settings_sd_scripts_rejects(tmp_path: Path) -> None:
    # The recipe refuses these already; settings from elsewhere (a script, an sd-scripts config) may not.
    root = train_dir(tmp_path)
    article = article_settings()
    bad = replace(article, buckets=replace(article.buckets, min_bucket_reso=1024, max_bucket_reso=2048))
    result = check_dataset(root, rules=SMALL, settings=bad)
    f = one(result, "resolution", "error", "the bucket settings stop sd-scripts")
    assert "min_bucket_reso" in f.message and "larger than the resolution's short side 768" in f.message
    assert all(r.bucket is None for r in result.images) and len(result.images) == 3


def test_aspect_mix(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    for i, size in enumerate([(64, 77), (64, 64), (120, 60), (60, 120)]):
        image(folder / f"{i}.png", size, color=i)
        (folder / f"{i}.txt").write_text("1girl, Zed")
    result = check_dataset(folder.parent, rules=SMALL)
    info = one(result, "aspect", "info", "aspect mix")
    assert "640:768 1" in info.message and "square 1" in info.message and "other landscape 1" in info.message
    warn = one(result, "aspect", "warning", "only 50% of the images")
    assert sorted(paths(warn)) == ["10_Zed woman/2.png", "10_Zed woman/3.png"]


# ----------------------------------------------------------------------------------------------------------
# Files the trainer skips, corrupt files


def test_files_sd_scripts_silently_skips(tmp_path: Path) -> None:
    root = train_dir(tmp_path)
    folder = root / "10_Zed woman"
    image(folder / "mixed.Png", color=7)
    image(folder / "anim.gif", fmt="GIF")
    (folder / "photo.avif").write_bytes(b"\x00\x00\x00\x1cftypavif")
    image(folder / ".hidden.png")
    image(folder / "nested" / "deep.png")
    image(folder / "img00.jpg", fmt="JPEG")  # same stem as img00.png
    (folder / "notes.md").write_text("hi")
    (folder / "img00.npz").write_bytes(b"latents")  # sd-scripts' own cache: not reported
    (folder / "dir.png").mkdir()
    result = check_dataset(root, rules=SMALL)
    skipped = one(result, "files", "warning", "silently skips").details()
    assert "mixed-case extension '.Png'" in skipped["10_Zed woman/mixed.Png"]
    assert "does not read '.gif'" in skipped["10_Zed woman/anim.gif"]
    assert "pillow_avif" in skipped["10_Zed woman/photo.avif"]
    assert paths(one(result, "files", "warning", "hidden image")) == ["10_Zed woman/.hidden.png"]
    assert paths(one(result, "files", "warning", "sub-folders")) == ["10_Zed woman/nested"]
    assert one(result, "files", "warning", "two image extensions").details() == {
        "10_Zed woman/img00": "img00.jpg, img00.png"
    }
    assert paths(one(result, "files", "info", "other file")) == ["10_Zed woman/notes.md"]
    assert paths(one(result, "files", "error", "fails to open")) == ["10_Zed woman/dir.png"]


def test_bad_images_are_reported_per_file_and_the_scan_goes_on(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=2)
    folder = root / "10_Zed woman"
    (folder / "fake.png").write_text("this is not a png")
    (folder / "zero.png").write_bytes(b"")
    (folder / "broken.png").symlink_to(folder / "gone.png")
    good = image(tmp_path / "good.png", (96, 96), color=9).read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    result = check_dataset(root, rules=SMALL)
    unreadable = one(result, "corrupt", "error", "cannot be read as an image").details()
    assert set(unreadable) == {"10_Zed woman/fake.png", "10_Zed woman/zero.png", "10_Zed woman/broken.png"}
    assert "not an image" in unreadable["10_Zed woman/fake.png"]
    assert "empty file" in unreadable["10_Zed woman/zero.png"]
    assert "does not exist" in unreadable["10_Zed woman/broken.png"]
    corrupt = one(result, "corrupt", "error", "cannot be decoded").details()
    assert list(corrupt) == ["10_Zed woman/cut.png"] and "decoding failed" in corrupt["10_Zed woman/cut.png"]
    assert len(result.images) == 6
    readable = {r.file.name for r in result.images if r.header is not None and r.caption_status == "ok"}
    assert readable == {"img00.png", "img01.png"}
    assert result.exit_code() == ExitCode.CHECK_FAILED


def test_unreadable_files_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Permission errors, simulated so that the test also runs as root.
    root = train_dir(tmp_path, n=2)
    locked_image = str(root / "10_Zed woman" / "img00.png")
    locked_caption = str(root / "10_Zed woman" / "img01.txt")
    real_open = os.open

    def os_open(path, *a, **k):  # images and captions are both opened as regular files only (os.open + fstat)
        if os.fspath(path) in (locked_image, locked_caption):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    result = check_dataset(root, rules=SMALL)
    assert "permission denied" in one(result, "corrupt", "error", "cannot be read").details()["10_Zed woman/img00.png"]
    f = one(result, "captions", "error", "cannot be read")
    assert f.items == [
        Item("10_Zed woman/img01.txt", "cannot read (permission denied): sd-scripts stops with an exception on it")
    ]


@pytest.mark.skipif(is_root(), reason="root reads files regardless of permissions")
def test_unreadable_files_for_real(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=2)
    locked = root / "10_Zed woman" / "img00.png"
    locked.chmod(0)
    try:
        result = check_dataset(root, rules=SMALL)
        assert (
            "permission denied" in one(result, "corrupt", "error", "cannot be read").details()["10_Zed woman/img00.png"]
        )
    finally:
        locked.chmod(0o644)


def test_extension_lies_about_the_format(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=1)
    image(root / "10_Zed woman" / "jpeg.png", fmt="JPEG")
    (root / "10_Zed woman" / "jpeg.txt").write_text("1girl, Zed")
    result = check_dataset(root, rules=SMALL)
    f = one(result, "files", "info", "extension does not match")
    assert f.details() == {"10_Zed woman/jpeg.png": "the file is JPEG, not PNG as its extension says"}
    assert result.ok


def test_exif_rotation_and_alpha(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=1)
    folder = root / "10_Zed woman"
    exif = Image.Exif()
    exif[0x0112] = 6
    image(folder / "rotated.jpg", (64, 48), fmt="JPEG", exif=exif)
    image(folder / "transparent.png", mode="RGBA", color=2)
    image(folder / "opaque_alpha.png", mode="RGBA", color=1)
    for p in folder.glob("*.*g"):
        p.with_suffix(".txt").write_text("1girl, Zed")
    result = check_dataset(root, rules=SMALL)
    rot = one(result, "exif", "warning", "EXIF rotation")
    assert rot.details() == {"10_Zed woman/rotated.jpg": "EXIF orientation 6 (rotated 90° CW)"}
    alpha = one(result, "alpha", "warning", "alpha channel")
    assert sorted(paths(alpha)) == ["10_Zed woman/opaque_alpha.png", "10_Zed woman/transparent.png"]
    decoded = check_dataset(root, rules=SMALL, decode=True)
    assert paths(one(decoded, "alpha", "warning", "alpha channel")) == ["10_Zed woman/transparent.png"]
    assert paths(one(decoded, "alpha", "info", "fully opaque")) == ["10_Zed woman/opaque_alpha.png"]


# ----------------------------------------------------------------------------------------------------------
# Duplicates


def test_exact_and_near_duplicates(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=3, size=(96, 96))
    folder = root / "10_Zed woman"
    shutil.copy(folder / "img00.png", folder / "copy.png")
    Image.open(folder / "img01.png").save(folder / "resaved.jpg", quality=90)
    Image.open(folder / "img02.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "mirror.png")
    for name in ("copy", "resaved", "mirror"):
        (folder / f"{name}.txt").write_text("1girl, Zed")
    header_only = check_dataset(root, rules=SMALL)
    exact = one(header_only, "duplicates", "warning", "1 group of byte-identical images (1 extra copy)")
    assert exact.items == [Item("10_Zed woman/copy.png", "1 copy: 10_Zed woman/img00.png")]
    one(header_only, "duplicates", "info", "near-duplicates not searched")
    assert jsonable(header_only)["duplicates"] == [
        {"kind": "identical", "images": ["10_Zed woman/copy.png", "10_Zed woman/img00.png"], "links": []}
    ]

    decoded = check_dataset(root, rules=SMALL, decode=True)
    near = one(decoded, "duplicates", "warning", "2 groups of near-duplicate images (4 images)").details()
    assert re.fullmatch(r"1 near copy: 10_Zed woman/resaved\.jpg \([0-6]/64\)", near["10_Zed woman/img01.png"])
    assert re.fullmatch(
        r"1 near copy: 10_Zed woman/mirror\.png \(mirror image, [0-6]/64\)", near["10_Zed woman/img02.png"]
    )
    assert "10_Zed woman/copy.png" not in near and "10_Zed woman/img00.png" not in near  # already exact
    clusters = [c for c in jsonable(decoded)["duplicates"] if c["kind"] == "near"]
    assert [c["images"] for c in clusters] == [
        ["10_Zed woman/img01.png", "10_Zed woman/resaved.jpg"],
        ["10_Zed woman/img02.png", "10_Zed woman/mirror.png"],
    ]
    assert [(k["image"], k["like"], k["mirrored"]) for c in clusters for k in c["links"]] == [
        ("10_Zed woman/resaved.jpg", "10_Zed woman/img01.png", False),
        ("10_Zed woman/mirror.png", "10_Zed woman/img02.png", True),
    ]


def _copies(folder: Path, source: Path, n: int) -> None:
    for i in range(n):
        os.link(source, folder / f"c{i:04d}.png")


def test_thousands_of_identical_images_are_one_group_with_a_capped_listing(tmp_path: Path) -> None:
    # The old finder built every pair of a group (3,000 copies: 4.5 million pairs, 1.4 GB) and listed every name in
    # one line; a group is now one item naming 5 copies and how many more, with the full list in --json.
    folder = tmp_path / "img" / "10_Zed woman"
    source = image(tmp_path / "one.png", (32, 32))
    folder.mkdir(parents=True)
    _copies(folder, source, 2000)
    result = check_dataset(tmp_path / "img", rules=SMALL)
    exact = one(result, "duplicates", "warning", "1 group of byte-identical images (1999 extra copies)")
    assert exact.items == [
        Item(
            "10_Zed woman/c0000.png",
            "1999 copies: " + ", ".join(f"10_Zed woman/c{i:04d}.png" for i in range(1, 6)) + " and 1994 more",
        )
    ]
    [cluster] = result.duplicates
    assert cluster.kind == "identical" and len(cluster.images) == 2000 and len(set(cluster.images)) == 2000
    assert all(r.notes.count("duplicate") == 1 for r in result.images)
    text = format_report(result, table="none")
    assert max(len(line) for line in text.splitlines()) < 400


def test_the_auto_table_lists_at_most_60_rows_with_notes(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    folder.mkdir(parents=True)
    _copies(folder, image(tmp_path / "one.png", (32, 32)), 100)
    for i in range(3):  # three images without any note
        image(folder / f"other{i}.png", (768, 768), color=i)
        (folder / f"other{i}.txt").write_text(f"1girl, Zed, pose{i}\n")
    result = check_dataset(tmp_path / "img", rules=SMALL, trigger="Zed")
    assert [r.path for r in result.images if not r.notes] == [f"10_Zed woman/other{i}.png" for i in range(3)]
    lines = format_report(result).splitlines()
    rows = [line for line in lines if line.startswith("10_Zed woman/")]
    assert len(rows) == 60 and rows[0].startswith("10_Zed woman/c0000.png")
    assert "(40 more images with notes; --table problems lists them all)" in lines
    assert "(3 images without notes not shown; --table all shows them)" in lines
    problems = format_report(result, table="problems").splitlines()
    assert len([line for line in problems if line.startswith("10_Zed woman/c0")]) == 100


def test_many_similar_images_are_one_near_duplicate_group(tmp_path: Path) -> None:
    # 300 re-encodings of one picture, each with a few pixels changed: one group, not 44,850 pairs.
    folder = tmp_path / "img" / "10_Zed woman"
    base = Image.open(image(tmp_path / "base.png", (96, 96), color=3)).convert("RGB")
    folder.mkdir(parents=True)
    for i in range(300):
        im = base.copy()
        im.putpixel((i % 96, i // 96), (i % 256, 0, 255))
        im.save(folder / f"s{i:03d}.png")
    result = check_dataset(tmp_path / "img", rules=SMALL, decode=True)
    near = one(result, "duplicates", "warning", "1 group of near-duplicate images (300 images)")
    [item] = near.items
    assert item.path == "10_Zed woman/s000.png" and item.detail.startswith("299 near copies: 10_Zed woman/s001.png (")
    assert item.detail.endswith(" and 294 more")
    [cluster] = result.duplicates
    assert cluster.kind == "near" and len(cluster.images) == 300 and len(cluster.links) == 299


def test_same_size_files_are_not_called_duplicates(tmp_path: Path) -> None:
    root = tmp_path / "img"
    folder = root / "10_Zed woman"
    for i in range(3):  # uncompressed BMPs of one size: equal file sizes, different pixels
        image(folder / f"{i}.bmp", (40, 40), color=i, fmt="BMP")
        (folder / f"{i}.txt").write_text("1girl, Zed")
    assert not findings(check_dataset(root, rules=SMALL), "duplicates", "warning")


# ----------------------------------------------------------------------------------------------------------
# Captions


def test_caption_extension_mismatch(tmp_path: Path) -> None:
    root = train_dir(tmp_path, ext=".caption")
    result = check_dataset(root, rules=SMALL)
    f = one(result, "captions", "error", "have a '.caption' caption but the trainer reads '.txt'")
    assert len(f.items) == 3 and "class tokens 'Zed woman'" in f.message
    assert 'dataset.caption_extension = ".caption"' in f.fix
    assert not [x for x in findings(result, "captions", "error") if "without a caption file" in x.message]
    ok = check_dataset(root, rules=SMALL, recipe=recipe_from_dict({"dataset": {"caption_extension": ".caption"}}))
    assert ok.ok


def test_caption_file_problems(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=8)
    folder = root / "10_Zed woman"
    (folder / "img00.txt").unlink()
    (folder / "img01.txt").write_bytes(b"")
    (folder / "img02.txt").write_bytes(b"  \n")
    (folder / "img03.txt").write_bytes("1girl, Zed, café".encode("latin-1"))
    (folder / "img04.txt").write_bytes(b"\x00\x01\x02\xff junk")
    (folder / "img05.txt").write_bytes(b"\xef\xbb\xbf1girl, Zed\n")
    (folder / "img06.txt").write_text("1girl, Zed\nsecond line\n")
    (folder / "lonely.txt").write_text("1girl, Zed")
    image(folder / "skipped.Png")
    (folder / "skipped.txt").write_text("1girl, Zed")
    before = snapshot(root)
    result = check_dataset(root, rules=SMALL)
    assert snapshot(root) == before  # check never modifies anything
    assert paths(one(result, "captions", "error", "without a caption file")) == ["10_Zed woman/img00.png"]
    assert paths(one(result, "captions", "error", "empty caption files")) == ["10_Zed woman/img01.txt"]
    assert paths(one(result, "captions", "error", "no text")) == ["10_Zed woman/img02.txt"]
    not_text = one(result, "captions", "error", "not UTF-8 text").details()
    assert set(not_text) == {"10_Zed woman/img03.txt", "10_Zed woman/img04.txt"}
    assert "UnicodeDecodeError" in not_text["10_Zed woman/img03.txt"] and "binary" in not_text["10_Zed woman/img04.txt"]
    assert paths(one(result, "captions", "warning", "byte-order mark")) == ["10_Zed woman/img05.txt"]
    assert paths(one(result, "captions", "warning", "more than one line")) == ["10_Zed woman/img06.png"]
    orphans = one(result, "captions", "warning", "without an image sd-scripts reads").details()
    assert orphans == {
        "10_Zed woman/lonely.txt": "no image with this name",
        "10_Zed woman/skipped.txt": "belongs to skipped.Png, which sd-scripts skips",
    }
    statuses = {r.file.name: r.caption_status for r in result.images}
    assert statuses["img03.png"] == "not-text" and statuses["img07.png"] == "ok"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_special_files_and_broken_caption_links_are_reported_not_hung_on(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=5)
    folder = root / "10_Zed woman"
    os.mkfifo(folder / "pipe.png")  # opening it for reading would wait for a writer forever
    (folder / "img01.txt").unlink()
    (folder / "img01.txt").symlink_to(folder / "gone.txt")  # broken link: sd-scripts' isfile() is false
    (folder / "img02.txt").unlink()
    (folder / "img02.txt").mkdir()
    (folder / "img03.txt").unlink()
    os.mkfifo(folder / "img03.txt")
    before = snapshot(root)
    result = finishes(lambda: check_dataset(root, rules=SMALL))
    assert snapshot(root) == before
    unreadable = one(result, "corrupt", "error", "cannot be read as an image").details()
    assert unreadable == {"10_Zed woman/pipe.png": "not a regular file (a FIFO): reading it would block or never end"}
    missing = one(result, "captions", "error", "without a caption file").details()
    assert set(missing) == {
        "10_Zed woman/pipe.png",
        "10_Zed woman/img01.png",
        "10_Zed woman/img02.png",
        "10_Zed woman/img03.png",
    }
    assert all(
        "a broken symlink, a folder or a FIFO, not a file" in missing[f"10_Zed woman/img0{i}.png"] for i in (1, 2, 3)
    )
    assert {r.file.name for r in result.images if r.caption_status == "ok"} == {"img00.png", "img04.png"}


def test_face_crop_caption_name_is_not_an_orphan(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    image(folder / "face_1_2_3_4.png")
    (folder / "face.txt").write_text("1girl, Zed")  # sd-scripts' second caption candidate
    result = check_dataset(folder.parent, rules=Rules(count_min=1))
    assert result.images[0].caption_status == "ok"
    assert not findings(result, "captions")


def test_trigger_checks(tmp_path: Path) -> None:
    root = tmp_path / "img"
    folder = root / "10_Zed woman"
    dataset(folder, 4, caption="1girl, Zed, braided hair")
    (folder / "img01.txt").write_text("1girl, braided hair")
    (folder / "img02.txt").write_text("1girl, Zedd, braided hair")
    result = check_dataset(root, rules=SMALL)
    assert result.settings.trigger == "Zed"  # from the `N_<trigger> <class>` folder name
    f = one(result, "trigger", "warning", "without the trigger 'Zed'")
    assert sorted(paths(f)) == ["10_Zed woman/img01.png", "10_Zed woman/img02.png"]
    one(result, "trigger", "warning", "misspelt trigger: 'Zedd' (1×)")
    nowhere = check_dataset(root, rules=SMALL, trigger="CharacterAI")
    one(nowhere, "trigger", "error", "'CharacterAI' (from --trigger) is in no caption")
    plain = tmp_path / "plain"
    dataset(plain, 2)
    one(check_dataset(plain, rules=SMALL), "trigger", "info", "trigger word unknown")


def test_trigger_with_shuffled_captions(tmp_path: Path) -> None:
    root = train_dir(tmp_path, caption="1girl, Zed")
    r = recipe_from_dict({"subject": {"trigger": "Zed"}, "augmentation": {"shuffle_caption": True, "keep_tokens": 1}})
    one(check_dataset(root, rules=SMALL, recipe=r), "trigger", "warning", "shuffle_caption is on")


def test_caption_length_format_and_spelling(tmp_path: Path) -> None:
    root = tmp_path / "img"
    folder = root / "10_Zed woman"
    dataset(folder, 5, caption="1girl, Zed, braided hair")
    (folder / "img00.txt").write_text(", ".join(["Zed", *(f"tag{i}" for i in range(20))]))
    (folder / "img01.txt").write_text("Zed " + "a very long sentence about the lighting and the camera " * 10 + ".")
    (folder / "img02.txt").write_text("1girl, Zed, Zed, braided_hair")
    (folder / "img03.txt").write_text("1girl,, Zed, braided hair")
    result = check_dataset(root, rules=SMALL)
    assert paths(one(result, "captions", "warning", "longer than 15 tags")) == ["10_Zed woman/img00.png"]
    assert "10_Zed woman/img01.png" in paths(one(result, "captions", "warning", "over 75 CLIP tokens"))
    assert paths(one(result, "captions", "warning", "read like sentences")) == ["10_Zed woman/img01.png"]
    assert one(result, "captions", "warning", "the same tag twice").details() == {"10_Zed woman/img02.png": "zed"}
    assert paths(one(result, "captions", "info", "empty tags")) == ["10_Zed woman/img03.png"]
    spelt = one(result, "tags", "warning", "spelt differently")
    assert spelt.details()["braided hair"] == "'braided hair' (2×), 'braided_hair' (1×)"


def test_tags_in_every_caption_and_the_tag_table(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=3, caption="1girl, Zed, lipstick")
    result = check_dataset(root, rules=SMALL)
    f = one(result, "tags", "info", "tags in every caption besides the trigger: 1girl, lipstick")
    assert "fused" in f.message
    assert [(t.tag, t.count) for t in result.tags] == [("1girl", 3), ("lipstick", 3), ("Zed", 3)]


def test_max_token_length_from_the_recipe(tmp_path: Path) -> None:
    # 45 letter-only tags: 45 words + 45 commas = at least 90 CLIP tokens, fewer than 150.
    root = train_dir(
        tmp_path, n=2, caption=", ".join(["Zed", *(f"tag{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(44))])
    )
    long_ok = recipe_from_dict({"subject": {"trigger": "Zed"}, "training": {"max_token_length": 150}})
    one(check_dataset(root, rules=SMALL), "captions", "warning", "over 75 CLIP tokens")
    assert not [f for f in findings(check_dataset(root, rules=SMALL, recipe=long_ok)) if "CLIP tokens" in f.message]


# ----------------------------------------------------------------------------------------------------------
# Shots and contradictions


def test_shot_coverage_counts_and_missing(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    tags = ["", "", "", "", "from side", "profile", "from behind", "upper body, from behind", "full body"]
    for i, t in enumerate(tags):
        image(folder / f"{i}.png", color=i)
        (folder / f"{i}.txt").write_text("1girl, Zed" + (f", {t}" if t else ""))
    result = check_dataset(folder.parent, rules=SMALL)
    assert result.shots == {
        "front": 5,
        "from side": 2,
        "from above": 0,
        "from behind": 2,
        "upper body": 1,
        "full body": 1,
    }
    missing = one(result, "shots", "warning", "missing or untagged: from side (2/4), from above (0/1)")
    assert [item.path for item in missing.items] == ["from side", "from above"]
    assert not [f for f in findings(result, "shots") if "front views" in f.message]
    assert {r.file.name: r.shots for r in result.images}["7.png"] == ["from behind", "upper body"]


def test_too_few_front_views(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=4, caption="1girl, Zed, from side")
    one(check_dataset(root, rules=SMALL), "shots", "warning", "only 0 of 4 images are front views")


def test_default_contradictions(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    for i, t in enumerate(["from behind, earrings, brown eyes", "full body, upper body", "from behind"]):
        image(folder / f"{i}.png", color=i)
        (folder / f"{i}.txt").write_text(f"1girl, Zed, {t}")
    result = check_dataset(folder.parent, rules=SMALL)
    back = one(result, "contradictions", "warning", "'from behind' together with")
    assert back.items == [Item("10_Zed woman/0.png", "'from behind' with 'earrings', 'brown eyes'")]
    assert "caption remove" in back.fix
    one(result, "contradictions", "warning", "'full body' together with")


def test_rules_file(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        """
[count]
min = 1
[resolution]
min_side = 32
[aspect]
generation = [1, 1]
[[shot]]
name = "smiling"
tags = ["smile", "grin"]
min = 2
angle = false
[[contradiction]]
when = "smile"
forbid = ["frown"]
reason = "pick one expression"
severity = "error"
""",
        encoding="utf-8",
    )
    rules = load_rules(rules_file)
    assert rules.count_min == 1 and rules.generation_aspect == (1, 1) and len(rules.shots) == 1
    assert rules.count_max == Rules().count_max  # untouched defaults stay
    root = train_dir(tmp_path, n=2, caption="1girl, Zed, smile, frown")
    result = check_dataset(root, rules=rules_file)
    assert result.shots == {"front": 2, "smiling": 2}
    f = one(result, "contradictions", "error", "'smile' together with 'frown': pick one expression")
    assert len(f.items) == 2 and result.exit_code() == ExitCode.CHECK_FAILED
    assert "Rules from" in format_report(result)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[count]\nminimum = 3\n", r"count\.minimum: unknown key"),
        ("[count]\nmin = 'x'\n", r"count\.min: wrong type str"),
        ("[aspect]\ngeneration = [640]\n", r"aspect\.generation: must be \[width, height\]"),
        ("[colour]\nx = 1\n", r"colour: unknown section"),
        ("count = 30\n", r"count: write it as a \[count\] table"),
        ("[[shot]]\nname = 'x'\n", r"shot\[0\]\.tags: required key missing"),
        ("[[contradiction]]\nwhen = 'a'\nforbid = []\n", r"contradiction\[0\]\.forbid: must be a tag"),
        ("[[contradiction]]\nwhen='a'\nforbid='b'\nseverity='fatal'\n", r"severity: must be one of"),
        ("[count\n", "invalid TOML"),
    ],
)
def test_bad_rules_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_rules(path)
    with pytest.raises(DatasetError, match=r"missing\.toml: file not found"):
        load_rules(tmp_path / "missing.toml")


# ----------------------------------------------------------------------------------------------------------
# Result, report, progress


def test_result_json_progress_and_exit_codes(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=3)
    calls: list[tuple[int, int]] = []
    result = check_dataset(root, rules=SMALL, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    data = json.loads(json.dumps(jsonable(result)))
    assert data["summary"]["error"] == 0 and data["layout"]["kind"] == "train_data_dir"
    assert data["images"][0]["bucket"] == [704, 832] and data["images"][0]["upscaled"] is True
    assert {f["check"] for f in data["findings"]} >= {"count", "shots"}
    assert result.exit_code("error") == 0
    assert result.exit_code("warning") == ExitCode.CHECK_FAILED  # shot coverage warnings


def test_text_report(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=2)
    (root / "10_Zed woman" / "img01.txt").unlink()
    result = check_dataset(root, rules=SMALL)
    text = format_report(result)
    assert text.splitlines()[0] == f"Checked {root} (train_data_dir, 2 images)"
    assert "10_Zed woman/img01.png  64x80" in text
    assert "ERROR   [captions] 1 image without a caption file (.txt)" in text
    assert "fix: write one per image" in text
    assert text.rstrip().endswith(f"1 error, {result.count('warning')} warnings, {result.count('info')} info: FAILED")
    assert "10_Zed woman/img00.png  64x80" not in format_report(result, table="none")


def test_check_on_the_example_set_is_clean_of_errors() -> None:
    example = Path(__file__).parent.parent / "examples" / "CharacterAI"
    if not example.is_dir():
        pytest.skip("examples/ not present")
    result = check_dataset(example, trigger="CharacterAI")
    assert result.ok and len(result.images) == 42
    assert result.shots["from behind"] == 2


def test_article_caption_is_short_danbooru(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=3, caption=ARTICLE_CAPTION.replace("CharacterAI", "Zed"))
    result = check_dataset(root, rules=SMALL)
    assert not [f for f in findings(result, "captions") if f.severity != "info"]


def test_the_rules_documented_are_the_defaults(tmp_path: Path) -> None:
    # docs/dataset-checks.md shows the default rules file; it must load to exactly the built-in defaults.
    doc = (Path(__file__).parent.parent / "docs" / "dataset-checks.md").read_text(encoding="utf-8")
    section = doc.split("## Rules file", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "rules.toml"
    path.write_text(block, encoding="utf-8")
    assert replace(load_rules(path), source="") == replace(Rules(), source="")


def test_gui_style_project_folder_and_recipe_regularization(tmp_path: Path) -> None:
    # The kohya_ss GUI's folder preparation: PROJECT/img/N_name, PROJECT/model, PROJECT/log (no resolved recipe).
    project = tmp_path / "proj"
    dataset(project / "img" / "10_Zed woman", 2)
    (project / "model").mkdir()
    (project / "log").mkdir()
    layout = detect_layout(project)
    assert layout.kind == "project" and [s.name for s in layout.subsets] == ["10_Zed woman"]
    r = recipe_from_dict({"subject": {"trigger": "Zed"}, "dataset": {"regularization": "reg-images"}})
    one(check_dataset(project, rules=SMALL, recipe=r), "layout", "warning", "the recipe trains with regularization")


def test_without_a_recipe_the_settings_are_the_articles_from_the_bundled_preset() -> None:
    # The likeness-sd15 preset holds the article's settings; the checks use them when no recipe is given,
    # without the preset's example subject (class, repeats).
    s = article_settings()
    assert s.buckets == BucketSettings(
        (768, 768), enable_bucket=True, min_bucket_reso=256, max_bucket_reso=1024, bucket_reso_steps=64
    )
    assert (s.caption_extension, s.max_token_length, s.shuffle_caption, s.keep_tokens, s.flip) == (
        ".txt",
        75,
        False,
        0,
        True,
    )
    assert (s.trigger, s.class_token, s.repeats, s.regularization) == (None, None, None, None)
    assert (s.source, s.trigger_source) == ("the article's defaults (no recipe)", "")
