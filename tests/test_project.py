"""Rendering a project: layout, golden files (byte for byte), no-clobber, atomic writes, rollback, dry run.

Golden files live in tests/golden/article/; regenerate them only on purpose with KOHYA_RECIPE_REGEN_GOLDEN=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kohya_recipe.dataset.plan import format_plan
from kohya_recipe.errors import DatasetError, RenderError
from kohya_recipe.layout import read_facts
from kohya_recipe.render.project import build_project, load_project, plan_project, render_project
from tests._project_util import article_recipe, make_images

GOLDEN = Path(__file__).parent / "golden" / "article"
REGEN = os.environ.get("KOHYA_RECIPE_REGEN_GOLDEN") == "1"
# The article's mix: mostly 640x768 portraits, the rest square (42 images).
ARTICLE_SIZES = [(640, 768)] * 30 + [(768, 768)] * 12


def _tree(root: Path) -> str:
    lines = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        lines.append(rel + ("/" if p.is_dir() else ""))
    return "\n".join(lines) + "\n"


def golden(name: str, text: str) -> None:
    """Compare ``text`` byte for byte with ``tests/golden/article/<name>`` (rewritten only when REGEN is set)."""
    path = GOLDEN / name
    data = text.encode("utf-8")
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert path.exists(), f"missing golden file {path}; run with KOHYA_RECIPE_REGEN_GOLDEN=1"
    # Bytes, not text: a read_text() comparison would hide a stray "\r\n" written by the renderer.
    assert data == path.read_bytes(), f"{name} differs from {path} (regenerate with KOHYA_RECIPE_REGEN_GOLDEN=1)"


_golden = golden


@pytest.fixture(scope="module")
def article_project(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("article")
    images = make_images(base / "my-images", ARTICLE_SIZES)
    result = build_project(images, base / "CharacterAI", article_recipe())
    assert result.plan.max_train_steps == 3360
    return base, result.root


@pytest.mark.parametrize(
    "name", ["config.toml", "dataset.toml", "sample-prompts.txt", "resolved-recipe.toml", "train.sh"]
)
def test_golden_rendered_files(article_project, name: str) -> None:
    base, root = article_project
    text = (root / name).read_bytes().decode("utf-8").replace(str(base), "<tmp>")
    _golden(name, text)


def test_golden_layout_and_plan(article_project) -> None:
    _, root = article_project
    tree = (
        "\n".join(line for line in _tree(root).splitlines() if not line.startswith("img/10_CharacterAI woman/img"))
        + "\n"
    )
    _golden("tree.txt", tree)
    _golden("plan.txt", format_plan(plan_project(root)) + "\n")


def test_article_plan_and_images(article_project) -> None:
    _, root = article_project
    subset = root / "img" / "10_CharacterAI woman"
    assert len(list(subset.glob("*.png"))) == 42 and len(list(subset.glob("*.txt"))) == 42
    plan = plan_project(root)
    assert plan.max_train_steps == 3360 and plan.batches_per_epoch == 420
    assert "42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps" in plan.formula
    assert not (root / "reg").exists()


def test_render_writes_the_project_facts(article_project) -> None:
    from kohya_recipe.layout import is_project, read_facts

    _, root = article_project
    facts = read_facts(root)
    assert is_project(root) and facts is not None
    assert facts.output_name == "CharacterAI-1-A"
    assert (facts.trigger, facts.class_token) == ("CharacterAI", "woman")
    assert [(s.folder, s.repeats, s.is_reg) for s in facts.subsets] == [("img/10_CharacterAI woman", 10, False)]
    assert list(facts.sample_prompts) == (root / "sample-prompts.txt").read_text(encoding="utf-8").splitlines()
    assert (facts.max_train_epochs, facts.save_every_n_epochs, facts.script) == (8, 1, "train_network.py")


def test_images_are_linked_never_moved(tmp_path) -> None:
    images = make_images(tmp_path / "src", [(64, 64), (64, 80)])
    before = sorted(p.name for p in images.iterdir())
    result = build_project(
        images, tmp_path / "p", article_recipe("training.resolution=64", "training.min_bucket_reso=64")
    )
    assert sorted(p.name for p in images.iterdir()) == before
    target = result.root / "img" / "10_CharacterAI woman" / "img00.png"
    assert target.samefile(images / "img00.png")
    copied = build_project(images, tmp_path / "q", result.recipe, copy_images=True)
    assert not (copied.root / "img" / "10_CharacterAI woman" / "img00.png").samefile(images / "img00.png")
    # Captions are copies: editing one in the project in place (as most editors do) leaves the original alone.
    caption = result.root / "img" / "10_CharacterAI woman" / "img00.txt"
    assert not caption.samefile(images / "img00.txt")
    with caption.open("a", encoding="utf-8") as fh:
        fh.write("from side\n")
    assert "from side" not in (images / "img00.txt").read_text(encoding="utf-8")


def test_rerender_is_idempotent_and_never_clobbers(tmp_path) -> None:
    images = make_images(tmp_path / "src", [(64, 64)])
    recipe = article_recipe("training.resolution=64", "training.min_bucket_reso=64")
    build_project(images, tmp_path / "p", recipe)
    again = build_project(images, tmp_path / "p", recipe)
    assert again.written == []
    # A changed recipe rewrites our own untouched files.
    changed = build_project(
        images,
        tmp_path / "p",
        article_recipe("training.resolution=64", "training.min_bucket_reso=64", "network.rank=8"),
    )
    assert "config.toml" in changed.written
    # A file the user edited is never overwritten without force.
    cfg = tmp_path / "p" / "config.toml"
    cfg.write_text(cfg.read_text() + "# my note\n")
    with pytest.raises(RenderError, match="would overwrite 1 file\\(s\\).*config.toml.*--force"):
        build_project(images, tmp_path / "p", recipe)
    assert cfg.read_text().endswith("# my note\n")
    build_project(images, tmp_path / "p", recipe, force=True)
    assert not cfg.read_text().endswith("# my note\n")


def test_foreign_file_in_output_is_not_overwritten(tmp_path) -> None:
    images = make_images(tmp_path / "src", [(64, 64)])
    out = tmp_path / "p"
    out.mkdir()
    (out / "dataset.toml").write_text("mine\n")
    with pytest.raises(RenderError, match="dataset.toml"):
        build_project(images, out, article_recipe("training.resolution=64", "training.min_bucket_reso=64"))
    assert (out / "dataset.toml").read_text() == "mine\n"
    assert sorted(p.name for p in out.iterdir()) == ["dataset.toml"]  # nothing half-written


def test_dry_run_writes_nothing(tmp_path) -> None:
    images = make_images(tmp_path / "src", [(64, 64)])
    result = build_project(
        images, tmp_path / "p", article_recipe("training.resolution=64", "training.min_bucket_reso=64"), dry_run=True
    )
    assert "config.toml" in result.written and "img" in result.folders
    assert not (tmp_path / "p").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path) -> None:
    images = make_images(tmp_path / "src", [(64, 64)])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(RenderError, match="cannot write"):
            build_project(images, locked / "p", article_recipe())
    finally:
        locked.chmod(0o700)


def test_failed_write_removes_only_what_it_created(tmp_path, monkeypatch) -> None:
    images = make_images(tmp_path / "src", [(64, 64), (64, 64)])
    out = tmp_path / "p"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    import kohya_recipe.render.safewrite as safewrite

    calls = {"n": 0}
    real = safewrite.link_or_copy

    def flaky(src, dst, copy):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device", str(dst))
        real(src, dst, copy)

    monkeypatch.setattr(safewrite, "link_or_copy", flaky)
    with pytest.raises(RenderError, match="No space left on device"):
        build_project(images, out, article_recipe("training.resolution=64", "training.min_bucket_reso=64"))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in images.iterdir()) == ["img00.png", "img00.txt", "img01.png", "img01.txt"]


def test_bad_image_folders(tmp_path) -> None:
    with pytest.raises(DatasetError, match="image folder not found"):
        build_project(tmp_path / "nope", tmp_path / "p", article_recipe())
    (tmp_path / "parent" / "10_x").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images sd-scripts would read.*10_x"):
        build_project(tmp_path / "parent", tmp_path / "p", article_recipe())


def test_load_project_errors(tmp_path) -> None:
    with pytest.raises(RenderError, match="not a kohya-recipe project"):
        load_project(tmp_path)
    with pytest.raises(RenderError, match="project folder not found"):
        load_project(tmp_path / "missing")


def test_a_value_only_the_gui_cannot_hold_skips_the_gui_json_with_a_warning(tmp_path) -> None:
    images = make_images(tmp_path / "src", [(64, 64)])
    # vae_batch_size 64: sd-scripts takes it; the GUI's slider stops at 32 and has no way around it
    recipe = article_recipe("training.resolution=64", "training.min_bucket_reso=64", "extra.vae_batch_size=64")
    result = build_project(images, tmp_path / "p", recipe)
    assert (tmp_path / "p" / "config.toml").exists()
    assert not (tmp_path / "p" / "CharacterAI-1-A.json").exists()
    assert any("no kohya_ss GUI JSON written" in w and "extra.vae_batch_size" in w for w in result.warnings)


def test_render_without_images_warns_that_the_trainer_would_find_no_data(tmp_path) -> None:
    # sd-scripts ends "No data found" with exit code 0 (train_network.py NetworkTrainer.train); the render says so first.
    result = render_project(article_recipe(), tmp_path / "p")
    assert any("dataset.images is unset and img/10_CharacterAI woman/ holds no images" in w for w in result.warnings)
    make_images(tmp_path / "p" / "img" / "10_CharacterAI woman", [(64, 64)])
    assert not any("holds no images" in w for w in render_project(article_recipe(), tmp_path / "p").warnings)


def test_a_project_needs_an_output_name(tmp_path) -> None:
    from kohya_recipe.errors import RecipeError
    from kohya_recipe.recipe.loading import recipe_from_dict

    with pytest.raises(RecipeError, match="no output name: set subject.trigger"):
        render_project(recipe_from_dict({}), tmp_path / "p")
    assert not (tmp_path / "p").exists()


def _kohya_dir(base: Path) -> Path:
    """A kohya train_data_dir: 3_dk style (2 images), 5_other (1 image) and a folder sd-scripts skips."""
    make_images(base / "train" / "3_dk style", [(64, 64), (64, 80)])
    make_images(base / "train" / "5_other", [(64, 64)])
    make_images(base / "train" / "no repeats", [(64, 64)])
    return base / "train"


def test_build_from_a_kohya_train_data_dir_keeps_each_folder(tmp_path) -> None:
    recipe = article_recipe("training.resolution=64", "training.min_bucket_reso=64")
    result = build_project(_kohya_dir(tmp_path), tmp_path / "p", recipe)
    assert sorted(p.name for p in (tmp_path / "p" / "img").iterdir()) == ["3_dk style", "5_other"]
    assert result.plan.max_train_steps == (2 * 3 + 1 * 5) * 8
    assert result.notes[0] == "kept the repeats and class tokens of the kohya folder(s): 3_dk style, 5_other"
    from kohya_recipe.files import read_toml

    subsets = read_toml(tmp_path / "p" / "dataset.toml")["datasets"][0]["subsets"]
    assert subsets == [
        {"image_dir": "img/3_dk style", "num_repeats": 3, "class_tokens": "dk style"},
        {"image_dir": "img/5_other", "num_repeats": 5, "class_tokens": "other"},
    ]
    facts = read_facts(tmp_path / "p")
    assert facts is not None and [(s.folder, s.repeats) for s in facts.subsets] == [
        ("img/3_dk style", 3),
        ("img/5_other", 5),
    ]
    assert plan_project(tmp_path / "p").max_train_steps == result.plan.max_train_steps


def test_build_from_one_repeats_folder_keeps_its_repeats_unless_the_user_sets_them(tmp_path) -> None:
    folder = _kohya_dir(tmp_path) / "3_dk style"
    recipe = article_recipe("training.resolution=64", "training.min_bucket_reso=64")
    kept = build_project(folder, tmp_path / "a", recipe)
    assert (tmp_path / "a" / "img" / "3_dk style").is_dir() and kept.plan.max_train_steps == 2 * 3 * 8
    replaced = build_project(folder, tmp_path / "b", recipe, repeats_given=True)
    assert (tmp_path / "b" / "img" / "10_dk style").is_dir() and replaced.plan.max_train_steps == 2 * 10 * 8
    assert replaced.notes[0] == "dataset.repeats = 10 (set by you) replaces the folders' own repeats (3_dk style)"


def test_repeats_given_reads_the_users_file_and_sets(tmp_path) -> None:
    from kohya_recipe.render.project import repeats_given

    own = tmp_path / "r.toml"
    own.write_text('preset = "likeness-sd15"\n[dataset]\nrepeats = 4\n', encoding="utf-8")
    bare = tmp_path / "bare.toml"
    bare.write_text('preset = "likeness-sd15"\n', encoding="utf-8")
    assert repeats_given(own, ()) and not repeats_given(bare, ()) and not repeats_given(None, ())
    assert repeats_given(None, ("dataset.repeats=2",)) and repeats_given(bare, ("dataset.repeats=2",))
