"""CLI adapters for sweeps and the training queue: ``sweep``, ``queue add/list/run/remove``.

Each command parses its options, calls one function of :mod:`kohya_recipe.train.sweep` or :mod:`kohya_recipe.train.runqueue`
and prints the result; ``--json`` prints the same result for scripts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kohya_recipe.errors import ExitCode

if TYPE_CHECKING:
    from kohya_recipe.train.queuefile import QueueEntry
    from kohya_recipe.train.sweepfile import Sweep

SET_HELP = "Override a recipe value for every run: dotted key or sd-scripts option name, e.g. training.seed=42."
GRID_HELP = (
    "A setting to sweep and its values, KEY=V1,V2,... (repeatable; the runs are every combination). KEY is "
    "a recipe path or sd-scripts option name, as for --set. Bracket list values: "
    "resolution=[512,512],[768,768]."
)
QUEUE_FILE_HELP = (
    "Queue file [default: $KOHYA_RECIPE_QUEUE, else $XDG_DATA_HOME/kohya-recipe/queue.toml, i.e. "
    "~/.local/share/kohya-recipe/queue.toml]."
)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]


def _sweep_lines(sweep: Sweep) -> list[str]:
    keys: list[str] = []
    for run in sweep.runs:
        keys += [k for k in run.settings if k not in keys]
    rows = [[run.name, *(_fmt(run.settings.get(k, "")) for k in keys)] for run in sweep.runs]
    return _table(["RUN", *keys], rows)


def _queue_file_option(f: Any) -> Any:
    return click.option(
        "--queue-file",
        type=click.Path(dir_okay=False),
        default=None,
        help=QUEUE_FILE_HELP,
    )(f)


# ------------------------------------------------------------------------------------------------------------
# sweep


@click.command(
    epilog="""\b
Examples:
  kohya-recipe sweep recipe.toml --grid network_alpha=48,72,96 --grid max_train_epochs=8,10
  kohya-recipe sweep recipe.toml --grid optimizer.type=Adafactor,Prodigy --out ./sweeps/optim --dry-run
  kohya-recipe sweep recipe.toml --grid resolution=[512,512],[768,768] --set training.seed=42 --json
  kohya-recipe queue add ./CharacterAI-1-sweep/sweep.toml && kohya-recipe queue run

\b
Runs are named like the article's versions: the recipe's CharacterAI-1-A gives CharacterAI-1-A, -1-B, ...
(after Z: AA, AB, ...). Each run is its own project folder in --out, listed in --out/sweep.toml.
"""
)
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--grid", "grid", multiple=True, required=True, metavar="KEY=V1,V2,...", help=GRID_HELP)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the runs and sweep.toml [default: ./<name>-<major>-sweep].",
)
@click.option("--force", is_flag=True, help="Write into folders this sweep did not write, replacing files.")
@click.option("--dry-run", is_flag=True, help="Check everything and list the runs; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the sweep manifest as JSON.")
def sweep_cmd(
    recipe: str, grid: tuple[str, ...], sets: tuple[str, ...], out: str | None, force: bool, dry_run: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Expand a recipe into a grid of versioned runs, each its own project folder."""
    from kohya_recipe.train.sweep import sweep_recipe_file

    bar: Any = None

    def progress(_run: Any, done: int, total: int) -> None:
        # A bar only on a terminal; piped output stays quiet (team rule).
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="Rendering runs", file=sys.stderr)
        bar.update(1)

    show = not as_json and not dry_run and sys.stderr.isatty()
    sweep = sweep_recipe_file(
        recipe, grid, out, sets=sets, force=force, dry_run=dry_run, progress=progress if show else None
    )
    if bar is not None:
        bar.render_finish()
    for warning in sweep.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        data = sweep.to_json()
        data["dry_run"] = dry_run
        _echo_json(data)
        return
    where = sweep.root
    verb = "Would write" if dry_run else "Wrote"
    click.echo(f"{verb} {len(sweep.runs)} runs of {sweep.base_output_name} to {where}/ ({sweep.path.name}):")
    for line in _sweep_lines(sweep):
        click.echo(f"  {line}")
    if not dry_run:
        click.echo(f"Next: kohya-recipe queue add {sweep.path} && kohya-recipe queue run")


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
@click.option("--json", "as_json", is_flag=True, help="Print the added entries as JSON.")
def queue_add_cmd(paths: tuple[str, ...], queue_file: str | None, as_json: bool) -> None:
    """Add project folders or sweep manifests (all their runs) to the queue."""
    from kohya_recipe.train.queue_edit import add_to_queue

    result = add_to_queue(paths, queue_file)
    if as_json:
        _echo_json(
            {
                "added": [e.to_json() for e in result.added],
                "skipped": [{"project": p, "queued_as": e.id, "status": e.status} for p, e in result.skipped],
            }
        )
        return
    for entry in result.added:
        click.echo(f"Queued #{entry.id} {entry.name}  {entry.project}")
    for project, holder in result.skipped:
        click.echo(f"Already queued as #{holder.id} ({holder.status}): {project}", err=True)


def _last(entry: QueueEntry) -> str:
    from kohya_recipe.train.liveness import entry_state
    from kohya_recipe.train.queuefile import RUNNING

    state = entry_state(entry)
    if entry.status == RUNNING:
        since = entry.started.strftime("%Y-%m-%d %H:%M") if entry.started else "?"
        owner = f"pid {entry.pid}" + (f" on {entry.host}" if entry.host else "")
        return f"{owner} since {since}" + (" (runner gone; resumes on next `queue run`)" if "stale" in state else "")
    if entry.last_outcome is None:
        return ""
    text = entry.last_outcome
    if entry.last_exit_code is not None:
        text += f", exit {entry.last_exit_code}"
    if entry.finished:
        text += f", {entry.finished.strftime('%Y-%m-%d %H:%M')}"
    if entry.last_error:
        text += f": {entry.last_error}"
    return text


@queue_group.command(
    "list",
    epilog="""\b
Examples:
  kohya-recipe queue list
  kohya-recipe queue list --json | jq '.entries[] | select(.status == "failed") | .project'
""",
)
@_queue_file_option
@click.option("--json", "as_json", is_flag=True, help="Print the queue as JSON.")
def queue_list_cmd(queue_file: str | None, as_json: bool) -> None:
    """Show the queue: id, status, attempts, run name, project and the last outcome."""
    from kohya_recipe.train.liveness import entry_state
    from kohya_recipe.train.queuefile import Queue

    queue = Queue(queue_file)
    entries = queue.read().entries
    if as_json:
        _echo_json({"queue_file": str(queue.path), "entries": [e.to_json() for e in entries]})
        return
    if not entries:
        click.echo(f"The queue is empty ({queue.path}).")
        return
    click.echo(f"Queue {queue.path}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    rows = [
        [str(e.id), entry_state(e), str(e.attempts), e.name or Path(e.project).name, e.project, _last(e)]
        for e in entries
    ]
    for line in _table(["ID", "STATUS", "TRIES", "RUN", "PROJECT", "LAST"], rows):
        click.echo(line)


@queue_group.command(
    "run",
    epilog="""\b
Examples:
  kohya-recipe queue run
  kohya-recipe queue run --sd-scripts ~/kohya_ss/sd-scripts --quiet
  nohup kohya-recipe queue run --quiet > queue.log 2>&1 &

\b
Exit codes: 0 every run succeeded (or nothing to run), 4 at least one run failed (the others still ran),
130 stopped with Ctrl-C (the current entry resumes on the next `queue run`). Only one `queue run` trains on
a GPU set at a time (the recipe's accelerate.gpu_ids; none = all GPUs); a second one trains entries for
other GPUs or exits.
""",
)
@_queue_file_option
@click.option(
    "--sd-scripts", type=click.Path(file_okay=False), default=None, help="sd-scripts folder (as for `train`)."
)
@click.option("--python", default=None, help="Python that has accelerate (as for `train`).")
@click.option("--quiet", is_flag=True, help="One line per epoch instead of a live progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary of the entries run as JSON at the end.")
@click.pass_context
def queue_run_cmd(
    ctx: click.Context, queue_file: str | None, sd_scripts: str | None, python: str | None, quiet: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Train the queued runs one after another until the queue is empty."""
    from kohya_recipe.train.runqueue import run_queue

    result = run_queue(
        queue_file,
        sd_scripts=sd_scripts,
        python=python,
        quiet=quiet,
        log=lambda msg: click.echo(msg, err=True),
    )
    if as_json:
        _echo_json(
            {
                "ran": [e.to_json() for e in result.ran],
                "waiting_for_gpus": [e.id for e in result.waiting],
                "failed": [e.id for e in result.failed],
            }
        )
    else:
        if not result.ran:
            click.echo("Nothing to run.", err=True)
        else:
            click.echo(f"Queue finished: {len(result.succeeded)} done, {len(result.failed)} failed.", err=True)
        if result.waiting:
            ids = ", ".join(f"#{e.id}" for e in result.waiting)
            click.echo(f"Left for another `queue run` that holds their GPUs: {ids}", err=True)
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
@click.option("--json", "as_json", is_flag=True, help="Print the removed entries as JSON.")
def queue_remove_cmd(ids: tuple[int, ...], queue_file: str | None, as_json: bool) -> None:
    """Remove entries from the queue (not their project folders)."""
    from kohya_recipe.train.queue_edit import remove_from_queue

    removed = remove_from_queue(ids, queue_file)
    if as_json:
        _echo_json({"removed": [e.to_json() for e in removed]})
        return
    for entry in removed:
        click.echo(f"Removed #{entry.id} {entry.name or Path(entry.project).name} ({entry.status})")
