"""The rules come from what the LoRA learns (subject.purpose): a likeness keeps the article's rules, a style wants
varied subjects and no shot list, a concept its tag in every caption and varied contexts (issue 15 item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kohya_recipe.cli.output import jsonable
from kohya_recipe.dataset.check import check_dataset
from kohya_recipe.dataset.format import format_report
from kohya_recipe.dataset.rules import PURPOSES, Rules, load_rules, rules_for
from kohya_recipe.errors import DatasetError
from kohya_recipe.recipe.loading import recipe_from_dict
from kohya_recipe.recipe.models import Recipe
from tests._cli_util import run_cli
from tests._dataset_util import dataset

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "CharacterAI"
# What the article's likeness rules say, which a style or a concept must not be told.
LIKENESS_ADVICE = ("close-ish to 40", "front portraits", "front views", "from side", "1girl, <trigger>, dark skin")


def purpose_recipe(purpose: str) -> Recipe:
    return recipe_from_dict({"subject": {"trigger": "Zed", "class_token": "hat", "purpose": purpose}}, source="test")


def messages(result) -> str:
    return "\n".join(f"{f.message} {f.fix}" for f in result.findings)


def test_every_purpose_has_rules_and_the_likeness_ones_are_the_articles() -> None:
    assert PURPOSES == ("likeness", "style", "concept")
    assert rules_for("likeness") == Rules()
    for purpose in PURPOSES:
        assert rules_for(purpose).purpose == purpose
    assert rules_for("style").shots == () == rules_for("concept").shots
    with pytest.raises(DatasetError, match="unknown purpose 'portrait' \\(known: likeness, style, concept\\)"):
        rules_for("portrait")


def test_a_style_built_from_the_example_gets_no_likeness_advice(tmp_path: Path) -> None:
    # The case: `build --preset style-sd15`, then `check` asked for the article's shot list, 42 close front
    # portraits and "1girl, <trigger>, dark skin" captions.
    project = tmp_path / "style"
    code, _out, err = run_cli("build", EXAMPLE, "--preset", "style-sd15", "--trigger", "CharacterAI", "--out", project)
    assert code == 0, err
    (project / "img" / "10_CharacterAI style" / "01-front.txt").write_text(
        "CharacterAI a portrait of a woman with braided hair in soft light.\n"
    )
    result = check_dataset(project)
    assert result.settings.purpose == "style" and result.rules.purpose == "style"
    assert result.shots == {} and not [f for f in result.findings if f.check == "shots"]
    text = messages(result)
    assert not [advice for advice in LIKENESS_ADVICE if advice in text], text
    assert "<trigger>, 1girl, city street, night, rain, ..." in text  # the sentence caption's fix: a style's example
    varied = next(
        f for f in result.findings if f.check == "tags" and f.severity == "warning" and "not varied" in f.message
    )
    assert "the same tags in at least 80% of the captions (subjects not varied): 1girl, 3D render" in varied.message
    assert varied.details()["1girl"] == "41 of 42 captions"  # the sentence is one long tag
    report = format_report(result, table="all")
    assert "Rules from kohya-recipe's defaults for a style" in report and "purpose style" in report
    assert "shots" not in report.splitlines()[report.splitlines().index("") + 1]  # no shots column
    assert jsonable(result)["rules_source"] == "kohya-recipe's defaults for a style"


def test_a_concept_wants_its_tag_everywhere_and_varied_contexts(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed hat"
    dataset(folder, 20, caption="Zed, hat, 1boy, outdoors")
    (folder / "img03.txt").write_text("hat, 1boy, indoors\n")  # no concept tag
    result = check_dataset(tmp_path / "img", recipe=purpose_recipe("concept"))
    trigger = next(f for f in result.findings if f.check == "trigger")
    assert trigger.severity == "warning" and [i.path for i in trigger.items] == ["10_Zed hat/img03.png"]
    contexts = next(f for f in result.findings if "contexts not varied" in f.message)
    assert contexts.severity == "warning"
    assert contexts.details() == {"1boy": "20 of 20 captions", "outdoors": "19 of 20 captions"}  # not hat: its class
    assert "show the concept in other contexts" in contexts.fix
    assert result.shots == {} and "the rules for a concept: 40" in messages(result)
    assert not [advice for advice in LIKENESS_ADVICE if advice in messages(result)]


def test_a_likeness_keeps_the_articles_rules(tmp_path: Path) -> None:
    folder = tmp_path / "img" / "10_Zed woman"
    dataset(folder, 3, caption="1girl, Zed, lipstick")
    for recipe in (purpose_recipe("likeness"), None):  # no recipe: the article's
        result = check_dataset(tmp_path / "img", recipe=recipe)
        assert result.rules == Rules() and "front" in result.shots
        text = messages(result)
        assert "close-ish to 40" in text and "shots of the article's list are missing" in text
        assert "tags in every caption besides the trigger: 1girl, lipstick" in text


def test_a_rules_file_overrides_the_purposes_defaults(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        '[count]\nmin = 2\n[tags]\nmax_share = 1.0\n[[shot]]\nname = "close-up"\ntags = ["close-up"]\nangle = false\n'
    )
    style = load_rules(rules_file, "style")
    assert style.count_min == 2 and style.count_ideal == rules_for("style").count_ideal  # the rest: a style's
    assert style.tag_max_share == 1.0 and [s.name for s in style.shots] == ["close-up"]
    assert style.source == str(rules_file) and style.purpose == "style"
    folder = tmp_path / "img" / "10_Zed hat"
    dataset(folder, 3, caption="Zed, 1girl, close-up")
    result = check_dataset(tmp_path / "img", recipe=purpose_recipe("style"), rules=rules_file)
    assert result.shots == {"front": 3, "close-up": 3}
    assert "the same tags in every caption" in messages(result)
    assert not [f for f in result.findings if f.check == "count" and f.severity == "warning"]
