"""Helpers for the launcher tests: tiny rendered projects and the fake sd-scripts in tests/fake_sd_scripts/."""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

FAKE_SD_SCRIPTS = Path(__file__).parent / "fake_sd_scripts"
#: holds a fake `accelerate` package (python -m accelerate.commands.launch); put it on PYTHONPATH
FAKE_SITE = FAKE_SD_SCRIPTS / "site"
KNOBS = (
    "FAKE_SD_SCRIPTS_STEP_SECONDS",
    "FAKE_SD_SCRIPTS_STARTUP_SECONDS",
    "FAKE_SD_SCRIPTS_SAMPLE_STEP_SECONDS",
    "FAKE_SD_SCRIPTS_IGNORE_SIGNALS",
    "FAKE_SD_SCRIPTS_JUNK",
    "FAKE_SD_SCRIPTS_FLOOD_BYTES",
)


def png(width: int, height: int) -> bytes:
    """A valid grey PNG (no Pillow needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * 3 * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_images(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"img{i:02d}.png").write_bytes(png(64, 64))
        (folder / f"img{i:02d}.txt").write_text("1girl, testchar, from side\n", encoding="utf-8")
    return folder


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def recipe_data(images: Path, **sections: Any) -> dict[str, Any]:
    """A small recipe on the likeness-sd15 preset: 3 images x 2 repeats, 64 px, 3 epochs -> 6 steps per epoch,
    a checkpoint every epoch, TensorBoard logging, no samples."""
    data: dict[str, Any] = {
        "preset": "likeness-sd15",
        "subject": {"trigger": "testchar", "class_token": "woman"},
        "dataset": {"images": str(images), "repeats": 2},
        "model": {"base": "models/sd15", "family": "sd15"},
        "network": {"rank": 4, "alpha": 2.0},
        "training": {
            "max_train_epochs": 3,
            "resolution": [64, 64],
            "min_bucket_reso": 64,
            "max_bucket_reso": 128,
            "save_every_n_epochs": 1,
            "log_with": "tensorboard",
        },
        "samples": {"prompts": []},
    }
    return _merge(data, sections)


def make_project(tmp_path: Path, name: str = "proj", **sections: Any) -> Path:
    """Write a recipe.toml on a preset, load it with load_recipe (which layers the preset) and render the project
    with kohya_recipe.render.project.render_project (the real renderer)."""
    import tomli_w

    from kohya_recipe.recipe.loading import load_recipe
    from kohya_recipe.render.project import render_project

    images = make_images(tmp_path / f"{name}-images")
    recipe_file = tmp_path / f"{name}-recipe.toml"
    recipe_file.write_text(tomli_w.dumps(recipe_data(images, **sections)), encoding="utf-8")
    recipe = load_recipe(recipe_file)
    root = tmp_path / name
    render_project(recipe, root)
    (root / "models" / "sd15").mkdir(parents=True)  # the base model path exists (a diffusers folder)
    return root


def fake_env(monkeypatch: pytest.MonkeyPatch, *, step_seconds: float = 0.0, **knobs: str) -> None:
    """Make the fake accelerate importable and set the fake trainer's knobs for child processes."""
    existing = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_SITE), *([existing] if existing else [])]))
    for key in KNOBS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FAKE_SD_SCRIPTS_STEP_SECONDS", str(step_seconds))
    for key, value in knobs.items():
        monkeypatch.setenv(f"FAKE_SD_SCRIPTS_{key.upper()}", value)
    for var in ("KOHYA_RECIPE_SD_SCRIPTS", "SD_SCRIPTS", "KOHYA_SS_DIR"):
        monkeypatch.delenv(var, raising=False)


def cli_process(*args: str | Path, timeout: float = 120.0, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m kohya_recipe ARGS`` in a child process with a timeout: for inputs that could block forever (a
    FIFO), where an in-process run would hang the test instead of failing it. The fake accelerate is importable
    (``fake_env`` sets PYTHONPATH for children); ``env`` adds variables. Returns (exit code, stdout, stderr)."""
    import subprocess
    import sys

    child_env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(
        [root, *([child_env["PYTHONPATH"]] if child_env.get("PYTHONPATH") else [])]
    )
    child_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "kohya_recipe", *map(str, args)],
        env=child_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


class Screen:
    """A minimal terminal for what rich's live display writes: text overwrites at the cursor; ``\\r``, ``\\n``,
    ``ESC[nA`` (up), ``ESC[2K``/``ESC[K`` (erase line) move and clear; other escapes are ignored. ``widest`` is
    the widest line ever drawn, in cells (a real terminal would have wrapped anything wider)."""

    _TOKEN = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+")

    def __init__(self) -> None:
        self.rows = [""]
        self.row = self.col = 0
        self.widest = 0
        self.drawn: list[str] = []  # every state of a line, as it was drawn

    def feed(self, text: str) -> Screen:
        from rich.cells import cell_len

        for token in self._TOKEN.findall(text):
            if token == "\r":
                self.col = 0
            elif token == "\n":
                self.row, self.col = self.row + 1, 0
                if self.row == len(self.rows):
                    self.rows.append("")
            elif token.startswith("\x1b["):
                arg, code = token[2:-1], token[-1]
                if code == "A":
                    self.row = max(self.row - int(arg or 1), 0)
                elif code == "K":
                    self.rows[self.row] = "" if arg == "2" else self.rows[self.row][: self.col]
            else:
                line = self.rows[self.row]
                line = line[: self.col].ljust(self.col) + token + line[self.col + len(token) :]
                self.rows[self.row] = line
                self.col += len(token)
                self.drawn.append(line)
                self.widest = max(self.widest, cell_len(line))
        return self

    def lines(self) -> list[str]:
        """What the terminal shows at the end."""
        rows = [r.rstrip() for r in self.rows]
        while rows and not rows[-1]:
            rows.pop()
        return rows
