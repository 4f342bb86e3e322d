"""Helpers for the sweep and queue tests: a small recipe with images made on the fly, rendered projects, and fake
training functions that stand in for ``kohya_recipe.train.run.train_project``."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.errors import TrainerError, TrainingInterrupted

TESTS_DIR = Path(__file__).parent


def make_images(folder: Path, count: int = 3) -> Path:
    """``count`` small PNGs with one ``.txt`` caption each (the article's layout, scaled down)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (64, 80), (40 * i, 90, 120)).save(folder / f"img{i:02d}.png")
        (folder / f"img{i:02d}.txt").write_text("1girl, CharacterAI, cornrow hair\n", encoding="utf-8")
    return folder


def write_recipe(folder: Path, *extra_lines: str, name: str = "recipe.toml") -> Path:
    """A recipe on the likeness-sd15 preset for trigger CharacterAI, its images in ``folder/imgs``."""
    make_images(folder / "imgs")
    lines = [
        'preset = "likeness-sd15"',
        "[subject]",
        'trigger = "CharacterAI"',
        "[dataset]",
        'images = "imgs"',
        *extra_lines,
    ]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_project(folder: Path, letter: str = "A", *sets: str) -> Path:
    """Render a project for ``CharacterAI-1-<letter>`` into ``folder/CharacterAI-1-<letter>``."""
    from kohya_recipe.recipe.loading import load_recipe
    from kohya_recipe.render.project import render_project

    recipe_file = folder / "recipe.toml"
    if not recipe_file.exists():
        write_recipe(folder)
    recipe = load_recipe(recipe_file, (f"output.letter={letter}", *sets))
    out = folder / recipe.output.output_name
    render_project(recipe, out)
    return out


def write_state(project: Path, epoch: int = 1) -> Path:
    """A ``<name>-<epoch:06d>-state`` folder as sd-scripts writes it with save_state (``library/train_util.py``
    ``save_and_remove_state_on_epoch_end``)."""
    name = project.name
    state = project / "model" / f"{name}-{epoch:06d}-state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "train_state.json").write_text(f'{{"current_epoch": {epoch}, "current_step": {epoch * 30}}}')
    return state


@dataclass
class FakeRecord:
    outcome: str
    exit_code: int
    path: Path


@dataclass
class FakeTrain:
    """Records each call; ``behaviour`` maps a project folder name to success (default), ``failed`` (a record
    with outcome failed), ``raise`` (TrainerError), ``interrupt`` (TrainingInterrupted) or a callable."""

    behaviour: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, bool]] = field(default_factory=list)
    kwargs: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, project: Path, *, resume: bool = False, quiet: bool = False, **kw: Any) -> FakeRecord:
        self.calls.append((project.name, resume))
        self.kwargs.append({"quiet": quiet, **kw})
        what = self.behaviour.get(project.name, "success")
        record_path = project / "runs" / f"run-{len(self.calls)}.json"
        if callable(what):
            what = what(project) or "success"
        if what == "raise":
            raise TrainerError("the trainer exited 0 without writing the final checkpoint", source=str(project))
        if what == "interrupt":
            raise TrainingInterrupted("stopped with Ctrl-C", source=str(project))
        if what == "failed":
            return FakeRecord("failed", 4, record_path)
        return FakeRecord("success", 0, record_path)


def slow_train(project: Path, *, resume: bool = False, quiet: bool = False, **kw: Any) -> FakeRecord:
    """A training that writes an epoch state folder, says it started, then takes a long time (the test kills the
    process while it sleeps). Started from a subprocess by the kill/restart tests."""
    write_state(project, 1)
    marker = project / f"started-{os.getpid()}"
    marker.write_text(f"resume={resume}\n", encoding="utf-8")
    deadline = time.monotonic() + 300  # the test kills this process long before
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return FakeRecord("success", 0, project / "runs" / "slow.json")


def wait_for(predicate: Any, timeout: float = 120.0, proc: Any = None) -> bool:
    """Poll ``predicate`` until it holds. The timeout is generous on purpose: CI runs the suite on 2 busy cores,
    where a child Python can take many seconds to start; a passing test never waits for it. With ``proc`` (a
    Popen), give up as soon as that process has exited, so a crashed child fails fast instead of timing out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(predicate())
        time.sleep(0.05)
    return False


def subprocess_env() -> dict[str, str]:
    """The environment for a child Python that must import kohya_recipe and this helper module."""
    env = dict(os.environ)
    paths = [str(TESTS_DIR), str(TESTS_DIR.parent)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


PYTHON = sys.executable
