"""Running the CLI in-process through ``kohya_recipe.cli.main``, the way a user's shell sees it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from kohya_recipe.cli import main


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``kohya-recipe ARGS`` through ``main``, which turns errors into ``Error:`` lines and exit codes.

    Returns (exit code, stdout, stderr).
    """
    runner = CliRunner()
    with runner.isolation(env=env) as (out, err, _):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        return code, out.getvalue().decode(), err.getvalue().decode()
