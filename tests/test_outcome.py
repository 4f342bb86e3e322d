"""Outcome detection for each real run in tests/data/trainer (copied from ../shared/fixtures/sd-scripts-runs)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from kohya_recipe.errors import ExitCode
from kohya_recipe.train.outcome import FAILED, INTERRUPTED, SUCCESS, decide_outcome, describe_exit, is_sigint_exit
from kohya_recipe.train.progress import ProgressState, parse_output

DATA = Path(__file__).parent / "data" / "trainer"

# What each real run left in model/ (from ../shared/fixtures/sd-scripts-runs/<run>/model/)
MODEL_FILES = {
    "article-mini": [
        "testchar-1-A-000001.safetensors",
        "testchar-1-A-000002.safetensors",
        "testchar-1-A-000003.safetensors",
        "testchar-1-A.safetensors",
    ],
    "validation": ["testchar-1-B-000001.safetensors", "testchar-1-B-000002.safetensors", "testchar-1-B.safetensors"],
    "resume": ["testchar-1-B.safetensors"],
    "no-data": [],
    "bad-dataset-config": [],
    "interrupted": [
        "testchar-1-A-000001.safetensors",
        "testchar-1-A-000002.safetensors",
        "testchar-1-A-000003.safetensors",
    ],
}
# the run's output_name (config.toml of each fixture)
FINAL = {
    "article-mini": "testchar-1-A",
    "interrupted": "testchar-1-A",
    "no-data": "testchar-1-A",
    "validation": "testchar-1-B",
    "resume": "testchar-1-B",
    "bad-dataset-config": "testchar-1-B",
}


def _judge(run: str, tmp_path: Path, exit_code: int | None = None, interrupted: bool = False):
    model = tmp_path / "model"
    model.mkdir()
    for name in MODEL_FILES[run]:
        (model / name).write_bytes(b"x")
    state = parse_output((DATA / run / "stdout.txt").read_bytes(), (DATA / run / "stderr.txt").read_bytes())
    code = int((DATA / run / "exit_code.txt").read_text()) if exit_code is None else exit_code
    final = model / f"{FINAL[run]}.safetensors"
    return decide_outcome(code, final, state, interrupted=interrupted)


@pytest.mark.parametrize("run", ["article-mini", "validation", "resume"])
def test_successful_runs(run: str, tmp_path: Path) -> None:
    out = _judge(run, tmp_path)
    assert out.outcome == SUCCESS and out.ok and out.cli_exit_code == 0
    assert out.final_checkpoint == tmp_path / "model" / f"{FINAL[run]}.safetensors"
    assert out.message == f"wrote {FINAL[run]}.safetensors"


def test_no_data_exit_0_is_a_failure_with_the_trainers_message(tmp_path: Path) -> None:
    out = _judge("no-data", tmp_path)
    assert out.exit_code == 0
    assert out.outcome == FAILED and out.cli_exit_code == ExitCode.TRAINER_FAILED
    assert out.message == (
        "sd-scripts found no training images: No data found. Please verify arguments "
        "(train_data_dir must be the parent of folders with images)"
    )


def test_bad_dataset_config_reports_the_voluptuous_line(tmp_path: Path) -> None:
    out = _judge("bad-dataset-config", tmp_path)
    assert out.outcome == FAILED
    assert out.message == (
        "the trainer failed (exit 1): voluptuous.error.MultipleInvalid: extra keys not allowed @ "
        "data['general']['batch_sise']"
    )


@pytest.mark.parametrize("code", [130, -int(signal.SIGINT)])
def test_interrupted_run(code: int, tmp_path: Path) -> None:
    # 130 is what a shell reports (fixture exit_code.txt); subprocess reports death by SIGINT as -2
    out = _judge("interrupted", tmp_path, exit_code=code)
    assert out.outcome == INTERRUPTED and out.cli_exit_code == 130
    assert out.message == "interrupted at epoch 4/20, step 43/240"


def test_interrupt_requested_but_trainer_finished_is_success(tmp_path: Path) -> None:
    out = _judge("article-mini", tmp_path, interrupted=True)
    assert out.outcome == SUCCESS


def test_interrupt_requested_and_terminated(tmp_path: Path) -> None:
    out = _judge("interrupted", tmp_path, exit_code=-int(signal.SIGTERM), interrupted=True)
    assert out.outcome == INTERRUPTED


def test_exit_0_without_final_file_and_without_message(tmp_path: Path) -> None:
    out = decide_outcome(0, tmp_path / "x.safetensors", ProgressState())
    assert out.outcome == FAILED and out.message == "the trainer exited 0 but did not write x.safetensors"


def test_sigkill_without_message_hints_at_memory(tmp_path: Path) -> None:
    out = decide_outcome(-int(signal.SIGKILL), tmp_path / "x.safetensors", ProgressState())
    assert out.outcome == FAILED
    assert "killed by SIGKILL" in out.message and "out of memory" in out.message


def test_failure_without_any_message(tmp_path: Path) -> None:
    out = decide_outcome(2, tmp_path / "x.safetensors", ProgressState())
    assert out.message == "the trainer failed (exit 2): no error message in the output"


def test_exit_descriptions() -> None:
    assert describe_exit(1) == "exit 1"
    assert describe_exit(-int(signal.SIGTERM)) == "killed by SIGTERM"
    assert describe_exit(None) == "no exit status"
    assert is_sigint_exit(130) and is_sigint_exit(-2) and not is_sigint_exit(1)


def test_a_final_file_from_an_earlier_run_does_not_count(tmp_path: Path) -> None:
    # the no-data run exits 0; an old testchar-1-A.safetensors must not make it a success
    out = _judge("no-data", tmp_path)
    final = tmp_path / "model" / "testchar-1-A.safetensors"
    final.write_bytes(b"old")
    state = parse_output(b"", (DATA / "no-data" / "stderr.txt").read_bytes())
    assert decide_outcome(0, final, state).outcome == SUCCESS  # presence alone would say success
    assert decide_outcome(0, final, state, final_written=False).outcome == FAILED
    assert out.outcome == FAILED
