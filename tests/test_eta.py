"""The ETA (kohya_recipe/train/eta.py): sample images counted, measured with an injected clock on sd-scripts' own
output (bar updates and sampling records as in fixture `article-mini`)."""

from __future__ import annotations

import pytest

from kohya_recipe.train.eta import Eta, SampleSchedule, format_seconds
from kohya_recipe.train.progress import ProgressParser, ProgressState

RECORD = "                    INFO     {}                                                    train_util.py:6394\n"


class _Run:
    """A 4-epoch run of 10 steps each, driven step by step with a clock we move."""

    def __init__(self, schedule: SampleSchedule) -> None:
        self.now = 0.0
        self.parser = ProgressParser()
        self.eta = Eta(schedule, clock=lambda: self.now)
        self.feed("stdout", "  num epochs / epoch数: 4\n  total optimization steps / 学習ステップ数: 40\n")

    def feed(self, stream: str, text: str) -> None:
        self.eta.observe(self.parser.feed(stream, text.encode()), self.parser.state)  # type: ignore[arg-type]

    def steps(self, first: int, last: int, seconds: float) -> None:
        for k in range(first, last + 1):
            self.now += seconds
            # tqdm leaves its line open; the next "\r" (here right away) completes the segment
            self.feed("stderr", f"\rsteps:  {k * 100 // 40}%|##  | {k}/40 [00:10<00:10, 1.00s/it, avr_loss=1.0]\r")

    def sample(self, seconds: float, images: int = 1, steps: int = 30) -> None:
        self.feed(
            "stderr", RECORD.format(f"generating sample images at step / サンプル画像生成 ステップ: {self.state.step}")
        )
        for _ in range(images):
            self.feed("stderr", RECORD.format("prompt: 1girl, testchar") + RECORD.format(f"sample_steps: {steps}"))
            for k in range(steps + 1):
                self.now += seconds / images / (steps + 1)
                self.feed("stderr", f"\r{k * 100 // steps:3d}%|#   | {k}/{steps} [00:01<00:01,  1.00s/it]\x1b[A\n")
        self.feed("stderr", RECORD.format("epoch is incremented. current_epoch: 0, epoch: 3"))

    @property
    def state(self) -> ProgressState:
        return self.parser.state

    def left(self) -> float | None:
        return self.eta.remaining(self.state)


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0, 59.4, 61, 3600 + 62, -5)] == ["00:00", "00:59", "01:01", "1:01:02", "00:00"]
    assert format_seconds(float("inf")) == "--:--" and format_seconds(float("nan")) == "--:--"


def test_schedule_counts_the_phases_of_this_run() -> None:
    st = ProgressState(epochs=10, total_steps=100)
    assert SampleSchedule(prompts=2, every_n_epochs=2).phases(st) == 5
    assert SampleSchedule(prompts=2, every_n_epochs=3, at_first=True).phases(st) == 4  # 3, 6, 9 and before step 1
    assert SampleSchedule(prompts=1, every_n_steps=30).phases(st) == 3
    assert SampleSchedule(prompts=0, every_n_epochs=1).phases(st) == 0  # no prompts: sd-scripts never samples
    # resumed after epoch 6 (the bar restarts at 0): epochs 7..10 are left, of which 8 and 10 sample
    resumed = ProgressState(epochs=10, total_steps=100, resumed_from="model/x-000006-state", first_epoch=7)
    assert SampleSchedule(prompts=1, every_n_epochs=2).phases(resumed) == 2
    assert SampleSchedule(prompts=1, every_n_epochs=2).phases(ProgressState()) is None  # size not known yet


def test_the_eta_counts_sampling_and_leaves_it_out_of_the_step_time() -> None:
    run = _Run(SampleSchedule(prompts=1, every_n_epochs=2))
    run.steps(0, 20, 2.0)  # epochs 1 and 2 at 2 s a step
    # nothing sampled yet: the sampling cannot be priced; 20 steps x 2 s are left
    assert run.left() == pytest.approx(40.0)
    run.sample(60.0)  # after epoch 2: one image, 60 s
    assert run.eta.phases_done == 1 and run.eta.sampling_seconds == pytest.approx(60.0)
    # 20 steps x 2 s + the phase after epoch 4 (60 s): the 60 s spent sampling did not slow the step time
    assert run.left() == pytest.approx(100.0)
    run.steps(21, 30, 2.0)
    assert run.left() == pytest.approx(20.0 + 60.0)
    assert run.eta.seconds_per_step(run.state) == pytest.approx(2.0)


def test_during_the_first_sampling_phase_its_progress_prices_it() -> None:
    run = _Run(SampleSchedule(prompts=2, every_n_epochs=2))
    run.steps(0, 20, 1.0)
    run.feed("stderr", RECORD.format("generating sample images at step / サンプル画像生成 ステップ: 20"))
    run.feed("stderr", RECORD.format("prompt: a") + RECORD.format("sample_steps: 10"))
    for k in range(6):  # image 1 of 2, 5 of 10 steps after 50 s: a quarter of the phase
        run.now += 10.0 if k else 0.0
        run.feed("stderr", f"\r 50%|##  | {k}/10 [00:50<00:50, 10.00s/it]\x1b[A\n")
    assert run.state.sampling is not None and run.state.sampling.step == 5
    # this phase: 200 s in all, 150 s left; 20 steps x 1 s; the phase after epoch 4: 200 s
    assert run.left() == pytest.approx(150.0 + 20.0 + 200.0)


def test_step_sampling_and_tqdms_rate_before_any_measure() -> None:
    run = _Run(SampleSchedule(prompts=1, every_n_steps=10))
    run.feed("stderr", "\rsteps:   0%|    | 0/40 [00:00<?, ?it/s]\r")
    assert run.left() is None  # no rate, no measure: no ETA
    run.feed("stderr", "\rsteps:   2%|    | 1/40 [00:03<02:00, 3.00s/it, avr_loss=1.0]\r")
    assert run.left() == pytest.approx(39 * 3.0)  # tqdm's rate until one interval is measured
