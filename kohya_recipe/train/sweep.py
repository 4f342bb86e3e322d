"""Sweeps: one recipe expanded over a grid of settings into versioned runs, each its own project folder.

The article names outputs so that versions can be planned: ``CharacterAI-1-A``, then ``-1-B`` for another try
with different settings, and a new major number for a new dataset or recipe ("No matter what you do here, you
will still probably end up doing this a few times with different settings"). A sweep makes those tries at
once: the cartesian product of the ``--grid`` values, runs lettered from the recipe's own letter onwards.
After ``Z`` the letters go on as spreadsheet columns do (``AA``, ``AB``, …, up to ``ZZZ``, the recipe's
limit): the major number stays the same because every run of a sweep trains the same dataset with the same
recipe, only the gridded settings differ. The kohya_ss GUI trains one configuration per click
(``kohya_gui/lora_gui.py`` ``train_model``).

``sweep.toml`` (written with tomli-w) lists the runs, their folders, output names and differing settings; it
is what ``kohya-recipe queue add`` reads to queue every run.
"""

from __future__ import annotations

import itertools
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_recipe.errors import RecipeError, RenderError
from kohya_recipe.files import atomic_write_text
from kohya_recipe.layout import RESOLVED_RECIPE, is_project
from kohya_recipe.text import fit_lines, format_table
from kohya_recipe.train.sweepfile import MANIFEST_NAME, Sweep, SweepRun, load_sweep, manifest_toml

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from kohya_recipe.recipe.models import Recipe

# The recipe's Output.letter accepts A..ZZZ (recipe.py), so a sweep can hand out at most this many letters.
MAX_LETTER_INDEX = 26 + 26**2 + 26**3  # bijective base 26: A=1 .. ZZZ=18278

# Settings a sweep may not vary: the run names are the sweep's job, and a preset is layered before --set
# applies.
_RESERVED_KEYS = {
    "output.name": "the sweep names its runs from the recipe's output name",
    "output.major": "every run of a sweep shares the recipe's major version",
    "output.letter": "the sweep hands out the letters itself",
    "preset": "a preset is layered under the recipe before settings apply; sweep two recipes instead",
    "schema_version": "it is the recipe file's format version, not a setting",
}


def letter_index(letter: str) -> int:
    """``A`` -> 1, ``Z`` -> 26, ``AA`` -> 27 (spreadsheet columns, bijective base 26)."""
    n = 0
    for ch in letter:
        n = n * 26 + (ord(ch) - ord("A") + 1)
    return n


def index_letter(n: int) -> str:
    """Inverse of :func:`letter_index`: 1 -> ``A``, 27 -> ``AA``, 18278 -> ``ZZZ``."""
    out = ""
    while n > 0:
        n, rem = divmod(n - 1, 26)
        out = chr(ord("A") + rem) + out
    return out


def split_values(raw: str) -> list[str]:
    """Split ``48,72,96`` on commas that are not inside brackets or quotes, so list values such as
    ``[512,512],[768,768]`` stay whole."""
    values: list[str] = []
    depth = 0
    quote: str | None = None
    current = ""
    for ch in raw:
        if quote:
            current += ch
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += ch
    values.append(current.strip())
    return values


def parse_grid(items: Iterable[str]) -> dict[str, list[str]]:
    """``["network_alpha=48,72", "max_train_epochs=8,10"]`` -> ``{"network_alpha": ["48", "72"], ...}``.

    Keys are checked later against the recipe (:func:`expand_grid`); here only the shape: ``KEY=V1,V2,...``,
    no empty value, no value twice, no key twice.
    """
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"{item!r} must be KEY=VALUE1,VALUE2,... (e.g. network_alpha=48,72,96)", source="--grid")
        if key in grid:
            raise RecipeError("given twice; list all its values in one --grid", source="--grid", field=key)
        grid[key] = split_values(raw)
    return grid


def _get_path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _check_grid(grid: dict[str, list[str]], base_data: dict[str, Any]) -> dict[str, str]:
    """Validate keys and values up front; return grid key -> recipe path."""
    from kohya_recipe.recipe.loading import apply_sets, resolve_set_key

    if not grid:
        raise RecipeError("give at least one --grid KEY=VALUE1,VALUE2,...", source="sweep")
    paths: dict[str, str] = {}
    for key, values in grid.items():
        if not values or any(v == "" for v in values):
            raise RecipeError("empty value; give KEY=VALUE1,VALUE2,... with no empty item", source="--grid", field=key)
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise RecipeError(f"value {repeated[0]!r} is listed twice", source="--grid", field=key)
        path = resolve_set_key(key)
        reason = _RESERVED_KEYS.get(path)
        if reason:
            raise RecipeError(f"cannot be swept: {reason}", source="--grid", field=key)
        # The recipe's own --set machinery checks the key (unknown key -> did-you-mean) and parses the value.
        apply_sets(base_data, [f"{key}={values[0]}"], source="--grid")
        for other, other_path in paths.items():
            if other_path == path:
                raise RecipeError(f"names the same setting as --grid {other} ({path})", source="--grid", field=key)
        paths[key] = path
    return paths


def expand_grid(recipe: Recipe, grid: dict[str, list[str]]) -> list[SweepRun]:
    """The cartesian product of ``grid`` over ``recipe``, one validated recipe per run, lettered from the
    recipe's own letter (``CharacterAI-1-A``, ``-1-B``, …; after ``Z``: ``AA``, ``AB``, …).

    The first grid key varies slowest. A value the recipe rejects is reported with the run it belongs to.
    """
    from kohya_recipe.recipe.loading import apply_sets, recipe_from_dict, recipe_to_data

    base_data = recipe_to_data(recipe)
    paths = _check_grid(grid, base_data)
    combos = list(itertools.product(*grid.values()))
    first = letter_index(recipe.output.letter)
    last = first + len(combos) - 1
    if last > MAX_LETTER_INDEX:
        raise RecipeError(
            f"{len(combos)} runs starting at letter {recipe.output.letter} would need letters past ZZZ; "
            "use fewer values or a recipe with an earlier output.letter",
            source="sweep",
        )
    runs: list[SweepRun] = []
    for i, combo in enumerate(combos):
        letter = index_letter(first + i)
        given = dict(zip(grid, combo, strict=True))
        sets = [f"{k}={v}" for k, v in given.items()]
        data = apply_sets(base_data, sets, source="--grid")
        data.setdefault("output", {})["letter"] = letter
        name = f"{recipe.output.name}-{recipe.output.major}-{letter}"
        shown = ", ".join(sets)
        run_recipe = recipe_from_dict(data, source=f"sweep run {name} ({shown})")
        resolved = recipe_to_data(run_recipe)
        settings = {paths[k]: _get_path(resolved, paths[k]) for k in given}
        runs.append(
            SweepRun(
                name=run_recipe.output.output_name,
                folder=run_recipe.output.output_name,
                settings={k: v for k, v in settings.items() if v is not None},
                grid_values=given,
                recipe=run_recipe,
            )
        )
    return runs


def _recipe_of(run: SweepRun) -> Recipe:
    # Runs from expand_grid carry their recipe; runs read back from a manifest do not (and are never rendered).
    if run.recipe is None:
        raise RenderError("has no recipe to render (it was read from a manifest)", source=run.name)
    return run.recipe


def _collect_warnings(sweep: Sweep, result: Any) -> None:
    # Every run renders the same images, so the render's warnings (missing captions, skipped files) repeat.
    for warning in getattr(result, "warnings", None) or []:
        if warning not in sweep.warnings:
            sweep.warnings.append(warning)


def _same_runs(a: list[SweepRun], b: list[SweepRun]) -> bool:
    return [(r.folder, r.settings) for r in a] == [(r.folder, r.settings) for r in b]


def _previous_runs(manifest_path: Path, runs: list[SweepRun], force: bool) -> set[str]:
    """The run folders an existing ``sweep.toml`` says are ours; refuses a foreign or different manifest."""
    if not manifest_path.exists():
        return set()
    try:
        previous = load_sweep(manifest_path)
    except RenderError as exc:
        if force:
            return set()
        raise RenderError(
            f"{exc.message}; refusing to overwrite it (use --force or another --out)",
            source=exc.source,
            field=exc.field,
        ) from None
    if not force and not _same_runs(previous.runs, runs):
        raise RenderError(
            "holds a different sweep (other runs or settings); use another --out, or --force to "
            "replace the manifest (existing run folders are never deleted)",
            source=str(manifest_path),
        )
    return {r.folder for r in previous.runs}


def _check_out_dir(out: Path, runs: list[SweepRun], force: bool) -> None:
    """Never clobber: ``out`` must be a folder (or not exist), and hold no run folder this sweep did not write."""
    if out.exists() and not out.is_dir():
        raise RenderError("exists and is not a folder", source=str(out))
    ours = _previous_runs(out / MANIFEST_NAME, runs, force)
    if force:
        return
    for run in runs:
        target = out / run.folder
        if target.exists() and run.folder not in ours:
            raise RenderError(
                "exists and was not written by this sweep; use another --out, or --force",
                source=str(target),
            )


def _add_recipe_warnings(sweep: Sweep) -> None:
    from kohya_recipe.recipe.advice import recipe_warnings

    for run in sweep.runs:
        for warning in recipe_warnings(_recipe_of(run)):
            if warning not in sweep.warnings:
                sweep.warnings.append(warning)


def _render_runs(
    sweep: Sweep,
    out: Path,
    render: Callable[..., Any],
    force: bool,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Render every run into ``out`` and write the manifest; on any failure remove only what this call created."""
    created_out = not out.exists()
    created: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i, run in enumerate(sweep.runs, 1):
            target = out / run.folder
            if not target.exists():
                created.append(target)
            _collect_warnings(sweep, render(_recipe_of(run), target, force=force))
            if progress is not None:
                progress(i, len(sweep.runs))
        atomic_write_text(out / MANIFEST_NAME, manifest_toml(sweep))
    except BaseException:
        # Remove only what this call created (cookiecutter generate.py does the same); user images were
        # hard-linked or copied into the run folders, so deleting a run folder never touches the originals.
        for path in reversed(created):
            shutil.rmtree(path, ignore_errors=True)
        if created_out:
            shutil.rmtree(out, ignore_errors=True)
        raise


def write_sweep(
    recipe: Recipe,
    grid: dict[str, list[str]],
    out_dir: str | Path,
    force: bool = False,
    *,
    recipe_file: str | Path | None = None,
    render: Callable[..., Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    dry_run: bool = False,
) -> Sweep:
    """Expand ``grid`` and render each run into ``out_dir/<output name>/`` plus ``out_dir/sweep.toml``.

    Never clobbers: a run folder that exists but is not listed in ``out_dir/sweep.toml``, or a ``sweep.toml``
    that is not a sweep manifest or lists a different sweep, is refused unless ``force``. Running the same
    sweep again re-renders its projects (each project's own no-clobber rules apply). On failure only the
    folders created by this call are removed. ``dry_run`` makes every check and writes nothing.
    """
    if render is None:
        from kohya_recipe.render.project import render_project

        render = render_project
    runs = expand_grid(recipe, grid)
    out = Path(out_dir)
    _check_out_dir(out, runs, force)
    sweep = Sweep(
        path=(out / MANIFEST_NAME).absolute(),
        runs=runs,
        grid={k: list(v) for k, v in grid.items()},
        base_output_name=recipe.output.output_name,
        created_at=datetime.now().astimezone().replace(microsecond=0),
        recipe_file=str(Path(recipe_file).absolute()) if recipe_file else None,
        dry_run=dry_run,
    )
    _add_recipe_warnings(sweep)
    if dry_run:
        for run in runs:
            _collect_warnings(sweep, render(_recipe_of(run), out / run.folder, force=force, dry_run=True))
        return sweep
    _render_runs(sweep, out, render, force, progress)
    return sweep


def default_sweep_dir(recipe: Recipe) -> Path:
    """``./<name>-<major>-sweep``: the runs share name and major version, only the letter differs."""
    return Path(f"{recipe.output.name}-{recipe.output.major}-sweep")


def sweep_source(path: Path) -> Path:
    """The recipe file to sweep: ``path`` itself, or a project folder's ``resolved-recipe.toml``."""
    if not path.is_dir():
        return path
    if not is_project(path):
        raise RecipeError(
            f"a folder, but not a kohya-recipe project (no {RESOLVED_RECIPE}); give a recipe file or a project folder",
            source=str(path),
        )
    return path / RESOLVED_RECIPE


def sweep_recipe_file(
    recipe_path: str | Path,
    grid_items: Iterable[str],
    out_dir: str | Path | None = None,
    *,
    sets: Iterable[str] = (),
    force: bool = False,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Sweep:
    """``kohya-recipe sweep``: load the recipe (preset + ``--set``), parse the ``--grid`` items, write.

    ``recipe_path`` may be a project folder (what ``build`` or ``render`` wrote): its ``resolved-recipe.toml``
    is the recipe, so a run that trained can be swept without looking for that file."""
    from kohya_recipe.recipe.loading import load_recipe

    grid = parse_grid(grid_items)
    recipe_path = sweep_source(Path(recipe_path))
    recipe = load_recipe(recipe_path, tuple(sets))
    out = Path(out_dir) if out_dir is not None else default_sweep_dir(recipe)
    return write_sweep(recipe, grid, out, force=force, recipe_file=recipe_path, progress=progress, dry_run=dry_run)


def _setting_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_setting_text(v) for v in value)
    return str(value)


def format_sweep(sweep: Sweep) -> str:
    """What ``kohya-recipe sweep`` prints: where the runs went, a table of each run's settings, what to do next."""
    keys: list[str] = []
    for run in sweep.runs:
        keys += [k for k in run.settings if k not in keys]
    rows = [[run.name, *(_setting_text(run.settings.get(k, "")) for k in keys)] for run in sweep.runs]
    verb = "Would write" if sweep.dry_run else "Wrote"
    lines = [f"{verb} {len(sweep.runs)} runs of {sweep.base_output_name} to {sweep.root}/ ({sweep.path.name}):"]
    lines += format_table(["RUN", *keys], rows, indent=2)
    if not sweep.dry_run:
        lines.append(f"Next: kohya-recipe queue add {sweep.path} && kohya-recipe queue run")
    return "\n".join(fit_lines(lines))
