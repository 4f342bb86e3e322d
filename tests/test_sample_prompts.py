"""Sample prompts from the user's own subject (issue 15): the preset's when they fit the captions, else derived."""

from __future__ import annotations

from pathlib import Path

from kohya_recipe.recipe.loading import resolve_recipe
from kohya_recipe.render.project import build_from_folder
from kohya_recipe.render.sample_prompts import choose_sample_prompts
from tests._project_util import make_images

ROOT = Path(__file__).resolve().parent.parent
SMALL = ("training.resolution=64", "training.min_bucket_reso=64")
DARIUS = [
    "a painting of a steam punk skull with a gas mask , by darius kawasaki",
    "a painting of a man with a skull on his head , by darius kawasaki",
    "a painting of a woman with a helmet on her head , by darius kawasaki",
    "a painting of a man playing a piano , by darius kawasaki",
    "a painting of a robot sitting on a rock , by darius kawasaki",
]


def _captioned(folder: Path, captions: list[str]) -> Path:
    make_images(folder, [(64, 64)] * len(captions))
    for i, text in enumerate(captions):
        (folder / f"img{i:02d}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def test_the_bundled_example_keeps_the_articles_prompt() -> None:
    recipe = resolve_recipe(trigger="CharacterAI", class_token="woman")
    choice = choose_sample_prompts(recipe, [ROOT / "examples" / "CharacterAI"])
    assert choice.source == "preset"
    assert (
        choice.prompts[0]["prompt"]
        == "1girl, CharacterAI, braided hair, black hair, dark skin, photo, realistic, 8K, HDR"
    )


def test_sentence_captions_give_prompts_from_the_captions(tmp_path: Path) -> None:
    recipe = resolve_recipe(trigger="darius", class_token="painter")
    choice = choose_sample_prompts(recipe, [_captioned(tmp_path / "d", DARIUS)])
    assert choice.source == "captions" and len(choice.prompts) == 2
    prompts = [p["prompt"] for p in choice.prompts]
    assert all(p.startswith("a painting of a ") and p.endswith(", by darius kawasaki") for p in prompts)
    assert prompts[0] != prompts[1] and "1girl" not in " ".join(prompts)
    # A painting is not a photo: the article's medium negatives (Drawing, Illustration, 3D render) would fight it.
    assert choice.prompts[0]["negative"] == "Fake, child, underage, teen"
    assert (choice.prompts[0]["width"], choice.prompts[0]["steps"]) == (512, 35)  # the preset's sampling settings


def test_tag_captions_of_renders_are_prompted_as_photos(tmp_path: Path) -> None:
    captions = ["1boy, zed, red hair, armor, 3D render, UHD"] * 4 + [
        "1boy, zed, red hair, armor, from side, 3D render, UHD"
    ]
    recipe = resolve_recipe(trigger="zed", class_token="man")
    choice = choose_sample_prompts(recipe, [_captioned(tmp_path / "z", captions)])
    assert [p["prompt"] for p in choice.prompts] == [
        "1boy, zed, red hair, armor, photo, realistic, 8K, HDR",
        "1boy, zed, red hair, armor, from side, photo, realistic, 8K, HDR",
    ]
    assert "3D render" in choice.prompts[0]["negative"] and "Drawing" in choice.prompts[0]["negative"]


def test_the_trigger_goes_after_the_count_tag_when_captions_lack_it(tmp_path: Path) -> None:
    recipe = resolve_recipe(trigger="zed", class_token="man")
    choice = choose_sample_prompts(recipe, [_captioned(tmp_path / "z", ["1boy, red hair, anime"] * 3)])
    assert choice.prompts[0]["prompt"] == "1boy, zed, red hair, anime"
    assert "Drawing" not in choice.prompts[0]["negative"]


def test_build_uses_derived_prompts_unless_the_user_set_some(tmp_path: Path) -> None:
    images = _captioned(tmp_path / "d", DARIUS)
    result = build_from_folder(images, tmp_path / "p", trigger="darius", class_token="painter", sets=SMALL)
    assert result.recipe.samples.prompts[0].prompt.startswith("a painting of a ")
    assert "sample prompts from your captions (5 read)" in result.notes
    lines = (tmp_path / "p" / "sample-prompts.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and lines[0].startswith("a painting of a ")
    own = tmp_path / "r.toml"
    own.write_text('preset = "likeness-sd15"\n[[samples.prompts]]\nprompt = "{trigger}, portrait"\n', encoding="utf-8")
    kept = build_from_folder(images, tmp_path / "q", recipe_file=own, trigger="darius", sets=SMALL)
    assert [p.prompt for p in kept.recipe.samples.prompts] == ["darius, portrait"]


def test_no_captions_keep_the_presets(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    make_images(folder, [(64, 64)])
    for caption in folder.glob("*.txt"):
        caption.unlink()
    choice = choose_sample_prompts(resolve_recipe(trigger="x"), [folder])
    assert choice.source == "preset" and "no captions" in choice.reason
