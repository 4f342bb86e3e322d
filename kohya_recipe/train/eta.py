"""How long a run has left, sample images included.

tqdm's own ETA (``steps:  50%|...| 8/16 [03:12<03:21, ...]``) counts optimizer steps only. sd-scripts makes its
sample images between steps, and at 512x512 with 35 steps one image can take longer than an epoch of training;
while it samples, tqdm's bar sits still and its ETA grows. This estimate adds them up instead:

    training steps left x seconds per step  +  what is left of the sample being made
      +  sampling phases still to come x seconds per phase

measured with our own clock: seconds per step over the training time of this run (time spent sampling taken
out), seconds per phase from the phases done (before the first one ends: from its progress so far). Which
phases are still to come follows from the recipe's schedule (:class:`SampleSchedule`; sd-scripts
``train_util.py`` ``sample_images``: every N epochs, which wins over every N steps, and once before training
with ``sample_at_first``), counted against the phases this run has begun.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kohya_recipe.train.progress import ProgressEvent, ProgressState


@dataclass(frozen=True)
class SampleSchedule:
    """When the trainer makes sample images, and how many per phase (the recipe's ``[samples]``)."""

    prompts: int = 0
    every_n_epochs: int | None = None
    every_n_steps: int | None = None
    at_first: bool = False

    def phases(self, state: ProgressState) -> int | None:
        """Sampling phases this run makes in all, or ``None`` while the run's size is unknown."""
        if not self.prompts or not state.total_steps:
            return 0 if not self.prompts else None
        count = 1 if self.at_first else 0
        if self.every_n_epochs:
            per_epoch = state.steps_per_epoch
            if not per_epoch or not state.epochs:
                return None
            first = state.steps_before_this_run // per_epoch + 1  # the first epoch this run trains
            count += sum(1 for e in range(first, state.epochs + 1) if e % self.every_n_epochs == 0)
        elif self.every_n_steps:
            # the step count restarts at 0 after --resume (fixture `resume`)
            count += (state.total_steps - state.steps_before_this_run) // self.every_n_steps
        return count


def format_seconds(seconds: float) -> str:
    """``03:21``, ``1:03:21``: tqdm's format."""
    if not math.isfinite(seconds):
        return "--:--"
    left = max(round(seconds), 0)
    hours, rest = divmod(left, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Eta:
    """Feed it what the parser reported (:meth:`observe`, with the time it arrived); ask :meth:`remaining`."""

    def __init__(self, schedule: SampleSchedule | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.schedule = schedule or SampleSchedule()
        self.clock = clock
        self._last_step: int | None = None
        self._last_time = 0.0
        self._clean = True  # no sampling since the last step was seen
        self.train_seconds = 0.0
        self.train_steps = 0
        self._phase_start: float | None = None
        self.sampling_seconds = 0.0
        self.phases_done = 0

    def observe(self, events: Sequence[ProgressEvent], state: ProgressState) -> None:
        now = self.clock()
        for ev in events:
            if ev.kind == "sampling":
                self._phase_start = now
                self._clean = False
            elif ev.kind == "sampling_done" and self._phase_start is not None:
                self.sampling_seconds += now - self._phase_start
                self.phases_done += 1
                self._phase_start = None
        if state.step is None or state.step == self._last_step:
            return
        if self._last_step is not None and self._clean and state.step > self._last_step:
            # an interval of pure training (saving checkpoints included: that recurs every epoch too)
            self.train_seconds += now - self._last_time
            self.train_steps += state.step - self._last_step
        self._last_step, self._last_time = state.step, now
        self._clean = state.sampling is None

    def seconds_per_step(self, state: ProgressState) -> float | None:
        if self.train_steps and self.train_seconds > 0:
            return self.train_seconds / self.train_steps
        return state.seconds_per_step  # tqdm's rate until we have measured our own

    def _phase_seconds(self, state: ProgressState, now: float) -> float | None:
        """What one sampling phase takes: measured, or extrapolated from the one in progress."""
        if self.phases_done:
            return self.sampling_seconds / self.phases_done
        phase = state.sampling
        if phase is None or self._phase_start is None or not phase.image:
            return None
        per_image = (phase.step or 0) / phase.steps if phase.steps else 0.0
        images = max(self.schedule.prompts, phase.image)
        done = (phase.image - 1 + per_image) / images
        return (now - self._phase_start) / done if done > 0 else None

    def remaining(self, state: ProgressState) -> float | None:
        """Seconds left, or ``None`` before there is anything to go by. Sampling the estimate cannot price yet
        (no phase has made progress) is left out."""
        per_step = self.seconds_per_step(state)
        if per_step is None or not state.total_steps:
            return None
        now = self.clock()
        step = min((state.step or 0) + state.steps_before_this_run, state.total_steps)
        left = (state.total_steps - step) * per_step
        phase_seconds = self._phase_seconds(state, now)
        if phase_seconds is None:
            return left
        if state.sampling is not None and self._phase_start is not None:
            left += max(phase_seconds - (now - self._phase_start), 0.0)
        planned = self.schedule.phases(state)
        if planned:
            left += max(planned - state.sampling_phases, 0) * phase_seconds
        return left
