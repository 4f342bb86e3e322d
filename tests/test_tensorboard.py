"""``kohya-recipe tensorboard`` (issue 15 item 9): the GUI button's command, built purely and run in the foreground;
a clear error without TensorBoard; Ctrl-C and SIGTERM leave no server behind. One test starts the real TensorBoard
on the real article-mini log and asks it for its runs over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from _cli_util import run_cli
from _report_util import materialise_run

import kohya_recipe.report.tensorboard as tb
from kohya_recipe.report.model import ReportError


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return materialise_run("article-mini", tmp_path)


def _fake_tensorboard(tmp_path: Path, body: str) -> Path:
    """An executable standing in for tensorboard: records its argv, then runs ``body``."""
    fake = tmp_path / "bin" / "tensorboard"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, signal, sys, time\n"
        f"out = {str(tmp_path / 'tb.json')!r}\n"
        "with open(out + '.tmp', 'w') as fh: json.dump({'argv': sys.argv[1:], 'pid': os.getpid()}, fh)\n"
        "os.replace(out + '.tmp', out)\n" + body  # whole, or not there
    )
    fake.chmod(0o755)
    return fake


def test_dry_run_prints_the_gui_command(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENSORBOARD_HOST", raising=False)
    monkeypatch.delenv("TENSORBOARD_PORT", raising=False)
    code, out, err = run_cli("tensorboard", run, "--dry-run", "--tensorboard", sys.executable)
    assert (code, err) == (0, "")
    assert out == f"{sys.executable} --logdir {run / 'log'} --host 127.0.0.1 --port 6006\n"
    code, out, _ = run_cli("tensorboard", run, "--dry-run", "--json", "--host", "0.0.0.0", "--port", "6007")
    data = json.loads(out)
    assert data["argv"][1:] == ["--logdir", str(run / "log"), "--host", "0.0.0.0", "--port", "6007"]
    assert data["url"] == "http://localhost:6007/" and data["log_dir"] == str(run / "log")


def test_environment_as_the_gui_reads_it(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENSORBOARD_HOST", "0.0.0.0")
    monkeypatch.setenv("TENSORBOARD_PORT", "7000")
    cmd = tb.tensorboard_command(run, executable=sys.executable)
    assert cmd.argv[-4:] == ["--host", "0.0.0.0", "--port", "7000"]
    assert tb.tensorboard_command(run, port=7001, host="::1", executable=sys.executable).argv[-4:] == [
        "--host",
        "::1",
        "--port",
        "7001",
    ]
    monkeypatch.setenv("TENSORBOARD_PORT", "http")
    with pytest.raises(ReportError, match=r"TENSORBOARD_PORT='http' is not a port number \(1-65535\)"):
        tb.tensorboard_command(run, executable=sys.executable)


def test_project_sweep_and_never_trained(run: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(run, sweep / "a")
    shutil.copytree(run, sweep / "b")
    assert tb.tensorboard_command(sweep, executable=sys.executable).log_dir == sweep  # TensorBoard finds both
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "config.toml").write_text('logging_dir = "logs"\n')
    code, out, err = run_cli("tensorboard", fresh, "--dry-run")
    assert (code, out) == (1, "")
    assert err == f"Error: {fresh}: no log folder (logs/) yet: has this run been trained?\n"
    (fresh / "logs").mkdir()
    code, out, err = run_cli("tensorboard", fresh, "--dry-run")
    assert code == 0 and f"Warning: {fresh / 'logs'}: no event files yet; TensorBoard shows them" in err


def test_not_installed_is_a_clear_error(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tb.find_tensorboard(search=[tmp_path]) is None
    monkeypatch.setattr(tb, "find_tensorboard", lambda executable=None: None)
    code, out, err = run_cli("tensorboard", run)
    assert (code, out) == (1, "")
    assert err == (
        "Error: TensorBoard is not installed: pip install 'kohya-recipe[tensorboard]', "
        "or give --tensorboard <sd-scripts venv>/bin/tensorboard\n"
    )
    code, out, _ = run_cli("tensorboard", run, "--dry-run")  # a dry run still shows what would run
    assert code == 0 and out.startswith("tensorboard --logdir ")
    code, _, err = run_cli("tensorboard", run, "--tensorboard", tmp_path / "nope")
    assert code == 1 and err == f"Error: {tmp_path / 'nope'}: not an executable tensorboard program\n"


def test_runs_in_the_foreground_and_passes_its_exit_code(run: Path, tmp_path: Path) -> None:
    fake = _fake_tensorboard(tmp_path, "sys.exit(3)\n")
    code, out, err = run_cli("tensorboard", run, "--tensorboard", fake, "--port", "6010")
    assert code == 3 and out == ""
    assert f"TensorBoard: http://127.0.0.1:6010/ (logs: {run / 'log'}); Ctrl-C to stop" in err
    assert "TensorBoard exited (3)." in err
    assert json.loads((tmp_path / "tb.json").read_text())["argv"] == [
        "--logdir",
        str(run / "log"),
        "--host",
        "127.0.0.1",
        "--port",
        "6010",
    ]


def _start(argv: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kohya_recipe", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell job is
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "tb.json").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGHUP, 128 + signal.SIGHUP)],
)
def test_ctrl_c_and_sigterm_stop_it(sig: int, code: int, run: Path, tmp_path: Path) -> None:
    """The signal reaches kohya-recipe only (not TensorBoard, which here ignores SIGINT): it is stopped anyway."""
    fake = _fake_tensorboard(
        tmp_path,
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (open({str(tmp_path / 'stopped')!r}, 'w').write('term'), "
        "sys.exit(0)))\n"
        "while True: time.sleep(0.1)\n",
    )
    proc = _start(["tensorboard", str(run), "--tensorboard", str(fake)], tmp_path)
    child = json.loads((tmp_path / "tb.json").read_text())["pid"]
    time.sleep(0.3)  # the handlers are in place once the fake has written its file and kohya-recipe waits
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "TensorBoard stopped." in err and "Traceback" not in err
    assert (tmp_path / "stopped").read_text() == "term" and _gone(child)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(tb.find_tensorboard() is None, reason="TensorBoard is not installed (kohya-recipe[tensorboard])")
def test_real_tensorboard_serves_the_run_and_stops_on_ctrl_c(run: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kohya_recipe", "tensorboard", str(run), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    runs = None
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2) as resp:
                    runs = json.loads(resp.read())
                    break
            except OSError:
                time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at a terminal reaches the whole foreground group
        _out, err = proc.communicate(timeout=60)
    assert runs == ["20261125233907/network_train"], err
    assert proc.returncode == 130 and "TensorBoard stopped." in err
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
