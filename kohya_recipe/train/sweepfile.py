"""The sweep manifest ``sweep.toml``: the runs of a sweep, their folders and differing settings.

``write_sweep`` (:mod:`kohya_recipe.train.sweep`) writes it with tomli-w next to the run folders; ``kohya-recipe
queue add`` reads it with :func:`load_sweep` to queue every run. Run folders are relative to the manifest's
folder, and a manifest that names a folder outside it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from kohya_recipe.errors import RenderError
from kohya_recipe.files import read_toml

if TYPE_CHECKING:
    from kohya_recipe.recipe.models import Recipe

MANIFEST_NAME = "sweep.toml"
MANIFEST_KIND = "kohya-recipe sweep"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SweepRun:
    """A run of a sweep: its versioned output name (also its folder) and the settings that make it differ."""

    name: str
    folder: str
    settings: dict[str, Any]  # recipe path (``network.alpha``) -> the value this run's recipe holds
    grid_values: dict[str, str] = field(metadata={"json": False})  # grid key as given -> the value string as given
    recipe: Recipe | None = field(default=None, compare=False, repr=False, metadata={"json": False})
    project: Path | None = field(default=None, compare=False)  # the run's project folder, once a Sweep lists it


# ------------------------------------------------------------------------------------------------------------
# The manifest


@dataclass
class Sweep:
    """A sweep manifest: where it is and the runs it lists (folders relative to the manifest's folder).

    Its JSON form is what ``kohya-recipe sweep --json`` prints: the manifest, its path, each run's project folder
    and whether this was a dry run.
    """

    path: Path
    runs: list[SweepRun]
    grid: dict[str, list[str]]
    base_output_name: str
    created_at: datetime | None = field(default=None, metadata={"json": False})
    recipe_file: str | None = field(default=None, metadata={"json": False})
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list, metadata={"json": False})  # from rendering; not in the manifest

    __json_properties__: ClassVar[tuple[str, ...]] = ("schema_version", "kind", "created", "recipe")

    def __post_init__(self) -> None:
        self.runs = [replace(run, project=self.run_dir(run)) for run in self.runs]

    @property
    def root(self) -> Path:
        return self.path.parent

    def run_dir(self, run: SweepRun) -> Path:
        return self.root / run.folder

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    @property
    def kind(self) -> str:
        return MANIFEST_KIND

    @property
    def created(self) -> str | None:
        """When the sweep was written, ISO 8601 with the UTC offset."""
        return self.created_at.isoformat() if self.created_at else None

    @property
    def recipe(self) -> str | None:
        """The recipe file the sweep was expanded from (absolute)."""
        return self.recipe_file


def manifest_toml(sweep: Sweep) -> str:
    """``sweep.toml``'s text: the manifest's keys, the grid, and each run's name, folder and settings."""
    import tomli_w

    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": MANIFEST_KIND,
        "base_output_name": sweep.base_output_name,
    }
    if sweep.created_at is not None:
        data["created"] = sweep.created_at
    if sweep.recipe_file:
        data["recipe"] = sweep.recipe_file
    data["grid"] = {k: list(v) for k, v in sweep.grid.items()}
    data["runs"] = [{"name": r.name, "folder": r.folder, "settings": dict(r.settings)} for r in sweep.runs]
    return tomli_w.dumps(data)


def _manifest_error(path: Path, message: str, fld: str | None = None) -> RenderError:
    return RenderError(message, source=str(path), field=fld)


def _read_run(path: Path, raw: Any, where: str, seen: set[str]) -> SweepRun:
    """One ``[[runs]]`` table, checked; ``seen`` collects the folders so far (a folder listed twice is refused)."""
    if not isinstance(raw, dict):
        raise _manifest_error(path, "must be a table", where)
    name, folder, settings = raw.get("name"), raw.get("folder"), raw.get("settings", {})
    if not isinstance(name, str) or not name:
        raise _manifest_error(path, "must be a non-empty string", f"{where}.name")
    if not isinstance(folder, str) or not folder:
        raise _manifest_error(path, "must be a non-empty string", f"{where}.folder")
    pure = PurePosixPath(folder)
    if pure.is_absolute() or ".." in pure.parts or "\\" in folder or ":" in folder:
        # A manifest names folders inside its own folder; anything else could point queue runs anywhere.
        raise _manifest_error(path, f"{folder!r} must be a folder name relative to the manifest", f"{where}.folder")
    if folder in seen:
        raise _manifest_error(path, f"{folder!r} is listed twice", f"{where}.folder")
    seen.add(folder)
    if not isinstance(settings, dict):
        raise _manifest_error(path, "must be a table", f"{where}.settings")
    return SweepRun(name=name, folder=folder, settings=settings, grid_values={})


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a ``sweep.toml`` written by :func:`write_sweep`."""
    path = Path(path)
    data = read_toml(path, error=RenderError)
    if data.get("kind") != MANIFEST_KIND:
        raise _manifest_error(
            path,
            "not a sweep manifest written by `kohya-recipe sweep` (no kind = "
            f"{MANIFEST_KIND!r}); give a project folder or a sweep.toml",
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise _manifest_error(
            path,
            f"schema_version {data.get('schema_version')!r} is not supported "
            f"(this kohya-recipe reads {SCHEMA_VERSION})",
        )
    raw_runs = data.get("runs")
    if not isinstance(raw_runs, list) or not raw_runs:
        raise _manifest_error(path, "must list at least one run", "runs")
    seen: set[str] = set()
    runs = [_read_run(path, raw, f"runs[{i}]", seen) for i, raw in enumerate(raw_runs)]
    grid = data.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) for v in grid.values()):
        raise _manifest_error(path, "must be a table of lists", "grid")
    created = data.get("created")
    return Sweep(
        path=path.absolute(),
        runs=runs,
        grid={k: [str(x) for x in v] for k, v in grid.items()},
        base_output_name=str(data.get("base_output_name", "")),
        created_at=created if isinstance(created, datetime) else None,
        recipe_file=data.get("recipe") if isinstance(data.get("recipe"), str) else None,
    )
