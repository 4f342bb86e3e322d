"""The sweep manifest ``sweep.toml``: the runs of a sweep, their folders and differing settings.

``write_sweep`` (:mod:`kohya_recipe.train.sweep`) writes it with tomli-w next to the run folders; ``kohya-recipe
queue add`` reads it with :func:`load_sweep` to queue every run. Run folders are relative to the manifest's
folder, and a manifest that names a folder outside it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

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
    grid_values: dict[str, str]  # grid key as given (``network_alpha``) -> the value string as given
    recipe: Recipe | None = field(default=None, compare=False, repr=False)


# ------------------------------------------------------------------------------------------------------------
# The manifest


@dataclass
class Sweep:
    """A sweep manifest: where it is and the runs it lists (folders relative to the manifest's folder)."""

    path: Path
    runs: list[SweepRun]
    grid: dict[str, list[str]]
    base_output_name: str
    created: datetime | None = None
    recipe_file: str | None = None
    warnings: list[str] = field(default_factory=list)  # from rendering; not written to the manifest

    @property
    def root(self) -> Path:
        return self.path.parent

    def run_dir(self, run: SweepRun) -> Path:
        return self.root / run.folder

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": MANIFEST_KIND,
            "base_output_name": self.base_output_name,
        }
        if self.created is not None:
            data["created"] = self.created
        if self.recipe_file:
            data["recipe"] = self.recipe_file
        data["grid"] = {k: list(v) for k, v in self.grid.items()}
        data["runs"] = [{"name": r.name, "folder": r.folder, "settings": dict(r.settings)} for r in self.runs]
        return data

    def to_json(self) -> dict[str, Any]:
        data = self.to_dict()
        data["path"] = str(self.path)
        if "created" in data:
            data["created"] = data["created"].isoformat()
        for run, out in zip(self.runs, data["runs"], strict=True):
            out["project"] = str(self.run_dir(run))
        return data


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
        created=created if isinstance(created, datetime) else None,
        recipe_file=data.get("recipe") if isinstance(data.get("recipe"), str) else None,
    )
