"""Helpers for the Ray tests: projects for the fake trainer, client command lines, the queue file as data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kohya_recipe.files import read_toml
from tests._train_util import FAKE_SD_SCRIPTS, make_project


def ray_project(root: Path, letter: str, **training: object) -> Path:
    """A rendered project ``testchar-1-<letter>`` (3 images x 2 repeats: 6 steps per epoch) in ``root``."""
    return make_project(root, name=f"p{letter}", output={"letter": letter}, training=training)


def kohya_recipe_args(*args: str | Path, address: str | None = None, step: float = 0.3) -> list[str]:
    """``python -m kohya_recipe ARGS`` for a client process; with ``address``, the Ray options the tests use:
    the fake sd-scripts, this Python, ``step`` seconds per fake training step."""
    argv = [sys.executable, "-m", "kohya_recipe", *map(str, args)]
    if address is not None:
        argv += ["--ray", address, "--sd-scripts", str(FAKE_SD_SCRIPTS), "--python", sys.executable]
        argv += ["--ray-env", f"FAKE_SD_SCRIPTS_STEP_SECONDS={step}"]
    return argv


def entries(queue_file: Path) -> dict[int, dict[str, Any]]:
    """The queue file's entries by id, as written (no refresh from the cluster)."""
    if not queue_file.exists():
        return {}
    return {e["id"]: e for e in read_toml(queue_file).get("entries", [])}


def records(project: Path) -> list[dict[str, Any]]:
    """The project's run records, oldest first."""
    from kohya_recipe.files import read_json

    return [read_json(p) for p in sorted((project / "runs").glob("*.json"))]
