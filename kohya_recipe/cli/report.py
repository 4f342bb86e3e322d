"""CLI adapters for the epoch report: ``report`` and ``inspect``.

Kept light: nothing heavier than the event reader is imported here, so ``kohya-recipe report --json`` stays a
fast whole process; matplotlib and jinja2 load only for ``--plots``/``--html``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from kohya_recipe.report.ranking import DEFAULT_Z, METRICS

T = TypeVar("T")


def _progress(items: list[T]) -> Iterable[T]:
    # A bar only for people: scripts and pipes get no control characters on stderr.
    if not sys.stderr.isatty() or len(items) < 2:
        return items

    def gen() -> Iterator[T]:
        with click.progressbar(items, label="Reading runs", file=sys.stderr) as bar:
            yield from bar

    return gen()


def _note(message: str, as_json: bool) -> None:
    # With --json, stdout carries only the JSON document.
    click.echo(message, err=as_json)


@click.command(
    epilog="""\b
Examples:
  kohya-recipe report ./CharacterAI
  kohya-recipe report ./CharacterAI --pick-best 2 --copy-to ~/sd/models/Lora
  kohya-recipe report ./CharacterAI --html report.html --plots plots/
  kohya-recipe report ./CharacterAI/log --model-dir ./CharacterAI/model --json
  kohya-recipe report ./sweep-out            # a sweep: one comparison table across runs
\b
PATH is a kohya-recipe project, an sd-scripts run folder with its config.toml, a TensorBoard log folder or
event file, or a sweep folder. Epochs are ranked by loss/validation/epoch_average when validation was on,
else by loss/epoch_average (loss/epoch before sd-scripts 0.10); the best N epochs and the final one are
picked, as the article does.
""",
)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (for scripts).")
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML report (plots embedded).",
)
@click.option(
    "--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), help="Write PNG plots into this folder."
)
@click.option(
    "--pick-best",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Pick the N best epochs (the final epoch is always picked too).",
)
@click.option(
    "--copy-to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Copy the picked checkpoints into this folder (e.g. A1111's models/Lora).",
)
@click.option("--force", is_flag=True, help="With --copy-to: replace different files of the same name.")
@click.option(
    "--metric",
    type=click.Choice(METRICS),
    default="auto",
    show_default=True,
    help="Rank by validation loss, training loss, or validation when logged (auto).",
)
@click.option("--weight", type=float, default=0.8, show_default=True, help="LoRA weight in the A1111 snippet.")
@click.option(
    "--z",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_Z,
    show_default=True,
    help="Standard errors within which an epoch counts as indistinguishable from the best.",
)
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Checkpoint folder, when PATH is a bare log folder.",
)
@click.option("--output-name", help="The run's output_name, when it cannot be read from a config.")
def report_cmd(
    path: Path,
    as_json: bool,
    html_file: Path | None,
    plots_dir: Path | None,
    pick_best: int,
    copy_to: Path | None,
    force: bool,
    metric: str,
    weight: float,
    z: float,
    model_dir: Path | None,
    output_name: str | None,
) -> None:
    """Rank epochs from TensorBoard logs and map them to checkpoints."""
    from kohya_recipe.report.build import build_report, report_to_json
    from kohya_recipe.report.html import render_html
    from kohya_recipe.report.model import ReportError
    from kohya_recipe.report.outputs import copy_picks
    from kohya_recipe.report.text import format_report

    rep = build_report(
        path,
        metric=metric,
        pick_best=pick_best,
        weight=weight,
        z=z,
        model_dir=model_dir,
        output_name=output_name,
        with_lr=bool(html_file or plots_dir),
        progress=_progress,
    )
    if as_json:
        click.echo(report_to_json(rep))
    else:
        click.echo(format_report(rep))
    if plots_dir is not None:
        from kohya_recipe.report.plots import write_plots

        written = write_plots(rep, plots_dir)
        _note(f"Wrote {len(written)} plot{'s' if len(written) != 1 else ''} to {plots_dir}", as_json)
    if html_file is not None:
        from kohya_recipe.files import atomic_write_text

        html = render_html(rep)
        try:
            atomic_write_text(html_file, html)
        except OSError as exc:
            raise ReportError(f"cannot write: {exc.strerror or exc}", source=str(html_file)) from None
        _note(f"Wrote {html_file}", as_json)
    if copy_to is not None:
        for target, status in copy_picks(rep, copy_to, force=force):
            label = {"copied": "Copied", "replaced": "Replaced", "same": "Already there"}[status]
            _note(f"{label}: {target}", as_json)


@click.command(
    epilog="""\b
Examples:
  kohya-recipe inspect model/CharacterAI-1-A-000006.safetensors
  kohya-recipe inspect model/CharacterAI-1-A.safetensors --all
  kohya-recipe inspect model/CharacterAI-1-A.safetensors --json
\b
Reads only the file's JSON header (no torch, no tensors loaded).
""",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary and all metadata as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also print every raw metadata key.")
@click.option(
    "--top-tags",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many of the most frequent caption tags to show.",
)
def inspect_cmd(file: Path, as_json: bool, show_all: bool, top_tags: int) -> None:
    """Print a LoRA file's training metadata (no torch)."""
    from kohya_recipe.report.safetensors_meta import format_summary, lora_summary, read_header

    header = read_header(file)
    summary = lora_summary(header, top_tags=top_tags)
    if as_json:
        data: dict[str, Any] = {"summary": summary, "metadata": header.metadata}
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    click.echo(format_summary(summary, header.metadata if show_all else None))
