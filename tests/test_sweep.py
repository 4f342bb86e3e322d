"""Sweep expansion, versioned run names, the sweep.toml manifest and no-clobber writing
(kohya_recipe/train/sweep.py and sweepfile.py).

Recipes and images are made on the fly (tests/_queue_util.py); the naming follows the article's
``CharacterAI-1-A`` example (lora-training-article.txt, "Folder Configuration").
"""

from __future__ import annotations

from pathlib import Path

import pytest
import toml
from hypothesis import given
from hypothesis import strategies as st

from kohya_recipe.errors import RecipeError, RenderError
from kohya_recipe.files import tomllib
from kohya_recipe.recipe.loading import load_recipe
from kohya_recipe.train.sweep import (
    expand_grid,
    index_letter,
    letter_index,
    parse_grid,
    split_values,
    sweep_recipe_file,
    write_sweep,
)
from kohya_recipe.train.sweepfile import MANIFEST_NAME, load_sweep
from tests._queue_util import write_recipe

GRID = ["network_alpha=48,72,96", "max_train_epochs=8,10"]


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    return write_recipe(tmp_path)


@pytest.fixture
def recipe(recipe_file: Path):  # type: ignore[no-untyped-def]
    return load_recipe(recipe_file)


# ----------------------------------------------------------------------------------------------------------------
# Letters


@pytest.mark.parametrize(
    ("letter", "index"), [("A", 1), ("B", 2), ("Z", 26), ("AA", 27), ("AZ", 52), ("ZZ", 702), ("AAA", 703)]
)
def test_letters_count_like_spreadsheet_columns(letter: str, index: int) -> None:
    assert letter_index(letter) == index
    assert index_letter(index) == letter


def test_last_letter_the_recipe_accepts_is_zzz() -> None:
    assert index_letter(26 + 26**2 + 26**3) == "ZZZ"


@given(st.integers(min_value=1, max_value=26 + 26**2 + 26**3))
def test_letter_round_trip(n: int) -> None:
    assert letter_index(index_letter(n)) == n


# ----------------------------------------------------------------------------------------------------------------
# Parsing --grid


def test_split_values_keeps_bracketed_lists_and_quoted_commas_whole() -> None:
    assert split_values("48, 72 ,96") == ["48", "72", "96"]
    assert split_values("[512,512],[768,768]") == ["[512,512]", "[768,768]"]
    assert split_values('"a,b",c') == ['"a,b"', "c"]


def test_parse_grid_keeps_key_order() -> None:
    assert parse_grid(GRID) == {"network_alpha": ["48", "72", "96"], "max_train_epochs": ["8", "10"]}


def test_parse_grid_rejects_an_item_without_equals() -> None:
    with pytest.raises(RecipeError, match=r"^--grid: 'network_alpha' must be KEY=VALUE1,VALUE2"):
        parse_grid(["network_alpha"])


def test_parse_grid_rejects_a_key_given_twice() -> None:
    with pytest.raises(RecipeError, match=r"^--grid: network_alpha: given twice"):
        parse_grid(["network_alpha=1", "network_alpha=2"])


# ----------------------------------------------------------------------------------------------------------------
# expand_grid


def test_expand_grid_is_the_cartesian_product_with_versioned_names(recipe) -> None:  # type: ignore[no-untyped-def]
    runs = expand_grid(recipe, parse_grid(GRID))
    assert [r.name for r in runs] == [f"CharacterAI-1-{c}" for c in "ABCDEF"]
    assert [r.folder for r in runs] == [r.name for r in runs]
    # The first grid key varies slowest.
    assert [(r.settings["network.alpha"], r.settings["training.max_train_epochs"]) for r in runs] == [
        (48.0, 8),
        (48.0, 10),
        (72.0, 8),
        (72.0, 10),
        (96.0, 8),
        (96.0, 10),
    ]
    assert runs[3].grid_values == {"network_alpha": "72", "max_train_epochs": "10"}
    # Each run's recipe really holds its values and its name; everything else is the base recipe's.
    d = runs[3].recipe
    assert d is not None
    assert (d.network.alpha, d.training.max_train_epochs, d.output.output_name) == (72.0, 10, "CharacterAI-1-D")
    assert d.network.rank == recipe.network.rank == 96


def test_dotted_paths_and_sdscripts_names_are_the_same_setting(recipe) -> None:  # type: ignore[no-untyped-def]
    a = expand_grid(recipe, {"network.alpha": ["48", "72"]})
    b = expand_grid(recipe, {"network_alpha": ["48", "72"]})
    assert [r.settings for r in a] == [r.settings for r in b] == [{"network.alpha": 48.0}, {"network.alpha": 72.0}]


def test_letters_start_at_the_recipes_letter_and_go_past_z(recipe_file: Path) -> None:
    recipe = load_recipe(recipe_file, ["output.letter=Y", "output.major=3"])
    runs = expand_grid(recipe, {"training.seed": ["1", "2", "3", "4"]})
    assert [r.name for r in runs] == ["CharacterAI-3-Y", "CharacterAI-3-Z", "CharacterAI-3-AA", "CharacterAI-3-AB"]
    third = runs[2].recipe
    assert third is not None and third.output.letter == "AA"


def test_more_runs_than_letters_is_refused(recipe_file: Path) -> None:
    recipe = load_recipe(recipe_file, ["output.letter=ZZY"])
    with pytest.raises(RecipeError, match=r"^sweep: 3 runs starting at letter ZZY would need letters past ZZZ"):
        expand_grid(recipe, {"training.seed": ["1", "2", "3"]})


def test_unknown_grid_key_says_did_you_mean(recipe) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecipeError) as exc:
        expand_grid(recipe, {"network_alhpa": ["48", "72"]})
    assert str(exc.value) == "--grid: network_alhpa: unknown recipe key (did you mean 'network_alpha'?)"


def test_unknown_dotted_grid_key_says_did_you_mean(recipe) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        RecipeError,
        match=r"^--grid: training\.max_train_epoch: unknown recipe key \(did you mean "
        r"'training\.max_train_epochs'\?\)$",
    ):
        expand_grid(recipe, {"training.max_train_epoch": ["8"]})


@pytest.mark.parametrize("values", [[], [""], ["48", ""]])
def test_empty_grid_values_are_one_clear_error(recipe, values: list[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecipeError) as exc:
        expand_grid(recipe, {"network_alpha": values})
    assert str(exc.value) == "--grid: network_alpha: empty value; give KEY=VALUE1,VALUE2,... with no empty item"


def test_empty_values_from_the_command_line_form(recipe) -> None:  # type: ignore[no-untyped-def]
    for item in ("network_alpha=", "network_alpha=48,,72", "network_alpha=48,"):
        with pytest.raises(RecipeError, match=r"^--grid: network_alpha: empty value"):
            expand_grid(recipe, parse_grid([item]))


def test_no_grid_at_all_is_an_error(recipe) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecipeError, match=r"^sweep: give at least one --grid KEY=VALUE1,VALUE2"):
        expand_grid(recipe, {})


def test_a_repeated_value_is_refused(recipe) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecipeError, match=r"^--grid: network_alpha: value '48' is listed twice$"):
        expand_grid(recipe, {"network_alpha": ["48", "72", "48"]})


@pytest.mark.parametrize("key", ["output.letter", "output.major", "output.name", "output_name", "preset"])
def test_naming_keys_cannot_be_swept(recipe, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecipeError, match=rf"^--grid: {key}: cannot be swept: "):
        expand_grid(recipe, {key: ["1", "2"]})


def test_two_keys_for_the_same_setting_are_refused(recipe) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecipeError, match=r"^--grid: network\.alpha: names the same setting as --grid network_alpha"):
        expand_grid(recipe, {"network_alpha": ["48"], "network.alpha": ["72"]})


def test_a_value_the_recipe_rejects_names_the_run(recipe) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecipeError) as exc:
        expand_grid(recipe, {"max_train_epochs": ["8", "0"]})
    assert str(exc.value).startswith("sweep run CharacterAI-1-B (max_train_epochs=0): training.max_train_epochs: ")


def test_resolution_lists_and_extra_options(recipe) -> None:  # type: ignore[no-untyped-def]
    runs = expand_grid(recipe, parse_grid(["resolution=[512,512],768x640", "extra.min_snr_gamma=5,7"]))
    assert [r.settings["training.resolution"] for r in runs] == [[512, 512], [512, 512], [768, 640], [768, 640]]
    assert [r.settings["extra.min_snr_gamma"] for r in runs] == [5, 7, 5, 7]
    last = runs[3].recipe
    assert last is not None and last.extra == {"min_snr_gamma": 7}


# ----------------------------------------------------------------------------------------------------------------
# write_sweep and the manifest


def test_write_sweep_renders_one_project_per_run_and_a_manifest(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sweep"
    sweep = write_sweep(recipe, parse_grid(GRID), out, recipe_file=tmp_path / "recipe.toml")
    assert sorted(p.name for p in out.iterdir()) == [*(f"CharacterAI-1-{c}" for c in "ABCDEF"), MANIFEST_NAME]
    # Each project is a real render: sd-scripts' own TOML reader sees the run's values and name.
    cfg = toml.load(out / "CharacterAI-1-D" / "config.toml")
    flat = {k: v for section in cfg.values() if isinstance(section, dict) for k, v in section.items()}
    assert (flat["network_alpha"], flat["max_train_epochs"], flat["output_name"]) == (72.0, 10, "CharacterAI-1-D")
    assert sorted(p.name for p in (out / "CharacterAI-1-D" / "img").iterdir()) == ["10_CharacterAI woman"]

    data = tomllib.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert data["kind"] == "kohya-recipe sweep"
    assert data["base_output_name"] == "CharacterAI-1-A"
    assert data["recipe"] == str(tmp_path / "recipe.toml")
    assert data["grid"] == {"network_alpha": ["48", "72", "96"], "max_train_epochs": ["8", "10"]}
    assert data["runs"][3] == {
        "name": "CharacterAI-1-D",
        "folder": "CharacterAI-1-D",
        "settings": {"network.alpha": 72.0, "training.max_train_epochs": 10},
    }
    assert len(data["runs"]) == 6
    loaded = load_sweep(out / MANIFEST_NAME)
    assert [(r.name, r.folder, r.settings) for r in loaded.runs] == [(r.name, r.folder, r.settings) for r in sweep.runs]
    assert loaded.run_dir(loaded.runs[0]) == (out / "CharacterAI-1-A").absolute()


def test_the_same_sweep_can_be_written_again(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sweep"
    write_sweep(recipe, parse_grid(GRID), out)
    again = write_sweep(recipe, parse_grid(GRID), out)
    assert len(again.runs) == 6


def test_a_different_sweep_in_the_same_folder_is_refused(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sweep"
    write_sweep(recipe, parse_grid(GRID), out)
    before = (out / MANIFEST_NAME).read_bytes()
    with pytest.raises(RenderError, match=r"sweep\.toml: holds a different sweep \(other runs or settings\)"):
        write_sweep(recipe, parse_grid(["network_alpha=48,64"]), out)
    assert (out / MANIFEST_NAME).read_bytes() == before


def test_a_folder_the_sweep_did_not_write_is_refused_and_nothing_is_written(
    recipe,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "sweep"
    (out / "CharacterAI-1-C").mkdir(parents=True)
    (out / "CharacterAI-1-C" / "notes.txt").write_text("mine")
    with pytest.raises(RenderError) as exc:
        write_sweep(recipe, parse_grid(GRID), out)
    assert str(exc.value) == (
        f"{out / 'CharacterAI-1-C'}: exists and was not written by this sweep; use another --out, or --force"
    )
    assert sorted(p.name for p in out.iterdir()) == ["CharacterAI-1-C"]
    assert (out / "CharacterAI-1-C" / "notes.txt").read_text() == "mine"


def test_force_writes_into_a_foreign_folder_without_deleting_its_files(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sweep"
    (out / "CharacterAI-1-C").mkdir(parents=True)
    (out / "CharacterAI-1-C" / "notes.txt").write_text("mine")
    write_sweep(recipe, parse_grid(GRID), out, force=True)
    assert (out / "CharacterAI-1-C" / "config.toml").is_file()
    assert (out / "CharacterAI-1-C" / "notes.txt").read_text() == "mine"


def test_a_foreign_sweep_toml_is_not_overwritten(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sweep"
    out.mkdir()
    (out / MANIFEST_NAME).write_text('title = "my own file"\n')
    with pytest.raises(
        RenderError,
        match=r"not a sweep manifest written by `kohya-recipe sweep`.*refusing to "
        r"overwrite it \(use --force or another --out\)",
    ):
        write_sweep(recipe, parse_grid(GRID), out)
    assert (out / MANIFEST_NAME).read_text() == 'title = "my own file"\n'


def test_a_failed_render_removes_only_what_this_call_created(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from kohya_recipe.render.project import render_project

    out = tmp_path / "sweep"
    write_sweep(recipe, parse_grid(["network_alpha=48,72"]), out)  # A and B exist, ours
    calls: list[str] = []

    def flaky_render(run_recipe, target, force=False, **kw):  # type: ignore[no-untyped-def]
        calls.append(target.name)
        if target.name == "CharacterAI-1-C":
            raise RenderError("disk full", source=str(target))
        return render_project(run_recipe, target, force=force, **kw)

    with pytest.raises(RenderError, match="disk full"):
        write_sweep(recipe, parse_grid(["network_alpha=48,72,96"]), out, force=True, render=flaky_render)
    assert calls == ["CharacterAI-1-A", "CharacterAI-1-B", "CharacterAI-1-C"]
    # The earlier runs and their manifest stay; nothing of the failed call's new run is left.
    assert sorted(p.name for p in out.iterdir()) == ["CharacterAI-1-A", "CharacterAI-1-B", MANIFEST_NAME]
    assert [r.folder for r in load_sweep(out / MANIFEST_NAME).runs] == ["CharacterAI-1-A", "CharacterAI-1-B"]


def test_a_failed_first_sweep_leaves_no_output_folder(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def failing(run_recipe, target, force=False, **kw):  # type: ignore[no-untyped-def]
        target.mkdir(parents=True)
        (target / "half.toml").write_text("x = 1\n")
        raise KeyboardInterrupt

    out = tmp_path / "new" / "sweep"
    with pytest.raises(KeyboardInterrupt):
        write_sweep(recipe, parse_grid(GRID), out, render=failing)
    assert not out.exists()


def test_dry_run_writes_nothing_but_checks_conflicts(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sweep"
    sweep = write_sweep(recipe, parse_grid(GRID), out, dry_run=True)
    assert len(sweep.runs) == 6
    assert not out.exists()
    (out / "CharacterAI-1-A").mkdir(parents=True)
    with pytest.raises(RenderError, match="exists and was not written by this sweep"):
        write_sweep(recipe, parse_grid(GRID), out, dry_run=True)


def test_recipe_warnings_are_collected_once(recipe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Adafactor in relative-step mode ignores learning rates: sweeping one is worth a warning, said once.
    sweep = write_sweep(recipe, parse_grid(["learning_rate=1e-4,2e-4"]), tmp_path / "s", dry_run=True)
    lr_warnings = [w for w in sweep.warnings if "ignores learning_rate" in w]
    assert len(lr_warnings) == 1


def test_sweep_recipe_file_defaults_to_a_folder_named_after_the_runs(
    recipe_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = sweep_recipe_file(recipe_file, ["network_alpha=48,72"], sets=["training.seed=7"])
    assert sweep.path == tmp_path / "CharacterAI-1-sweep" / MANIFEST_NAME
    assert load_recipe(tmp_path / "CharacterAI-1-sweep" / "CharacterAI-1-B" / "resolved-recipe.toml").training.seed == 7


# ----------------------------------------------------------------------------------------------------------------
# load_sweep errors


def _manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / MANIFEST_NAME
    path.write_text(text, encoding="utf-8")
    return path


def test_load_sweep_reports_invalid_toml(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "kind = \n")
    with pytest.raises(RenderError, match=rf"^{path}: invalid TOML: .*line 1"):
        load_sweep(path)


def test_load_sweep_refuses_a_file_that_is_not_a_manifest(tmp_path: Path) -> None:
    path = _manifest(tmp_path, 'output_dir = "model"\n')
    with pytest.raises(RenderError, match=r"not a sweep manifest written by `kohya-recipe sweep`"):
        load_sweep(path)


@pytest.mark.parametrize("folder", ["../elsewhere", "/abs/path", "a/../../b"])
def test_load_sweep_refuses_run_folders_outside_the_manifest(tmp_path: Path, folder: str) -> None:
    path = _manifest(
        tmp_path,
        f'schema_version = 1\nkind = "kohya-recipe sweep"\n[[runs]]\nname = "x"\nfolder = "{folder}"\n',
    )
    with pytest.raises(RenderError, match=r"runs\[0\]\.folder: .* must be a folder name relative to the manifest"):
        load_sweep(path)


def test_load_sweep_needs_runs(tmp_path: Path) -> None:
    path = _manifest(tmp_path, 'schema_version = 1\nkind = "kohya-recipe sweep"\n')
    with pytest.raises(RenderError, match=rf"^{path}: runs: must list at least one run$"):
        load_sweep(path)
