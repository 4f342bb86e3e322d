"""``kohya-recipe sweep`` and ``kohya-recipe queue add/list/run/remove`` through the real CLI entry point
(``kohya_recipe.cli.main``: errors become one ``Error: ...`` line and an exit code), plus ``python -m kohya_recipe
queue run`` killed mid-run in a subprocess and started again.

Training is the fake from tests/_queue_util.py, swapped in for ``kohya_recipe.train.run.train_project`` through
``kohya_recipe.train.runqueue.default_train``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest

import kohya_recipe.train.runqueue as queue_module
from kohya_recipe.cli import cli
from kohya_recipe.cli.queue import queue_group, sweep_cmd
from kohya_recipe.train.queue_edit import add_to_queue, list_queue
from kohya_recipe.train.queuefile import DONE, INTERRUPTED, PENDING, RUNNING
from tests._cli_util import run_cli
from tests._queue_util import PYTHON, FakeTrain, make_project, subprocess_env, wait_for, write_recipe

GRID = ["--grid", "network_alpha=48,72,96", "--grid", "max_train_epochs=8,10"]


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    return write_recipe(tmp_path)


@pytest.fixture
def qfile(tmp_path: Path) -> Path:
    return tmp_path / "queue.toml"


@pytest.fixture
def fake_train(monkeypatch: pytest.MonkeyPatch) -> FakeTrain:
    train = FakeTrain()
    monkeypatch.setattr(queue_module, "default_train", lambda: train)
    return train


def test_commands_are_wired_into_the_cli() -> None:
    ctx = click.Context(cli)
    assert cli.get_command(ctx, "sweep") is sweep_cmd
    assert cli.get_command(ctx, "queue") is queue_group


@pytest.mark.parametrize(
    "args",
    [["sweep"], ["queue"], ["queue", "add"], ["queue", "list"], ["queue", "run"], ["queue", "remove"]],
)
def test_every_command_has_help_with_examples(args: list[str]) -> None:
    code, out, _ = run_cli(*args, "--help")
    assert code == 0
    assert "Examples:" in out
    assert f"kohya-recipe {' '.join(args)}" in out


# ----------------------------------------------------------------------------------------------------------------
# sweep


def test_sweep_writes_runs_and_prints_them(recipe_file: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "sw"
    code, out, err = run_cli("sweep", recipe_file, *GRID, "--out", out_dir)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Wrote 6 runs of CharacterAI-1-A to {out_dir.absolute()}/ (sweep.toml):"
    assert lines[1].split() == ["RUN", "network.alpha", "training.max_train_epochs"]
    assert lines[2].split() == ["CharacterAI-1-A", "48", "8"]
    assert lines[7].split() == ["CharacterAI-1-F", "96", "10"]
    assert lines[8] == (f"Next: kohya-recipe queue add {out_dir.absolute() / 'sweep.toml'} && kohya-recipe queue run")
    assert (out_dir / "CharacterAI-1-F" / "config.toml").is_file()


def test_sweep_json(recipe_file: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli("sweep", recipe_file, *GRID, "--out", tmp_path / "sw", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["dry_run"] is False
    assert [r["name"] for r in data["runs"]] == [f"CharacterAI-1-{c}" for c in "ABCDEF"]
    assert data["runs"][4]["settings"] == {"network.alpha": 96.0, "training.max_train_epochs": 8}
    assert data["runs"][4]["project"] == str((tmp_path / "sw" / "CharacterAI-1-E").absolute())


def test_sweep_dry_run_writes_nothing(recipe_file: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli("sweep", recipe_file, *GRID, "--out", tmp_path / "sw", "--dry-run")
    assert code == 0
    assert out.startswith("Would write 6 runs of CharacterAI-1-A")
    assert "Next:" not in out
    assert not (tmp_path / "sw").exists()


def test_sweep_set_applies_to_every_run(recipe_file: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(
        "sweep", recipe_file, "--grid", "network_alpha=48,72", "--set", "training.seed=1234", "--out", tmp_path / "s"
    )
    assert code == 0, err
    for letter in "AB":
        assert "seed = 1234" in (tmp_path / "s" / f"CharacterAI-1-{letter}" / "config.toml").read_text()


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("network_alhpa=48,72", "Error: --grid: network_alhpa: unknown recipe key (did you mean 'network_alpha'?)"),
        ("network_alpha=", "Error: --grid: network_alpha: empty value; give KEY=VALUE1,VALUE2,... with no empty item"),
        (
            "network_alpha=48,,72",
            "Error: --grid: network_alpha: empty value; give KEY=VALUE1,VALUE2,... with no empty item",
        ),
        ("network_alpha", "Error: --grid: 'network_alpha' must be KEY=VALUE1,VALUE2,... (e.g. network_alpha=48,72,96)"),
        ("output.letter=B,C", "Error: --grid: output.letter: cannot be swept: the sweep hands out the letters itself"),
    ],
)
def test_sweep_bad_grid_is_one_line(recipe_file: Path, tmp_path: Path, grid: str, message: str) -> None:
    code, out, err = run_cli("sweep", recipe_file, "--grid", grid, "--out", tmp_path / "sw")
    assert code == 1
    assert err == message + "\n"
    assert out == ""
    assert not (tmp_path / "sw").exists()


def test_sweep_needs_a_grid(recipe_file: Path) -> None:
    code, _, err = run_cli("sweep", recipe_file)
    assert code == 2
    assert "Error: Missing option '--grid'." in err


def test_sweep_refuses_a_folder_it_did_not_write(recipe_file: Path, tmp_path: Path) -> None:
    (tmp_path / "sw" / "CharacterAI-1-B").mkdir(parents=True)
    code, _, err = run_cli("sweep", recipe_file, *GRID, "--out", tmp_path / "sw")
    assert code == 1
    assert err == (
        f"Error: {tmp_path / 'sw' / 'CharacterAI-1-B'}: exists and was not written by this sweep; use another "
        "--out, or --force\n"
    )
    code, _, err = run_cli("sweep", recipe_file, *GRID, "--out", tmp_path / "sw", "--force")
    assert code == 0, err


def test_sweep_a_project_folder_sweeps_its_resolved_recipe(tmp_path: Path) -> None:
    """Issue 15: `sweep ./CharacterAI-1-A` refused the folder and wanted its resolved-recipe.toml."""
    write_recipe(tmp_path)
    project = make_project(tmp_path, "A", "training.seed=7")
    out_dir = tmp_path / "sw"
    code, out, err = run_cli("sweep", project, "--grid", "network_alpha=48,96", "--out", out_dir, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["recipe"] == str(project / "resolved-recipe.toml")
    assert [r["name"] for r in data["runs"]] == ["CharacterAI-1-A", "CharacterAI-1-B"]
    assert "seed = 7" in (out_dir / "CharacterAI-1-B" / "config.toml").read_text(encoding="utf-8")
    not_a_project = tmp_path / "imgs"
    code, out, err = run_cli("sweep", not_a_project, "--grid", "network_alpha=48,96")
    assert (code, out) == (1, "")
    assert err == (
        f"Error: {not_a_project}: a folder, but not a kohya-recipe project (no resolved-recipe.toml); give a "
        "recipe file or a project folder\n"
    )


def test_sweep_missing_recipe(tmp_path: Path) -> None:
    code, _, err = run_cli("sweep", tmp_path / "nope.toml", "--grid", "network_alpha=1,2")
    assert code == 1
    assert err == f"Error: {tmp_path / 'nope.toml'}: file not found\n"


# ----------------------------------------------------------------------------------------------------------------
# queue add / list / remove


def test_queue_add_list_remove(tmp_path: Path, qfile: Path) -> None:
    write_recipe(tmp_path)
    a, b = make_project(tmp_path, "A"), make_project(tmp_path, "B")
    code, out, err = run_cli("queue", "add", a, b, "--queue-file", qfile)
    assert code == 0, err
    assert out.splitlines() == [f"Queued #1 CharacterAI-1-A  {a}", f"Queued #2 CharacterAI-1-B  {b}"]

    code, out, err = run_cli("queue", "add", a, "--queue-file", qfile)
    assert (code, out) == (0, "")
    assert err == f"Already queued as #1 (pending): {a}\n"

    code, out, _ = run_cli("queue", "list", "--queue-file", qfile)
    lines = out.splitlines()
    assert lines[0] == f"Queue {qfile}: 2 entries"
    assert lines[1].split() == ["ID", "STATUS", "TRIES", "RUN", "PROJECT", "LAST"]
    assert lines[2].split() == ["1", "pending", "0", "CharacterAI-1-A", str(a)]

    code, out, _ = run_cli("queue", "list", "--queue-file", qfile, "--json")
    data = json.loads(out)
    assert data["queue_file"] == str(qfile)
    assert [(e["id"], e["status"], e["project"]) for e in data["entries"]] == [
        (1, PENDING, str(a)),
        (2, PENDING, str(b)),
    ]

    code, out, _ = run_cli("queue", "remove", "1", "--queue-file", qfile)
    assert (code, out) == (0, "Removed #1 CharacterAI-1-A (pending)\n")
    assert [e.id for e in list_queue(qfile)] == [2]


def test_queue_file_from_the_environment(tmp_path: Path, qfile: Path) -> None:
    write_recipe(tmp_path)
    a = make_project(tmp_path, "A")
    code, _, err = run_cli("queue", "add", a, env={"KOHYA_RECIPE_QUEUE": str(qfile)})
    assert code == 0, err
    assert [e.project for e in list_queue(qfile)] == [str(a)]


def test_queue_list_empty(qfile: Path) -> None:
    code, out, _ = run_cli("queue", "list", "--queue-file", qfile)
    assert (code, out) == (0, f"The queue is empty ({qfile}).\n")
    assert not qfile.exists()  # reading never creates the file


def test_queue_add_bad_path(tmp_path: Path, qfile: Path) -> None:
    code, _, err = run_cli("queue", "add", tmp_path / "missing", "--queue-file", qfile)
    assert code == 1
    assert err == f"Error: {tmp_path / 'missing'}: no such project folder or sweep manifest\n"


def test_queue_remove_unknown_id(tmp_path: Path, qfile: Path) -> None:
    code, _, err = run_cli("queue", "remove", "4", "--queue-file", qfile)
    assert code == 1
    assert err == f"Error: {qfile}: no entry #4 (ids in the queue: none)\n"
    code, _, err = run_cli("queue", "remove", "x", "--queue-file", qfile)
    assert code == 2
    assert "'x' is not a valid integer" in err


def test_hand_edited_invalid_queue_file(tmp_path: Path, qfile: Path) -> None:
    write_recipe(tmp_path)
    add_to_queue([make_project(tmp_path, "A")], qfile)
    text = qfile.read_text(encoding="utf-8").replace("attempts = 0", "attempts = ", 1)
    qfile.write_text(text, encoding="utf-8")
    for args in (["list"], ["remove", "1"], ["run"], ["add", tmp_path / "CharacterAI-1-A"]):
        code, out, err = run_cli("queue", *args, "--queue-file", qfile)
        assert (code, out) == (1, "")
        assert err.startswith(f"Error: {qfile}: invalid TOML: ")
        assert err.endswith("the file was not changed, fix it by hand or move it away\n")
        assert err.count("\n") == 1 and "Traceback" not in err
        assert qfile.read_text(encoding="utf-8") == text


# ----------------------------------------------------------------------------------------------------------------
# queue run


def _queue_two(tmp_path: Path, qfile: Path) -> tuple[Path, Path]:
    write_recipe(tmp_path)
    a, b = make_project(tmp_path, "A"), make_project(tmp_path, "B")
    add_to_queue([a, b], qfile)
    return a, b


def test_queue_run_all_done(tmp_path: Path, qfile: Path, fake_train: FakeTrain) -> None:
    _queue_two(tmp_path, qfile)
    code, out, err = run_cli("queue", "run", "--queue-file", qfile, "--quiet", "--python", "/usr/bin/python3")
    assert code == 0, err
    assert out == ""
    assert err.splitlines()[0] == "queue: #1 CharacterAI-1-A: starting on all GPUs (attempt 1)"
    assert err.splitlines()[-1] == "Queue finished: 2 done, 0 failed."
    assert fake_train.kwargs[0] == {"quiet": True, "python": "/usr/bin/python3"}
    code, _, err = run_cli("queue", "run", "--queue-file", qfile)
    assert (code, err) == (0, "Nothing to run.\n")


def test_queue_run_failure_exits_4_after_running_the_rest(tmp_path: Path, qfile: Path, fake_train: FakeTrain) -> None:
    a, _ = _queue_two(tmp_path, qfile)
    fake_train.behaviour["CharacterAI-1-A"] = "raise"
    code, out, err = run_cli("queue", "run", "--queue-file", qfile, "--json")
    assert code == 4
    data = json.loads(out)
    assert data["failed"] == [1]
    assert [(e["id"], e["status"]) for e in data["ran"]] == [(1, "failed"), (2, DONE)]
    assert f"queue: #1 CharacterAI-1-A: failed: {a}: the trainer exited 0 without writing the final checkpoint" in err


def test_queue_run_exits_4_when_a_project_folder_is_gone(tmp_path: Path, qfile: Path, fake_train: FakeTrain) -> None:
    """Issue 14: an entry whose folder was deleted failed, yet `queue run` said "0 failed" and exited 0."""
    a, _ = _queue_two(tmp_path, qfile)
    shutil.rmtree(a)
    code, out, err = run_cli("queue", "run", "--queue-file", qfile)
    assert (code, out) == (4, "")
    assert err.splitlines()[0] == f"queue: #1 CharacterAI-1-A: failed: {a}: project folder not found"
    assert err.splitlines()[-1] == "Queue finished: 1 done, 1 failed."
    code, out, _ = run_cli("queue", "run", "--queue-file", qfile, "--json")
    assert (code, json.loads(out)["failed"]) == (0, [])  # nothing left to run; the failure was reported once


def test_queue_run_ctrl_c_exits_130(tmp_path: Path, qfile: Path, fake_train: FakeTrain) -> None:
    _queue_two(tmp_path, qfile)
    fake_train.behaviour["CharacterAI-1-A"] = "interrupt"
    code, _, err = run_cli("queue", "run", "--queue-file", qfile)
    assert code == 130
    assert err.splitlines()[-1] == (
        "Error: queue stopped; entry #1 CharacterAI-1-A is interrupted and continues on the next "
        "`kohya-recipe queue run`"
    )
    assert [e.status for e in list_queue(qfile)] == [INTERRUPTED, PENDING]
    code, out, _ = run_cli("queue", "list", "--queue-file", qfile)
    assert out.splitlines()[2].split()[:3] == ["1", "interrupted", "1"]


# ----------------------------------------------------------------------------------------------------------------
# `python -m kohya_recipe queue run`, killed and started again


def _runner_script(queue_file: Path) -> list[str]:
    # The real entry point (`python -m kohya_recipe`), with the slow fake training swapped in.
    code = (
        "import runpy, sys\n"
        "import kohya_recipe.train.runqueue as q\n"
        "from tests._queue_util import slow_train\n"
        "q.default_train = lambda: slow_train\n"
        f"sys.argv = ['kohya-recipe', 'queue', 'run', '--queue-file', {str(queue_file)!r}]\n"
        "runpy.run_module('kohya_recipe', run_name='__main__', alter_sys=True)\n"
    )
    return [PYTHON, "-c", code]


def test_killed_queue_run_continues_where_it_stopped(tmp_path: Path, qfile: Path, fake_train: FakeTrain) -> None:
    a, _ = _queue_two(tmp_path, qfile)
    proc = subprocess.Popen(_runner_script(qfile), env=subprocess_env(), stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (a / f"started-{proc.pid}").exists(), proc=proc), "queue run never started training"
        assert list_queue(qfile)[0].status == RUNNING
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    assert "queue: #1 CharacterAI-1-A: starting on all GPUs (attempt 1)" in proc.stderr.read()
    code, _, err = run_cli("queue", "run", "--queue-file", qfile)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("queue: #1 CharacterAI-1-A: left running by a runner that is gone (pid ")
    assert lines[0].endswith("resuming from its newest state folder")
    assert fake_train.calls == [("CharacterAI-1-A", True), ("CharacterAI-1-B", False)]
    code, out, _ = run_cli("queue", "list", "--queue-file", qfile, "--json")
    entries: list[dict[str, Any]] = json.loads(out)["entries"]
    assert [(e["status"], e["attempts"], e.get("resumed")) for e in entries] == [(DONE, 2, True), (DONE, 1, False)]


# ----------------------------------------------------------------------------------------------------------------
# The real training verb and the fake sd-scripts (tests/fake_sd_scripts, the train engineer's stand-in that
# writes sd-scripts' real file names, state folders and exit codes)


def _start_real_queue_run(qfile: Path, **popen: Any) -> subprocess.Popen[Any]:
    """``python -m kohya_recipe queue run --quiet`` on the fake sd-scripts, in a process of its own."""
    from tests._train_util import FAKE_SD_SCRIPTS

    argv = [PYTHON, "-m", "kohya_recipe", "queue", "run", "--queue-file", str(qfile)]
    argv += ["--sd-scripts", str(FAKE_SD_SCRIPTS), "--quiet"]
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([os.environ["PYTHONPATH"], env["PYTHONPATH"]])
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, **popen)


def test_real_queue_run_killed_and_resumed_with_the_fake_trainer(
    tmp_path: Path, qfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests._train_util import FAKE_SD_SCRIPTS, fake_env
    from tests._train_util import make_project as make_train_project

    # 40 epochs x 6 steps x 0.1 s: the kill comes right after epoch 1, but a busy CI machine must not let the run
    # finish first. The second, resumed run goes at full speed.
    fake_env(monkeypatch, step_seconds=0.1)
    slow = make_train_project(tmp_path, "slow", training={"save_state": True, "max_train_epochs": 40})
    quick = make_train_project(tmp_path, "quick")
    add_to_queue([slow, quick], qfile)
    stderr = tmp_path / "queue-run.err"
    with stderr.open("wb") as err_file:
        proc = _start_real_queue_run(qfile, stderr=err_file)
    state = slow / "model" / "testchar-1-A-000001-state"
    try:
        started = wait_for(lambda: (state / "train_state.json").is_file(), proc=proc)
        assert started, f"no epoch-1 state folder; queue run said: {stderr.read_text(errors='replace')[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (slow / "model" / "testchar-1-A.safetensors").exists()  # killed before the final checkpoint
    assert list_queue(qfile)[0].status == RUNNING

    fake_env(monkeypatch, step_seconds=0.0)
    code, out, err = run_cli(
        "queue", "run", "--queue-file", qfile, "--sd-scripts", FAKE_SD_SCRIPTS, "--quiet", "--json"
    )
    assert code == 0, err
    assert "queue: #1 testchar-1-A: left running by a runner that is gone" in err
    assert "resuming from model/testchar-1-A-0000" in err
    summary = json.loads(out)
    assert [(e["id"], e["status"]) for e in summary["ran"]] == [(1, DONE), (2, DONE)]
    first, second = list_queue(qfile)
    assert (first.attempts, first.resumed, second.attempts, second.resumed) == (2, True, 1, False)
    record = json.loads(Path(first.last_run or "").read_text(encoding="utf-8"))
    assert record["outcome"] == "success"
    assert record["resume"] is not None
    assert (slow / "model" / "testchar-1-A.safetensors").is_file()
    assert (quick / "model" / "testchar-1-A.safetensors").is_file()


def test_real_queue_run_ctrl_c_exits_130_and_resumes_next_time(
    tmp_path: Path, qfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests._train_util import FAKE_SD_SCRIPTS, fake_env
    from tests._train_util import make_project as make_train_project

    fake_env(monkeypatch, step_seconds=0.1)  # 40 epochs: far more than the time to Ctrl-C after epoch 1
    slow = make_train_project(tmp_path, "slow", training={"save_state": True, "max_train_epochs": 40})
    add_to_queue([slow], qfile)
    proc = _start_real_queue_run(qfile, stderr=subprocess.PIPE, text=True)
    try:
        state = slow / "model" / "testchar-1-A-000001-state" / "train_state.json"
        # stderr is a pipe read only at the end: --quiet writes one short line per epoch, far below its buffer
        assert wait_for(state.is_file, proc=proc), "no epoch-1 state folder"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err.splitlines()[-1] == (
        "Error: queue stopped; entry #1 testchar-1-A is interrupted and continues on the next `kohya-recipe queue run`"
    )
    entry = list_queue(qfile)[0]
    assert (entry.status, entry.last_outcome) == (INTERRUPTED, "interrupted")
    assert not (slow / "model" / "testchar-1-A.safetensors").exists()
    assert (slow / "model" / "testchar-1-A-000001.safetensors").is_file()  # checkpoints written so far are kept

    fake_env(monkeypatch, step_seconds=0.0)
    code, _, err = run_cli("queue", "run", "--queue-file", qfile, "--sd-scripts", FAKE_SD_SCRIPTS, "--quiet")
    assert code == 0, err
    assert "queue: #1 testchar-1-A: resuming the interrupted run from its newest state folder" in err
    entry = list_queue(qfile)[0]
    assert (entry.status, entry.attempts, entry.resumed) == (DONE, 2, True)
    assert (slow / "model" / "testchar-1-A.safetensors").is_file()


# ----------------------------------------------------------------------------------------------------------------
# special files (issue 14): a FIFO where a file is read is one line, never a hang


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifos_as_queue_and_sweep_inputs_are_one_line(tmp_path: Path) -> None:
    from tests._train_util import cli_process

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    special = "not a regular file (a FIFO): reading it would block or never end"
    kept = "the file was not changed, fix it by hand or move it away"
    write_recipe(tmp_path)
    project = make_project(tmp_path, "A")
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    os.mkfifo(sweep_dir / "sweep.toml")
    cases: list[tuple[list[str | Path], str]] = [
        (["queue", "list", "--queue-file", fifo], f"{fifo}: {special}; {kept}"),
        (["queue", "add", project, "--queue-file", fifo], f"{fifo}: {special}; {kept}"),
        (["queue", "run", "--queue-file", fifo], f"{fifo}: {special}; {kept}"),
        (["queue", "remove", "1", "--queue-file", fifo], f"{fifo}: {special}; {kept}"),
        (["queue", "add", fifo, "--queue-file", tmp_path / "q.toml"], f"{fifo}: {special}"),
        (["queue", "add", sweep_dir, "--queue-file", tmp_path / "q.toml"], f"{sweep_dir / 'sweep.toml'}: {special}"),
        (["sweep", fifo, "--grid", "network_alpha=1,2", "--dry-run"], f"{fifo}: {special}"),
    ]
    for args, message in cases:
        code, out, err = cli_process(*args)
        assert (code, out, err) == (1, "", f"Error: {message}\n"), args
    assert not (tmp_path / "q.toml").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifos_in_place_of_the_queue_lock_files(tmp_path: Path, qfile: Path) -> None:
    from tests._train_util import cli_process

    write_recipe(tmp_path)
    project = make_project(tmp_path, "A")
    os.mkfifo(f"{qfile}.lock")
    code, _, err = cli_process("queue", "add", project, "--queue-file", qfile)
    assert (code, err) == (
        1,
        f"Error: {qfile}.lock: not a regular file: a lock file must be one; remove it (it is only a lock file)\n",
    )
    Path(f"{qfile}.lock").unlink()
    add_to_queue([project], qfile)
    os.mkfifo(f"{qfile}.gpus.lock")
    code, _, err = cli_process("queue", "run", "--queue-file", qfile)
    assert (code, err) == (
        1,
        f"Error: {qfile}.gpus.lock: not a regular file: a lock file must be one; remove it (it is only a lock file)\n",
    )
    assert [e.status for e in list_queue(qfile)] == [PENDING]


def test_queue_add_list_remove_fit_80_columns(tmp_path: Path) -> None:
    """Issue 15 item 5: at 80 columns no line of `queue add`, `queue list` or `queue remove` is wider, even with
    deep project paths; --json is the same at any width."""
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "sweeps"
    deep.mkdir(parents=True)
    made = [make_project(deep, letter) for letter in "AB"]
    qf = tmp_path / "queue.toml"
    narrow = {"COLUMNS": "80"}
    outputs = [
        run_cli("queue", "add", *made, "--queue-file", qf, env=narrow),
        run_cli("queue", "add", made[0], "--queue-file", qf, env=narrow),  # "already queued" on stderr
        run_cli("queue", "list", "--queue-file", qf, env=narrow),
    ]
    wide_json = run_cli("queue", "list", "--queue-file", qf, "--json", env={"COLUMNS": "300"})[1]
    assert run_cli("queue", "list", "--queue-file", qf, "--json", env=narrow)[1] == wide_json
    outputs.append(run_cli("queue", "remove", "2", "--queue-file", qf, env=narrow))
    assert [code for code, _, _ in outputs] == [0, 0, 0, 0]
    listing = outputs[2][1]
    assert "CharacterAI-1-A" in listing and "CharacterAI-1-B" in listing
    lines = [line for _, out, err in outputs for line in (out + err).splitlines()]
    assert len(str(made[0])) > 80 and lines
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
