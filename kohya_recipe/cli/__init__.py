"""The ``kohya-recipe`` command line: a thin layer over the library.

Sub-commands live in one module per concern (``cli/project.py``, ``cli/dataset.py``, ...) and are imported only
when they run, so ``kohya-recipe --help`` stays fast: nothing heavy (pydantic models, Pillow, matplotlib, pandas)
is on the start-up path. Each command parses its options, calls one library function and prints the result.
Errors are caught once, here, and printed as ``Error: ...`` (exit codes in :class:`kohya_recipe.errors.ExitCode`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from kohya_recipe.errors import ExitCode, KohyaRecipeError

# name -> (module, attribute, one-line help). The help text is kept here so that listing the commands does not
# import their modules.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "presets": ("kohya_recipe.cli.project", "presets_cmd", "List the bundled recipe presets."),
    "init": ("kohya_recipe.cli.project", "init_cmd", "Write a commented recipe.toml from a preset."),
    "plan": ("kohya_recipe.cli.project", "plan_cmd", "Show the step plan and bucket of every image."),
    "render": ("kohya_recipe.cli.project", "render_cmd", "Render the trainer's config files from a recipe."),
    "build": ("kohya_recipe.cli.project", "build_cmd", "Build a ready training project from a folder of images."),
    "import": ("kohya_recipe.cli.gui", "import_cmd", "Import a kohya_ss GUI JSON config into a recipe."),
    "check": ("kohya_recipe.cli.dataset", "check_cmd", "Check a dataset and its captions against the recipe."),
    "caption": ("kohya_recipe.cli.dataset", "caption_group", "Edit caption files safely (init/add/remove/set/show)."),
    "train": ("kohya_recipe.cli.train", "train_cmd", "Train a rendered project headless with sd-scripts."),
    "doctor": (
        "kohya_recipe.cli.train",
        "doctor_cmd",
        "Compare the installed sd-scripts with the bundled option spec.",
    ),
    "sweep": ("kohya_recipe.cli.queue", "sweep_cmd", "Expand a recipe into a grid of versioned runs."),
    "queue": ("kohya_recipe.cli.queue", "queue_group", "Queue training runs and run them one after another."),
    "report": (
        "kohya_recipe.cli.report",
        "report_cmd",
        "Rank epochs from TensorBoard logs and map them to checkpoints.",
    ),
    "inspect": ("kohya_recipe.cli.report", "inspect_cmd", "Print a LoRA file's training metadata (no torch)."),
    "tensorboard": ("kohya_recipe.cli.tensorboard", "tensorboard_cmd", "Start TensorBoard on a project's logs."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, _ = entry
        module = importlib.import_module(module_name)
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing uses the help text stored in COMMANDS, so `--help` imports no sub-command module.
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  kohya-recipe build ./my-images --preset likeness-sd15 --trigger CharacterAI --class woman --out ./CharacterAI
  kohya-recipe check ./CharacterAI
  kohya-recipe train ./CharacterAI
  kohya-recipe report ./CharacterAI
""",
)
@click.version_option(package_name="kohya-recipe", prog_name="kohya-recipe")
def cli() -> None:
    """Turn a proven LoRA recipe and a folder of images into a correct sd-scripts training run,
    run it headless, and say which epoch to keep."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning library errors into one line on stderr and an exit code."""
    try:
        rv = cli.main(args=argv, prog_name="kohya-recipe", standalone_mode=False)
    except KohyaRecipeError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    if isinstance(rv, int):
        sys.exit(rv)
    sys.exit(0)
