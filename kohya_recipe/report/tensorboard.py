"""Start TensorBoard on a run's logs, as the kohya_ss GUI's "Start tensorboard" button does.

The GUI (``kohya_gui/class_tensorboard.py`` ``TensorboardManager.start_tensorboard``) runs
``tensorboard --logdir <logging_dir> --host <TENSORBOARD_HOST> --port <TENSORBOARD_PORT>`` with 0.0.0.0 and 6006
as the defaults. The same command is built here (:func:`tensorboard_command`, a pure builder) and run in the
foreground (:func:`run_tensorboard`); the two environment variables are honoured too. One difference, on
purpose: the host defaults to 127.0.0.1, because TensorBoard serves the logs (and the sample prompts in them) to
anyone who can reach the port, and 0.0.0.0 is every network the machine is on; ``--host 0.0.0.0`` is one option
away.

TensorBoard is an extra (``pip install 'kohya-recipe[tensorboard]'``); sd-scripts' own venv has it as well (its
requirements list it), and ``--tensorboard`` can point there.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.errors import ExitCode
from kohya_recipe.report.events import find_event_files
from kohya_recipe.report.locate import locate_run
from kohya_recipe.report.model import ReportError
from kohya_recipe.report.sweep import find_sweep_runs

DEFAULT_HOST = "127.0.0.1"  # the GUI's is 0.0.0.0 (see the module docstring)
DEFAULT_PORT = 6006  # TensorBoard's and the GUI's
STOP_GRACE = 10.0  # seconds TensorBoard gets to stop after SIGTERM before it is killed
INSTALL_HINT = "pip install 'kohya-recipe[tensorboard]', or give --tensorboard <sd-scripts venv>/bin/tensorboard"


@dataclass
class TensorBoardCommand:
    """What :func:`run_tensorboard` runs: ``argv`` (a list, never a shell line), and where to look."""

    argv: list[str]
    log_dir: Path
    url: str
    warnings: list[str] = field(default_factory=list)

    __json_properties__ = ("command",)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def find_tensorboard(executable: str | Path | None = None, *, search: list[Path] | None = None) -> str | None:
    """The ``tensorboard`` program: ``executable`` if given, else the one installed beside this Python (a pipx or
    venv install is not on PATH), else the first on PATH (``search``: the folders to look in instead)."""
    if executable is not None:
        path = Path(executable).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    folders = search if search is not None else [Path(sys.executable).parent]
    for folder in folders:
        candidate = folder / ("tensorboard.exe" if os.name == "nt" else "tensorboard")
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("tensorboard") if search is None else None


def _log_dir(path: Path) -> tuple[Path, list[str]]:
    """The folder to show: the run's log folder, or a sweep folder (TensorBoard finds every run's logs below it)."""
    if not path.exists():
        raise ReportError("no such file or folder", source=str(path))
    if path.is_dir() and find_sweep_runs(path):
        return path, []
    src = locate_run(path)
    if src.log_dir is None:
        raise ReportError("the run logs nothing (no logging_dir / log_with in its config)", source=str(src.root))
    log_dir = src.log_dir.parent if src.log_dir.is_file() else src.log_dir  # an event file: its folder
    if not log_dir.is_dir():
        raise ReportError(f"no log folder ({log_dir.name}/) yet: has this run been trained?", source=str(src.root))
    warnings = []
    if not find_event_files(log_dir):
        warnings.append(f"{log_dir}: no event files yet; TensorBoard shows them as the trainer writes them")
    return log_dir, warnings


def tensorboard_command(
    path: str | Path,
    *,
    host: str | None = None,
    port: int | None = None,
    executable: str | Path | None = None,
    require_installed: bool = True,
) -> TensorBoardCommand:
    """The TensorBoard command for the run (or sweep) at ``path``. Host and port: the arguments, else
    ``TENSORBOARD_HOST``/``TENSORBOARD_PORT`` (as the GUI reads them), else 127.0.0.1 and 6006.

    Raises :class:`ReportError` when TensorBoard is not found (unless ``require_installed`` is False: a dry run
    then shows the plain ``tensorboard``)."""
    log_dir, warnings = _log_dir(Path(path))
    host = host or os.environ.get("TENSORBOARD_HOST") or DEFAULT_HOST
    if port is None:
        env_port = os.environ.get("TENSORBOARD_PORT", "")
        if env_port and not (env_port.isdigit() and 0 < int(env_port) < 65536):
            raise ReportError(f"TENSORBOARD_PORT={env_port!r} is not a port number (1-65535)")
        port = int(env_port) if env_port else DEFAULT_PORT
    program = find_tensorboard(executable)
    if program is None:
        if executable is not None:
            raise ReportError("not an executable tensorboard program", source=str(executable))
        if require_installed:
            raise ReportError(f"TensorBoard is not installed: {INSTALL_HINT}")
        program = "tensorboard"
    argv = [program, "--logdir", str(log_dir), "--host", host, "--port", str(port)]
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    return TensorBoardCommand(argv=argv, log_dir=log_dir, url=f"http://{shown}:{port}/", warnings=warnings)


class _Stop(Exception):
    """SIGTERM or SIGHUP to kohya-recipe while TensorBoard runs."""


def _raise_stop(signum: int, _frame: Any) -> None:
    raise _Stop(signum)


def run_tensorboard(cmd: TensorBoardCommand) -> int:
    """Run TensorBoard in the foreground until it exits; returns its exit code.

    Ctrl-C reaches TensorBoard too (same process group) and it stops; if it has not, it is terminated, then killed.
    SIGTERM/SIGHUP to kohya-recipe stop it the same way, so no server is left behind. After Ctrl-C the exit code
    is 130 (:attr:`ExitCode.INTERRUPTED`), after a signal 128 + its number.
    """
    try:
        proc = subprocess.Popen(cmd.argv)
    except OSError as exc:
        raise ReportError(f"cannot start TensorBoard: {exc.strerror or exc}", source=cmd.argv[0]) from None
    previous = {s: signal.signal(s, _raise_stop) for s in _STOP_SIGNALS}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        return int(ExitCode.INTERRUPTED)
    except _Stop as exc:
        _stop(proc)
        return 128 + int(exc.args[0])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


_STOP_SIGNALS = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=2.0)  # it got the terminal's SIGINT as well, and is stopping
        return
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        proc.wait()
