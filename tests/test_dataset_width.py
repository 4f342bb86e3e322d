"""`plan`, `check` and `caption show` fit an 80-column terminal; their --json output does not depend on the width.

Run on the bundled example built into a project (the article's 42 images) and on a dataset whose file names are
as long as a file system allows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.cells import cell_len

from kohya_recipe.errors import ExitCode
from tests._cli_util import run_cli
from tests._dataset_util import image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "CharacterAI"
COLUMNS = 80


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("width")
    project = tmp / "CharacterAI"
    code, _out, err = run_cli(
        "build", EXAMPLE, "--preset", "likeness-sd15", "--trigger", "CharacterAI", "--class", "woman", "--out", project
    )
    assert code == 0, err
    folder = tmp / "long" / "img" / "10_Zed woman"
    for i, size in enumerate([(640, 768), (768, 768), (512, 900)]):
        stem = f"{i}_" + "very long name of a picture saved from a browser " * 4 + "z" * 40
        image(folder / f"{stem[:250]}.png", size, color=i)
        if i < 2:  # the last one has no caption: `caption show` names it in full, `check` lists it
            (folder / f"{stem[:250]}.txt").write_text("1girl, Zed, dark skin, braided hair, a rather long tag list\n")
    recipe = tmp / "recipe.toml"
    recipe.write_text('[subject]\ntrigger = "Zed"\n')
    return {"project": project, "long": folder.parent, "long_subset": folder, "recipe": recipe}


CASES = [
    ("plan", "project"),
    ("check", "project"),
    ("check --decode", "project"),
    ("check --table all", "long"),
    ("caption show", "project"),
    ("caption show", "long"),
    ("plan RECIPE --images", "long_subset"),
]


def _argv(command: str, place: str, places: dict[str, Path]) -> list[str | Path]:
    words: list[str | Path] = [places["recipe"] if w == "RECIPE" else w for w in command.split()]
    if command.startswith("plan RECIPE"):
        return [*words, places[place]]
    return (
        [*words[:2], places[place], *words[2:]]
        if command.startswith("caption")
        else [words[0], places[place], *words[1:]]
    )


@pytest.mark.parametrize(("command", "place"), CASES)
def test_every_line_fits_80_columns(command: str, place: str, places: dict[str, Path]) -> None:
    code, out, err = run_cli(*_argv(command, place, places), env={"COLUMNS": str(COLUMNS)})
    assert code in (0, 3), err
    lines = out.splitlines()
    assert len(lines) > 5
    too_wide = [line for line in lines if cell_len(line) > COLUMNS]
    assert too_wide == [], "\n".join(too_wide)
    # Nothing lost that matters: cut cells end in an ellipsis, and no line is blank where a row should be.
    assert all(line.strip() or line == "" for line in lines)


@pytest.mark.parametrize(("command", "place"), CASES)
def test_json_does_not_depend_on_the_width(command: str, place: str, places: dict[str, Path]) -> None:
    argv = [*_argv(command, place, places), "--json"]
    narrow = run_cli(*argv, env={"COLUMNS": str(COLUMNS)})
    unset = run_cli(*argv, env={"COLUMNS": None})  # type: ignore[dict-item]
    assert narrow == unset and narrow[1].startswith("{")


def test_caption_edit_lines_fit_and_diffs_stay_whole(places: dict[str, Path]) -> None:
    folder = places["long_subset"]
    env = {"COLUMNS": str(COLUMNS)}
    code, out, _err = run_cli("caption", "add", "smile", "--match", "*.png", "--dir", folder, "--dry-run", env=env)
    assert code == ExitCode.ERROR  # a dry run, and the uncaptioned image failed: nothing was changed
    diff_lines = [line for line in out.splitlines() if line.startswith(("---", "+++"))]
    assert diff_lines and all(cell_len(line) > COLUMNS for line in diff_lines)  # a patch is never wrapped
    failed = [line for line in out.splitlines() if not line.startswith(("---", "+++", "@@", "-", "+", "\\"))]
    assert failed and all(cell_len(line) <= COLUMNS for line in failed)


def test_a_pipe_gets_whole_lines(places: dict[str, Path]) -> None:
    # No COLUMNS and no terminal: nothing is cut or wrapped, so scripts and logs keep every character.
    code, out, _err = run_cli("check", places["long"], "--table", "all", env={"COLUMNS": None})  # type: ignore[dict-item]
    assert code == 3  # the image without a caption
    names = sorted(p.name for p in places["long_subset"].glob("*.png"))
    assert all(f"10_Zed woman/{name}" in out for name in names)
    assert max(cell_len(line) for line in out.splitlines()) > 250
