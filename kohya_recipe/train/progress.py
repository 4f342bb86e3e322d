"""Incremental parser of sd-scripts' console output: progress, epochs, checkpoints, errors.

sd-scripts writes two streams (``train_network.py`` ``NetworkTrainer.train``; its logging is set up by
``library/utils.py`` ``setup_logging``):

- **stdout** (``accelerator.print``): the run summary (``num epochs / epoch数: 4``, ``total optimization steps /
  学習ステップ数: 48``), then ``epoch e/E`` per epoch and ``saving checkpoint: model/<name>-000001.safetensors``.
- **stderr**: rich-formatted log records (``2026-11-25 23:39:07 INFO     message      file.py:123``; the time
  column is blank when the second has not changed) and tqdm bars that update with ``\\r`` and never end their
  line, so a log record is sometimes glued right after a bar: ``...avr_loss=1.12]2026-11-25 23:42:36 INFO``.
  The main bar is ``steps:  52%|█████▏    | 25/48 [02:41<02:28,  6.46s/it, avr_loss=1.13]``; the validation
  and caption bars have other labels and are ignored.
- **Sample images** (``library/train_util.py`` ``sample_images``): after the epoch's checkpoint, an INFO record
  ``generating sample images at step / サンプル画像生成 ステップ: 24``, then per prompt the records ``prompt: …``,
  ``sample_steps: 35`` …, and an unlabelled tqdm bar of the denoising steps (``\r 50%|█████     | 1/2 [00:01<00:01,
  1.05s/it]\x1b[A``, fixture ``article-mini``). The main bar sits still meanwhile; the phase ends when training
  (or the final save) goes on.

The parser is fed raw bytes as they arrive (any chunking), splits each stream on ``\\r`` and ``\\n``, and keeps only
a bounded amount of text: one partial segment per stream (capped at :data:`MAX_SEGMENT` bytes; the rest of an
over-long segment is dropped and counted) and short deques of errors. Binary junk is decoded with replacement
characters and simply matches nothing.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field
from typing import Literal

Stream = Literal["stdout", "stderr"]

#: A segment longer than this (bytes without ``\r``/``\n``) is not trainer output we understand: it is cut here
#: and the rest up to the next line break is dropped, so a flood without newlines cannot grow memory.
MAX_SEGMENT = 16 * 1024
#: How many error records / exception lines are kept (the newest win).
MAX_KEPT = 16
#: How many checkpoint paths are kept (a 1000-epoch run saving every epoch still fits).
MAX_CHECKPOINTS = 4096

_SPLIT = re.compile(rb"[\r\n]")

# tqdm main bar (NetworkTrainer.train: `tqdm(..., desc="steps")` with an avr_loss postfix), anchored at the start
# of a segment. The part in brackets is "elapsed<remaining, rate[, postfix...]"; anything after "]" is a glued
# log record.
_STEPS = re.compile(r"^steps:\s*(\d+)%\|[^|]*\|\s*(\d+)/(\d+)\s*\[([^\]]*)\]")
# the sampling bar has no label: "  0%|          | 0/2 [00:00<?, ?it/s]" (a nested bar: ESC[A may follow)
_UNLABELLED_BAR = re.compile(r"^\s*(\d+)%\|[^|]*\|\s*(\d+)/(\d+)\s*\[([^\]]*)\]")
_SAMPLING = re.compile(r"^generating sample images at step\b[^:]*:\s*(\d+)")
_SAMPLE_STEPS = re.compile(r"^sample_steps:\s*(\d+)\s*$")
# records after which training (or the end of the run) has certainly resumed: the next epoch's dataset
# ("epoch is incremented. current_epoch: 0, epoch: 3"), a state save, the final "model saved."
_AFTER_SAMPLING = ("epoch is incremented", "saving state", "saving last state", "model saved.")
#: How many steps' last ``avr_loss`` are remembered (an epoch line looks up the loss at its epoch's last step).
MAX_STEP_LOSSES = 1024
_EPOCH = re.compile(r"^epoch (\d+)/(\d+)\s*$")
_SAVING = re.compile(r"^saving checkpoint: (.+?)\s*$")
_REMOVING = re.compile(r"^removing old checkpoint: (.+?)\s*$")
# stdout summary: "  num epochs / epoch数: 20", "  total optimization steps / 学習ステップ数: 240"
_NUM_EPOCHS = re.compile(r"^\s+num epochs\b[^:]*:\s*(\d+)\s*$")
_TOTAL_STEPS = re.compile(r"^\s+total optimization steps\b[^:]*:\s*(\d+)\s*$")
# rich's RichHandler: a 20-character time column (timestamp + space, or blanks), the level padded to 8, a space,
# the message, and the source "file.py:123" right-aligned (pushed right after the message when it is long).
_RICH = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d | {20})(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(.*)$")
_RICH_SOURCE = re.compile(r"\s+[\w.\-]+\.py:\d+\s*$")
# a wrapped message continues on lines indented by the time and level columns (20 + 9)
_RICH_CONTINUATION = re.compile(r"^ {29}(\S.*)$")
_TRACEBACK = "Traceback (most recent call last):"
_NO_DATA = "No data found"
_RESUME = re.compile(r"resume training from local state: (.+?)\s*$")
_LOSS = re.compile(r"avr_loss=([-+0-9.eEinfa]+)")


@dataclass(frozen=True)
class ProgressEvent:
    """Something the display may want to show: ``kind`` is one of ``step``, ``epoch``, ``checkpoint``,
    ``removed``, ``error``, ``exception``, ``no_data``, ``model_saved``, ``resumed``, ``sampling`` (a sampling
    phase began), ``sample_image`` (its next prompt), ``sample_step``, ``sampling_done``."""

    kind: str
    text: str = ""


@dataclass
class SamplingPhase:
    """The sample images being made right now: which prompt (1-based, in order) and its denoising step."""

    at_step: int  # the trainer's global step it samples at
    image: int = 0
    step: int | None = None
    steps: int | None = None
    rate: str | None = None  # tqdm's "81.2s/it"


@dataclass
class ProgressState:
    """What the output has told us so far. All counts come from the trainer's own text."""

    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    total_steps: int | None = None
    avr_loss: float | None = None
    elapsed: str | None = None  # tqdm's "02:41"
    remaining: str | None = None  # tqdm's "02:28" or "?"
    rate: str | None = None  # tqdm's "6.46s/it" or "1.14it/s"
    checkpoints_saved: list[str] = field(default_factory=list)
    checkpoints_removed: list[str] = field(default_factory=list)
    errors: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=MAX_KEPT))
    exceptions: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=MAX_KEPT))
    no_data: str | None = None
    model_saved: bool = False
    resumed_from: str | None = None
    first_epoch: int | None = None  # the first `epoch e/E` line of this run (> 1 after --resume)
    # step -> the last avr_loss the bar showed at that step (the newest MAX_STEP_LOSSES steps)
    step_losses: collections.OrderedDict[int, float | None] = field(default_factory=collections.OrderedDict)
    # whether stderr went on past the main bar's last update (then that update is the step's last one)
    bar_settled: bool = False
    sampling: SamplingPhase | None = None  # the sampling phase in progress
    sampling_phases: int = 0  # sampling phases begun in this run
    last_message: str | None = None  # the newest INFO/WARNING record, to show what the trainer is doing
    bytes_seen: int = 0
    dropped_bytes: int = 0

    @property
    def seconds_per_step(self) -> float | None:
        """tqdm's rate as seconds per step (it shows "s/it" below 1 it/s and "it/s" above)."""
        rate = self.rate or ""
        try:
            if rate.endswith("s/it"):
                return float(rate[:-4])
            if rate.endswith("it/s"):
                value = float(rate[:-4])
                return 1.0 / value if value > 0 else None
        except ValueError:
            return None
        return None

    @property
    def steps_per_epoch(self) -> int | None:
        """Optimizer steps per epoch, when the run is a whole number of epochs (kohya-recipe always passes
        ``max_train_epochs``: sd-scripts then sets the total to epochs x steps per epoch)."""
        if not self.epochs or not self.total_steps or self.total_steps % self.epochs:
            return None
        return self.total_steps // self.epochs

    @property
    def steps_before_this_run(self) -> int:
        """Steps done by the run this one resumed. After ``--resume`` sd-scripts restarts its bar at 0 but keeps
        the whole run's total (fixture `resume`: epoch 3/3 ends at ``8/24``), so a display adds the epochs
        already trained: (first epoch - 1) x steps per epoch."""
        if not self.resumed_from or not self.first_epoch or not self.epochs or not self.total_steps:
            return 0
        return max(self.first_epoch - 1, 0) * (self.total_steps // self.epochs)

    def last_error(self) -> str | None:
        """The most telling error line: the trainer's own exception (not accelerate's ``CalledProcessError``
        wrapper, which only repeats the exit status), else the last ERROR log record, else the wrapper."""
        own = [e for e in self.exceptions if not _is_launcher_wrapper(e)]
        if own:
            return own[-1]
        if self.errors:
            return self.errors[-1]
        if self.exceptions:
            return self.exceptions[-1]
        return None


def _is_launcher_wrapper(line: str) -> bool:
    # accelerate re-raises any child failure as CalledProcessError (accelerate/commands/launch.py simple_launcher).
    return line.startswith(("subprocess.CalledProcessError", "CalledProcessError"))


def english_part(message: str) -> str:
    """sd-scripts messages are "English / 日本語"; keep the English half."""
    head, sep, _ = message.partition(" / ")
    if sep:
        return head.strip()
    return message.strip().rstrip("/").strip()


class _StreamBuffer:
    """The unfinished segment of one stream, and that stream's line-level state."""

    __slots__ = ("in_record", "in_traceback", "overflow", "partial", "record_is_no_data", "record_lines")

    def __init__(self) -> None:
        self.partial = bytearray()
        self.overflow = False
        self.in_traceback = False
        self.in_record: list[str] | None = None  # an ERROR record that may continue on the next lines
        self.record_lines = 0
        self.record_is_no_data = False


class ProgressParser:
    """Feed raw bytes of stdout/stderr in any chunking; read :attr:`state`; act on the returned events."""

    def __init__(self) -> None:
        self.state = ProgressState()
        self._buffers: dict[str, _StreamBuffer] = {"stdout": _StreamBuffer(), "stderr": _StreamBuffer()}

    def feed(self, stream: Stream, data: bytes) -> list[ProgressEvent]:
        """Parse ``data`` (a chunk of ``stream``) and return the events it completed."""
        if not data:
            return []
        self.state.bytes_seen += len(data)
        buf = self._buffers[stream]
        events: list[ProgressEvent] = []
        pieces = _SPLIT.split(data)
        # every piece but the last ended with a separator; the last one is still open
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if buf.overflow:
                self.state.dropped_bytes += len(piece)
                if not last:
                    buf.overflow = False
                continue
            if len(buf.partial) + len(piece) > MAX_SEGMENT:
                keep = MAX_SEGMENT - len(buf.partial)
                buf.partial += piece[:keep]
                self.state.dropped_bytes += len(piece) - keep
                self._segment(stream, buf, bytes(buf.partial), events)
                buf.partial.clear()
                buf.overflow = last  # the rest of this segment is still coming: drop it too
                continue
            if last:
                buf.partial += piece
            else:
                if buf.partial:
                    buf.partial += piece
                    segment = bytes(buf.partial)
                    buf.partial.clear()
                else:
                    segment = piece
                self._segment(stream, buf, segment, events)
        return events

    @property
    def pending_bytes(self) -> int:
        """Bytes held for unfinished segments (at most ``2 * MAX_SEGMENT``)."""
        return sum(len(b.partial) for b in self._buffers.values())

    def close(self) -> list[ProgressEvent]:
        """Parse what is left unterminated at the end of both streams."""
        events: list[ProgressEvent] = []
        for stream, buf in self._buffers.items():
            if buf.partial and not buf.overflow:
                self._segment(stream, buf, bytes(buf.partial), events)  # type: ignore[arg-type]
            buf.partial.clear()
            buf.overflow = False
        return events

    # -- one segment -------------------------------------------------------------------------------------------

    def _segment(self, stream: str, buf: _StreamBuffer, raw: bytes, events: list[ProgressEvent]) -> None:
        if not raw:
            return
        # Cheap byte checks first: most segments are bar updates or INFO records.
        text = raw.decode("utf-8", "replace")
        if raw.startswith(b"steps:"):
            end = self._steps(text, events)
            # tqdm never ends its line, so a log record or a traceback header can follow the bar directly
            # (fixtures `article-mini`, `interrupted`); parse that remainder as a segment of its own.
            text = text[end:]
            if not text.strip():
                self.state.bar_settled = False
                return
        if stream == "stderr" and text.strip():
            self.state.bar_settled = True
            if self.state.sampling is not None and self._sample_bar(text, events):
                return
        if self._traceback(buf, text, events) or self._progress_line(text, events):
            return
        if stream == "stdout" and self._summary(text):
            return
        m = _RICH.match(text)
        if m:
            self._record(buf, m.group(1), _RICH_SOURCE.sub("", m.group(2)).strip(), events)
            return
        if buf.in_record is not None:
            self._continuation(buf, text)

    def _traceback(self, buf: _StreamBuffer, text: str, events: list[ProgressEvent]) -> bool:
        """A traceback: the header starts it, frame lines are skipped, the first line after them is the exception.
        Returns whether ``text`` was part of one."""
        if buf.in_traceback:
            if text[:1] in (" ", "\t"):
                return True  # a frame line
            buf.in_traceback = False
            if text.strip():
                self.state.exceptions.append(text.strip())
                events.append(ProgressEvent("exception", text.strip()))
                return True
        if text.endswith(_TRACEBACK):
            # tqdm leaves its line open, so the traceback header can be glued to a bar (fixture `interrupted`)
            buf.in_traceback = True
            buf.in_record = None
            return True
        return False

    def _progress_line(self, text: str, events: list[ProgressEvent]) -> bool:
        """``epoch e/E``, ``saving checkpoint: …``, ``removing old checkpoint: …``; whether ``text`` was one."""
        st = self.state
        m = _EPOCH.match(text)
        if m:
            st.epoch, st.epochs = int(m.group(1)), int(m.group(2))
            if st.first_epoch is None:
                st.first_epoch = st.epoch
            events.append(ProgressEvent("epoch", f"{st.epoch}/{st.epochs}"))
            return True
        checkpoint_lines = (
            (_SAVING, st.checkpoints_saved, "checkpoint"),
            (_REMOVING, st.checkpoints_removed, "removed"),
        )
        for pattern, kept, kind in checkpoint_lines:
            m = pattern.match(text)
            if m:
                if len(kept) < MAX_CHECKPOINTS:
                    kept.append(m.group(1))
                events.append(ProgressEvent(kind, m.group(1)))
                return True
        return False

    def _summary(self, text: str) -> bool:
        """The run summary on stdout (``num epochs``, ``total optimization steps``); whether ``text`` was one."""
        m = _NUM_EPOCHS.match(text)
        if m:
            self.state.epochs = int(m.group(1))
            return True
        m = _TOTAL_STEPS.match(text)
        if m:
            self.state.total_steps = int(m.group(1))
            return True
        return False

    def _continuation(self, buf: _StreamBuffer, text: str) -> None:
        """A line after an ERROR record: its wrapped continuation, or the end of the record."""
        assert buf.in_record is not None
        m = _RICH_CONTINUATION.match(text)
        if m and buf.record_lines < 8:
            # A long ERROR message wraps onto lines indented by the time and level columns; join them so a
            # narrow console does not cut the English half ("English / 日本語") short.
            buf.in_record.append(_RICH_SOURCE.sub("", m.group(1)).strip())
            buf.record_lines += 1
            joined = english_part(" ".join(buf.in_record))
            if self.state.errors:
                self.state.errors[-1] = joined
            if self.state.no_data is not None and buf.record_is_no_data:
                self.state.no_data = joined
            return
        buf.in_record = None

    def _record(self, buf: _StreamBuffer, level: str, message: str, events: list[ProgressEvent]) -> None:
        st = self.state
        buf.in_record = None
        if level in ("ERROR", "CRITICAL"):
            buf.in_record = [message]
            buf.record_lines = 0
            buf.record_is_no_data = _NO_DATA in message
            st.errors.append(english_part(message))
            events.append(ProgressEvent("error", english_part(message)))
            if _NO_DATA in message:
                st.no_data = english_part(message)
                events.append(ProgressEvent("no_data", st.no_data))
            return
        if message:
            st.last_message = message[:200]
        self._sampling_record(message, events)
        if message == "model saved.":
            st.model_saved = True
            events.append(ProgressEvent("model_saved", message))
            return
        m = _RESUME.search(message)
        if m:
            st.resumed_from = m.group(1)
            events.append(ProgressEvent("resumed", m.group(1)))

    def _sampling_record(self, message: str, events: list[ProgressEvent]) -> None:
        """A record that begins a sampling phase, names its next prompt or its steps, or shows it is over."""
        st = self.state
        m = _SAMPLING.match(message)
        if m:
            self._end_sampling(events)
            st.sampling = SamplingPhase(at_step=int(m.group(1)))
            st.sampling_phases += 1
            events.append(ProgressEvent("sampling", m.group(1)))
            return
        phase = st.sampling
        if phase is None:
            return
        if message.startswith("prompt: "):
            phase.image += 1
            phase.step = phase.rate = None
            events.append(ProgressEvent("sample_image", str(phase.image)))
        elif _SAMPLE_STEPS.match(message):
            phase.steps = int(message.split(":")[1])
        elif message.startswith(_AFTER_SAMPLING):
            self._end_sampling(events)

    def _end_sampling(self, events: list[ProgressEvent]) -> None:
        if self.state.sampling is not None:
            self.state.sampling = None
            events.append(ProgressEvent("sampling_done"))

    def _sample_bar(self, text: str, events: list[ProgressEvent]) -> bool:
        """The unlabelled denoising bar of a sample image; whether ``text`` was one."""
        m = _UNLABELLED_BAR.match(text)
        phase = self.state.sampling
        if not m or phase is None:
            return False
        phase.step, phase.steps = int(m.group(2)), int(m.group(3))
        parts = [p.strip() for p in m.group(4).split(",")]
        if len(parts) > 1 and parts[1] not in ("", "?it/s"):
            phase.rate = parts[1]
        events.append(ProgressEvent("sample_step", f"{phase.step}/{phase.steps}"))
        return True

    def _steps(self, text: str, events: list[ProgressEvent]) -> int:
        """Parse a main-bar update; return where the bar text ends."""
        m = _STEPS.match(text)
        if not m:
            return len(text)
        st = self.state
        self._end_sampling(events)  # the main bar moves again: training goes on
        st.step, st.total_steps = int(m.group(2)), int(m.group(3))
        parts = [p.strip() for p in m.group(4).split(",")]
        if parts:
            elapsed, _, remaining = parts[0].partition("<")
            st.elapsed, st.remaining = elapsed or None, remaining or None
        if len(parts) > 1:
            st.rate = parts[1] or None
        for extra in parts[2:]:
            lm = _LOSS.fullmatch(extra)
            if lm:
                try:
                    st.avr_loss = float(lm.group(1))
                except ValueError:
                    pass
        st.step_losses[st.step] = st.avr_loss
        st.step_losses.move_to_end(st.step)
        while len(st.step_losses) > MAX_STEP_LOSSES:
            st.step_losses.popitem(last=False)
        events.append(ProgressEvent("step", f"{st.step}/{st.total_steps}"))
        return m.end()


def parse_output(stdout: bytes, stderr: bytes) -> ProgressState:
    """Parse complete captured streams (e.g. a finished run's files) and return the final state."""
    parser = ProgressParser()
    parser.feed("stdout", stdout)
    parser.feed("stderr", stderr)
    parser.close()
    return parser.state
