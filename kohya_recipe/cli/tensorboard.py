"""CLI adapter for ``kohya-recipe tensorboard``: TensorBoard on a run's logs, as the kohya_ss GUI's button starts it."""

from __future__ import annotations

from pathlib import Path

import click

from kohya_recipe.cli.options import dry_run_option, json_option
from kohya_recipe.cli.output import emit, warn


@click.command(
    epilog="""\b
Examples:
  kohya-recipe tensorboard ./CharacterAI
  kohya-recipe tensorboard ./CharacterAI --port 6007 --host 0.0.0.0
  kohya-recipe tensorboard ./sweep-out          # every run of a sweep
  kohya-recipe tensorboard ./CharacterAI --dry-run
  kohya-recipe tensorboard ./CharacterAI --tensorboard ~/sd-scripts/venv/bin/tensorboard
\b
Runs `tensorboard --logdir <the run's log folder> --host HOST --port PORT` in the foreground, as the kohya_ss GUI's
"Start tensorboard" button does; Ctrl-C stops it. TENSORBOARD_HOST and TENSORBOARD_PORT are read as the GUI
reads them. The host defaults to 127.0.0.1 (the GUI's 0.0.0.0 shows the logs to every network the machine is on).
TensorBoard is an extra: pip install 'kohya-recipe[tensorboard]'.
""",
)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--host", help="Address to serve on [default: $TENSORBOARD_HOST or 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [default: $TENSORBOARD_PORT or 6006].")
@click.option("--tensorboard", "executable", type=click.Path(path_type=Path), help="The tensorboard program to run.")
@dry_run_option("Print the command; start nothing.")
@json_option
def tensorboard_cmd(
    path: Path, host: str | None, port: int | None, executable: Path | None, dry_run: bool, as_json: bool
) -> int:
    """Start TensorBoard on a project's logs (Ctrl-C stops it)."""
    from kohya_recipe.report.tensorboard import run_tensorboard, tensorboard_command

    cmd = tensorboard_command(path, host=host, port=port, executable=executable, require_installed=not dry_run)
    warn(cmd.warnings)
    if dry_run:
        emit(cmd, as_json, text=lambda c: c.command)
        return 0
    click.echo(f"TensorBoard: {cmd.url} (logs: {cmd.log_dir}); Ctrl-C to stop", err=True)
    code = run_tensorboard(cmd)
    click.echo("TensorBoard stopped." if code >= 128 else f"TensorBoard exited ({code}).", err=True)
    return code
