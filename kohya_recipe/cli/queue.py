"""CLI adapters for sweeps and the training queue: ``sweep``, ``queue add/list/run/remove``.

Each command parses its options, calls one function of :mod:`kohya_recipe.train.sweep`,
:mod:`kohya_recipe.train.queue_edit` or :mod:`kohya_recipe.train.runqueue` and prints the result; ``--json``
prints the same result for scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from kohya_recipe.cli.cluster import queue_listing, ray_run_options, run_queue_on_ray, wants_ray
from kohya_recipe.cli.options import dry_run_option, force_option, json_option, out_option, set_option
from kohya_recipe.cli.output import echo_json, emit, progress, warn
from kohya_recipe.cli.train import python_option, quiet_option, sd_scripts_option
from kohya_recipe.errors import ExitCode

F = TypeVar("F", bound=Callable[..., Any])

GRID_HELP = (
    "A setting to sweep and its values, KEY=V1,V2,... (repeatable; the runs are every combination). KEY is "
    "a recipe path or sd-scripts option name, as for --set. Bracket list values: "
    "resolution=[512,512],[768,768]."
)
QUEUE_FILE_HELP = (
    "Queue file [default: $KOHYA_RECIPE_QUEUE, else $XDG_DATA_HOME/kohya-recipe/queue.toml, i.e. "
    "~/.local/share/kohya-recipe/queue.toml]."
)


def _queue_file_option(f: F) -> F:
    return click.option("--queue-file", type=click.Path(dir_okay=False), default=None, help=QUEUE_FILE_HELP)(f)


def _say(message: str) -> None:
    """A line for people on stderr (stdout stays free for --json)."""
    click.echo(message, err=True)


# ------------------------------------------------------------------------------------------------------------
# sweep


@click.command(
    epilog="""\b
Examples:
  kohya-recipe sweep recipe.toml --grid network_alpha=48,72,96 --grid max_train_epochs=8,10
  kohya-recipe sweep recipe.toml --grid optimizer.type=Adafactor,Prodigy --out ./sweeps/optim --dry-run
  kohya-recipe sweep recipe.toml --grid resolution=[512,512],[768,768] --set training.seed=42 --json
  kohya-recipe sweep ./CharacterAI-1-A --grid network_alpha=48,96    # a project: its resolved-recipe.toml
  kohya-recipe queue add ./CharacterAI-1-sweep/sweep.toml && kohya-recipe queue run

\b
Runs are named like the article's versions: the recipe's CharacterAI-1-A gives CharacterAI-1-A, -1-B, ...
(after Z: AA, AB, ...). Each run is its own project folder in --out, listed in --out/sweep.toml.
"""
)
@click.argument("recipe", type=click.Path())
@click.option("--grid", "grid", multiple=True, required=True, metavar="KEY=V1,V2,...", help=GRID_HELP)
@set_option
@out_option("Folder for the runs and sweep.toml [default: ./<name>-<major>-sweep].")
@force_option("Write into folders this sweep did not write, replacing files.")
@dry_run_option("Check everything and list the runs; write nothing.")
@json_option
def sweep_cmd(
    recipe: str,
    grid: tuple[str, ...],
    sets: tuple[str, ...],
    out: str | None,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Expand a RECIPE (a recipe file or a project folder) into a grid of versioned runs, each its own project
    folder."""
    from kohya_recipe.train.sweep import format_sweep, sweep_recipe_file

    with progress("Rendering runs", enabled=not (as_json or dry_run), min_items=1) as bar:
        sweep = sweep_recipe_file(recipe, grid, out, sets=sets, force=force, dry_run=dry_run, progress=bar)
    warn(sweep.warnings)
    emit(sweep, as_json, format_sweep)


# ------------------------------------------------------------------------------------------------------------
# queue


@click.group(
    epilog="""\b
Examples:
  kohya-recipe queue add ./CharacterAI-1-A ./CharacterAI-1-B
  kohya-recipe queue add ./CharacterAI-1-sweep/sweep.toml
  kohya-recipe queue list
  kohya-recipe queue run
  kohya-recipe queue remove 3

\b
The queue is a TOML file that survives reboots. `queue run` trains one entry after another, goes on after a
failed run, picks up entries added while it runs, and when started again after a kill or reboot continues
the entry it was training (from its newest -state folder when the recipe has save_state). Ctrl-C stops it;
the entry is marked interrupted and continues on the next `queue run`.
"""
)
def queue_group() -> None:
    """Queue training runs and run them one after another."""


@queue_group.command(
    "add",
    epilog="""\b
Examples:
  kohya-recipe queue add ./CharacterAI                      # a project from `kohya-recipe build`
  kohya-recipe queue add ./CharacterAI-1-sweep/sweep.toml   # every run of a sweep
  kohya-recipe queue add ./CharacterAI-1-sweep              # the same: a folder holding sweep.toml
""",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_queue_file_option
@json_option
def queue_add_cmd(paths: tuple[str, ...], queue_file: str | None, as_json: bool) -> None:
    """Add project folders or sweep manifests (all their runs) to the queue."""
    from kohya_recipe.train.queue_edit import add_to_queue, format_added, format_skipped

    result = add_to_queue(paths, queue_file)
    emit(result, as_json, format_added)
    for line in [] if as_json else format_skipped(result):
        _say(line)


@queue_group.command(
    "list",
    epilog="""\b
Examples:
  kohya-recipe queue list
  kohya-recipe queue list --json | jq '.entries[] | select(.status == "failed") | .project'
""",
)
@_queue_file_option
@json_option
def queue_list_cmd(queue_file: str | None, as_json: bool) -> None:
    """Show the queue: id, status, attempts, run name, project and the last outcome.

    Entries running as Ray jobs (`queue run --ray`) are shown as their cluster has them now.
    """
    from kohya_recipe.train.queue_edit import format_queue

    emit(queue_listing(queue_file), as_json, format_queue)


@queue_group.command(
    "run",
    epilog="""\b
Examples:
  kohya-recipe queue run
  kohya-recipe queue run --sd-scripts ~/kohya_ss/sd-scripts --quiet
  nohup kohya-recipe queue run --quiet > queue.log 2>&1 &
  kohya-recipe queue run --ray http://head:8265          # each entry a Ray job, as many at once as GPUs
  kohya-recipe queue run --ray --detach --json           # $RAY_ADDRESS; submit and return

\b
Exit codes: 0 every run succeeded (or nothing to run), 4 at least one run failed (the others still ran),
130 stopped with Ctrl-C (the current entry resumes on the next `queue run`). Only one `queue run` trains on
a GPU set at a time (the recipe's accelerate.gpu_ids; none = all GPUs); a second one trains entries for
other GPUs or exits. Entries running as Ray jobs are left to Ray (docs/cluster.md).
""",
)
@_queue_file_option
@sd_scripts_option
@python_option
@quiet_option
@ray_run_options
@json_option
@click.pass_context
def queue_run_cmd(
    ctx: click.Context,
    queue_file: str | None,
    sd_scripts: str | None,
    python: str | None,
    quiet: bool,
    as_json: bool,
    ray: str | None = None,
    detach: bool = False,
    ray_env: tuple[str, ...] = (),
    ray_resources: tuple[str, ...] = (),
) -> None:
    """Train the queued runs one after another until the queue is empty.

    With --ray, each run is a Ray job on a cluster instead, as many at once as it has GPUs (docs/cluster.md).
    """
    from kohya_recipe.train.runqueue import format_run_summary, run_queue

    if wants_ray(ray, detach, ray_env, ray_resources):
        return run_queue_on_ray(ctx)
    result = run_queue(queue_file, sd_scripts=sd_scripts, python=python, quiet=quiet, log=_say)
    if as_json:
        echo_json(result)
    else:
        _say(format_run_summary(result))
    if result.failed:
        ctx.exit(int(ExitCode.TRAINER_FAILED))


@queue_group.command(
    "remove",
    epilog="""\b
Examples:
  kohya-recipe queue remove 3
  kohya-recipe queue remove 3 4 7
""",
)
@click.argument("ids", nargs=-1, required=True, type=int)
@_queue_file_option
@json_option
def queue_remove_cmd(ids: tuple[int, ...], queue_file: str | None, as_json: bool) -> None:
    """Remove entries from the queue (not their project folders)."""
    from kohya_recipe.train.queue_edit import Removal, format_removal, remove_from_queue

    emit(Removal(remove_from_queue(ids, queue_file)), as_json, format_removal)
