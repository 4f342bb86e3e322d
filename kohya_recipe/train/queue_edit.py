"""Adding projects (or every run of a sweep) to the queue, listing it and removing entries.

Users ask for unattended, overnight training of several runs (bmaltais/kohya_ss#329, #443, #1212, #3179;
OneTrainer#29, #993; lora-scripts#40) and for queues that pick up entries added after the queue started
(LETS#251). The kohya_ss GUI runs one training at a time and has no queue.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.layout import is_project
from kohya_recipe.text import fit_lines, format_table
from kohya_recipe.train.liveness import entry_state, runner_alive
from kohya_recipe.train.queuefile import ACTIVE_STATUSES, MAX_ID, RUNNING, Queue, QueueEntry, QueueError, now
from kohya_recipe.train.run import find_resume_state
from kohya_recipe.train.sweepfile import MANIFEST_NAME, load_sweep

# ------------------------------------------------------------------------------------------------------------
# What the queue needs to know about a project


@dataclass(frozen=True)
class ProjectInfo:
    root: Path
    output_name: str
    gpus: list[str]


def inspect_project(path: str | os.PathLike[str]) -> ProjectInfo:
    """Load a rendered project (raises the project loader's error when it is not one)."""
    from kohya_recipe.render.project import load_project

    project = load_project(Path(path))
    gpu_ids = list(project.recipe.accelerate.gpu_ids or [])
    return ProjectInfo(
        root=Path(project.root).absolute(),
        output_name=project.output_name,
        gpus=[str(g) for g in gpu_ids],
    )


def has_resume_state(info: ProjectInfo) -> bool:
    """True when the project holds a ``<output_name>-…-state`` folder to ``--resume`` from
    (:func:`kohya_recipe.train.run.find_resume_state`, the one judge of state folders)."""
    try:
        return find_resume_state(info.root) is not None
    except KohyaRecipeError:
        return False


# ------------------------------------------------------------------------------------------------------------
# add / list / remove


@dataclass(frozen=True)
class AlreadyQueued:
    """A project that was not added: an entry that still holds work (``queued_as``) already trains it."""

    project: str
    queued_as: int
    status: str


@dataclass
class AddResult:
    """What ``queue add`` did: the new entries, and the projects skipped because they are queued already."""

    added: list[QueueEntry] = field(default_factory=list)
    skipped: list[AlreadyQueued] = field(default_factory=list)


def _is_sweep_manifest(path: Path) -> bool:
    """A ``.toml`` file (or a special file so named: the manifest reader refuses it in one line), or a folder
    holding a ``sweep.toml`` that is not itself a project."""
    if not path.is_dir():
        return path.name == MANIFEST_NAME or path.suffix == ".toml"
    return (path / MANIFEST_NAME).exists() and not is_project(path)


def _expand_targets(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[ProjectInfo, str | None]]:
    """Project folders as given, and every run of each sweep manifest (a ``sweep.toml`` or its folder)."""
    targets: list[tuple[ProjectInfo, str | None]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise QueueError("no such project folder or sweep manifest", source=str(raw))
        if _is_sweep_manifest(path):
            manifest = path / MANIFEST_NAME if path.is_dir() else path
            sweep = load_sweep(manifest)
            for run in sweep.runs:
                targets.append((inspect_project(sweep.root / run.folder), str(manifest.absolute())))
        else:
            targets.append((inspect_project(path), None))
    return targets


def add_to_queue(
    paths: Iterable[str | os.PathLike[str]], queue_file: str | os.PathLike[str] | None = None
) -> AddResult:
    """Append projects (or all runs of sweep manifests) to the queue.

    Every path is checked before anything is written, so a bad path adds nothing. A project that already has a
    pending, running or interrupted entry is skipped (it would otherwise train twice); one whose entries are
    all done or failed gets a new entry, which is how a failed run is retried.
    """
    paths = list(paths)
    if not paths:
        raise QueueError("give at least one project folder or sweep.toml")
    targets = _expand_targets(paths)
    queue = Queue(queue_file)
    result = AddResult()
    with queue.edit() as state:
        for info, sweep in targets:
            project = str(info.root)
            holder = next(
                (e for e in [*state.entries, *result.added] if e.project == project and e.status in ACTIVE_STATUSES),
                None,
            )
            if holder is not None:
                result.skipped.append(AlreadyQueued(project, holder.id, holder.status))
                continue
            if state.next_id >= MAX_ID:
                raise QueueError(
                    f"every entry id up to {MAX_ID - 1} has been handed out; the file was not changed (start a new "
                    "queue file, or renumber the entries and next_id by hand)",
                    source=str(queue.path),
                )
            entry = QueueEntry(id=state.next_id, project=project, added=now(), name=info.output_name, sweep=sweep)
            state.next_id += 1
            state.entries.append(entry)
            result.added.append(entry)
    return result


def list_queue(queue_file: str | os.PathLike[str] | None = None) -> list[QueueEntry]:
    """The queue's entries in order."""
    return Queue(queue_file).read().entries


@dataclass
class QueueListing:
    """The queue as ``queue list`` shows it: which file, and its entries in order."""

    queue_file: Path
    entries: list[QueueEntry]


def show_queue(queue_file: str | os.PathLike[str] | None = None) -> QueueListing:
    """The queue file (``queue_file``, else the default) and its entries."""
    queue = Queue(queue_file)
    return QueueListing(queue.path, queue.read().entries)


def remove_from_queue(ids: Iterable[int], queue_file: str | os.PathLike[str] | None = None) -> list[QueueEntry]:
    """Remove entries by id. An entry that a live ``queue run`` is training cannot be removed."""
    ids = list(ids)
    if not ids:
        raise QueueError("give at least one entry id (see `kohya-recipe queue list`)")
    queue = Queue(queue_file)
    with queue.edit() as state:
        chosen = []
        for entry_id in ids:
            entry = state.get(entry_id)
            if entry is None:
                known = ", ".join(str(e.id) for e in state.entries) or "none"
                raise QueueError(f"no entry #{entry_id} (ids in the queue: {known})", source=str(queue.path))
            if entry.on_ray:
                raise QueueError(
                    f"entry {entry.label} runs as Ray job {entry.ray_job}; stop it first (Ctrl-C in `queue run "
                    f"--ray`, or `ray job stop {entry.ray_job}`) and let `queue list` see it stopped",
                    source=str(queue.path),
                )
            if entry.status == RUNNING and runner_alive(queue, entry):
                raise QueueError(
                    f"entry {entry.label} is being trained by `queue run` (pid {entry.pid}); stop it with Ctrl-C first",
                    source=str(queue.path),
                )
            chosen.append(entry)
        state.entries = [e for e in state.entries if e not in chosen]
    return chosen


@dataclass
class Removal:
    """What ``queue remove`` removed."""

    removed: list[QueueEntry]


# ------------------------------------------------------------------------------------------------------------
# Text for people


def format_added(result: AddResult) -> str:
    return "\n".join(fit_lines(f"Queued #{e.id} {e.name}  {e.project}" for e in result.added))


def format_skipped(result: AddResult) -> list[str]:
    """One line per project that was already queued (the CLI prints them on stderr)."""
    return fit_lines(f"Already queued as #{s.queued_as} ({s.status}): {s.project}" for s in result.skipped)


def format_removal(removal: Removal) -> str:
    return "\n".join(
        fit_lines(f"Removed #{e.id} {e.name or Path(e.project).name} ({e.status})" for e in removal.removed)
    )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "?"


def _last(entry: QueueEntry, state: str) -> str:
    """The LAST column: who trains a running entry since when, else the latest outcome."""
    if entry.on_ray:
        where = f"on {entry.ray_node} " if entry.ray_node and entry.ray_status == "RUNNING" else ""
        return f"Ray job {entry.ray_job} {where}since {_when(entry.started)}"
    if entry.status == RUNNING:
        owner = f"pid {entry.pid}" + (f" on {entry.host}" if entry.host else "")
        gone = " (runner gone; resumes on next `queue run`)" if "stale" in state else ""
        return f"{owner} since {_when(entry.started)}{gone}"
    if entry.last_outcome is None:
        return ""
    text = entry.last_outcome
    if entry.last_exit_code is not None:
        text += f", exit {entry.last_exit_code}"
    if entry.finished:
        text += f", {_when(entry.finished)}"
    if entry.last_error:
        text += f": {entry.last_error}"
    return text


def _ray_state(entry: QueueEntry) -> str:
    """A Ray entry's status: running on a node, or still waiting in Ray's queue (or being submitted)."""
    return "running (Ray)" if entry.ray_status == "RUNNING" else "pending (Ray)"


def format_queue(listing: QueueListing) -> str:
    """``queue list``: id, status (``running (stale)`` when its runner is gone), tries, run, project, last."""
    entries = listing.entries
    if not entries:
        return "\n".join(fit_lines([f"The queue is empty ({listing.queue_file})."]))
    rows = []
    for e in entries:
        state = _ray_state(e) if e.on_ray else entry_state(e)
        rows.append([str(e.id), state, str(e.attempts), e.name or Path(e.project).name, e.project, _last(e, state)])
    head = f"Queue {listing.queue_file}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
    table = format_table(["ID", "STATUS", "TRIES", "RUN", "PROJECT", "LAST"], rows, right=[0, 2])
    return "\n".join(fit_lines([head, *table]))
