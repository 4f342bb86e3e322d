"""Following runs on Ray: one line per run (state, epoch, step, loss, ETA, node) from the run's own log.

Ray keeps each job's output on the node that ran it; kohya-recipe does not read it from there. Every run writes
its raw trainer output to ``PROJECT/log/train-<time>.log`` on the shared filesystem (:mod:`.runner`), so the
client reads the growing file of each running attempt and feeds the new bytes to the same
:class:`~kohya_recipe.train.progress.ProgressParser` a local ``train`` uses. On a terminal the lines are redrawn
in place (rich), cut to its width; otherwise a line is printed when a run changes state or epoch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from kohya_recipe.layout import LOG_DIR
from kohya_recipe.text import format_table
from kohya_recipe.train.eta import format_seconds
from kohya_recipe.train.progress import ProgressParser, ProgressState
from kohya_recipe.train.queuefile import QueueEntry

_READ_LIMIT = 16 << 20  # bytes read from one log per poll (a reattached long run catches up over a few polls)
_SLACK = 5.0  # seconds of clock difference tolerated between this client and the nodes' file times
HEADER = ["ID", "RUN", "STATE", "EPOCH", "STEP", "LOSS", "ETA", "NODE"]


class RunProgress:
    """The progress of one attempt, parsed from the newest ``train-*.log`` written since it was submitted."""

    def __init__(self, project: Path, since: float) -> None:
        self.folder = project / LOG_DIR
        self.since = since - _SLACK
        self.log: Path | None = None
        self.offset = 0
        self.parser = ProgressParser()

    def _newest_log(self) -> Path | None:
        try:
            logs = [(p.stat().st_mtime, p) for p in self.folder.glob("train-*.log") if p.is_file()]
        except OSError:
            return None
        fresh = [item for item in logs if item[0] >= self.since]
        return max(fresh)[1] if fresh else None

    def poll(self) -> ProgressState | None:
        """Read what the log gained since the last poll; the parsed state, or ``None`` before the log exists."""
        newest = self._newest_log()
        if newest is None:
            return None
        if newest != self.log:  # the attempt's log appeared (or a newer attempt started): start over
            self.log, self.offset, self.parser = newest, 0, ProgressParser()
        try:
            with newest.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read(_READ_LIMIT)
        except OSError:
            return self.parser.state
        self.offset += len(chunk)
        # The log holds both streams as they arrived; the parser reads each line the same either way, except
        # the run summary, which it takes from "stdout" only.
        self.parser.feed("stdout", chunk)
        return self.parser.state


def progress_cells(state: ProgressState | None, *, running: bool = True) -> list[str]:
    """EPOCH, STEP, LOSS and ETA (while ``running``) of a run; empty before its log says anything."""
    if state is None:
        return ["", "", "", ""]
    epoch = f"{state.epoch}/{state.epochs}" if state.epoch is not None and state.epochs else ""
    step, eta = "", ""
    if state.step is not None and state.total_steps:
        done = state.steps_before_this_run  # after --resume the bar restarts at 0 (see ProgressState)
        current = min(state.step + done, state.total_steps)
        step = f"{current}/{state.total_steps}"
        per_step = state.seconds_per_step
        if done and per_step is not None:
            eta = format_seconds((state.total_steps - current) * per_step)
        elif state.remaining and state.remaining != "?":
            eta = state.remaining
    loss = f"{state.avr_loss:.3f}" if state.avr_loss is not None else ""
    return [epoch, step, loss, eta if running else ""]


def state_label(entry: QueueEntry) -> str:
    if entry.on_ray:
        return {"RUNNING": "running", "PENDING": "waiting for GPU"}.get(entry.ray_status or "", "submitting")
    return entry.status


def _node(entry: QueueEntry) -> str:
    return (entry.ray_node or "").split(" ", 1)[0]


class Follower:
    """The progress of every followed run, keyed by entry and submission (a new attempt starts over)."""

    def __init__(self) -> None:
        self._runs: dict[tuple[int, str], RunProgress] = {}
        self._ended: set[tuple[int, str]] = set()
        self.states: dict[int, ProgressState | None] = {}

    def poll(self, entries: Iterable[QueueEntry]) -> None:
        for entry in entries:
            if entry.ray_job is None or entry.started is None:
                continue
            key = (entry.id, entry.ray_job)
            run = self._runs.get(key)
            if run is None:
                if not (entry.on_ray and entry.ray_status == "RUNNING"):
                    continue
                run = self._runs[key] = RunProgress(Path(entry.project), entry.started.timestamp())
            elif not entry.on_ray:
                if key in self._ended:
                    continue
                self._ended.add(key)  # one last read: the lines the run wrote before it ended
            self.states[entry.id] = run.poll()

    def row(self, entry: QueueEntry) -> list[str]:
        name = entry.name or Path(entry.project).name
        cells = progress_cells(self.states.get(entry.id), running=entry.on_ray)
        return [str(entry.id), name, state_label(entry), *cells, _node(entry)]


class FollowDisplay:
    """Plain lines: one per run when its state or epoch changes (a log file, a pipe, ``--quiet``)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.follower = Follower()
        self._shown: dict[int, tuple[str, str]] = {}

    def show(self, entries: list[QueueEntry], header: str) -> None:
        self.follower.poll(entries)
        for entry in entries:
            cells = self.follower.row(entry)
            key = (cells[2], cells[3])
            if self._shown.get(entry.id) == key:
                continue
            self._shown[entry.id] = key
            parts = [f"#{cells[0]} {cells[1]}", cells[2]]
            labels = ("epoch", "step", "loss", "ETA")
            parts += [f"{label} {value}" for label, value in zip(labels, cells[3:7], strict=True) if value]
            if cells[7] and entry.on_ray:
                parts.append(f"on {cells[7]}")
            if entry.last_error and not entry.on_ray:
                parts.append(entry.last_error)
            self._write(f"{time.strftime('%H:%M:%S')} " + "  ".join(parts))

    def note(self, message: str) -> None:
        self._write(message)

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class LiveFollowDisplay(FollowDisplay):
    """A table of the runs redrawn in place on a terminal (rich), cut to its width; notes print above it."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=self.stream, soft_wrap=False)
        self.live: Any = Live(console=self.console, auto_refresh=False, transient=False, redirect_stderr=False)
        self.live.start()

    def show(self, entries: list[QueueEntry], header: str) -> None:
        from rich.text import Text

        self.follower.poll(entries)
        width = max(self.console.width - 1, 40)
        table = format_table(HEADER, [self.follower.row(e) for e in entries], right={0}, width=width)
        self.live.update(Text("\n".join([header[:width], *table]), no_wrap=True, overflow="ellipsis"), refresh=True)

    def note(self, message: str) -> None:
        self.live.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        self.live.stop()


def follow_display(*, quiet: bool = False, stream: IO[str] | None = None) -> FollowDisplay:
    """The live table on a terminal; plain lines with ``quiet`` or when the stream is not a terminal."""
    out = stream if stream is not None else sys.stderr
    if not quiet and out.isatty():
        return LiveFollowDisplay(out)
    return FollowDisplay(out)
