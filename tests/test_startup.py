"""`kohya-recipe --help` stays light: no pandas, matplotlib, tensorboard, Pillow or numpy on the start-up path.

This is the correctness side of the start-up budget (issue 2: `--help` in under 0.25 s); the time itself is
measured by benchmarks/bench_startup.py, never asserted here. The CLI group imports command modules lazily, and
command modules import heavy libraries inside their functions (team rule), so neither the group's help nor
importing a command module may load them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kohya_recipe.cli import COMMANDS

HEAVY = ("pandas", "matplotlib", "tensorboard", "PIL", "numpy")


def _imported_by_importtime(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines: ``import time: self [us] | cumulative | name``."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def test_importtime_parser_reads_nested_imports() -> None:
    sample = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   numpy._core\n"
        "import time:      2000 |       2120 | pandas\n"
    )
    assert _imported_by_importtime(sample) == {"numpy._core", "pandas"}


@pytest.mark.parametrize("argv", [["--help"], ["-h"]], ids=["--help", "-h"])
def test_group_help_imports_nothing_heavy(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kohya_recipe", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("Usage: kohya-recipe [OPTIONS] COMMAND [ARGS]...")
    imported = _imported_by_importtime(proc.stderr)
    assert "kohya_recipe.cli" in imported  # the parser really saw this process's imports
    heavy = sorted(n for n in imported if n.split(".")[0] in HEAVY)
    assert heavy == [], f"`kohya-recipe --help` imports {heavy}"
    # Listing the commands uses the help text in COMMANDS: no command module is imported either.
    modules = {module for module, _, _ in COMMANDS.values()}
    assert not modules & imported


_PROBE = """
import importlib, json, sys
heavy = tuple(sys.argv[1].split(","))
out = {}
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        out[name] = None
        continue
    out[name] = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps(out))
"""


def test_command_modules_import_nothing_heavy() -> None:
    # One fresh interpreter imports the command modules one after another; a heavy module showing up after a
    # command module names the module that pulled it in.
    modules = sorted({module for module, _, _ in COMMANDS.values()})
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(HEAVY), *modules], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    existing = [m for m in modules if result[m] is not None]
    assert "kohya_recipe.cli.project" in existing
    offenders = {m: result[m] for m in existing if result[m]}
    assert not offenders, f"{offenders} imported at module level; import them inside the function"
