"""The runner against the fake sd-scripts (tests/fake_sd_scripts): log tee, progress, Ctrl-C, hung trainers."""

from __future__ import annotations

import io
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from _train_util import FAKE_SD_SCRIPTS, Screen, fake_env, make_project

from kohya_recipe.render.project import load_project
from kohya_recipe.train.display import EpochLines, LiveBar, Passthrough, choose_display
from kohya_recipe.train.launch import TrainerSetupError, build_launch
from kohya_recipe.train.runner import open_log, run_launch

posix_only = pytest.mark.skipif(os.name == "nt", reason="process groups and signals are POSIX here")


def _command(tmp_path: Path, **sections):
    project = load_project(make_project(tmp_path, **sections))
    return project, build_launch(project, FAKE_SD_SCRIPTS, sys.executable)


def _interrupt_when(path: Path, timeout: float = 120.0) -> threading.Thread:
    """Send SIGINT to this process (as a terminal's Ctrl-C would) once ``path`` exists.

    Only then: a SIGINT after the run ended would hit pytest itself. The runs that use this are far longer than
    the wait (hundreds of epochs), so on a busy machine the run cannot finish before the signal arrives, and a
    passing test never waits longer than the first checkpoint takes."""

    def wait_and_kill() -> None:
        deadline = time.monotonic() + timeout
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if path.exists():
            os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=wait_and_kill, daemon=True)
    t.start()
    return t


def _group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_successful_run_tees_raw_output_and_parses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    project, cmd = _command(tmp_path)
    out = io.StringIO()
    result = run_launch(cmd, project.log_dir / "train-x.log", display=EpochLines(out))
    assert result.exit_code == 0 and not result.interrupted and result.signals_sent == []
    st = result.state
    assert (st.epoch, st.epochs, st.step, st.total_steps) == (3, 3, 18, 18)
    assert st.checkpoints_saved == [
        "model/testchar-1-A-000001.safetensors",
        "model/testchar-1-A-000002.safetensors",
        "model/testchar-1-A.safetensors",
    ]
    raw = result.log_file.read_bytes()
    # the log holds both streams unchanged, in the order their chunks arrived: stdout lines and the \r-separated
    # bar. A line may be split by the other stream: print() writes its text and its "\n" in two writes (with
    # PYTHONUNBUFFERED), and a stderr chunk can come in between, as on a terminal.
    assert b"\nsaving checkpoint: model/testchar-1-A.safetensors" in raw
    assert b"\rsteps: 100%|\xe2\x96\x88" in raw and b"INFO     model saved." in raw
    assert len(raw) == st.bytes_seen
    # epoch numbers and checkpoints come from stdout; each line shows the step at the end of its epoch and the
    # loss the bar showed at that step, however the two pipes' reads interleaved (tests/test_display.py)
    loss = r"avr_loss \d\.\d{3}"
    assert re.fullmatch(
        rf"epoch 1/3  step 6/18  {loss}  saved model/testchar-1-A-000001.safetensors\n"
        rf"epoch 2/3  step 12/18  {loss}  saved model/testchar-1-A-000002.safetensors\n"
        rf"epoch 3/3  step 18/18  {loss}  saved model/testchar-1-A.safetensors\n",
        out.getvalue(),
    ), out.getvalue()
    for line, step in zip(out.getvalue().splitlines(), (6, 12, 18), strict=True):
        assert float(line.split("avr_loss ")[1].split()[0]) == st.step_losses[step]


@posix_only
def test_ctrl_c_is_forwarded_to_the_group_and_keeps_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_env(monkeypatch, step_seconds=0.02)
    project, cmd = _command(tmp_path, training={"max_train_epochs": 500})
    _interrupt_when(project.model_dir / "testchar-1-A-000002.safetensors")
    notes = io.StringIO()
    result = run_launch(cmd, project.log_dir / "train-x.log", display=EpochLines(notes))
    # accelerate died of the forwarded SIGINT with a KeyboardInterrupt traceback, like the real launcher
    assert result.interrupted and result.signals_sent == ["SIGINT"]
    assert result.exit_code == -signal.SIGINT
    assert list(result.state.exceptions)[-1] == "KeyboardInterrupt"
    # and, as in fixture `interrupted`, tqdm closes the bar after the trainer's traceback: the last position
    # (the trainer and accelerate print their tracebacks at the same time into the same pipe, so accelerate's
    # lines may come between the trainer's traceback and its bar: the bar comes after a KeyboardInterrupt line)
    real = (Path(__file__).parent / "data" / "trainer" / "interrupted" / "stderr.txt").read_bytes()
    assert b"KeyboardInterrupt\n\rsteps: " in real
    raw = result.log_file.read_bytes()
    assert raw.find(b"\rsteps: ", raw.index(b"KeyboardInterrupt\n")) > 0
    assert "stopping the trainer" in notes.getvalue()
    saved = sorted(p.name for p in project.model_dir.glob("*.safetensors"))
    assert saved[:2] == ["testchar-1-A-000001.safetensors", "testchar-1-A-000002.safetensors"]
    assert "testchar-1-A.safetensors" not in saved
    assert result.state.epoch is not None and result.state.epoch < 500


@posix_only
def test_hung_trainer_gets_sigterm_then_sigkill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch, step_seconds=0.02, ignore_signals="int,term")
    project, cmd = _command(tmp_path, training={"max_train_epochs": 500})
    _interrupt_when(project.model_dir / "testchar-1-A-000001.safetensors")
    t0 = time.monotonic()
    result = run_launch(
        cmd, project.log_dir / "t.log", display=EpochLines(io.StringIO()), interrupt_grace=0.3, terminate_grace=0.3
    )
    # accelerate dies at SIGINT, but the trainer ignores SIGINT and SIGTERM and keeps the pipes open
    assert result.interrupted
    assert result.signals_sent == ["SIGINT", "SIGTERM", "SIGKILL"]
    assert time.monotonic() - t0 < 120  # 0.3 s graces, not the default 30 s + 10 s (slack for a busy machine)
    assert "testchar-1-A.safetensors" not in {p.name for p in project.model_dir.iterdir()}


@posix_only
def test_no_process_left_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch, step_seconds=0.02)
    project, cmd = _command(tmp_path, training={"max_train_epochs": 500})
    started: list[int] = []
    real_popen = __import__("subprocess").Popen

    def spy_popen(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc.pid)
        return proc

    monkeypatch.setattr("kohya_recipe.train.runner.subprocess.Popen", spy_popen)
    _interrupt_when(project.model_dir / "testchar-1-A-000001.safetensors")
    run_launch(cmd, project.log_dir / "t.log")
    assert started and _group_gone(started[0])


def test_binary_junk_and_a_flood_do_not_break_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch, junk="binary")
    project, cmd = _command(tmp_path)
    result = run_launch(cmd, project.log_dir / "junk.log")
    assert result.exit_code == 0 and result.state.step == 18
    assert result.log_file.stat().st_size > 64 * 1024

    fake_env(monkeypatch, junk="flood", flood_bytes=str(4 * 1024 * 1024))
    cmd = build_launch(project, FAKE_SD_SCRIPTS, sys.executable)  # the environment is taken when building
    result = run_launch(cmd, project.log_dir / "flood.log", log_limit=1024 * 1024)
    assert result.exit_code == 0 and result.state.step == 18  # parsing went on after the flood
    assert result.log_truncated
    assert result.state.dropped_bytes > 3 * 1024 * 1024
    size = result.log_file.stat().st_size
    assert 1024 * 1024 <= size < 1024 * 1024 + 200
    assert result.log_file.read_bytes().endswith(b"[kohya-recipe: log truncated here; the trainer kept printing]\n")


def test_log_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("a file where the log folder should be")
    with pytest.raises(TrainerSetupError) as exc:
        open_log(tmp_path / "log" / "train.log")
    assert str(exc.value) == f"{tmp_path / 'log'}: cannot write the training log: not a folder"
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "train.log").write_bytes(b"old")
    with pytest.raises(TrainerSetupError, match="log file already exists"):
        open_log(tmp_path / "logs" / "train.log")
    assert (tmp_path / "logs" / "train.log").read_bytes() == b"old"


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_unwritable_log_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(TrainerSetupError, match=r"cannot write the training log: Permission denied"):
            open_log(folder / "train.log")
    finally:
        folder.chmod(0o700)


def test_missing_interpreter_is_a_setup_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    project = load_project(make_project(tmp_path))
    cmd = build_launch(project, FAKE_SD_SCRIPTS, str(tmp_path / "no-python"))
    with pytest.raises(TrainerSetupError, match=r"no-python: cannot start the trainer: No such file or directory"):
        run_launch(cmd, project.log_dir / "t.log")
    assert not (project.log_dir / "t.log").exists()


def test_live_bar_on_a_tty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 18 steps of 0.05 s: the run spans several of the bar's 0.1 s redraws, so a frame with the bar is always drawn
    # (with instant steps the whole run could fit between two redraws: the test failed 1 run in 4)
    fake_env(monkeypatch, step_seconds=0.05)
    monkeypatch.setenv("COLUMNS", "200")  # rich sizes the live display from it (the 80-column case: test_display)
    project, cmd = _command(tmp_path)
    tty = _Tty()
    bar = choose_display(stream=tty)
    assert isinstance(bar, LiveBar)
    run_launch(cmd, project.log_dir / "t.log", display=bar)
    text = tty.getvalue()
    assert "\x1b[?25l" in text and text.endswith("\x1b[?25h\r\x1b[1A\x1b[2K")  # rich hid the cursor; line cleared
    screen = Screen().feed(text)
    # what stays on the terminal: one line per epoch (the live line is gone)
    assert [line.split("  avr_loss")[0] for line in screen.lines()] == [
        "epoch 1/3  step 6/18",
        "epoch 2/3  step 12/18",
        "epoch 3/3  step 18/18",
    ]
    assert screen.lines()[2].endswith("saved model/testchar-1-A.safetensors")
    assert any(re.match(r"epoch \d/3  \S+ +\d+/18 +\d+%  loss ", line) for line in screen.drawn)


def test_choose_display() -> None:
    assert type(choose_display(stream=io.StringIO())) is EpochLines  # not a TTY
    assert type(choose_display(quiet=True, stream=_Tty())) is EpochLines
    assert isinstance(choose_display(verbose=True), Passthrough)


def test_displays_of_a_resumed_run_count_the_epochs_trained_before() -> None:
    """Real output of the `resume` fixture (tests/data/trainer/resume, copied from
    ../shared/fixtures/sd-scripts-runs/resume): sd-scripts' bar restarts at 0 of the whole run's 24 steps and ends
    at 8/24; the displays show 16 + k of 24 and an ETA for the steps really left."""
    from kohya_recipe.train.progress import ProgressParser

    data = Path(__file__).parent / "data" / "trainer" / "resume"
    parser = ProgressParser()
    tty, lines = _Tty(), io.StringIO()
    bar, epochs = LiveBar(tty, min_interval=0.0), EpochLines(lines)
    for stream in ("stdout", "stderr"):
        events = parser.feed(stream, (data / f"{stream}.txt").read_bytes())
        bar.update(events, parser.state)
        epochs.update(events, parser.state)
    st = parser.state
    assert (st.step, st.total_steps) == (8, 24)  # the trainer's own numbers are kept for the record
    assert [p.text for p in bar.status(st)[0]] == ["epoch 3/3", "24/24 100%", "loss 1.110", "1.24s/it", "ETA 00:00"]
    epochs.finish(st)
    assert lines.getvalue() == "epoch 3/3  step 24/24  avr_loss 1.110  saved model/testchar-1-B.safetensors\n"
    # mid-epoch: 4 of the 8 resumed steps at 1.22 s/it -> 20/24, 4 steps (4.9 s) left, not tqdm's 00:24
    st.step, st.rate, st.remaining = 4, "1.22s/it", "00:24"
    parts, frac = bar.status(st)
    assert [p.text for p in parts][1:] == ["20/24  83%", "loss 1.110", "1.22s/it", "ETA 00:05"]
    assert frac == 20 / 24


@posix_only
def test_readers_that_are_behind_get_all_the_output_after_the_trainer_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer's group is gone but a reader has not caught up (its thread not scheduled for seconds on a
    busy machine): the trainer's last lines, which decide the outcome, must not be dropped as if a detached
    process held the pipe open."""
    from kohya_recipe.train.launch import LaunchCommand

    real_read = os.read
    delayed: list[str] = []

    def late_stderr_read(fd: int, size: int) -> bytes:
        name = threading.current_thread().name
        if name == "trainer-stderr" and not delayed:
            delayed.append(name)
            time.sleep(4.0)  # longer than the 2 s after which a silent open pipe counts as held by an orphan
        return real_read(fd, size)

    monkeypatch.setattr(os, "read", late_stderr_read)
    code = (
        "import sys\n"
        "for k in range(1, 201):\n"
        "    sys.stderr.write(f'\\rsteps: 50%|#   | {k}/200 [00:01<00:01, 1.00s/it, avr_loss=1.0]')\n"
        "sys.stderr.write('\\n')\n"
        "print('epoch 1/1', flush=True)\n"
    )
    cmd = LaunchCommand(argv=[sys.executable, "-c", code], env=dict(os.environ), cwd=tmp_path)
    result = run_launch(cmd, tmp_path / "t.log")
    assert delayed and result.exit_code == 0
    assert (result.state.step, result.state.total_steps, result.state.epoch) == (200, 200, 1)
    assert result.state.bytes_seen == (tmp_path / "t.log").stat().st_size


@posix_only
def test_a_detached_process_holding_the_pipe_does_not_hang_the_run(tmp_path: Path) -> None:
    from kohya_recipe.train.launch import LaunchCommand

    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
    )
    cmd = LaunchCommand(argv=[sys.executable, "-c", code], env=dict(os.environ), cwd=tmp_path)
    t0 = time.monotonic()
    result = run_launch(cmd, tmp_path / "t.log")
    try:
        assert result.exit_code == 0 and time.monotonic() - t0 < 30  # 2 s after the group is gone, not 60
    finally:
        os.kill(int((tmp_path / "t.log").read_text().split()[0]), signal.SIGKILL)
