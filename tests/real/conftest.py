"""Acceptance tests against the real programs: the real sd-scripts trainer and the real, unmodified kohya_ss GUI.

They run only where the harnesses of ``shared/harness/`` are built, and read their paths from the environment:

    KOHYA_RECIPE_REAL_TRAINER   the trainer harness (holds run_real.sh, sd-scripts/, venv/, models/sd15-random)
    KOHYA_RECIPE_REAL_GUI       the GUI harness (holds gui_check.py, kohya_ss/, venv/)
    KOHYA_RECIPE_REAL_DATA      the sample data the GUI harness copies (gui-configs/, darius/)

Without them every test here is skipped, and the reason says how to build what is missing. CI has none of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

BUILD_TRAINER = "SD_SCRIPTS_GIT=<kohya-ss/sd-scripts git dir> shared/harness/build_trainer.sh  (~15 min)"
BUILD_GUI = "shared/harness/build_gui.sh <bmaltais/kohya_ss git dir> [<sd-scripts git dir>]  (~3 min)"


def _dir(var: str, marker: str, build: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"{var} is not set: build the harness with `{build}` and set {var} to its folder")
    path = Path(value)
    if not (path / marker).exists():
        pytest.skip(f"{var}={value} holds no {marker}: build it with `{build}`")
    return path


@dataclass(frozen=True)
class Trainer:
    """The real-trainer harness: ``run(project, config)`` trains with run_real.sh and returns the process."""

    root: Path

    @property
    def sd_scripts(self) -> Path:
        return self.root / "sd-scripts"

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    @property
    def model(self) -> Path:
        return self.root / "models" / "sd15-random"

    @property
    def tokenizers(self) -> Path:
        return self.root / "tokenizers"

    def sets(self) -> list[str]:
        """``--set`` overrides that make a recipe train here (random model, local tokenizers, 64 px, CPU)."""
        return [
            f"model.base={self.model}",
            f"extra.tokenizer_cache_dir={self.tokenizers}",
            "training.resolution=64",
            "training.min_bucket_reso=64",
            "training.max_bucket_reso=128",
            "training.mixed_precision=no",
            "training.save_precision=float",
            "training.attention=sdpa",
        ]

    def run(self, project: Path, config: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / "run_real.sh"), str(project), str(config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@dataclass(frozen=True)
class Gui:
    """The real-GUI harness: ``check(config_json, out_dir, *flags)`` loads a JSON into a fresh form and prints the
    training command; ``out_dir/gui.toml`` is the TOML the GUI would train with."""

    root: Path

    def check(self, config: Path, out: Path, *flags: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.root / "venv" / "bin" / "python"), "gui_check.py", str(config), "--out", str(out), "-q", *flags],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )


@pytest.fixture(scope="session")
def trainer() -> Trainer:
    return Trainer(_dir("KOHYA_RECIPE_REAL_TRAINER", "run_real.sh", BUILD_TRAINER))


@pytest.fixture(scope="session")
def gui() -> Gui:
    return Gui(_dir("KOHYA_RECIPE_REAL_GUI", "gui_check.py", BUILD_GUI))


@pytest.fixture(scope="session")
def real_data() -> Path:
    return _dir("KOHYA_RECIPE_REAL_DATA", "gui-configs", BUILD_GUI)


def kohya_recipe(*args: str, cwd: Path | None = None, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run the kohya-recipe CLI as a user would (a separate process)."""
    cmd = [sys.executable, "-m", "kohya_recipe", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
