"""``kohya-recipe train`` and ``kohya-recipe doctor``: thin wrappers over kohya_recipe.train.run and .sdscripts_doctor."""

from __future__ import annotations

import json
from typing import Any

import click

SD_SCRIPTS_HELP = (
    "sd-scripts folder (default: $KOHYA_RECIPE_SD_SCRIPTS, $SD_SCRIPTS, $KOHYA_SS_DIR/sd-scripts, "
    "./kohya_ss/sd-scripts)."
)
PYTHON_HELP = "Python to train with (default: the first python/python3 on PATH that has accelerate)."


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


@click.command(
    epilog="""\b
Examples:
  kohya-recipe train ./CharacterAI --sd-scripts ~/kohya_ss/sd-scripts
  kohya-recipe train ./CharacterAI --dry-run
  kohya-recipe train ./CharacterAI --resume
  SD_SCRIPTS=~/sd-scripts kohya-recipe train ./CharacterAI --quiet --json > run.json

\b
Exit codes: 0 trained (final checkpoint written), 1 nothing launched (bad project, no sd-scripts,
no accelerate), 4 the trainer failed, 130 interrupted (checkpoints kept; --resume continues).
"""
)
@click.argument("project", type=click.Path(file_okay=False), default=".")
@click.option("--sd-scripts", "sd_scripts", type=click.Path(file_okay=False), default=None, help=SD_SCRIPTS_HELP)
@click.option("--python", "python", default=None, metavar="PATH", help=PYTHON_HELP)
@click.option("--resume", is_flag=True, help="Continue from the newest <name>-…-state folder (needs save_state).")
@click.option("--dry-run", is_flag=True, help="Print the command (shell-quoted) and exit; run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="One line per epoch instead of the live progress bar.")
@click.option("--verbose", "-v", is_flag=True, help="Show the trainer's raw output instead of the progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON on stdout.")
def train_cmd(
    project: str,
    sd_scripts: str | None,
    python: str | None,
    resume: bool,
    dry_run: bool,
    quiet: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Train a rendered PROJECT headless with sd-scripts.

    Re-renders the project if its resolved-recipe.toml changed, runs `accelerate launch … train_network.py
    --config_file config.toml --dataset_config dataset.toml` in the project folder, shows progress, and judges
    the run by the final checkpoint, not the exit code alone. The raw output goes to log/train-<time>.log, the
    run record to runs/<time>.json.
    """
    from kohya_recipe.errors import TrainerError, TrainingInterrupted
    from kohya_recipe.train.outcome import INTERRUPTED, SUCCESS
    from kohya_recipe.train.run import train_project

    record = train_project(
        project, sd_scripts=sd_scripts, python=python, resume=resume, dry_run=dry_run, quiet=quiet, verbose=verbose
    )
    if dry_run:
        if as_json:
            _echo_json(record.to_dict())
            return
        data = record.to_dict()
        if data.get("would_render"):
            click.echo(f"# would re-render: {', '.join(data['would_render'])}")
        if data.get("resume"):
            click.echo(f"# {record.message}")
        click.echo(f"# cwd: {data['cwd']}")
        click.echo("# env: " + " ".join(f"{k}={v}" for k, v in data["env"].items()))
        click.echo(data["command_line"])
        return
    if as_json:
        _echo_json(record.to_dict())
    if record.outcome == SUCCESS:
        if not as_json:
            data = record.to_dict()
            progress = data.get("progress") or {}
            steps = f", {progress['step']} steps" if progress.get("step") is not None else ""
            click.echo(
                f"trained {data['output_name']}: {data['final_checkpoint']} "
                f"({len(data['checkpoints'])} checkpoint(s){steps}, {data['duration_seconds']:.0f} s)"
            )
            click.echo(f"record: {data['record']}  log: {data['log_file']}")
        return
    if record.outcome == INTERRUPTED:
        raise TrainingInterrupted(record.message)
    raise TrainerError(record.message)


@click.command(
    epilog="""\b
Examples:
  kohya-recipe doctor --sd-scripts ~/kohya_ss/sd-scripts
  kohya-recipe doctor ./CharacterAI            # also: options this project's config.toml uses
  kohya-recipe doctor --refresh --json
"""
)
@click.argument("project", type=click.Path(file_okay=False), required=False)
@click.option("--sd-scripts", "sd_scripts", type=click.Path(file_okay=False), default=None, help=SD_SCRIPTS_HELP)
@click.option("--python", "python", default=None, metavar="PATH", help=PYTHON_HELP)
@click.option("--sdxl", is_flag=True, help="Check sdxl_train_network.py instead (default: the project's script).")
@click.option("--refresh", is_flag=True, help="Run --help again even if a cached answer exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor_cmd(
    project: str | None, sd_scripts: str | None, python: str | None, sdxl: bool, refresh: bool, as_json: bool
) -> None:
    """Compare the installed sd-scripts with the option spec kohya-recipe was built against.

    Runs `<python> train_network.py --help` once (cached per sd-scripts folder and file times), and lists the
    options our configs may use that this install lacks, and options it has that the spec does not know. With a
    PROJECT, every option its config.toml uses is checked, and a missing one is an error (exit 1).
    """
    from kohya_recipe.train.doctor import doctor
    from kohya_recipe.train.launch import TrainerSetupError

    report = doctor(
        sd_scripts=sd_scripts, python=python, project=project, script="sdxl_train_network.py" if sdxl else None,
        refresh=refresh,
    )  # fmt: skip
    if as_json:
        _echo_json(report.to_dict())
    else:
        for line in report.lines():
            click.echo(line)
    if report.used_missing:
        raise TrainerSetupError(
            f"this sd-scripts lacks {len(report.used_missing)} option(s) that {report.config_file} uses: "
            f"{', '.join(report.used_missing)}; update sd-scripts (git pull) or remove them from the recipe"
        )


# `sweep` and `queue` are listed in COMMANDS under this module; they live in cli/queue.py (another engineer's).
from kohya_recipe.cli.queue import queue_group, sweep_cmd  # noqa: E402

__all__ = ["doctor_cmd", "queue_group", "sweep_cmd", "train_cmd"]
