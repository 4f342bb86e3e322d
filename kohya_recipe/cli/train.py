"""CLI adapters for training: ``kohya-recipe train`` (:mod:`kohya_recipe.train.run`) and ``kohya-recipe doctor``
(:mod:`kohya_recipe.train.doctor`), and the options that every command launching sd-scripts shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from kohya_recipe.cli.options import dry_run_option, json_option
from kohya_recipe.cli.output import emit

F = TypeVar("F", bound=Callable[..., Any])

SD_SCRIPTS_HELP = (
    "sd-scripts folder (default: $KOHYA_RECIPE_SD_SCRIPTS, $SD_SCRIPTS, $KOHYA_SS_DIR/sd-scripts, "
    "./kohya_ss/sd-scripts)."
)
PYTHON_HELP = "Python to train with (default: the first python/python3 on PATH that has accelerate)."


def sd_scripts_option(f: F) -> F:
    """``--sd-scripts DIR`` (parameter ``sd_scripts``)."""
    return click.option("--sd-scripts", "sd_scripts", type=click.Path(file_okay=False), help=SD_SCRIPTS_HELP)(f)


def python_option(f: F) -> F:
    """``--python PATH`` (parameter ``python``)."""
    return click.option("--python", "python", default=None, metavar="PATH", help=PYTHON_HELP)(f)


def quiet_option(f: F) -> F:
    """``--quiet/-q`` (parameter ``quiet``)."""
    return click.option("--quiet", "-q", is_flag=True, help="One line per epoch instead of the live progress bar.")(f)


@click.command(
    epilog="""\b
Examples:
  kohya-recipe train ./CharacterAI --sd-scripts ~/kohya_ss/sd-scripts
  kohya-recipe train ./CharacterAI --dry-run
  kohya-recipe train ./CharacterAI --resume
  SD_SCRIPTS=~/sd-scripts kohya-recipe train ./CharacterAI --quiet --json > run.json

\b
Exit codes: 0 trained (final checkpoint written), 1 nothing launched (bad project, no sd-scripts,
no accelerate), 4 the trainer failed, 7 (a Ray job only) the project folder is not on the node,
130 interrupted (checkpoints kept; --resume continues).
"""
)
@click.argument("project", type=click.Path(file_okay=False), default=".")
@sd_scripts_option
@python_option
@click.option("--resume", is_flag=True, help="Continue from the newest <name>-…-state folder (needs save_state).")
@dry_run_option("Print the command (shell-quoted) and exit; run nothing.")
@quiet_option
@click.option("--verbose", "-v", is_flag=True, help="Show the trainer's raw output instead of the progress bar.")
@json_option
@click.option("--ray-job", "ray_job", is_flag=True, hidden=True)  # the entrypoint of `queue run --ray` jobs
def train_cmd(
    project: str,
    sd_scripts: str | None,
    python: str | None,
    resume: bool,
    dry_run: bool,
    quiet: bool,
    verbose: bool,
    as_json: bool,
    ray_job: bool = False,
) -> None:
    """Train a rendered PROJECT headless with sd-scripts.

    Re-renders the project if its resolved-recipe.toml changed, runs `accelerate launch … train_network.py
    --config_file config.toml --dataset_config dataset.toml` in the project folder, shows progress, and judges
    the run by the final checkpoint, not the exit code alone. The raw output goes to log/train-<time>.log, the
    run record to runs/<time>.json.
    """
    from kohya_recipe.train.run import format_run, train_project

    if ray_job:  # on a Ray node: the project must be here, Ray's GPU choice wins (train/rayjob.py)
        from kohya_recipe.train.rayjob import train_ray_job

        record = train_ray_job(project, sd_scripts=sd_scripts, python=python, resume=resume, quiet=quiet)
    else:
        record = train_project(
            project, sd_scripts=sd_scripts, python=python, resume=resume, dry_run=dry_run, quiet=quiet, verbose=verbose
        )
    emit(record.data, as_json, lambda _: format_run(record))
    record.raise_for_outcome()


@click.command(
    epilog="""\b
Examples:
  kohya-recipe doctor --sd-scripts ~/kohya_ss/sd-scripts
  kohya-recipe doctor ./CharacterAI            # also: options this project's config.toml uses
  kohya-recipe doctor --refresh --json
"""
)
@click.argument("project", type=click.Path(file_okay=False), required=False)
@sd_scripts_option
@python_option
@click.option("--sdxl", is_flag=True, help="Check sdxl_train_network.py instead (default: the project's script).")
@click.option("--refresh", is_flag=True, help="Run --help again even if a cached answer exists.")
@json_option
def doctor_cmd(
    project: str | None, sd_scripts: str | None, python: str | None, sdxl: bool, refresh: bool, as_json: bool
) -> None:
    """Compare the installed sd-scripts with the option spec kohya-recipe was built against.

    Runs `<python> train_network.py --help` once (cached per sd-scripts folder and file times), and lists the
    options our configs may use that this install lacks, and options it has that the spec does not know. With a
    PROJECT, every option its config.toml uses is checked, and a missing one is an error (exit 1).
    """
    from kohya_recipe.train.doctor import doctor, format_doctor, require_used_options

    script = "sdxl_train_network.py" if sdxl else None
    report = doctor(sd_scripts=sd_scripts, python=python, project=project, script=script, refresh=refresh)
    emit(report, as_json, format_doctor)
    require_used_options(report)
