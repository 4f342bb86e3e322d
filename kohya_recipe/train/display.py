"""What ``train`` shows while sd-scripts runs: a live status line on a terminal, one line per epoch otherwise.

The runner (:mod:`kohya_recipe.train.runner`) feeds every display the parser's events and state as output
arrives (:class:`Display`). Three displays:

- :class:`EpochLines` (``--quiet``, or stderr is not a terminal: a log file, ``nohup``, cron): one plain line per
  finished epoch, ``epoch 2/4  step 24/48  avr_loss 1.130  saved model/<name>-000002.safetensors``. Nothing
  is cut or wrapped: a log keeps every character.
- :class:`LiveBar` (a terminal): rich's live display, one status line redrawn in place, the epoch lines
  printed above it. rich knows the terminal's width; the line gives up its least useful parts first (the
  bar, the speed, the loss) so that the position and the ETA are never cut. During sample generation it
  shows the sampling phase and its own progress, and its ETA counts the samples (:mod:`kohya_recipe.train.eta`).
- :class:`Passthrough` (``--verbose``): the trainer's raw output.

**Exact epoch lines.** stdout (``epoch e/E``, ``saving checkpoint:``) and stderr (the bar with its step and
loss) are two pipes read by two threads, so when stdout says epoch 2 began, the bar's last steps of epoch 1
may not have been read yet (or the bar may be into epoch 2 already). An epoch line therefore waits until the
bar has passed the epoch's last step (or stderr went on past it), and shows that step with the loss the bar
showed *at* that step. The step is known exactly because every run trains whole epochs (kohya-recipe always
passes ``max_train_epochs``); otherwise the latest step and loss are shown, as the bar had them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from kohya_recipe.train.eta import Eta, SampleSchedule, format_seconds
from kohya_recipe.train.progress import ProgressEvent, ProgressState

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType


class Display:
    """Receives parsed events; the base class shows nothing."""

    def plan(self, schedule: SampleSchedule) -> None:
        """The run's sample schedule (for an ETA that counts sampling)."""

    def start(self) -> None:
        pass

    def update(self, events: list[ProgressEvent], state: ProgressState) -> None:
        pass

    def raw(self, stream: str, data: bytes) -> None:
        pass

    def tick(self, state: ProgressState) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def finish(self, state: ProgressState) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------------
# one line per epoch


@dataclass
class _Epoch:
    text: str  # "e/E" from the `epoch e/E` line
    number: int
    saved: list[str] = field(default_factory=list)


def _loss(value: float | None) -> str:
    return f"avr_loss {value:.3f}" if value is not None else ""


class EpochLines(Display):
    """One line per finished epoch: what a log file or a cron mail wants (see the module docstring for how
    its step and loss are made exact)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._current: _Epoch | None = None
        self._ended: list[_Epoch] = []

    @staticmethod
    def _end_step(epoch: _Epoch, state: ProgressState) -> int | None:
        """The bar's step at the end of ``epoch`` (the bar restarts at 0 after --resume), when known."""
        per_epoch = state.steps_per_epoch
        if per_epoch is None or state.first_epoch is None:
            return None
        return (epoch.number - state.first_epoch + 1) * per_epoch

    def _ready(self, epoch: _Epoch, state: ProgressState) -> bool:
        end = self._end_step(epoch, state)
        if end is None:
            return True
        if state.step is None:
            return False
        return state.step > end or (state.step == end and state.bar_settled)

    def _line(self, epoch: _Epoch, state: ProgressState) -> str:
        step, loss = state.step, state.avr_loss
        end = self._end_step(epoch, state)
        if end is not None and step is not None and step >= end:
            step, loss = end, state.step_losses.get(end, loss if step == end else None)
        parts = [f"epoch {epoch.text}"]
        if step is not None and state.total_steps:
            parts.append(f"step {min(step + state.steps_before_this_run, state.total_steps)}/{state.total_steps}")
        if loss is not None:
            parts.append(_loss(loss))
        if epoch.saved:
            parts.append("saved " + ", ".join(epoch.saved))
        return "  ".join(parts)

    def _emit(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _flush(self, state: ProgressState, *, final: bool = False) -> None:
        while self._ended and (final or self._ready(self._ended[0], state)):
            self._emit(self._line(self._ended.pop(0), state))

    def update(self, events: list[ProgressEvent], state: ProgressState) -> None:
        for ev in events:
            if ev.kind == "epoch":
                if self._current is not None:
                    self._ended.append(self._current)
                number = int(ev.text.split("/")[0])
                self._current = _Epoch(ev.text, number)
            elif ev.kind == "checkpoint" and self._current is not None:
                self._current.saved.append(ev.text)
        self._flush(state)

    def tick(self, state: ProgressState) -> None:
        self._flush(state)

    def note(self, message: str) -> None:
        self._emit(message)

    def finish(self, state: ProgressState) -> None:
        if self._current is not None:
            self._ended.append(self._current)
            self._current = None
        self._flush(state, final=True)


# ---------------------------------------------------------------------------------------------------------------
# the live status line


@dataclass
class _Part:
    text: str
    rank: int  # what goes first when the line is too long: the highest rank


_BAR_RANK = 6
_BAR_WIDTH, _BAR_MIN = 20, 10
_GAP = 2


def _fit(parts: list[_Part], bar: float | None, width: int) -> tuple[list[_Part], int, int]:
    """What fits ``width`` cells: the parts kept (in order), the bar's width (0: none) and the room of the
    flexible part (rank 7, cut with an ellipsis). Parts are whole or left out, the least useful (highest rank)
    first; the bar shrinks to :data:`_BAR_MIN` cells before it goes."""
    from rich.cells import cell_len

    kept = list(parts)
    has_bar = bar is not None
    while True:
        flexible = any(p.rank == 7 for p in kept)
        cells = len(kept) + has_bar
        room = width - sum(cell_len(p.text) for p in kept if p.rank != 7) - _GAP * (cells - 1)
        need = (_BAR_MIN if has_bar else 0) + (_BAR_MIN if flexible else 0)
        if room >= need:
            bar_width = min(room - (_BAR_MIN if flexible else 0), _BAR_WIDTH) if has_bar else 0
            return kept, bar_width, room - bar_width if flexible else 0
        if has_bar:
            has_bar = False
            continue
        droppable = [p for p in kept if p.rank > 1]
        if not droppable:
            return kept, 0, max(room, 1)
        kept.remove(max(droppable, key=lambda p: p.rank))


class _StatusLine:
    """The live line, laid out for the width rich gives it: first part, bar, the other parts."""

    def __init__(self, parts: list[_Part], bar: float | None) -> None:
        self.parts = parts
        self.bar = bar

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        kept, bar_width, flex_room = _fit(self.parts, self.bar, options.max_width)
        cells: list[RenderableType] = []
        for part in kept:
            text = Text(part.text, no_wrap=True)
            if part.rank == 7:
                text.truncate(flex_room, overflow="ellipsis")
            cells.append(text)
            if len(cells) == 1 and bar_width:
                cells.append(ProgressBar(total=1.0, completed=self.bar or 0.0, width=bar_width))
        grid = Table.grid(padding=(0, _GAP))
        for _ in cells:
            grid.add_column(no_wrap=True)
        grid.add_row(*cells)
        yield grid


class LiveBar(EpochLines):
    """rich's live display on a terminal: a status line redrawn at most ``1 / min_interval`` times a second,
    finished epochs and notes printed above it (wrapped at words by rich)."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        min_interval: float = 0.1,
        width: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from rich.console import Console

        super().__init__(stream)
        self.min_interval = min_interval
        self.clock = clock
        self.eta = Eta(clock=clock)
        self.console = Console(
            file=self.stream, width=width, highlight=False, markup=False, emoji=False, soft_wrap=False
        )
        self._live: Any = None
        self._last = float("-inf")
        self._t0 = clock()
        self._state: ProgressState | None = None

    def plan(self, schedule: SampleSchedule) -> None:
        self.eta.schedule = schedule

    # -- what the line says ------------------------------------------------------------------------------------

    def status(self, state: ProgressState) -> tuple[list[_Part], float | None]:
        """The status line's parts (text and rank) and the bar's fraction (``None``: no bar)."""
        eta = self.eta.remaining(state)
        tail = [_Part(f"ETA {format_seconds(eta)}", 1)] if eta is not None else []
        phase = state.sampling
        if phase is not None:
            prompts = self.eta.schedule.prompts
            label = "sampling" + (f" image {phase.image}/{prompts}" if prompts > 1 and phase.image else "")
            parts = [_Part(label, 3)]
            frac = None
            if phase.step is not None and phase.steps:
                parts.append(_Part(f"{phase.step}/{phase.steps}", 2))
                frac = phase.step / phase.steps
            if phase.rate:
                parts.append(_Part(phase.rate, 5))
            return parts + tail, frac
        if state.step is None or not state.total_steps:
            elapsed = int(self.clock() - self._t0)
            label = f"preparing {format_seconds(elapsed)}"
            return [_Part(label, 1), _Part(state.last_message or "starting", 7)], None
        step = min(state.step + state.steps_before_this_run, state.total_steps)
        frac = step / state.total_steps
        parts = [_Part(f"epoch {state.epoch}/{state.epochs}", 3)] if state.epoch is not None else []
        parts.append(_Part(f"{step}/{state.total_steps} {frac * 100:3.0f}%", 2))
        if state.avr_loss is not None:
            parts.append(_Part(f"loss {state.avr_loss:.3f}", 4))
        if state.rate:
            parts.append(_Part(state.rate, 5))
        return parts + tail, frac

    # -- drawing -----------------------------------------------------------------------------------------------

    def _draw(self, state: ProgressState, force: bool = False) -> None:
        now = self.clock()
        if self._live is None or (not force and now - self._last < self.min_interval):
            return
        self._last = now
        parts, bar = self.status(state)
        self._live.update(_StatusLine(parts, bar), refresh=True)

    def _emit(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text(text))  # above the live line while it runs

    def start(self) -> None:
        from rich.live import Live

        self._t0 = self.clock()
        self._live = Live(
            console=self.console, auto_refresh=False, transient=True, redirect_stdout=False, redirect_stderr=False
        )
        self._live.start()

    def update(self, events: list[ProgressEvent], state: ProgressState) -> None:
        self.eta.observe(events, state)
        super().update(events, state)
        self._draw(state, force=any(ev.kind in ("epoch", "sampling", "sampling_done") for ev in events))

    def tick(self, state: ProgressState) -> None:
        super().tick(state)
        self._draw(state)

    def finish(self, state: ProgressState) -> None:
        super().finish(state)
        if self._live is not None:
            self._live.stop()
            self._live = None


class Passthrough(Display):
    """Echo the trainer's raw output unchanged (``--verbose``)."""

    def raw(self, stream: str, data: bytes) -> None:
        target = sys.stdout if stream == "stdout" else sys.stderr
        target.flush()
        target.buffer.write(data)
        target.buffer.flush()


def choose_display(quiet: bool = False, verbose: bool = False, stream: IO[str] | None = None) -> Display:
    """Live bar on a TTY; one line per epoch with ``quiet`` or when stderr is not a TTY."""
    if verbose:
        return Passthrough()
    out = stream if stream is not None else sys.stderr
    if not quiet and out.isatty():
        return LiveBar(out)
    return EpochLines(out)
