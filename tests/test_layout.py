"""The project folder's names and its facts file."""

from __future__ import annotations

from pathlib import Path

from kohya_recipe.layout import FACTS, RESOLVED_RECIPE, ProjectFacts, SubsetFacts, is_project, read_facts, write_facts
from kohya_recipe.sdscripts.folders import parse_repeats_folder, repeats_folder_name


def _facts() -> ProjectFacts:
    return ProjectFacts(
        output_name="CharacterAI-1-A",
        trigger="CharacterAI",
        class_token="woman",
        family="sd15",
        script="train_network.py",
        caption_extension=".txt",
        max_train_epochs=8,
        save_every_n_epochs=1,
        subsets=(SubsetFacts("img/10_CharacterAI woman", 10, "CharacterAI woman"),),
        sample_prompts=("1girl, CharacterAI --w 512 --h 512 --s 35",),
        sampler="euler_a",
    )


def test_is_project(tmp_path: Path) -> None:
    assert not is_project(tmp_path)
    (tmp_path / RESOLVED_RECIPE).write_text("", encoding="utf-8")
    assert is_project(tmp_path)


def test_facts_round_trip(tmp_path: Path) -> None:
    write_facts(tmp_path, _facts())
    assert read_facts(tmp_path) == _facts()


def test_damaged_or_foreign_facts_read_as_none(tmp_path: Path) -> None:
    assert read_facts(tmp_path) is None
    path = tmp_path / FACTS
    path.parent.mkdir()
    for text in ("{", "[]", '{"version": 99}', '{"version": 1, "nope": 1}'):
        path.write_text(text, encoding="utf-8")
        assert read_facts(tmp_path) is None, text


def test_repeats_folder_parse_matches_sd_scripts() -> None:
    assert parse_repeats_folder("10_CharacterAI woman").repeats == 10
    assert parse_repeats_folder("10_a_b").class_tokens == "a_b"
    assert parse_repeats_folder("dk style").repeats is None
    assert not parse_repeats_folder("0_x").trained
    assert parse_repeats_folder(repeats_folder_name(3, "dk style")).class_tokens == "dk style"
