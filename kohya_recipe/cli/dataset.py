"""CLI adapters for the dataset doctor (``check``) and the caption editor (``caption ...``).

Thin by design: each command parses its options, calls one function of :mod:`kohya_recipe.dataset` (imported when
the command runs, so ``kohya-recipe --help`` stays light) and prints the result with :mod:`kohya_recipe.cli.output`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kohya_recipe.cli.options import dry_run_option, force_option, json_option
from kohya_recipe.cli.output import emit, progress

if TYPE_CHECKING:
    from kohya_recipe.dataset.caption_edits import EditReport


@click.command(
    epilog="""\b
Examples:
  kohya-recipe check ./my-images
  kohya-recipe check ./CharacterAI                      # a project: uses its resolved-recipe.toml
  kohya-recipe check ./CharacterAI/img --recipe recipe.toml
  kohya-recipe check ./img --trigger CharacterAI --decode
  kohya-recipe check ./img --rules my-rules.toml --fail-on warning
  kohya-recipe check ./img --json > report.json

\b
Exit codes: 0 no errors, 3 errors found (or warnings with --fail-on warning),
1 the folder, recipe or rules file cannot be used.
""",
)
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--recipe",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recipe TOML whose thresholds to use (default: the project's resolved-recipe.toml, else the article's).",
)
@click.option("--trigger", help="Trigger word every caption must contain (overrides the recipe's).")
@click.option(
    "--rules",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rules TOML: counts, shot list, contradictions (see docs/dataset-checks.md).",
)
@click.option(
    "--decode",
    is_flag=True,
    help="Decode every image: verify all pixels, measure alpha use, find near-duplicates (slower).",
)
@click.option(
    "--table",
    type=click.Choice(["auto", "all", "problems", "none"]),
    default="auto",
    show_default=True,
    help="Per-image table: every image, only those with notes, or none (auto: all up to 60 images).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning"]),
    default="error",
    show_default=True,
    help="Lowest severity that makes the exit code non-zero.",
)
@json_option
@click.pass_context
def check_cmd(
    ctx: click.Context,
    directory: Path,
    recipe: Path | None,
    trigger: str | None,
    rules: Path | None,
    decode: bool,
    table: str,
    fail_on: str,
    as_json: bool,
) -> None:
    """Check a dataset and its captions against the recipe; never modifies anything.

    DIRECTORY is a folder of images, a train_data_dir (img/N_name/...), one N_name folder or a rendered
    project. Reports layout mistakes, files sd-scripts skips, small/upscaled/corrupt/rotated/transparent
    images, duplicates, caption problems, the trigger word, shot coverage and contradicting tags.
    """
    from kohya_recipe.dataset.check import check_dataset, format_report

    with progress("Checking images", enabled=not as_json) as bar:
        result = check_dataset(directory, recipe=recipe, rules=rules, trigger=trigger, decode=decode, progress=bar)
    emit(result, as_json, text=lambda r: format_report(r, table=table, color=True))
    ctx.exit(result.exit_code(fail_on))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------
# caption


def _print_report(report: EditReport, as_json: bool) -> None:
    """Per-file lines (diffs in a dry run) and a summary (on stderr in a dry run); the exit code says whether
    anything changed (0 done, 1 nothing changed, 5 some files changed and some failed, 130 interrupted)."""
    from kohya_recipe.dataset.caption_edits import format_changes

    emit(report, as_json, text=format_changes)
    if not as_json:
        click.echo(("Dry run: " if report.dry_run else "") + report.summary(), err=report.dry_run)
    if report.exit_code:
        click.get_current_context().exit(report.exit_code)


_dry_run = dry_run_option("Write nothing; print a unified diff of each change.")
_ext = click.option(
    "--ext",
    "extension",
    help="Caption extension (default: the project's recipe, else .txt; sd-scripts' own default is .caption).",
)


@click.group(
    epilog="""\b
Examples:
  kohya-recipe caption init ./img/10_CharacterAI\\ woman \\
      --base "1girl, CharacterAI, dark skin, braided hair, earrings, 3D render, UHD, 4K"
  kohya-recipe caption add "looking back" --match "img/*/*-back*.png" --dry-run
  kohya-recipe caption remove earrings --match "img/*/*-side-*.png"
  kohya-recipe caption set img/10_CharacterAI\\ woman/07.png "1girl, CharacterAI, from side" --force
  kohya-recipe caption show ./CharacterAI

\b
Exit codes: 0 done, 1 nothing was changed (bad input, or every file failed),
5 some files were changed and others failed (each listed), 130 stopped by
Ctrl-C/SIGTERM/SIGHUP between two files.
"""
)
def caption_group() -> None:
    """Edit caption files safely (init/add/remove/set/show).

    Writes are atomic (temp file + rename), keep tag order and each file's style (separator, line ending,
    trailing newline, extra lines); an existing caption is never overwritten without --force, a caption that
    is not UTF-8 text is reported and left untouched. Nothing but caption files is ever written; temp files a
    killed edit left next to captions are removed by the next edit.
    """


@caption_group.command(
    "init",
    short_help="Write the base caption for images that have none.",
    epilog="""\b
Examples:
  kohya-recipe caption init ./my-images --base "1girl, CharacterAI, dark skin, braided hair, 3D render"
  kohya-recipe caption init ./CharacterAI --base "1girl, CharacterAI" --dry-run
  kohya-recipe caption init ./my-images --base "1girl, CharacterAI" --ext .caption --force
""",
)
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--base", required=True, help="The base caption (Danbooru tags) for images that have none.")
@force_option("Replace existing captions with the base caption too.")
@_ext
@_dry_run
@json_option
def caption_init_cmd(
    directory: Path, base: str, force: bool, extension: str | None, dry_run: bool, as_json: bool
) -> None:
    """Write the base caption for every image in DIRECTORY that has none."""
    from kohya_recipe.dataset.caption_edits import init_captions

    _print_report(init_captions(directory, base, extension=extension, force=force, dry_run=dry_run), as_json)


_match = click.option(
    "--match",
    "match",
    multiple=True,
    required=True,
    help="Glob of images or caption files inside --dir, relative to it (repeatable; ** recurses). Matches are "
    "confined to --dir: a pattern reaching outside it ('../x/*.txt', an absolute path elsewhere) is refused.",
)
_dir = click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Folder the --match globs are relative to and confined to.",
)
_where = click.option(
    "--where", multiple=True, help="Only edit captions that already contain this tag (repeatable; globs allowed)."
)


@caption_group.command(
    "add",
    short_help="Add tags to matched captions (order and style kept).",
    epilog="""\b
Examples:
  kohya-recipe caption add "looking back" --match "*-back*.png" --dir "img/10_CharacterAI woman"
  kohya-recipe caption add "from side" --match "img/*/side_*.txt" --dry-run
  kohya-recipe caption add CharacterAI --front --match "img/*/*.png"
""",
)
@click.argument("tags", nargs=-1, required=True)
@_match
@_dir
@_where
@click.option("--front", is_flag=True, help="Insert the tags at the front instead of the end.")
@_ext
@_dry_run
@json_option
def caption_add_cmd(
    tags: tuple[str, ...],
    match: tuple[str, ...],
    root: Path,
    where: tuple[str, ...],
    front: bool,
    extension: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Add TAGS to the matched captions that lack them (order and style kept)."""
    from kohya_recipe.dataset.caption_edits import add_tags

    report = add_tags(tags, match=match, root=root, extension=extension, front=front, where=where, dry_run=dry_run)
    _print_report(report, as_json)


@caption_group.command(
    "remove",
    short_help="Remove tags or tag globs ('* eyes') from matched captions.",
    epilog="""\b
Examples:
  kohya-recipe caption remove earrings --match "*-side-*.png" --dir "img/10_CharacterAI woman"
  kohya-recipe caption remove earrings "* eyes" --where "from behind" --match "img/**/*.txt"
""",
)
@click.argument("tags", nargs=-1, required=True)
@_match
@_dir
@_where
@_ext
@_dry_run
@json_option
def caption_remove_cmd(
    tags: tuple[str, ...],
    match: tuple[str, ...],
    root: Path,
    where: tuple[str, ...],
    extension: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove TAGS (globs allowed, e.g. "* eyes") from the matched captions."""
    from kohya_recipe.dataset.caption_edits import remove_tags

    _print_report(remove_tags(tags, match=match, root=root, extension=extension, where=where, dry_run=dry_run), as_json)


@caption_group.command(
    "set",
    short_help="Set the caption of one image or caption file.",
    epilog="""\b
Examples:
  kohya-recipe caption set img/10_CharacterAI\\ woman/07.png "1girl, CharacterAI, from side"
  kohya-recipe caption set img/10_CharacterAI\\ woman/07.txt "1girl, CharacterAI, profile" --force --dry-run
""",
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("caption")
@force_option("Replace a caption that exists with other tags.")
@_ext
@_dry_run
@json_option
def caption_set_cmd(file: Path, caption: str, force: bool, extension: str | None, dry_run: bool, as_json: bool) -> None:
    """Set the caption of FILE (an image or its caption file) to CAPTION."""
    from kohya_recipe.dataset.caption_edits import set_caption

    _print_report(set_caption(file, caption, extension=extension, force=force, dry_run=dry_run), as_json)


@caption_group.command(
    "show",
    short_help="Show the tag frequency table of a dataset.",
    epilog="""\b
Examples:
  kohya-recipe caption show ./CharacterAI
  kohya-recipe caption show ./img --top 10
  kohya-recipe caption show ./img --json
""",
)
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=None, help="Show only the N most frequent tags.")
@_ext
@json_option
def caption_show_cmd(directory: Path, top: int | None, extension: str | None, as_json: bool) -> None:
    """Show the tag frequency table of the captions in DIRECTORY."""
    from kohya_recipe.dataset.tag_stats import format_tag_stats, tag_stats

    emit(tag_stats(directory, extension=extension), as_json, text=lambda s: format_tag_stats(s, top=top))
