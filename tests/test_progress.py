"""The progress parser on the real sd-scripts output, byte for byte.

tests/data/trainer/<run>/{stdout,stderr}.txt are copies of ../shared/fixtures/sd-scripts-runs/<run>/ (real
sd-scripts v0.10.1-5 runs; see tests/data/trainer/README.md).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from kohya_recipe.train.progress import MAX_SEGMENT, ProgressParser, ProgressState, english_part, parse_output

DATA = Path(__file__).parent / "data" / "trainer"
RUNS = ["article-mini", "validation", "resume", "no-data", "bad-dataset-config", "interrupted"]


def _streams(run: str) -> tuple[bytes, bytes]:
    return (DATA / run / "stdout.txt").read_bytes(), (DATA / run / "stderr.txt").read_bytes()


def _summary(state: ProgressState) -> tuple:
    return (
        state.epoch,
        state.epochs,
        state.step,
        state.total_steps,
        state.avr_loss,
        state.rate,
        state.remaining,
        tuple(state.checkpoints_saved),
        tuple(state.errors),
        tuple(state.exceptions),
        state.no_data,
        state.model_saved,
        state.resumed_from,
    )


def test_article_mini_success() -> None:
    st = parse_output(*_streams("article-mini"))
    assert (st.epoch, st.epochs, st.step, st.total_steps) == (4, 4, 48, 48)
    assert st.avr_loss == 1.12
    assert st.rate == "3.98s/it" and st.seconds_per_step == pytest.approx(3.98)
    assert st.checkpoints_saved == [f"model/testchar-1-A-00000{i}.safetensors" for i in (1, 2, 3)] + [
        "model/testchar-1-A.safetensors"
    ]
    assert st.model_saved and not st.errors and not st.exceptions and st.no_data is None
    assert st.last_error() is None


def test_validation_and_resume() -> None:
    st = parse_output(*_streams("validation"))
    assert (st.epoch, st.step, st.total_steps, st.avr_loss) == (3, 24, 24, 1.11)
    # the "epoch validation steps:" bar must not be taken for the main bar
    assert st.rate == "1.21s/it"
    resumed = parse_output(*_streams("resume"))
    assert resumed.resumed_from == "model/testchar-1-B-000002-state"
    # after --resume the bar ends at 8 of 24: NetworkTrainer.train restarts global_step at 0 (unless
    # --skip_until_initial_step) but keeps the whole run's total
    assert (resumed.epoch, resumed.epochs, resumed.step, resumed.total_steps) == (3, 3, 8, 24)
    assert resumed.checkpoints_saved == ["model/testchar-1-B.safetensors"] and resumed.model_saved
    # a display adds the two epochs trained before the resume: 16 + 8 = 24 of 24
    assert (resumed.first_epoch, resumed.steps_before_this_run) == (3, 16)
    assert (st.first_epoch, st.steps_before_this_run) == (1, 0)


def test_no_data_message() -> None:
    st = parse_output(*_streams("no-data"))
    expected = "No data found. Please verify arguments (train_data_dir must be the parent of folders with images)"
    assert st.no_data == expected
    assert st.last_error() == expected
    assert st.step is None and not st.model_saved


def test_bad_dataset_config_reports_the_trainers_exception_not_accelerates() -> None:
    st = parse_output(*_streams("bad-dataset-config"))
    assert st.exceptions[-1].startswith("subprocess.CalledProcessError: Command ")
    assert st.last_error() == "voluptuous.error.MultipleInvalid: extra keys not allowed @ data['general']['batch_sise']"
    assert list(st.errors) == ["Invalid user config"]


def test_interrupted_run_position_and_both_keyboard_interrupts() -> None:
    st = parse_output(*_streams("interrupted"))
    assert (st.epoch, st.epochs, st.step, st.total_steps, st.avr_loss) == (4, 20, 43, 240, 1.16)
    assert len(st.checkpoints_saved) == 3 and not st.model_saved
    # the first traceback header is glued to the last bar update ("...avr_loss=1.16]Traceback ...")
    assert list(st.exceptions) == ["KeyboardInterrupt", "KeyboardInterrupt"]


@pytest.mark.parametrize("run", RUNS)
def test_step_events_match_every_main_bar_update(run: str) -> None:
    stdout, stderr = _streams(run)
    expected = [
        int(m.group(1))
        for seg in re.split(rb"[\r\n]", stderr)
        if (m := re.match(rb"^steps:\s+\d+%\|[^|]*\|\s*(\d+)/\d+", seg))
    ]
    parser = ProgressParser()
    steps = []
    for ev in parser.feed("stdout", stdout) + parser.feed("stderr", stderr) + parser.close():
        if ev.kind == "step":
            steps.append(int(ev.text.split("/")[0]))
    assert steps == expected


@pytest.mark.parametrize("run", RUNS)
def test_any_chunking_gives_the_same_state(run: str) -> None:
    stdout, stderr = _streams(run)
    whole = _summary(parse_output(stdout, stderr))
    for size in (1, 3, 97, 4096):
        parser = ProgressParser()
        rng = random.Random(size)
        out_pos = err_pos = 0
        # interleave the two streams in random order, as two pipes arrive
        while out_pos < len(stdout) or err_pos < len(stderr):
            if err_pos >= len(stderr) or (out_pos < len(stdout) and rng.random() < 0.3):
                parser.feed("stdout", stdout[out_pos : out_pos + size])
                out_pos += size
            else:
                parser.feed("stderr", stderr[err_pos : err_pos + size])
                err_pos += size
        parser.close()
        assert _summary(parser.state) == whole, size


def test_binary_junk_is_harmless() -> None:
    parser = ProgressParser()
    junk = random.Random(1).randbytes(256 * 1024)
    parser.feed("stderr", junk)
    parser.feed("stdout", junk)
    parser.feed("stdout", b"\nepoch 2/5\n")
    parser.close()
    assert parser.state.epoch == 2 and parser.state.epochs == 5


def test_flood_without_newlines_stays_bounded() -> None:
    parser = ProgressParser()
    block = b"x" * 65536
    for _ in range(160):  # 10 MiB, no line break
        parser.feed("stderr", block)
        assert parser.pending_bytes <= MAX_SEGMENT
    assert parser.state.dropped_bytes >= 160 * 65536 - MAX_SEGMENT
    # the parser recovers at the next line break
    parser.feed("stderr", b"\rsteps:  50%|#####     | 5/10 [00:05<00:05,  1.00s/it, avr_loss=0.5]\n")
    assert (parser.state.step, parser.state.total_steps, parser.state.avr_loss) == (5, 10, 0.5)


def test_wrapped_error_record_is_joined() -> None:
    # rich wraps a long message at the console width (80 columns when not a TTY); continuation lines are indented
    # by the time and level columns (20 + 9 characters)
    lines = [
        "2026-11-25 23:44:15 ERROR    No data found. Please verify arguments   train_network.py:576",
        " " * 29 + "(train_data_dir must be the parent of",
        " " * 29 + "folders with images) / 画像がありません。",
    ]
    st = parse_output(b"", ("\n".join(lines) + "\n").encode())
    assert st.no_data == (
        "No data found. Please verify arguments (train_data_dir must be the parent of folders with images)"
    )


def test_rate_conversion_and_english_part() -> None:
    st = ProgressState(rate="1.14it/s")
    assert st.seconds_per_step == pytest.approx(1 / 1.14)
    assert ProgressState(rate="?it/s").seconds_per_step is None
    assert english_part("Invalid user config / ユーザ設定の形式が正しくないようです") == "Invalid user config"
    assert english_part("plain message") == "plain message"


def test_sampling_phases_of_the_real_run() -> None:
    """fixture `article-mini` samples after epochs 2 and 4 (one prompt, 2 steps at 64 px): the phase starts with
    `generating sample images at step`, counts its prompts and the unlabelled denoising bar, and ends when
    training (or the final save) goes on — the main bar sits still meanwhile."""
    stdout, stderr = _streams("article-mini")
    parser = ProgressParser()
    parser.feed("stdout", stdout)
    seen: list[tuple[str, str, int | None]] = []
    mid_phase = None
    for i in range(0, len(stderr), 97):  # arbitrary chunks
        for ev in parser.feed("stderr", stderr[i : i + 97]):
            if ev.kind != "step":
                seen.append((ev.kind, ev.text, parser.state.step))
            if ev.kind == "sample_step" and ev.text == "1/2" and mid_phase is None:
                phase = parser.state.sampling
                assert phase is not None
                mid_phase = (phase.at_step, phase.image, phase.step, phase.steps, phase.rate)
    parser.close()
    kinds = [k for k, _, _ in seen if k.startswith("sampl")]
    assert kinds == ["sampling", "sample_image", *["sample_step"] * 4, "sampling_done"] * 2
    assert [(text, step) for kind, text, step in seen if kind == "sampling"] == [("24", 24), ("48", 48)]
    assert mid_phase == (24, 1, 1, 2, "1.05s/it")
    st = parser.state
    assert st.sampling is None and st.sampling_phases == 2
    # other runs never sample
    assert parse_output(*_streams("validation")).sampling_phases == 0


def test_loss_at_each_step_and_whether_the_bar_has_settled() -> None:
    """An epoch line needs the loss at its epoch's last step even when the bar has moved on (bounded memory)."""
    from kohya_recipe.train.progress import MAX_STEP_LOSSES

    st = parse_output(*_streams("article-mini"))
    assert st.steps_per_epoch == 12
    assert st.step_losses[12] == 1.04 and st.step_losses[24] == 1.13 and st.step_losses[48] == 1.12
    parser = ProgressParser()
    parser.feed("stderr", b"\rsteps:  50%|#    | 6/12 [00:01<00:01, 1.00s/it, avr_loss=1.5]")
    parser.feed("stderr", b"\rsteps:  50%|#    | 6/12 [00:01<00:01, 1.00s/it, avr_loss=1.4]")
    assert not parser.state.bar_settled  # the last segment is still open: another update of step 6 may follow
    parser.feed("stderr", b"2026-11-25 23:42:00 WARNING  Failed to get git commit hash   sai_model_spec.py:288\n")
    assert parser.state.bar_settled and parser.state.step_losses[6] == 1.4
    for step in range(7, 7 + MAX_STEP_LOSSES + 5):
        parser.feed("stderr", f"\rsteps:   0%|    | {step}/9999 [00:01<00:01, 1.00s/it, avr_loss=1.0]".encode())
    assert len(parser.state.step_losses) == MAX_STEP_LOSSES and 6 not in parser.state.step_losses
