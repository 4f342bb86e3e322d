"""Helpers for the acceptance tests against the real kohya_ss GUI and the real trainer (test_gui_real.py).

What sd-scripts trains from the GUI's output, and how two such readings are compared, is in tests/_gui_util.py
(shared with the unit tests over the recorded GUI runs).

* :class:`CachedGui` runs ``gui_check.py`` once per distinct input (config bytes, base bytes, flags) and keeps its
  outputs under a cache folder in the temp dir, so re-runs only ask the GUI about what changed.
* :func:`train_with_extra` runs the trainer harness with extra command-line arguments (``run_real_extra.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kohya_recipe.files import tomllib
from tests._gui_util import SCRIPTS, command_extra, effective, gui_sentence
from tests.real.conftest import Gui, Trainer

# ----------------------------------------------------------------------------------------------------------------
# The GUI, cached


@dataclass(frozen=True)
class GuiResult:
    exit: int
    line: str  # gui_check's one-line verdict (the GUI's reason when it refuses)
    toml: dict[str, Any]
    command: str
    toml_file: Path | None = None  # the GUI's TOML, as it wrote it

    @property
    def ok(self) -> bool:
        return self.exit == 0

    @property
    def reason(self) -> str:
        return re.sub(r"^gui_check: FAIL \(\w+\): ", "", self.line)

    @property
    def sentence(self) -> str:
        """The GUI's own sentence in :attr:`reason`, as an import quotes it (no field prefix, first line)."""
        return gui_sentence(self.reason)

    @property
    def extra(self) -> list[str]:
        return command_extra(self.command)

    @property
    def script(self) -> str | None:
        m = SCRIPTS.search(self.command)
        return m.group(1) if m else None

    def effective(self) -> dict[str, Any]:
        return effective(self.toml, self.extra, self.script)


def cache_root() -> Path:
    return Path(os.environ.get("KOHYA_RECIPE_REAL_CACHE", Path(tempfile.gettempdir()) / "kohya-recipe-real-cache"))


@dataclass(frozen=True)
class CachedGui:
    gui: Gui

    def _key(self, config: Path, flags: tuple[str, ...], base: Path | None) -> str:
        h = hashlib.sha256()
        h.update((self.gui.root / "gui_check.py").read_bytes())
        h.update(config.read_bytes())
        h.update(base.read_bytes() if base else b"")
        h.update(json.dumps(flags).encode())
        return h.hexdigest()[:24]

    def check(self, config: Path, out: Path, *flags: str, base: Path | None = None) -> GuiResult:
        """Load ``config`` into a fresh GUI form (after ``base``), print the training command; cached."""
        all_flags = (*flags, *(("--base", str(base)) if base else ()))
        cached = cache_root() / self._key(config, all_flags, base)
        if not (cached / "verdict.json").is_file():
            if out.exists():
                shutil.rmtree(out)
            done = self.gui.check(config, out, *all_flags)
            line = (done.stdout.strip().splitlines() or [done.stderr.strip()[-300:]])[-1]
            cached.mkdir(parents=True, exist_ok=True)
            for name in ("gui.toml", "gui_command.txt"):
                if (out / name).is_file():
                    shutil.copy(out / name, cached / name)
            (cached / "verdict.json").write_text(json.dumps({"exit": done.returncode, "line": line}), encoding="utf-8")
        verdict = json.loads((cached / "verdict.json").read_text(encoding="utf-8"))
        if verdict["exit"] != 0:
            return GuiResult(verdict["exit"], verdict["line"], {}, "")
        toml = tomllib.loads((cached / "gui.toml").read_text(encoding="utf-8"))
        command = (cached / "gui_command.txt").read_text(encoding="utf-8")
        return GuiResult(verdict["exit"], verdict["line"], toml, command, cached / "gui.toml")


# ----------------------------------------------------------------------------------------------------------------
# The trainer, with the GUI's additional_parameters

HERE = Path(__file__).parent
RUN_REAL_LOCK = "/tmp/run_real.lock"  # the lock run_real.sh takes: one real training at a time on this machine


def train_with_extra(
    trainer: Trainer, project: Path, config: Path, extra: list[str], *args: str, timeout: float = 3600
) -> subprocess.CompletedProcess[str]:
    """The trainer harness on ``config`` with ``extra`` appended to the trainer's command line, as the GUI does."""
    cmd = [str(trainer.python), str(HERE / "run_real_extra.py"), str(trainer.root), str(project), str(config)]
    return subprocess.run(
        ["flock", RUN_REAL_LOCK, *cmd, *args, "--", *extra], capture_output=True, text=True, timeout=timeout
    )
