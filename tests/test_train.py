"""`train` end to end with the fake sd-scripts (tests/fake_sd_scripts): success, no data, bad config, Ctrl-C,
resume, re-render, run records, dry run and the CLI's exit codes and messages.

The fake reproduces the real trainer's files and output; the fidelity checks compare it with the real artefacts in
tests/data/trainer (copied from ../shared/fixtures/sd-scripts-runs, see its README).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _dataset_util import finishes
from _train_util import FAKE_SD_SCRIPTS, FAKE_SITE, KNOBS, cli_process, fake_env, make_project, png

from kohya_recipe.errors import ExitCode, RenderError
from kohya_recipe.files import sha256_file
from kohya_recipe.report.events import read_event_file
from kohya_recipe.report.safetensors_meta import read_metadata as safetensors_metadata
from kohya_recipe.train.display import EpochLines
from kohya_recipe.train.launch import TrainerSetupError
from kohya_recipe.train.run import find_resume_state, train_project
from tests._cli_util import run_cli

DATA = Path(__file__).parent / "data" / "trainer"
posix_only = pytest.mark.skipif(os.name == "nt", reason="signals to the own process")


def _train(root: Path, **kwargs):
    kwargs.setdefault("display", EpochLines(io.StringIO()))
    return train_project(root, sd_scripts=FAKE_SD_SCRIPTS, python=sys.executable, **kwargs)


def _interrupt_when(path: Path) -> None:
    """SIGINT to this process once ``path`` exists (never after a timeout: it would hit pytest itself). The
    interrupted runs are far longer than the wait, so a busy machine cannot let them finish first."""

    def wait_and_kill() -> None:
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if path.exists():
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C at the terminal does to kohya-recipe

    threading.Thread(target=wait_and_kill, daemon=True).start()


# ---------------------------------------------------------------------------------------------------------------
# success and the run record


def test_success_writes_checkpoints_and_a_run_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    record = _train(root)
    assert record.outcome == "success" and record.ok and record.exit_code == 0 and record.error is None
    assert record.path is not None and record.path.parent == root / "runs"
    data = json.loads(record.path.read_text(encoding="utf-8"))
    assert data["outcome"] == "success" and data["message"] == "wrote testchar-1-A.safetensors"
    assert data["checkpoints"] == [
        "model/testchar-1-A-000001.safetensors",
        "model/testchar-1-A-000002.safetensors",
        "model/testchar-1-A.safetensors",
    ]
    assert data["final_checkpoint"] == "model/testchar-1-A.safetensors"
    assert data["files"]["config.toml"] == sha256_file(root / "config.toml")
    assert data["files"]["dataset.toml"] == sha256_file(root / "dataset.toml")
    assert len(data["recipe_sha256"]) == 64
    assert data["command"][:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert data["command"][-5:] == [
        str(FAKE_SD_SCRIPTS / "train_network.py"),
        "--config_file",
        "config.toml",
        "--dataset_config",
        "dataset.toml",
    ]
    assert data["env"]["PYTHONUNBUFFERED"] == "1"
    assert data["sd_scripts"] == {
        "path": str(FAKE_SD_SCRIPTS),
        "script": "train_network.py",
        "commit": None,
        "ref": None,
        "tag": None,
    }
    assert data["progress"] == {
        "epoch": 3,
        "epochs": 3,
        "step": 18,
        "total_steps": 18,
        "avr_loss": data["progress"]["avr_loss"],
    }
    assert (root / data["log_file"]).is_file() and data["log_file"].startswith("log/train-")
    assert data["log_dir"] == "log" and len(data["tensorboard_runs"]) == 1
    assert data["resume"] is None and data["exit"] == "exit 0"


def test_fake_trainer_matches_the_real_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(
        tmp_path, dataset={"validation_split": 0.34, "validation_seed": 1}, training={"save_state": True}
    )
    record = _train(root)
    assert record.ok
    # safetensors metadata: the same keys as the real dataset_config-mode checkpoint of the `validation` run
    real = json.loads((DATA / "validation" / "metadata-000001.json").read_text(encoding="utf-8"))
    fake = safetensors_metadata(root / "model" / "testchar-1-A-000001.safetensors")
    assert set(fake) == set(real)
    assert (fake["ss_epoch"], fake["ss_steps"], fake["ss_output_name"]) == ("1", "4", "testchar-1-A")
    final = safetensors_metadata(root / "model" / "testchar-1-A.safetensors")
    assert (final["ss_epoch"], final["ss_steps"]) == ("3", "12")
    # state folders with train_state.json, as the real run wrote them
    real_state = json.loads((DATA / "validation" / "train_state-000002.json").read_text())
    fake_state = json.loads((root / "model" / "testchar-1-A-000002-state" / "train_state.json").read_text())
    assert set(fake_state) == set(real_state) and fake_state == {"current_epoch": 2, "current_step": 8}
    assert json.loads((root / "model" / "testchar-1-A-state" / "train_state.json").read_text()) == {
        "current_epoch": 3,
        "current_step": 12,
    }
    # TensorBoard, read with the project's own reader: the real run's tags, step = global step or epoch, and
    # intact TFRecord framing (no record skipped, no CRC warning)
    real_events = read_event_file(next((DATA / "validation").glob("events.out.tfevents.*")))
    fake_events = read_event_file(next((root / "log").glob("*/network_train/events.out.tfevents.*")))
    assert fake_events.tags == real_events.tags
    assert fake_events.file_version == real_events.file_version == "brain.Event:2"
    assert fake_events.warnings == [] and fake_events.skipped_records == 0
    assert list(fake_events.scalars["loss/epoch_average"].steps) == [1, 2, 3]
    assert list(fake_events.scalars["loss/current"].steps) == list(range(1, 13))


# the image folder of each real run (the fixtures' PNGs are 128x160 / 128x128; the fake reads only names)
FIDELITY_RUNS = {
    "article-mini": "img/2_testchar woman",
    "no-data": "img/testchar woman",
    "bad-dataset-config": "img/train",
    "validation": "img/train",
    "resume": "img/train",
}
_STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
_TIMING = re.compile(rb"\[\d\d:\d\d<[^\]]*\]")


def _segments(raw: bytes) -> list[bytes]:
    """stderr as the lines a terminal shows, minus what differs run to run: rich's time column (blank when the
    second did not change), tqdm's [elapsed<remaining, rate, postfix] and trailing padding, and where a log
    record happens to be glued to a bar without a newline."""
    raw = _STAMP.sub(b" " * 20, raw)
    raw = _TIMING.sub(b"[T]", raw)
    raw = re.sub(rb" +(\x1b\[A)", rb"\1", raw)  # tqdm pads a shorter line before a nested bar's cursor-up
    raw = re.sub(rb"(\[T\](?:\x1b\[A)*) *(?=[^\s\x1b]| {20})", rb"\1\n", raw)
    return [seg.rstrip() for seg in re.split(rb"[\r\n]", raw) if seg.strip()]


def _traceback_frame(seg: bytes) -> bool:
    # frames name files and line numbers of the real torch/voluptuous stack; the fake's stack is its own
    return seg.startswith(b'  File "') or re.match(rb" {4}\S", seg) is not None


@pytest.mark.parametrize("run", sorted(FIDELITY_RUNS))
def test_fake_trainer_prints_what_the_real_one_printed(run: str, tmp_path: Path) -> None:
    """The fake, launched like the real runs (`accelerate launch ... --config_file config.toml` in the run folder
    at 160 columns), with the real runs' config.toml / dataset.toml / prompt.txt (tests/data/trainer/<run>/,
    copied from ../shared/fixtures/sd-scripts-runs/<run>/): the same exit code, stdout byte for byte, and every
    stderr line it prints is a line the real trainer printed (the real one prints more: model loading, bucket
    details) — including the records a wrapper acts on."""
    src = DATA / run
    work = tmp_path / run
    work.mkdir()
    for name in ("config.toml", "dataset.toml", "prompt.txt"):
        if (src / name).is_file():
            (work / name).write_bytes((src / name).read_bytes())
    images = work / FIDELITY_RUNS[run]
    images.mkdir(parents=True)
    for i, (w, h) in enumerate([(128, 160), (128, 160), (128, 128), (128, 128), (128, 160), (128, 128)]):
        (images / f"img{i:02d}.png").write_bytes(png(w, h))
        (images / f"img{i:02d}.txt").write_text("1girl, testchar, braided hair, 3D render", encoding="utf-8")
    (work / "models" / "sd15-random").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in KNOBS}
    env.update({"COLUMNS": "160", "PYTHONPATH": str(FAKE_SITE), "PYTHONUNBUFFERED": "1"})
    # each denoising step slower than tqdm's 0.1 s refresh interval, as on the real (CPU) run: every step drawn
    env["FAKE_SD_SCRIPTS_SAMPLE_STEP_SECONDS"] = "0.11"
    argv = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_cpu_threads_per_process",
        "2",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(FAKE_SD_SCRIPTS / "train_network.py"),
        "--config_file",
        "config.toml",
    ]
    if run == "resume":
        # the real `resume` run continued the `validation` run from its epoch-2 state folder (`--resume`)
        first = subprocess.run(argv, cwd=work, env=env, capture_output=True, timeout=300, check=False)
        assert first.returncode == 0
        for name in ("testchar-1-B.safetensors", "testchar-1-B-state"):
            path = work / "model" / name
            path.unlink() if path.is_file() else shutil.rmtree(path)
        argv += ["--resume", "model/testchar-1-B-000002-state"]
    proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, timeout=300, check=False)
    assert proc.returncode == int((src / "exit_code.txt").read_text())
    assert proc.stdout == (src / "stdout.txt").read_bytes()
    stderr = proc.stderr.replace(sys.executable.encode(), b"<venv>/bin/python")
    stderr = stderr.replace(str(FAKE_SD_SCRIPTS).encode(), b"<sd-scripts>")
    real = _segments((src / "stderr.txt").read_bytes())
    fake = [seg for seg in _segments(stderr) if not _traceback_frame(seg)]
    assert [seg for seg in fake if seg not in set(real)] == []
    # what outcome detection reads: ERROR records (incl. rich's wrapping of the Japanese half at 160 columns),
    # the exception lines, the last bar position
    must = [
        seg
        for i, seg in enumerate(real)
        if re.match(rb" {20}ERROR ", seg)
        or (i and re.match(rb" {20}ERROR ", real[i - 1]) and seg.startswith(b" " * 29))
        or re.match(rb"[a-z_.]+\.[A-Za-z]*(Error|Invalid): ", seg)
        # the sampling phase the live bar shows (fixture `article-mini`): its records and the denoising bar
        or re.match(rb" {20}INFO     (generating sample images|prompt:|negative_prompt:|sample_steps:|seed:)", seg)
        or re.match(rb" *\d+%\|.*\x1b\[A$", seg)  # nested below the main bar: the denoising steps
    ]
    assert [seg for seg in must if seg not in set(fake)] == []
    if run != "bad-dataset-config":
        assert fake[-1] == real[-1]


def test_sdxl_project_runs_sdxl_train_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(
        tmp_path,
        preset="likeness-sdxl",
        model={"base": "models/sd15", "family": "sdxl"},
        training={"resolution": [64, 64], "max_bucket_reso": 128},
    )
    record = _train(root)
    assert record.ok and record.command.argv[-5].endswith("sdxl_train_network.py")
    meta = safetensors_metadata(root / "model" / "testchar-1-A.safetensors")
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"


# ---------------------------------------------------------------------------------------------------------------
# failures


def test_no_data_exit_0_is_reported_as_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    # a dataset.toml pointing at a folder without images (the real fixture used a folder without "N_")
    (root / "img" / "empty").mkdir()
    dataset = root / "dataset.toml"
    dataset.write_text(dataset.read_text().replace('image_dir = "img/2_testchar woman"', 'image_dir = "img/empty"'))
    code, out, err = run_cli("train", root, "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert code == ExitCode.TRAINER_FAILED and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "Error: sd-scripts found no training images: No data found. Please verify arguments (train_data_dir "
        "must be the parent of folders with images); full output: log/train-"
    )
    record = json.loads(next((root / "runs").glob("*.json")).read_text())
    assert record["outcome"] == "failed" and record["exit_code"] == 0 and record["checkpoints"] == []
    assert (tmp_path / "proj-images" / "img00.png").is_file()


def test_bad_dataset_config_reports_the_trainers_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    text = (root / "dataset.toml").read_text().replace("[general]\n", "[general]\nbatch_sise = 2\n")
    (root / "dataset.toml").write_text(text)
    record = _train(root)
    assert record.outcome == "failed" and record.exit_code == 1
    assert record.error is not None and record.error.startswith(
        "the trainer failed (exit 1): voluptuous.error.MultipleInvalid: extra keys not allowed @ "
        "data['general']['batch_sise']; full output: log/train-"
    )


# ---------------------------------------------------------------------------------------------------------------
# Ctrl-C and resume


@posix_only
def test_ctrl_c_keeps_checkpoints_exits_130_and_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_env(monkeypatch, step_seconds=0.05)  # 30 epochs x 6 steps: 9 s, interrupted after epoch 2
    root = make_project(tmp_path, training={"max_train_epochs": 30, "save_state": True})
    _interrupt_when(root / "model" / "testchar-1-A-000002-state" / "random_states_0.pkl")
    code, _, err = run_cli("train", root, "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert code == ExitCode.INTERRUPTED
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: interrupted at epoch ")
    assert f"resume with `kohya-recipe train {root} --resume`" in last
    assert (root / "model" / "testchar-1-A-000001.safetensors").is_file()
    assert (root / "model" / "testchar-1-A-000002.safetensors").is_file()
    assert not (root / "model" / "testchar-1-A.safetensors").exists()
    first = json.loads(sorted((root / "runs").glob("*.json"))[-1].read_text())
    assert first["outcome"] == "interrupted" and first["signals_sent"] == ["SIGINT"]
    assert first["exit_code"] == -signal.SIGINT

    state = find_resume_state(root)
    assert state is not None and state.epoch >= 2
    fake_env(monkeypatch)  # the resumed run at full speed
    out = io.StringIO()
    record = _train(root, resume=True, display=EpochLines(out))
    assert record.ok
    assert out.getvalue().splitlines()[0] == (
        f"resuming from model/testchar-1-A-{state.epoch:06d}-state: epoch {state.epoch}/30 done "
        f"(step {state.step}); training continues with epoch {state.epoch + 1}/30"
    )
    assert record.command.argv[-2:] == ["--resume", f"model/testchar-1-A-{state.epoch:06d}-state"]
    assert record.data["resume"] == {
        "state": f"model/testchar-1-A-{state.epoch:06d}-state",
        "epoch": state.epoch,
        "step": state.step,
    }
    # like the real resume run: the epoch count continues, the final file carries the last epoch
    assert record.data["progress"]["epoch"] == 30
    assert safetensors_metadata(root / "model" / "testchar-1-A.safetensors")["ss_epoch"] == "30"


def test_resume_without_state_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    code, out, err = run_cli("train", root, "--resume", "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert code == ExitCode.ERROR and out == ""
    assert err == (
        f"Error: {root / 'model'}: nothing to resume: no testchar-1-A-…-state folder with train_state.json "
        "(training.save_state is off in the recipe); run without --resume to start over\n"
    )
    assert not list((root / "runs").glob("*.json"))


def test_resume_of_a_finished_run_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path, training={"save_state": True})
    assert _train(root).ok
    with pytest.raises(TrainerSetupError, match=r"training already finished there \(epoch 3 of 3\)"):
        _train(root, resume=True)


def test_find_resume_state_picks_the_newest(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    model = root / "model"

    def state(name: str, epoch: int, step: int, mtime: int) -> None:
        folder = model / name
        folder.mkdir()
        (folder / "train_state.json").write_text(json.dumps({"current_epoch": epoch, "current_step": step}))
        os.utime(folder / "train_state.json", (mtime, mtime))

    assert find_resume_state(root) is None
    state("testchar-1-A-000009-state", 9, 90, 1000)  # an older run went further
    state("testchar-1-A-000003-state", 3, 30, 2000)  # the current run
    state("testchar-1-B-000005-state", 5, 50, 3000)  # another output name
    state("testchar-1-A-step00000040-state", 3, 40, 1500)
    (model / "testchar-1-A-000004-state").mkdir()  # no train_state.json (interrupted while saving)
    broken = model / "testchar-1-A-000006-state"
    broken.mkdir()
    (broken / "train_state.json").write_text("{not json")
    found = find_resume_state(root)
    assert found is not None and found.path.name == "testchar-1-A-000003-state"
    assert (found.epoch, found.step) == (3, 30)


# ---------------------------------------------------------------------------------------------------------------
# re-rendering, dry run, bad input


def test_changed_recipe_is_rendered_again_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    recipe = root / "resolved-recipe.toml"
    text = recipe.read_text()
    assert "rank = 4\n" in text
    recipe.write_text(text.replace("rank = 4\n", "rank = 8\n"))
    record = _train(root)
    assert record.ok and "config.toml" in record.data["rerendered"]
    assert "network_dim = 8" in (root / "config.toml").read_text()
    assert safetensors_metadata(root / "model" / "testchar-1-A.safetensors")["ss_network_dim"] == "8"
    again = _train(root)  # up to date now: nothing to render
    assert again.ok and again.data["rerendered"] == []


def test_hand_edited_config_is_used_when_the_recipe_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    config = root / "config.toml"
    config.write_text(config.read_text().replace("network_dim = 4", "network_dim = 6"))
    out = io.StringIO()
    record = _train(root, display=EpochLines(out))
    assert record.ok and record.data["rerendered"] == []
    assert out.getvalue().startswith("using hand-edited files as they are (would overwrite 1 file(s)")
    assert record.data["notes"][0].startswith("using hand-edited files as they are")
    assert safetensors_metadata(root / "model" / "testchar-1-A.safetensors")["ss_network_dim"] == "6"
    assert "network_dim = 6" in config.read_text()


def test_changed_recipe_and_hand_edited_config_conflict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    (root / "config.toml").write_text((root / "config.toml").read_text() + "\n# my note\n")
    recipe = root / "resolved-recipe.toml"
    recipe.write_text(recipe.read_text().replace("rank = 4\n", "rank = 8\n"))
    with pytest.raises(RenderError, match=r"would overwrite 1 file\(s\).*run `kohya-recipe render .*resolved-recipe"):
        _train(root)
    assert (root / "config.toml").read_text().endswith("# my note\n")


def test_missing_rendered_file_is_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    (root / "dataset.toml").unlink()
    record = _train(root)
    assert record.ok and record.data["rerendered"] == ["dataset.toml"]


def test_dry_run_prints_the_command_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    code, out, err = run_cli("train", root, "--dry-run", "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"# cwd: {root}"
    assert lines[1].startswith("# env: PYTHONUNBUFFERED=1 PYTHONIOENCODING=utf-8 COLUMNS=200 PYTHONPATH=")
    assert lines[2] == (
        f"{sys.executable} -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision fp16 "
        f"--dynamo_backend no --num_cpu_threads_per_process 2 {FAKE_SD_SCRIPTS}/train_network.py "
        "--config_file config.toml --dataset_config dataset.toml"
    )
    assert not list((root / "runs").iterdir()) and not list((root / "log").iterdir())
    code, out, _ = run_cli(
        "train", root, "--dry-run", "--json", "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable
    )
    assert code == 0 and json.loads(out)["outcome"] == "dry-run"


def test_cli_json_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    code, out, err = run_cli("train", root, "--json", "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert code == 0
    data = json.loads(out)
    assert data["outcome"] == "success" and data["record"].startswith("runs/")
    # progress still goes to stderr, one line per epoch (not a TTY)
    epochs = [line.split("  ")[0] for line in err.splitlines() if line.startswith("epoch")]
    assert epochs == ["epoch 1/3", "epoch 2/3", "epoch 3/3"], err


def test_cli_success_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    code, out, _ = run_cli("train", root, "--quiet", "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert code == 0
    assert out.splitlines()[0].startswith(
        "trained testchar-1-A: model/testchar-1-A.safetensors (3 checkpoint(s), 18 steps, "
    )
    assert out.splitlines()[1].startswith("record: runs/") and " log: log/train-" in out


def test_not_a_project(tmp_path: Path) -> None:
    code, out, err = run_cli("train", tmp_path)
    assert code == ExitCode.ERROR and out == ""
    assert err.startswith(f"Error: {tmp_path}: not a kohya-recipe project (no resolved-recipe.toml)")


def test_sd_scripts_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("train", root)
    assert code == ExitCode.ERROR
    assert err.startswith("Error: sd-scripts not found; looked at $KOHYA_RECIPE_SD_SCRIPTS (unset), $SD_SCRIPTS")
    code, _, err = run_cli("train", root, env={"SD_SCRIPTS": str(tmp_path / "nowhere")})
    assert err == f"Error: $SD_SCRIPTS {tmp_path / 'nowhere'}: folder does not exist\n"


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is not None, reason="real accelerate installed")
def test_accelerate_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    monkeypatch.delenv("PYTHONPATH")  # no fake accelerate either
    code, _, err = run_cli("train", root, "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert code == ExitCode.ERROR
    assert err.startswith(f"Error: --python {sys.executable}: accelerate is not installed for this Python")


def test_log_folder_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    (root / "log").rmdir()
    (root / "log").write_text("not a folder")
    code, _, err = run_cli("train", root, "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert code == ExitCode.ERROR
    assert err == f"Error: {root / 'log'}: cannot write the training log: not a folder\n"


@pytest.mark.skipif(os.name == "nt", reason="flock")
def test_one_train_per_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    fake_env(monkeypatch)
    root = make_project(tmp_path)
    lock = root / ".kohya-recipe" / "train.lock"
    with lock.open("a+") as held:  # another `train` holds the project
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        with pytest.raises(TrainerSetupError) as exc:
            _train(root)
        assert str(exc.value) == (
            f"{root}: another `kohya-recipe train` is training this project (pid 4242); wait for it or stop it"
        )
        assert _train(root, dry_run=True).outcome == "dry-run"  # a dry run does not need the lock
    assert _train(root).ok  # released: the kernel drops the lock with the holder
    assert lock.read_text() == str(os.getpid())


# ---------------------------------------------------------------------------------------------------------------
# special files where a file is read (issue 14): one line, no hang


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("config.toml", "config.toml: not a regular file (a FIFO): reading it would block or never end; replace it"),
        ("dataset.toml", "dataset.toml: not a regular file (a FIFO): reading it would block"),
        ("sample-prompts.txt", "sample-prompts.txt: not a regular file (a FIFO): reading it would block"),
        (".kohya-recipe/manifest.json", "manifest.json: not a regular file (a FIFO): reading it would block"),
        (".kohya-recipe/train.lock", "train.lock: not a regular file: a lock file must be one; remove it"),
        ("resolved-recipe.toml", "not a kohya-recipe project (no resolved-recipe.toml)"),
    ],
)
def test_a_fifo_in_the_project_is_one_line_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, message: str
) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    target = root / name
    target.unlink(missing_ok=True)
    os.mkfifo(target)
    for extra in ([], ["--dry-run"] if name != ".kohya-recipe/train.lock" else []):  # a dry run takes no lock
        code, out, err = cli_process("train", root, "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable, *extra)
        assert (code, out) == (1, "")
        assert err.startswith("Error: ") and message in err and err.count("\n") == 1, err
    assert not list((root / "model").glob("*.safetensors"))  # nothing was launched


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifos_given_as_inputs_of_train_and_doctor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_project(tmp_path)
    fifo = tmp_path / "f.toml"
    os.mkfifo(fifo)
    fifo.chmod(0o755)
    for args, message in (
        (["train", fifo], f"Error: {fifo}: project folder not found"),
        (["doctor", fifo, "--sd-scripts", FAKE_SD_SCRIPTS], f"Error: {fifo}: project folder not found"),
        (["train", root, "--sd-scripts", FAKE_SD_SCRIPTS, "--python", fifo], f"Error: --python {fifo}: not a file"),
        (["train", root, "--sd-scripts", fifo], f"Error: --sd-scripts {fifo}: not a folder"),
    ):
        code, out, err = cli_process(*args)
        assert (code, out) == (1, "") and err.startswith(message) and err.count("\n") == 1, (args, err)
    # doctor reads the project's config.toml: a FIFO there is one line too
    (root / "config.toml").unlink()
    os.mkfifo(root / "config.toml")
    code, _, err = cli_process("doctor", root, "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert (
        code == 1
        and err == f"Error: {root / 'config.toml'}: not a regular file (a FIFO): reading it would block or never end\n"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_in_sd_scripts_git_metadata_does_not_block_train(tmp_path: Path) -> None:
    """`train` reads .git/HEAD and the ref it names to record sd-scripts' commit: a FIFO there means "no
    commit known", not a hang. (The trainer reads them too; that part is sd-scripts' own.)"""
    from kohya_recipe.train.launch import sd_scripts_version

    sd = tmp_path / "sd-scripts"
    shutil.copytree(FAKE_SD_SCRIPTS, sd, ignore=shutil.ignore_patterns("site", "__pycache__"))
    (sd / ".git" / "refs" / "heads").mkdir(parents=True)
    os.mkfifo(sd / ".git" / "HEAD")
    assert finishes(lambda: sd_scripts_version(sd)) == {"commit": None, "ref": None, "tag": None}
    (sd / ".git" / "HEAD").unlink()
    (sd / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    os.mkfifo(sd / ".git" / "refs" / "heads" / "main")
    assert finishes(lambda: sd_scripts_version(sd)) == {"commit": None, "ref": "refs/heads/main", "tag": None}


# ---------------------------------------------------------------------------------------------------------------
# extending a finished run (issue 15): the previous final file is kept under its epoch name


def _extend_to(root: Path, epochs: int) -> None:
    recipe = root / "resolved-recipe.toml"
    text = re.sub(r"max_train_epochs = \d+\n", f"max_train_epochs = {epochs}\n", recipe.read_text())
    recipe.write_text(text)


def _finished_two_epoch_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project (save_state) the fake trainer has trained to its final file, epoch 2."""
    fake_env(monkeypatch)
    root = make_project(tmp_path, training={"max_train_epochs": 2, "save_state": True})
    assert _train(root).ok
    return root


def test_extending_a_finished_run_keeps_its_final_file_under_its_epoch_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _finished_two_epoch_run(tmp_path, monkeypatch)
    model = root / "model"
    old_final = (model / "testchar-1-A.safetensors").read_bytes()
    assert safetensors_metadata(model / "testchar-1-A.safetensors")["ss_epoch"] == "2"
    assert not (model / "testchar-1-A-000002.safetensors").exists()  # sd-scripts never numbers the last epoch

    _extend_to(root, 3)
    out = io.StringIO()
    record = _train(root, resume=True, display=EpochLines(out))
    assert record.ok, record.message
    kept = model / "testchar-1-A-000002.safetensors"
    assert kept.read_bytes() == old_final and safetensors_metadata(kept)["ss_epoch"] == "2"
    assert safetensors_metadata(model / "testchar-1-A.safetensors")["ss_epoch"] == "3"
    note = (
        "kept the previous final model/testchar-1-A.safetensors (epoch 2) as model/testchar-1-A-000002.safetensors: "
        "the resumed run writes its own final file over it"
    )
    assert note in out.getvalue().splitlines()
    assert record.data["kept_final"] == {"file": "model/testchar-1-A-000002.safetensors", "epoch": 2, "copied": True}
    assert "model/testchar-1-A-000002.safetensors" not in record.data["checkpoints"]  # not written by the trainer
    assert not list(model.glob(".*.tmp"))

    # every epoch of the extended run now has its file, as if it had been trained in one go
    _extend_to(root, 4)
    assert _train(root, resume=True).ok
    names = sorted(p.name for p in model.glob("*.safetensors"))
    assert names == [f"testchar-1-A-00000{e}.safetensors" for e in (1, 2, 3)] + ["testchar-1-A.safetensors"]
    assert [safetensors_metadata(model / n)["ss_epoch"] for n in names] == ["1", "2", "3", "4"]


def test_a_different_file_under_the_epoch_name_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _finished_two_epoch_run(tmp_path, monkeypatch)
    model = root / "model"
    mine = model / "testchar-1-A-000002.safetensors"
    mine.write_bytes(b"the user's own file")
    final = (model / "testchar-1-A.safetensors").read_bytes()
    _extend_to(root, 3)
    code, out, err = run_cli("train", root, "--resume", "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert (code, out) == (1, "")
    assert err == (
        f"Error: {model}: the resumed run would overwrite testchar-1-A.safetensors (epoch 2), and "
        "testchar-1-A-000002.safetensors exists with other weights; move one of them away first\n"
    )
    assert mine.read_bytes() == b"the user's own file" and (model / "testchar-1-A.safetensors").read_bytes() == final
    assert len(list((root / "runs").glob("*.json"))) == 1  # nothing was launched

    # an identical copy (kept by an earlier attempt that then failed) is simply reused
    mine.write_bytes(final)
    out_text = io.StringIO()
    record = _train(root, resume=True, display=EpochLines(out_text))
    assert record.ok and record.data["kept_final"]["copied"] is False
    assert "already kept the previous final model/testchar-1-A.safetensors (epoch 2)" in out_text.getvalue()
    assert mine.read_bytes() == final
