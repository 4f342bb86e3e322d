"""CLI adapters for the epoch report: ``report`` and ``inspect``.

Kept light: nothing heavier than the event reader is imported for ``kohya-recipe report --json``, so it stays a
fast whole process; matplotlib and jinja2 load only for ``--plots``/``--html``.
"""

from __future__ import annotations

from pathlib import Path

import click

from kohya_recipe.cli.options import force_option, json_option
from kohya_recipe.cli.output import emit, progress
from kohya_recipe.report.a1111 import DEFAULT_WEIGHT
from kohya_recipe.report.outputs import SAMPLE_MODES
from kohya_recipe.report.ranking import DEFAULT_Z, METRICS


@click.command(
    epilog="""\b
Examples:
  kohya-recipe report ./CharacterAI
  kohya-recipe report ./CharacterAI --pick-best 2 --copy-to ~/sd/models/Lora
  kohya-recipe report ./CharacterAI --html report.html --plots plots/
  kohya-recipe report ./CharacterAI --html report.html --samples full --force
  kohya-recipe report ./CharacterAI --csv epochs.csv
  kohya-recipe report ./CharacterAI/log --model-dir ./CharacterAI/model --json
  kohya-recipe report ./sweep-out            # a sweep: one comparison table across runs
\b
PATH is a kohya-recipe project, an sd-scripts run folder with its config.toml, a TensorBoard log folder or
event file, or a sweep folder. Epochs are ranked by loss/validation/epoch_average when validation was on,
else by loss/epoch_average (loss/epoch before sd-scripts 0.10); the best N epochs and the final one are
picked, as the article does. The sample images sd-scripts made (model/sample/) are listed per epoch and shown
as a grid of epochs x prompts in the HTML report. A pick is recommended only when its file exists and its
weights are finite; a run whose every epoch loss is NaN/inf diverged: nothing is recommended, exit 6.
""",
)
@click.argument("path", type=click.Path(path_type=Path))
@json_option
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML report: the sample images of every epoch, plots, picks.",
)
@click.option(
    "--samples",
    type=click.Choice(SAMPLE_MODES),
    default="thumbs",
    show_default=True,
    help="With --html: embed sample thumbnails (a click opens the file), full-size images, or none.",
)
@click.option(
    "--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), help="Write PNG plots into this folder."
)
@click.option(
    "--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the epoch table as CSV."
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
@force_option("Replace existing --html/--csv/--plots files, and different files of the same name in --copy-to.")
@click.option(
    "--metric",
    type=click.Choice(METRICS),
    default="auto",
    show_default=True,
    help="Rank by validation loss, training loss, or validation when logged (auto).",
)
@click.option(
    "--weight", type=float, default=DEFAULT_WEIGHT, show_default=True, help="LoRA weight in the A1111 snippet."
)
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
    samples: str,
    plots_dir: Path | None,
    csv_file: Path | None,
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
    from kohya_recipe.report.build import build_report, require_recommendation
    from kohya_recipe.report.outputs import write_outputs
    from kohya_recipe.report.text import format_report

    options = {"metric": metric, "pick_best": pick_best, "weight": weight, "z": z, "model_dir": model_dir}
    with progress("Reading runs", min_items=2) as bar:
        rep = build_report(path, **options, output_name=output_name, with_lr=bool(html_file or plots_dir), progress=bar)
    emit(rep, as_json, text=format_report)
    outputs = {"plots_dir": plots_dir, "html_file": html_file, "csv_file": csv_file, "copy_to": copy_to}
    for written in write_outputs(rep, **outputs, force=force, samples=samples):
        click.echo(str(written), err=as_json)  # with --json, stdout carries only the JSON document
    require_recommendation(rep)  # a diverged run: exit 6 after the report has said so


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
@json_option
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
    from kohya_recipe.report.safetensors_meta import format_inspection, inspect_file

    emit(inspect_file(file, top_tags=top_tags), as_json, text=lambda found: format_inspection(found, raw=show_all))
