"""CLI: `check` and `caption ...` — exit codes, messages, JSON, dry runs."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kohya_recipe.cli import cli, main
from kohya_recipe.errors import ExitCode
from tests._dataset_util import copy_article_mini, dataset, image, snapshot


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The real entry point (errors become `Error: ...` and an exit code there)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def train_dir(tmp_path: Path, n: int = 3, caption: str | None = "1girl, Zed, braided hair") -> Path:
    root = tmp_path / "img"
    dataset(root / "10_Zed woman", n, caption=caption)
    return root


# ----------------------------------------------------------------------------------------------------------
# check


def test_check_the_article_mini_images(tmp_path: Path) -> None:
    img = copy_article_mini(tmp_path)
    before = snapshot(img)
    result = run("check", str(img))
    assert result.exit_code == 0, result.output
    assert "Checked" in result.output and "(train_data_dir, 6 images)" in result.output
    assert "trigger 'testchar' (folder name '2_testchar woman')" in result.output
    assert "2_testchar woman/img00.png  128x160  PNG     704x832" in result.output
    assert result.output.rstrip().endswith("0 errors, 4 warnings, 4 info: OK")
    assert snapshot(img) == before


def test_check_fails_with_exit_3_on_errors(tmp_path: Path) -> None:
    root = train_dir(tmp_path)
    (root / "10_Zed woman" / "img01.txt").unlink()
    (root / "10_Zed woman" / "img02.txt").write_bytes(b"")
    result = run("check", str(root))
    assert result.exit_code == ExitCode.CHECK_FAILED == 3
    assert "ERROR   [captions] 1 image without a caption file (.txt)" in result.output
    assert "ERROR   [captions] 1 empty caption files (0 bytes): sd-scripts stops with 'caption file is empty'" in (
        result.output
    )
    assert "FAILED" in result.output


def test_check_fail_on_warning_and_json(tmp_path: Path) -> None:
    root = train_dir(tmp_path)
    assert run("check", str(root)).exit_code == 0
    assert run("check", str(root), "--fail-on", "warning").exit_code == 3
    result = run("check", str(root), "--json")
    data = json.loads(result.output)
    assert data["ok"] is True and data["summary"]["error"] == 0
    assert [i["path"] for i in data["images"]] == [f"10_Zed woman/img0{i}.png" for i in range(3)]
    assert data["settings"]["trigger"] == "Zed" and data["layout"]["subsets"][0]["repeats"] == 10


def test_check_json_is_the_library_result_as_utf8_json(tmp_path: Path) -> None:
    from kohya_recipe.cli.output import jsonable
    from kohya_recipe.dataset.check import check_dataset

    root = train_dir(tmp_path)  # 64x80 images are upscaled: "×2.56"-style details
    output = run("check", str(root), "--json").output
    # The one JSON printer (cli.output.echo_json) keeps non-ASCII text as is; before it was escaped (\u00d7).
    assert "×" in output and "\\u00d7" not in output
    assert json.loads(output) == jsonable(check_dataset(root))


def test_check_options_recipe_trigger_rules_decode_table(tmp_path: Path) -> None:
    root = train_dir(tmp_path)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        '[subject]\ntrigger = "Zed"\n[training]\nresolution = [64, 64]\nmin_bucket_reso = 64\n', encoding="utf-8"
    )
    rules = tmp_path / "rules.toml"
    rules.write_text("[count]\nmin = 1\n[resolution]\nmin_side = 32\n", encoding="utf-8")
    result = run("check", str(root), "--recipe", str(recipe), "--rules", str(rules), "--decode", "--table", "none")
    assert result.exit_code == 0, result.output
    assert f"Settings from {recipe}: resolution 64x64" in result.output
    assert "near-duplicates not searched" not in result.output
    assert "img00.png  64x80" not in result.output
    other = run("check", str(root), "--trigger", "Other")
    assert other.exit_code == 3 and "the trigger 'Other' (from --trigger) is in no caption" in other.output


def test_check_user_errors_are_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_main(capsys, "check", str(tmp_path / "missing"))
    assert code == 1 and err.strip() == f"Error: {tmp_path / 'missing'}: folder not found"
    root = train_dir(tmp_path)
    bad_rules = tmp_path / "rules.toml"
    bad_rules.write_text("[count]\nminimum = 1\n", encoding="utf-8")
    code, _out, err = run_main(capsys, "check", str(root), "--rules", str(bad_rules))
    assert code == 1 and "Error: " in err and "count.minimum: unknown key" in err and "Traceback" not in err
    bad_recipe = tmp_path / "recipe.toml"
    bad_recipe.write_text("[training]\nmax_train_epochs = 0\n", encoding="utf-8")
    code, _out, err = run_main(capsys, "check", str(root), "--recipe", str(bad_recipe))
    assert code == 1 and "max_train_epochs" in err


def test_check_exit_code_through_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "img"
    dataset(root / "Zed woman", 2)  # no repeats prefix: sd-scripts would exit 0 with "No data found"
    code, out, _err = run_main(capsys, "check", str(root))
    assert code == 3 and "No data found" in out


def test_check_bad_files_no_traceback(tmp_path: Path) -> None:
    root = train_dir(tmp_path, n=2)
    folder = root / "10_Zed woman"
    (folder / "fake.png").write_text("not an image")
    (folder / "broken.png").symlink_to(folder / "gone.png")
    (folder / "img00.txt").write_bytes(b"\x00\x01junk")
    before = snapshot(root)
    result = run("check", str(root))
    assert result.exit_code == 3 and isinstance(result.exception, SystemExit)  # no other exception escaped
    assert "fake.png: not an image" in result.output and "broken.png: cannot open" in result.output
    assert "binary data" in result.output
    assert snapshot(root) == before


# ----------------------------------------------------------------------------------------------------------
# caption


def test_caption_init_dry_run_then_for_real(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 2, caption=None)
    (folder / "img01.txt").write_text("1girl, mine\n")
    dry = run("caption", "init", str(folder), "--base", "1girl, Zed, 3D render", "--dry-run")
    assert dry.exit_code == 0
    assert f"--- /dev/null\n+++ {folder / 'img00.txt'}\n@@ -0,0 +1 @@\n+1girl, Zed, 3D render\n" in dry.stdout
    assert "Dry run: 1 would be created, 1 skipped" in dry.stderr
    assert not (folder / "img00.txt").exists()
    real = run("caption", "init", str(folder), "--base", "1girl, Zed, 3D render")
    assert real.exit_code == 0
    assert f"created   {folder / 'img00.txt'}" in real.output
    assert "skipped" in real.output and "pass --force to replace it" in real.output
    assert (folder / "img01.txt").read_text() == "1girl, mine\n"
    forced = run("caption", "init", str(folder), "--base", "1girl, Zed", "--force", "--json")
    data = json.loads(forced.stdout)
    assert data["counts"]["updated"] == 2 and (folder / "img01.txt").read_text() == "1girl, Zed\n"


def test_caption_add_remove_with_dir_and_where(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    image(folder / "back_1.png")
    (folder / "back_1.txt").write_text("1girl, Zed, earrings")
    image(folder / "front_1.png", color=2)
    (folder / "front_1.txt").write_text("1girl, Zed, earrings")
    added = run("caption", "add", "from behind", "--match", "back_*.png", "--dir", str(folder))
    assert added.exit_code == 0 and "1 updated" in added.output
    removed = run("caption", "remove", "earrings", "--where", "from behind", "--match", "*.txt", "--dir", str(folder))
    assert removed.exit_code == 0
    assert (folder / "back_1.txt").read_text() == "1girl, Zed, from behind"
    assert (folder / "front_1.txt").read_text() == "1girl, Zed, earrings"
    dry = run("caption", "remove", "earrings", "--match", "front_1.txt", "--dir", str(folder), "--dry-run")
    assert "-1girl, Zed, earrings\n\\ No newline at end of file\n+1girl, Zed\n\\ No newline" in dry.stdout
    assert (folder / "front_1.txt").read_text() == "1girl, Zed, earrings"


def test_caption_edit_failures_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "imgs"
    image(folder / "a.png")
    (folder / "a.txt").write_bytes("café".encode("latin-1"))
    image(folder / "b.png", color=2)
    result = run("caption", "add", "x", "--match", "*.png", "--dir", str(folder))
    assert result.exit_code == ExitCode.ERROR
    assert "not UTF-8" in result.output and "left untouched" in result.output
    assert "b.png has no .txt caption" in result.output
    assert (folder / "a.txt").read_bytes() == "café".encode("latin-1")
    code, _out, err = run_main(capsys, "caption", "add", "x", "--match", "none*.png", "--dir", str(folder))
    assert code == 1 and "Error: --match 'none*.png': no file matches" in err


def test_caption_set_requires_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "imgs"
    img = image(folder / "a.png")
    assert run("caption", "set", str(img), "1girl, Zed").exit_code == 0
    code, _out, err = run_main(capsys, "caption", "set", str(img), "1girl, other")
    assert code == 1 and "exists with other tags ('1girl, Zed'); pass --force to replace it" in err
    assert (folder / "a.txt").read_text() == "1girl, Zed\n"
    assert run("caption", "set", str(img), "1girl, other", "--force").exit_code == 0
    assert (folder / "a.txt").read_text() == "1girl, other\n"


def test_caption_show(tmp_path: Path) -> None:
    img = copy_article_mini(tmp_path)
    result = run("caption", "show", str(img), "--top", "2")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "6 captions (.txt) for 6 images, 7 distinct tags, 4.5 tags per caption"
    # The tag table (text.format_table: a header, counts and shares right-aligned), the top 2 rows only.
    assert lines[1].split() == ["tag", "captions", "share"] and lines[2].split() == ["1girl", "6", "100%"]
    assert len(lines) == 4 and lines[2].endswith("  6   100%")
    data = json.loads(run("caption", "show", str(img), "--json").output)
    assert data["captions"] == 6 and data["tags"][-1] == {"tag": "upper body", "count": 1, "share": 0.1667}


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["caption"],
        ["caption", "init"],
        ["caption", "add"],
        ["caption", "remove"],
        ["caption", "set"],
        ["caption", "show"],
    ],
)
def test_every_command_has_help_with_examples(args: list[str]) -> None:
    result = run(*args, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output


def test_caption_help_lists_every_subcommand_with_its_whole_summary() -> None:
    # click cuts a docstring's summary at the first ". " ("e.g. ...") or at the line width with "...":
    # each subcommand carries a short_help that fits an 80-column listing whole.
    from kohya_recipe.cli.dataset import caption_group

    result = CliRunner().invoke(cli, ["caption", "--help"], terminal_width=80)
    assert result.exit_code == 0
    listing = result.output.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in listing] == ["add", "init", "remove", "set", "show"]
    for line in listing:
        name, summary = line.split(maxsplit=1)
        command = caption_group.commands[name]
        assert command.short_help and summary == command.short_help, line
        assert not summary.endswith("...") and summary.endswith(".")
    assert "Remove tags or tag globs ('* eyes') from matched captions." in result.output


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_for_large_folders_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from kohya_recipe.cli import output

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with output.progress("Checking images") as small:
        for done in range(1, 11):
            small(done, 10)
    assert terminal.getvalue() == ""  # a 10-image folder is done before a bar could be read
    total = output.PROGRESS_MIN_ITEMS
    with output.progress("Checking images") as large:
        for done in range(1, total + 1):
            large(done, total)
    assert "Checking images" in terminal.getvalue() and "100%" in terminal.getvalue()


def test_no_progress_bar_when_not_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kohya_recipe.cli import output

    bar = output._Bar
    monkeypatch.setattr(output, "_Bar", lambda label, on, _min_items: bar(label, on, 2))
    root = train_dir(tmp_path, n=3)
    result = run("check", str(root), "--table", "none")  # CliRunner's stderr is not a TTY
    assert "Checking images" not in result.stderr and result.exit_code == 0
