"""CLI adapters for running the queue on a Ray cluster: ``queue run --ray`` and the refresh of ``queue list``.

The options are defined here and added to ``queue run`` by :func:`ray_run_options`; the work is
:mod:`kohya_recipe.train.raybackend` (imported only when ``--ray`` is given, or when the queue holds Ray entries).
See docs/cluster.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from kohya_recipe.cli.output import echo_json, warn
from kohya_recipe.errors import ExitCode, TrainingInterrupted

F = TypeVar("F", bound=Callable[..., Any])

RAY_HELP = (
    "Run each entry as a Ray job on the cluster whose dashboard is at ADDRESS (http://HEAD:8265); a bare --ray "
    "uses $RAY_ADDRESS. Each job asks for the recipe's accelerate.num_processes GPUs. The projects must be on a "
    "filesystem every node sees at the same path. Needs pip install 'kohya-recipe[ray]'. See docs/cluster.md."
)
DETACH_HELP = (
    "With --ray: submit the runs and return; `queue list` shows their states, `queue run --ray` follows again."
)
ENV_HELP = "With --ray: an environment variable for every job, KEY=VALUE (repeatable), e.g. HF_HOME=/shared/hf."
RESOURCE_HELP = (
    "With --ray: a Ray resource every job needs, NAME=AMOUNT (repeatable), e.g. a custom node resource from "
    "`ray start --resources`."
)


def ray_run_options(f: F) -> F:
    """``--ray [ADDRESS]``, ``--detach``, ``--ray-env``, ``--ray-resource`` (parameters ``ray``, ``detach``,
    ``ray_env``, ``ray_resources``)."""
    f = click.option("--ray-resource", "ray_resources", multiple=True, metavar="NAME=AMOUNT", help=RESOURCE_HELP)(f)
    f = click.option("--ray-env", "ray_env", multiple=True, metavar="KEY=VALUE", help=ENV_HELP)(f)
    f = click.option("--detach", is_flag=True, help=DETACH_HELP)(f)
    return click.option("--ray", "ray", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]", help=RAY_HELP)(
        f
    )


def _pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        out.append((key.strip(), rest))
    return out


def _env(values: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for key, value in _pairs(values, "--ray-env"):
        if not (key.replace("_", "a").isalnum() and not key[0].isdigit()):
            raise click.BadParameter(f"{key!r} is not an environment variable name", param_hint="--ray-env")
        env[key] = value
    return env


def _resources(values: tuple[str, ...]) -> dict[str, float]:
    resources = {}
    for name, value in _pairs(values, "--ray-resource"):
        try:
            amount = float(value)
        except ValueError:
            amount = math.nan
        if not (math.isfinite(amount) and 0 < amount <= 1e6):
            raise click.BadParameter(
                f"{name}: the amount must be a number > 0, got {value!r}", param_hint="--ray-resource"
            )
        resources[name] = amount
    return resources


def run_queue_on_ray(ctx: click.Context) -> None:
    """``queue run --ray`` with the command's parameters: submit and follow (or detach), print the summary, exit 4
    if a run failed and 130 after Ctrl-C."""
    p = ctx.params
    if p["ray"] is None:
        raise click.UsageError("--detach, --ray-env and --ray-resource need --ray")
    from kohya_recipe.train.raybackend import RayOptions, format_ray_summary, run_on_ray

    options = RayOptions(
        address=p["ray"] or None,
        detach=p["detach"],
        env=_env(p["ray_env"]),
        resources=_resources(p["ray_resources"]),
        sd_scripts=p["sd_scripts"],
        python=p["python"],
        quiet=p["quiet"],
    )
    result = run_on_ray(p["queue_file"], options, log=lambda line: click.echo(line, err=True))
    if p["as_json"]:
        echo_json(result)
    else:
        click.echo(format_ray_summary(result), err=True)
    if result.interrupted:
        stopped = ", ".join(e.label for e in result.entries if e.status == "interrupted") or "none"
        raise TrainingInterrupted(
            f"queue stopped; interrupted on Ray: {stopped}; they continue on the next `kohya-recipe queue run --ray`"
        )
    if result.failed:
        ctx.exit(int(ExitCode.TRAINER_FAILED))


def wants_ray(ray: str | None, detach: bool, ray_env: tuple[str, ...], ray_resources: tuple[str, ...]) -> bool:
    return ray is not None or detach or bool(ray_env) or bool(ray_resources)


def queue_listing(queue_file: str | os.PathLike[str] | None) -> Any:
    """``show_queue``, with the live Ray entries' states first refreshed from their clusters (REST, no Ray import)."""
    from kohya_recipe.train.queue_edit import show_queue

    listing = show_queue(queue_file)
    if any(e.on_ray for e in listing.entries):
        from kohya_recipe.train.raybackend import refresh_queue

        warn(refresh_queue(queue_file))
        listing = show_queue(queue_file)
    return listing
