"""Run one training command: tee its raw output to a log, show progress, stop it cleanly on Ctrl-C.

The trainer runs in its **own process group** (a new session on POSIX). A Ctrl-C at the terminal therefore
reaches only kohya-recipe, which forwards SIGINT to the whole group (``accelerate launch`` and the
``train_network.py`` it started: the same thing the fixture ``interrupted`` did), waits for it to stop, then
sends SIGTERM, then SIGKILL. A second Ctrl-C skips to the next step. SIGTERM and SIGHUP sent to kohya-recipe
(a queue being stopped, an SSH session closing) are handled the same way, so no trainer is left holding the GPU.
Checkpoints already written are never touched.

Output is read from both pipes by two threads in chunks as it arrives, written unchanged to the log file, and fed
to :class:`~kohya_recipe.train.progress.ProgressParser` (bounded memory); the display
(:mod:`kohya_recipe.train.display`) is a live status line on a TTY, one line per epoch otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kohya_recipe.train.display import Display
from kohya_recipe.train.launch import LaunchCommand, TrainerNotFound, TrainerSetupError
from kohya_recipe.train.progress import ProgressParser, ProgressState, Stream

#: Seconds to wait after forwarding SIGINT before sending SIGTERM, and after SIGTERM before SIGKILL.
INTERRUPT_GRACE = 30.0
TERMINATE_GRACE = 10.0
#: The raw log stops growing after this many bytes (a trainer stuck printing must not fill the disk).
LOG_LIMIT = 1 << 30
_READ_SIZE = 64 * 1024


@dataclass
class RunResult:
    """What happened to the process; :mod:`kohya_recipe.train.outcome` judges it."""

    exit_code: int | None
    interrupted: bool  # we were asked to stop it (Ctrl-C, SIGTERM, SIGHUP) and forwarded that
    state: ProgressState
    log_file: Path
    started_at: float
    ended_at: float
    signals_sent: list[str] = field(default_factory=list)
    log_truncated: bool = False


# ---------------------------------------------------------------------------------------------------------------
# process control


def _popen_kwargs() -> dict[str, Any]:
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"start_new_session": True}


def _signal_group(proc: subprocess.Popen[bytes], sig: str) -> None:
    """Send ``sig`` ("SIGINT", "SIGTERM", "SIGKILL") to the trainer's whole process group."""
    try:
        if os.name == "nt":
            if sig == "SIGINT":
                proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            elif sig == "SIGTERM":
                proc.terminate()
            else:
                proc.kill()
            return
        os.killpg(proc.pid, getattr(signal, sig))
    except (ProcessLookupError, PermissionError, OSError):
        pass  # already gone


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    if os.name == "nt":
        return proc.poll() is None
    try:
        os.killpg(proc.pid, 0)
    except (ProcessLookupError, PermissionError, OSError):
        return False
    return True


class _Stopper:
    """Counts stop requests (signals to us) and escalates SIGINT → SIGTERM → SIGKILL on the trainer's group."""

    STEPS = ("SIGINT", "SIGTERM", "SIGKILL")

    def __init__(self, interrupt_grace: float, terminate_grace: float) -> None:
        self.requests = 0
        self.sent: list[str] = []
        self.deadline = 0.0
        self.graces = (interrupt_grace, terminate_grace, 0.0)

    def request(self, *_: Any) -> None:
        self.requests += 1

    def step(self, proc: subprocess.Popen[bytes], display: Display) -> None:
        if not self.requests:
            return
        level = len(self.sent)
        if level >= len(self.STEPS):
            return
        due = level < self.requests or time.monotonic() >= self.deadline
        if level == 0 or due:
            sig = self.STEPS[level]
            if level == 0:
                display.note("stopping the trainer (Ctrl-C again to terminate it now)…")
            else:
                display.note(f"the trainer did not stop; sending {sig}")
            _signal_group(proc, sig)
            self.sent.append(sig)
            self.deadline = time.monotonic() + self.graces[level]


def _install_handlers(handler: Any) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    names = ["SIGINT", "SIGTERM"] + (["SIGHUP"] if hasattr(signal, "SIGHUP") else [])
    for name in names:
        sig = getattr(signal, name)
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        try:
            signal.signal(sig, old)
        except (ValueError, OSError):
            pass


def open_log(path: Path) -> IO[bytes]:
    """Create the raw log file (never overwriting one); a one-line error if its folder is not writable."""
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise TrainerSetupError("cannot write the training log: not a folder", source=str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return path.open("xb", buffering=0)
    except FileExistsError:
        raise TrainerSetupError("log file already exists", source=str(path)) from None
    except OSError as exc:
        raise TrainerSetupError(
            f"cannot write the training log: {exc.strerror or exc}", source=str(exc.filename or path)
        ) from None


class _OutputPump:
    """Reads both pipes on two threads as output arrives: tees the raw bytes to the log (up to ``log_limit``),
    feeds the parser and the display. ``lock`` guards the parser, the display and the log."""

    def __init__(self, log: IO[bytes], display: Display, log_limit: int) -> None:
        self.log = log
        self.display = display
        self.log_limit = log_limit
        self.parser = ProgressParser()
        self.lock = threading.Lock()
        self.written = 0
        self.truncated = False
        self.done = threading.Event()  # both pipes at EOF: the trainer exited (or closed them)
        self._finished = 0
        self._threads: list[tuple[threading.Thread, IO[bytes]]] = []
        self._in_hand = {"stdout": False, "stderr": False}  # a reader holds a chunk it has not fed yet

    def start(self, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        for stream, pipe in (("stdout", stdout), ("stderr", stderr)):
            thread = threading.Thread(target=self._pump, args=(stream, pipe), name=f"trainer-{stream}", daemon=True)
            self._threads.append((thread, pipe))
            thread.start()

    def _pump(self, stream: Stream, pipe: IO[bytes]) -> None:
        try:
            self._read(stream, pipe)
        finally:
            with self.lock:
                self._finished += 1
                if self._finished == 2:
                    self.done.set()

    def _read(self, stream: Stream, pipe: IO[bytes]) -> None:
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, _READ_SIZE)
            except OSError:
                break
            if not chunk:
                break
            self._in_hand[stream] = True
            with self.lock:
                self._write_log(chunk)
                self.display.raw(stream, chunk)
                events = self.parser.feed(stream, chunk)
                if events:
                    self.display.update(events, self.parser.state)
                self._in_hand[stream] = False

    def draining(self) -> bool:
        """Whether a reader still has output to feed: a chunk in hand, or bytes waiting in its pipe. While the
        trainer's group is gone, this tells readers that are merely behind (a busy machine) from readers
        blocked on a pipe some detached process keeps open."""
        if any(self._in_hand.values()):
            return True
        return any(thread.is_alive() and _bytes_waiting(pipe) > 0 for thread, pipe in self._threads)

    def _write_log(self, chunk: bytes) -> None:
        if self.written >= self.log_limit:
            return
        part = chunk[: self.log_limit - self.written]
        self.log.write(part)
        self.written += len(part)
        if self.written >= self.log_limit:
            self.truncated = True
            self.log.write(b"\n[kohya-recipe: log truncated here; the trainer kept printing]\n")

    def close(self) -> None:
        """Join the readers, parse what is left, close the log and finish the display."""
        for thread, _ in self._threads:
            thread.join(1.0)
        with self.lock:
            for thread, pipe in self._threads:
                if not thread.is_alive():  # a reader still blocked in read() keeps its pipe (closing frees the fd)
                    pipe.close()
            events = self.parser.close()
            if events:
                self.display.update(events, self.parser.state)
            self.log.close()
            self.display.finish(self.parser.state)


def _bytes_waiting(pipe: IO[bytes]) -> int:
    """Bytes waiting in ``pipe`` (``FIONREAD``); -1 where that cannot be asked (Windows, a closed pipe)."""
    try:
        import fcntl
        import termios
    except ImportError:  # Windows
        return -1
    buf = bytearray(4)
    try:
        fcntl.ioctl(pipe.fileno(), termios.FIONREAD, buf)
    except (OSError, ValueError):
        return -1
    return int.from_bytes(buf, sys.byteorder)


def _start(cmd: LaunchCommand, log: IO[bytes], log_file: Path) -> subprocess.Popen[bytes]:
    """Start the trainer in its own process group, both output pipes read by us."""
    try:
        return subprocess.Popen(
            cmd.argv,
            cwd=str(cmd.cwd),
            env=cmd.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **_popen_kwargs(),
        )
    except OSError as exc:
        log.close()
        log_file.unlink(missing_ok=True)  # created by us for this run, still empty: leave nothing behind
        raise TrainerNotFound(f"cannot start the trainer: {exc.strerror or exc}", source=cmd.argv[0]) from None


def _wait_for_exit(proc: subprocess.Popen[bytes], pump: _OutputPump, stopper: _Stopper, display: Display) -> None:
    """Wait until the trainer's group has exited, ticking the display and escalating stop requests."""
    orphan_since: float | None = None
    while True:
        try:
            if pump.done.wait(0.1):
                # EOF on both pipes: normally the whole group has exited; reap the launcher
                if proc.poll() is None:
                    try:
                        proc.wait(timeout=0.1)
                    except subprocess.TimeoutExpired:
                        pass  # it closed its output but runs on: keep waiting (and forwarding signals)
                if proc.poll() is not None:
                    return
            elif proc.poll() is not None and not _group_alive(proc):
                # the whole group is gone, yet a pipe is still open. Readers that are only behind get all the
                # time they need (the trainer's last lines decide the outcome); a pipe with nothing left in it
                # for 2 s is held open by a detached grandchild.
                if pump.draining():
                    orphan_since = None
                else:
                    orphan_since = orphan_since or time.monotonic()
                    if time.monotonic() - orphan_since > 2.0:
                        return
            with pump.lock:
                display.tick(pump.parser.state)
                stopper.step(proc, display)
        except KeyboardInterrupt:  # handlers not installed (not the main thread) or raced: same meaning
            stopper.request()


def run_launch(
    cmd: LaunchCommand,
    log_file: Path,
    *,
    display: Display | None = None,
    interrupt_grace: float = INTERRUPT_GRACE,
    terminate_grace: float = TERMINATE_GRACE,
    log_limit: int = LOG_LIMIT,
    log_stream: IO[bytes] | None = None,
) -> RunResult:
    """Run ``cmd`` to the end (or until stopped) and return what happened. Raises only if it cannot start.

    The raw output goes to ``log_file`` (created here), or to ``log_stream`` when the caller opened it already
    (:func:`open_log`); it is closed at the end either way.
    """
    disp = display if display is not None else Display()
    log = log_stream if log_stream is not None else open_log(log_file)
    pump = _OutputPump(log, disp, log_limit)
    stopper = _Stopper(interrupt_grace, terminate_grace)
    started = time.time()
    proc = _start(cmd, log, log_file)
    assert proc.stdout is not None and proc.stderr is not None
    pump.start(proc.stdout, proc.stderr)
    disp.start()
    previous = _install_handlers(stopper.request)
    try:
        _wait_for_exit(proc, pump, stopper, disp)
    finally:
        _restore_handlers(previous)
        if proc.poll() is None:
            # only reached on an unexpected error in this loop: never leave a trainer running unattended
            _signal_group(proc, "SIGKILL")
            proc.wait()
    pump.close()
    return RunResult(
        exit_code=proc.returncode,
        interrupted=stopper.requests > 0,
        state=pump.parser.state,
        log_file=log_file,
        started_at=started,
        ended_at=time.time(),
        signals_sent=list(stopper.sent),
        log_truncated=pump.truncated,
    )
