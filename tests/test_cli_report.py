"""``kohya-recipe report`` and ``inspect`` end to end: exit codes and messages, on the real runs (tests/data/runs,
from shared/fixtures/sd-scripts-runs) and on bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _report_util import materialise_runs, synthetic_rows, write_run
from click.testing import CliRunner

from kohya_recipe.cli import cli, main
from kohya_recipe.report.events import write_scalars


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return materialise_runs(tmp_path_factory.mktemp("runs"), ("article-mini", "interrupted", "validation"))


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Through the real entry point, which turns library errors into ``Error: ...`` and an exit code."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_report_table(runs: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(runs / "article-mini")])
    assert result.exit_code == 0, result.output
    assert "ranked by training loss (loss/epoch_average)" in result.output
    assert "pick: epoch 1 (best):" in result.output and "pick: epoch 4 (final):" in result.output
    assert "<lora:testchar-1-A-000001:0.8>" in result.output


def test_report_json_only_json_on_stdout(runs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "report",
            str(runs / "article-mini"),
            "--json",
            "--pick-best",
            "2",
            "--weight",
            "0.7",
            "--html",
            str(tmp_path / "r.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "kohya-recipe/report/1"
    assert [p["epoch"] for p in data["picks"]] == [1, 4]
    assert data["picks"][0]["a1111"].startswith(
        "1girl, testchar, braided hair, photo, realistic, 8K, HDR, <lora:testchar-1-A-000001:0.7>"
    )
    assert f"Wrote {tmp_path / 'r.html'}" in result.stderr
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_report_metric_and_z(runs: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(runs / "validation"), "--metric", "train", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["metric"]["tag"] == "loss/epoch_average"
    result = CliRunner().invoke(cli, ["report", str(runs / "article-mini"), "--z", "0.1", "--json"])
    assert [e["indistinguishable_from_best"] for e in json.loads(result.stdout)["epochs"]] == [
        True,
        False,
        False,
        False,
    ]


def test_report_plots_and_copy(runs: Path, tmp_path: Path) -> None:
    args = [
        "report",
        str(runs / "article-mini"),
        "--plots",
        str(tmp_path / "plots"),
        "--copy-to",
        str(tmp_path / "Lora"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"Wrote 3 plots to {tmp_path / 'plots'}" in result.output
    assert f"Copied: {tmp_path / 'Lora' / 'testchar-1-A-000001.safetensors'}" in result.output
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "learning_rate.png",
        "loss_epochs.png",
        "loss_steps.png",
    ]
    again = CliRunner().invoke(cli, [*args, "--force"])  # the plots are there now: replaced only with --force
    assert f"Already there: {tmp_path / 'Lora' / 'testchar-1-A.safetensors'}" in again.output


def test_copy_refuses_to_clobber(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Lora").mkdir()
    (tmp_path / "Lora" / "testchar-1-A.safetensors").write_bytes(b"mine")
    code, _out, err = run_main(["report", str(runs / "article-mini"), "--copy-to", str(tmp_path / "Lora")], capsys)
    assert code == 1
    assert err == (
        f"Error: {tmp_path / 'Lora' / 'testchar-1-A.safetensors'}: a different file is already there; "
        "not overwritten (use --force)\n"
    )
    assert (tmp_path / "Lora" / "testchar-1-A.safetensors").read_bytes() == b"mine"
    code, out, _ = run_main(
        ["report", str(runs / "article-mini"), "--copy-to", str(tmp_path / "Lora"), "--force"], capsys
    )
    assert code == 0 and "Replaced:" in out


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file or folder"),
        ("empty", "no TensorBoard event files (events.out.tfevents.*) in this folder or below it"),
        ("zero", "1 event file but no scalars in them yet"),
        ("other", "no sd-scripts loss scalars (loss/...); tags found: train/accuracy"),
        ("checkpoint", "is a checkpoint; use `kohya-recipe inspect` to read its metadata"),
    ],
)
def test_report_bad_input(
    setup: str, message: str, runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "x"
    if setup == "empty":
        target.mkdir()
    elif setup == "zero":
        target.mkdir()
        (target / "events.out.tfevents.1.h.1.0").write_bytes(b"")
    elif setup == "other":
        write_scalars(target / "events.out.tfevents.1.h.1.0", [("train/accuracy", 1, 0.9, 1.0)])
    elif setup == "checkpoint":
        target = runs / "article-mini" / "model" / "testchar-1-A.safetensors"
    code, out, err = run_main(["report", str(target)], capsys)
    assert code == 1 and out == ""
    assert err.startswith(f"Error: {target}") and message in err
    assert "Traceback" not in err


def test_report_truncated_log_is_partial(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    run = shutil.copytree(runs / "interrupted", tmp_path / "run")
    event = next((run / "log").rglob("events.out.tfevents.*"))
    data = event.read_bytes()
    event.write_bytes(data[:-30])  # the writer was killed mid-record
    code, out, _ = run_main(["report", str(run)], capsys)
    assert code == 0
    assert "file ends inside a record" in out and "pick: epoch 1 (best)" in out


def test_usage_errors() -> None:
    result = CliRunner().invoke(cli, ["report", ".", "--pick-best", "-1"])
    assert result.exit_code == 2 and "-1 is not in the range x>=0" in result.output
    result = CliRunner().invoke(cli, ["report", ".", "--metric", "accuracy"])
    assert result.exit_code == 2 and "'accuracy' is not one of 'auto', 'validation', 'train'" in result.output


def test_help_has_examples() -> None:
    for name in ("report", "inspect"):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "Examples:" in result.output
    assert (
        "kohya-recipe report ./CharacterAI --pick-best 2 --copy-to"
        in CliRunner().invoke(cli, ["report", "--help"]).output
    )


def test_inspect(runs: Path) -> None:
    f = runs / "article-mini" / "model" / "testchar-1-A-000003.safetensors"
    result = CliRunner().invoke(cli, ["inspect", str(f)])
    assert result.exit_code == 0
    assert "epoch                3 of 4, step 36" in result.output and "dim / alpha          1 / 0.75" in result.output
    assert "ss_session_id" not in result.output
    assert "    ss_session_id = 2466932462" in CliRunner().invoke(cli, ["inspect", str(f), "--all"]).output
    data = json.loads(CliRunner().invoke(cli, ["inspect", str(f), "--json"]).stdout)
    assert data["summary"]["epoch"] == 3 and data["metadata"]["ss_output_name"] == "testchar-1-A"


def test_inspect_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x80\x04\x95 pickle bytes of a .ckpt")
    code, _out, err = run_main(["inspect", str(bad)], capsys)
    assert code == 1 and err.startswith(f"Error: {bad}: not a safetensors file: the first 8 bytes give a header of")


def test_json_path_imports_nothing_heavy(runs: Path) -> None:
    """As a whole process, `report --json` must not load pandas, matplotlib, numpy, jinja2, pydantic or tensorboard
    (the 0.3 s budget, issue 6)."""
    code = (
        "import sys\n"
        "from kohya_recipe.cli import main\n"
        "try:\n"
        f"    main(['report', {str(runs / 'article-mini')!r}, '--json'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "heavy = sorted(m for m in ('pandas', 'matplotlib', 'numpy', 'jinja2', 'pydantic', 'tensorboard', 'PIL')\n"
        "               if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["name"] == "testchar-1-A"
    assert "HEAVY []" in out.stderr


def test_python_dash_m_whole_process(runs: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kohya_recipe", "report", str(runs / "validation"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [e["rank"] for e in data["epochs"]] == [1, 1, 1] and all(e["tied"] for e in data["epochs"])


def test_report_json_is_utf8(runs: Path) -> None:
    # Deliberate change (issue 11): the report is printed by cli.output.echo_json like every --json, so non-ASCII
    # text is written as UTF-8 where it used to be escaped (\u2014); the data are the same.
    result = CliRunner().invoke(cli, ["report", str(runs / "interrupted"), "--json"])
    assert result.exit_code == 0, result.output
    assert "— interrupted, or still training" in result.stdout and "\\u2014" not in result.stdout


def test_report_json_has_no_nan(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=3, steps_per_epoch=5)
    rows = [(t, s, float("nan") if t == "loss/epoch_average" and s == 3 else v, w) for t, s, v, w in rows]
    write_run(tmp_path / "log", rows)
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "log"), "--json", "--z", "inf"])
    assert result.exit_code == 0, result.output

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the JSON")

    data = json.loads(result.stdout, parse_constant=refuse)  # strict JSON: a diverged loss is null
    assert data["epochs"][2]["train_loss"] is None and data["metric"]["z"] is None


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize(
    ("command", "where", "message"),
    [
        ("report", "path", "not a folder or a regular file (a FIFO): give a run folder"),
        ("report", "event", "cannot read event file: not a regular file (a FIFO): reading it would block"),
        ("inspect", "path", "not a regular file (a FIFO): reading it would block or never end"),
    ],
)
def test_fifo_is_refused_not_a_hang(command: str, where: str, message: str, tmp_path: Path) -> None:
    """Issue 14 item 1: a FIFO given (or found) where a file is read is a one-line error, not a hang."""
    import os

    if where == "path":
        fifo = tmp_path / ("x.safetensors" if command == "inspect" else "run")
        target = fifo
    else:
        target = tmp_path / "log"
        fifo = target / "events.out.tfevents.1.h.1.0"
        target.mkdir()
    os.mkfifo(fifo)
    proc = subprocess.run(
        [sys.executable, "-m", "kohya_recipe", command, str(target)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"Error: {fifo}: ") and message in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_inspect_refuses_a_device(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    code, out, err = run_main(["inspect", "/dev/zero"], capsys)  # would read forever
    assert (code, out) == (1, "")
    assert err == "Error: /dev/zero: not a regular file (a device): reading it would block or never end\n"
    code, out, err = run_main(["report", "/dev/zero"], capsys)
    assert (code, out) == (1, "")
    assert err.startswith("Error: /dev/zero: not a folder or a regular file (a device)")


def _diverged_log(tmp_path: Path) -> Path:
    """A run whose loss turns NaN at step 4 of 5-step epochs and stays NaN (too high a learning rate)."""
    rows, _ = synthetic_rows(epochs=3, steps_per_epoch=5)
    rows = [
        (t, s, float("nan") if t.startswith("loss/") and (s >= 4 or t == "loss/epoch_average") else v, w)
        for t, s, v, w in rows
    ]
    write_run(tmp_path / "run" / "log", rows)
    return tmp_path / "run"


def test_diverged_run_exits_6_after_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15 item 8: the report says the run diverged, recommends nothing, and exits 6 (docs/exit-codes.md)."""
    run = _diverged_log(tmp_path)
    code, out, err = run_main(["report", str(run), "--html", str(tmp_path / "r.html")], capsys)
    assert code == 6
    assert "DIVERGED: the run diverged: the loss is nan from step 4, epoch 1" in out
    assert "no pick: the run diverged" in out and "<lora:" not in out
    assert (
        err
        == f"Error: {run}: the run diverged: the loss is nan from step 4, epoch 1 and every epoch's loss is NaN/inf, so no epoch is recommended (lower the learning rate; with fp16, try bf16 or fp32)\n"
    )
    assert "Diverged." in (tmp_path / "r.html").read_text()  # the HTML was still written
    code, out, err = run_main(["report", str(run), "--json"], capsys)
    assert code == 6 and json.loads(out)["diverged"]["step"] == 4 and json.loads(out)["picks"] == []
    assert err.startswith(f"Error: {run}: the run diverged")
    code, out, err = run_main(["report", str(run), "--copy-to", str(tmp_path / "Lora")], capsys)
    assert code == 6 and err.startswith(f"Error: {run}: the run diverged") and not (tmp_path / "Lora").exists()


def test_exit_code_6_is_documented() -> None:
    from kohya_recipe.errors import ExitCode

    assert ExitCode.RUN_DIVERGED == 6
    doc = (Path(__file__).parent.parent / "docs" / "exit-codes.md").read_text()
    assert "| 6 | `RUN_DIVERGED` |" in doc


# --- outputs never replace a user's file (issue 14 item 5) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "target"),
    [("--html", "my.html"), ("--csv", "epochs.csv"), ("--plots", "plots/loss_steps.png")],
)
def test_outputs_refuse_to_replace_a_file_without_force(
    option: str, target: str, runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / target
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text("my own notes")
    arg = str(tmp_path / "plots") if option == "--plots" else str(mine)
    # the other outputs asked for in the same command are not written either: nothing is written
    other = ["--csv", str(tmp_path / "other.csv")] if option != "--csv" else ["--html", str(tmp_path / "o.html")]
    code, _out, err = run_main(["report", str(runs / "article-mini"), option, arg, *other], capsys)
    assert code == 1
    assert err == f"Error: {mine}: already exists; not overwritten (use --force to replace it)\n"
    assert mine.read_text() == "my own notes"
    assert not (tmp_path / "other.csv").exists() and not (tmp_path / "o.html").exists()
    code, out, err = run_main(["report", str(runs / "article-mini"), option, arg, "--force"], capsys)
    assert code == 0, err
    assert mine.read_bytes() != b"my own notes"
    assert f"Wrote {arg}" in out or f"to {arg}" in out


def test_output_that_is_a_folder_or_fifo_is_refused(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    (tmp_path / "r.html").mkdir()
    code, _out, err = run_main(["report", str(runs / "article-mini"), "--html", str(tmp_path / "r.html")], capsys)
    assert code == 2 and f"'{tmp_path / 'r.html'}' is a directory" in err  # click's own check
    os.mkfifo(tmp_path / "f.csv")
    code, _out, err = run_main(
        ["report", str(runs / "article-mini"), "--csv", str(tmp_path / "f.csv"), "--force"], capsys
    )
    assert (code, err) == (1, f"Error: {tmp_path / 'f.csv'}: not a regular file; not replaced\n")


def test_csv_epoch_table(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv

    code, out, _err = run_main(["report", str(runs / "article-mini"), "--csv", str(tmp_path / "e.csv")], capsys)
    assert code == 0 and f"Wrote {tmp_path / 'e.csv'}" in out
    rows = list(csv.DictReader((tmp_path / "e.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0]["loss"] == rows[0]["train_loss"] and float(rows[0]["loss"]) == pytest.approx(1.039369, abs=1e-6)
    assert rows[0]["rank"] == "1" and rows[0]["picked"] == "best" and rows[3]["picked"] == "final"
    assert rows[0]["validation_loss"] == "" and rows[0]["steps"] == "12"
    assert rows[1]["samples"].endswith("testchar-1-A_e000002_00_20261125234204_42.png")
    assert rows[0]["checkpoint"].endswith("testchar-1-A-000001.safetensors") and rows[0]["confirmed"] == "True"


# --- the terminal: every line fits (issue 15 item 5) ----------------------------------------------------------------


def _widest(text: str) -> int:
    from rich.cells import cell_len

    return max(cell_len(line) for line in text.splitlines())


@pytest.mark.parametrize("name", ["article-mini", "interrupted", "validation", "sweep"])
def test_report_fits_80_columns(name: str, runs: Path, tmp_path: Path) -> None:
    import shutil

    path = runs / name
    if name == "sweep":
        path = tmp_path / "sweep"
        for run in ("article-mini", "interrupted", "validation"):
            shutil.copytree(runs / run, path / run)
    wide = CliRunner().invoke(cli, ["report", str(path)], env={"COLUMNS": "200"})
    narrow = CliRunner().invoke(cli, ["report", str(path)], env={"COLUMNS": "80"})
    assert wide.exit_code == narrow.exit_code == 0, narrow.output
    assert _widest(narrow.output) <= 80
    assert _widest(wide.output) > 80  # the check above is not empty: the long lines exist and were fitted
    # no number shows twice in a row of the epoch table (the ranking loss was also the "train" column)
    for line in narrow.output.splitlines():
        numbers = re.findall(r"\b\d+\.\d{6}\b", line)
        assert len(numbers) == len(set(numbers)), line


def test_report_json_is_not_cut(runs: Path) -> None:
    narrow = CliRunner().invoke(cli, ["report", str(runs / "article-mini"), "--json"], env={"COLUMNS": "40"})
    wide = CliRunner().invoke(cli, ["report", str(runs / "article-mini"), "--json"], env={"COLUMNS": "300"})
    assert narrow.stdout == wide.stdout and json.loads(narrow.stdout)["picks"][0]["a1111"].count("\n") == 2
