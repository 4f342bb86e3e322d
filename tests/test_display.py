"""The displays (kohya_recipe/train/display.py) driven by the real trainer's recorded output (tests/data/trainer, copied
from ../shared/fixtures/sd-scripts-runs): exact epoch lines however the two pipes interleave, and the live line
at 80 columns (and narrower): nothing wider than the terminal, the ETA never cut, sampling shown."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from _train_util import Screen

from kohya_recipe.train.display import EpochLines, LiveBar
from kohya_recipe.train.eta import SampleSchedule
from kohya_recipe.train.progress import ProgressParser

DATA = Path(__file__).parent / "data" / "trainer"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _streams(run: str) -> tuple[bytes, bytes]:
    return (DATA / run / "stdout.txt").read_bytes(), (DATA / run / "stderr.txt").read_bytes()


def _feed(
    display: EpochLines, run: str, order: str, seed: int = 0, tick: Callable[[], None] | None = None
) -> ProgressParser:
    """Replay ``run`` into ``display`` as the runner would: chunks of both streams, in an ``order`` the two
    reader threads could produce — ``stdout-first`` (stdout far ahead), ``stderr-first`` (the bar far ahead),
    ``random`` (random chunk sizes and interleaving), ``paced`` (stdout's epoch line released when stderr shows
    that epoch begin, as a live trainer writes them)."""
    stdout, stderr = _streams(run)
    parser = ProgressParser()
    rng = random.Random(seed)

    def send(stream: str, data: bytes) -> None:
        if tick is not None:
            tick()
        display.update(parser.feed(stream, data), parser.state)  # type: ignore[arg-type]

    if order == "stdout-first":
        send("stdout", stdout)
        for i in range(0, len(stderr), 700):
            send("stderr", stderr[i : i + 700])
    elif order == "stderr-first":
        for i in range(0, len(stderr), 700):
            send("stderr", stderr[i : i + 700])
        send("stdout", stdout)
    elif order == "random":
        pos = {"stdout": 0, "stderr": 0}
        data = {"stdout": stdout, "stderr": stderr}
        while pos["stdout"] < len(stdout) or pos["stderr"] < len(stderr):
            stream = rng.choice([s for s in pos if pos[s] < len(data[s])])
            size = rng.randint(1, 900)
            send(stream, data[stream][pos[stream] : pos[stream] + size])
            pos[stream] += size
    else:  # paced: stdout up to epoch e+1's line goes out when stderr logs that epoch e began
        starts = {int(m.group(1)): m.start() for m in re.finditer(rb"\nepoch (\d+)/\d+\n", stdout)}
        released = min(starts.values(), default=len(stdout))
        send("stdout", stdout[:released])
        for i in range(0, len(stderr), 80):
            chunk = stderr[i : i + 80]
            send("stderr", chunk)
            for m in re.finditer(rb"epoch is incremented. current_epoch: \d+, epoch: (\d+)", chunk):
                upto = starts.get(int(m.group(1)) + 1, len(stdout))
                if upto > released:
                    send("stdout", stdout[released:upto])
                    released = upto
        send("stdout", stdout[released:])
    display.update(parser.close(), parser.state)
    display.finish(parser.state)
    return parser


EXPECTED = {
    "article-mini": [
        "epoch 1/4  step 12/48  avr_loss 1.040  saved model/testchar-1-A-000001.safetensors",
        "epoch 2/4  step 24/48  avr_loss 1.130  saved model/testchar-1-A-000002.safetensors",
        "epoch 3/4  step 36/48  avr_loss 1.120  saved model/testchar-1-A-000003.safetensors",
        "epoch 4/4  step 48/48  avr_loss 1.120  saved model/testchar-1-A.safetensors",
    ],
    "resume": ["epoch 3/3  step 24/24  avr_loss 1.110  saved model/testchar-1-B.safetensors"],
}


@pytest.mark.parametrize("run", sorted(EXPECTED))
@pytest.mark.parametrize("order", ["stdout-first", "stderr-first", "random", "paced"])
def test_epoch_lines_are_exact_however_the_pipes_interleave(run: str, order: str) -> None:
    """The race behind a flaky test: stdout (`epoch e/E`) and stderr (the bar) are read by two threads, so an
    epoch line printed when stdout says the next epoch began showed whatever step the bar had reached (4/48 or
    15/48 for epoch 1). Each line now shows its epoch's last step and the loss the bar showed there."""
    for seed in range(20 if order == "random" else 1):
        out = io.StringIO()
        _feed(EpochLines(out), run, order, seed)
        assert out.getvalue().splitlines() == EXPECTED[run], (order, seed)


def test_the_validation_run_has_its_epochs_end_steps() -> None:
    out = io.StringIO()
    _feed(EpochLines(out), "validation", "stderr-first")
    assert [line.split("  avr_loss")[0] for line in out.getvalue().splitlines()] == [
        "epoch 1/3  step 8/24",
        "epoch 2/3  step 16/24",
        "epoch 3/3  step 24/24",
    ]


def test_an_interrupted_run_ends_with_its_last_position() -> None:
    out = io.StringIO()
    _feed(EpochLines(out), "interrupted", "random")
    lines = out.getvalue().splitlines()
    assert lines[:3] == [
        f"epoch {e}/20  step {12 * e}/240  avr_loss {loss}  saved model/testchar-1-A-00000{e}.safetensors"
        for e, loss in ((1, "1.040"), (2, "1.130"), (3, "1.120"))
    ]
    assert lines[3].startswith("epoch 4/20  step 43/240  avr_loss ")


# ---------------------------------------------------------------------------------------------------------------
# the live line


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self) -> None:
        self.now += 1.5


def _live(width: int, run: str = "article-mini") -> tuple[Screen, str]:
    clock = _Clock()
    tty = _Tty()
    bar = LiveBar(tty, width=width, clock=clock, min_interval=0.0)
    bar.plan(SampleSchedule(prompts=1, every_n_epochs=2))
    bar.note(
        "training testchar-1-A with /home/me/kohya_ss/sd-scripts/train_network.py (v0.10.1-5); log: "
        "log/train-20261125-233901.log"
    )
    bar.start()
    _feed(bar, run, "paced", tick=clock.advance)
    text = tty.getvalue()
    return Screen().feed(text), text


@pytest.mark.parametrize("width", [80, 60, 40])
def test_the_live_line_fits_the_terminal_and_never_cuts_its_eta(width: int) -> None:
    """Issue 15: at 80 columns the hand-drawn bar cut its ETA (`ETA 00:`) and epoch lines wrapped mid-word."""
    screen, _ = _live(width)
    assert screen.widest <= width
    status = [line for line in screen.drawn if "ETA" in line]
    assert status and all(re.search(r"ETA \d+:\d\d(:\d\d)?$", line) for line in status), status[:3]
    # the epoch lines above it are wrapped by rich at spaces: every word of them is on the screen whole
    words = " ".join(screen.lines()).split()
    assert "model/testchar-1-A-000001.safetensors" in words and "log/train-20261125-233901.log" in words
    assert screen.lines()[-1].endswith("saved") or screen.lines()[-1].endswith(".safetensors")


def test_at_80_columns_the_line_keeps_everything() -> None:
    screen, _ = _live(80)
    training = [line for line in screen.drawn if line.startswith("epoch 3/4  ━")]
    assert training and re.fullmatch(
        r"epoch 3/4  [━╸╺ ]{20}  \d\d/48  \d\d%  loss \d\.\d{3}  \S+s/it  ETA \d\d:\d\d", training[-1]
    )


def test_sampling_is_shown_with_its_own_progress() -> None:
    """While sd-scripts makes sample images the main bar sits still; the line says so and shows the
    denoising steps of the image being made."""
    screen, _ = _live(80)
    sampling = [line for line in screen.drawn if line.startswith("sampling")]
    assert sampling, "no sampling frame drawn"
    assert any(re.fullmatch(r"sampling  [━╸╺ ]{20}  1/2  1\.05s/it  ETA \d\d:\d\d", line) for line in sampling), (
        sampling
    )
    # once the sample is made, training goes on
    assert any(line.startswith("epoch 3/4") for line in screen.drawn)


def test_before_the_first_step_the_line_says_what_the_trainer_does() -> None:
    clock = _Clock()
    tty = _Tty()
    bar = LiveBar(tty, width=80, clock=clock)
    parser = ProgressParser()
    parser.feed("stderr", b"2026-11-25 23:39:07 INFO     " + b"loading model for process 0/1 " * 8 + b"  x.py:1\n")
    clock.now += 75
    parts, frac = bar.status(parser.state)
    assert frac is None and parts[0].text == "preparing 01:15"
    screen = Screen()
    from kohya_recipe.train.display import _StatusLine

    bar.console.print(_StatusLine(parts, frac))
    screen.feed(tty.getvalue())
    line = screen.lines()[-1]
    assert line.startswith("preparing 01:15  loading model for process 0/1 loading") and line.endswith("…")
    assert screen.widest <= 80
