"""A persistent training queue: add rendered projects, run them one after another, survive kills and reboots.

Users ask for unattended, overnight training of several runs (bmaltais/kohya_ss#329, #443, #1212, #3179;
OneTrainer#29, #993; lora-scripts#40) and for queues that pick up entries added after the queue started
(LETS#251). The kohya_ss GUI runs one training at a time and has no queue.

The queue is a TOML file (default ``$XDG_DATA_HOME/kohya-recipe/queue.toml``, overridable with
``--queue-file`` or ``KOHYA_RECIPE_QUEUE``). Every change is read-modify-write under a lock file, and every
write is a temp file in the same folder, fsynced, then ``os.replace``-d over the old one, so a kill or a power
cut leaves either the old or the new queue, never half of one. A queue file that does not parse is reported
and left untouched.

``run_queue`` trains the runnable entries in order (pending, interrupted, and ``running`` entries whose runner
died), records each outcome and goes on after a failure. A runner holds a lock per GPU set (the project's
``[accelerate] gpu_ids``) while it trains, so two ``queue run`` processes never train on the same GPUs, and an
entry marked ``running`` whose GPU lock is free was left by a dead process: it is resumed from its newest
``<name>-…-state`` folder when one exists (sd-scripts ``--resume``), else restarted.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from kohya_recipe.errors import KohyaRecipeError, TrainingInterrupted

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMA_VERSION = 1
QUEUE_ENV = "KOHYA_RECIPE_QUEUE"

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"
STATUSES: tuple[str, ...] = (PENDING, RUNNING, DONE, FAILED, INTERRUPTED)
# Entries that still hold work: adding the same project again while one of these exists would train it twice.
ACTIVE_STATUSES: frozenset[str] = frozenset({PENDING, RUNNING, INTERRUPTED})

# The trainer script names sd-scripts runs; used to tell an orphaned trainer from a shell that happens to sit
# in the project folder (reference/sd_scripts.md §12: the launcher runs `<sd-scripts>/train_network.py`).
_TRAINER_SCRIPTS = ("train_network.py", "sdxl_train_network.py")


class QueueError(KohyaRecipeError):
    """The queue file is unreadable or an entry cannot be added, removed or run."""


# ------------------------------------------------------------------------------------------------------------
# Entries and the file


@dataclass
class QueueEntry:
    """One queued training run. Unset optional fields are left out of the TOML file (TOML has no null)."""

    id: int
    project: str
    status: str = PENDING
    attempts: int = 0
    added: datetime | None = None
    name: str | None = None  # the trainer's output_name, for display
    sweep: str | None = None  # the sweep.toml the entry came from
    started: datetime | None = None
    finished: datetime | None = None
    pid: int | None = None  # the `queue run` process while running
    host: str | None = None
    gpus: list[str] | None = None  # the GPU set locked while running ([] = all GPUs)
    resumed: bool | None = None  # whether the latest attempt continued from a state folder
    last_outcome: str | None = None
    last_exit_code: int | None = None
    last_run: str | None = None  # path of the run record JSON (PROJECT/runs/<timestamp>.json)
    last_error: str | None = None

    @property
    def label(self) -> str:
        return f"#{self.id} {self.name or Path(self.project).name}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        return out

    def to_json(self) -> dict[str, Any]:
        out = self.to_dict()
        for key in ("added", "started", "finished"):
            if key in out:
                out[key] = out[key].isoformat()
        return out


# field name -> (accepted python types, description for the error message)
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "id": ((int,), "an integer"),
    "project": ((str,), "a string"),
    "status": ((str,), "a string"),
    "attempts": ((int,), "an integer"),
    "added": ((datetime,), "a date-time"),
    "name": ((str,), "a string"),
    "sweep": ((str,), "a string"),
    "started": ((datetime,), "a date-time"),
    "finished": ((datetime,), "a date-time"),
    "pid": ((int,), "an integer"),
    "host": ((str,), "a string"),
    "gpus": ((list,), "a list of strings"),
    "resumed": ((bool,), "a boolean"),
    "last_outcome": ((str,), "a string"),
    "last_exit_code": ((int,), "an integer"),
    "last_run": ((str,), "a string"),
    "last_error": ((str,), "a string"),
}


@dataclass
class QueueState:
    """The whole queue file: entries in queue order and the next id to hand out (ids are never reused)."""

    entries: list[QueueEntry] = field(default_factory=list)
    next_id: int = 1

    def get(self, entry_id: int) -> QueueEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "next_id": self.next_id,
            "entries": [e.to_dict() for e in self.entries],
        }


def default_queue_file() -> Path:
    """``$KOHYA_RECIPE_QUEUE``, else ``$XDG_DATA_HOME/kohya-recipe/queue.toml`` (``~/.local/share``)."""
    env = os.environ.get(QUEUE_ENV)
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    base = Path(data_home) if data_home and Path(data_home).is_absolute() else Path.home() / ".local" / "share"
    return base / "kohya-recipe" / "queue.toml"


def _parse_entry(raw: Any, index: int, source: str) -> QueueEntry:
    where = f"entries[{index}]"
    if not isinstance(raw, dict):
        raise QueueError("must be a table ([[entries]])", source=source, field=where)
    unknown = sorted(set(raw) - set(_FIELD_TYPES))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(_FIELD_TYPES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise QueueError(f"unknown key '{unknown[0]}'{hint}", source=source, field=where)
    for required in ("id", "project"):
        if required not in raw:
            raise QueueError(f"missing required key '{required}'", source=source, field=where)
    for key, value in raw.items():
        types, desc = _FIELD_TYPES[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if ok and key == "gpus":
            ok = all(isinstance(g, str) for g in value)
        if ok and isinstance(value, datetime) and value.tzinfo is None:
            value = value.astimezone()  # a hand-written local date-time: read it as this machine's time
            raw[key] = value
        if not ok:
            raise QueueError(f"must be {desc}, got {value!r}", source=source, field=f"{where}.{key}")
    if "status" in raw and raw["status"] not in STATUSES:
        raise QueueError(
            f"{raw['status']!r} is not one of: {', '.join(STATUSES)}", source=source, field=f"{where}.status"
        )
    if raw["id"] < 1:
        raise QueueError("must be >= 1", source=source, field=f"{where}.id")
    return QueueEntry(**raw)


def parse_queue(text: str, source: str) -> QueueState:
    """Parse and check a queue file's text; raise :class:`QueueError` naming the file, entry and key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QueueError(
            f"not valid TOML ({exc}); the file was not changed, fix it by hand or move it away", source=source
        ) from None
    unknown = sorted(set(data) - {"schema_version", "next_id", "entries"})
    if unknown:
        raise QueueError(f"unknown key '{unknown[0]}'", source=source)
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise QueueError(
            f"schema_version {version!r} is not supported (this kohya-recipe reads {SCHEMA_VERSION})",
            source=source,
        )
    raw_entries = data.get("entries", [])
    if not isinstance(raw_entries, list):
        raise QueueError("must be an array of tables ([[entries]])", source=source, field="entries")
    entries = [_parse_entry(raw, i, source) for i, raw in enumerate(raw_entries)]
    seen: set[int] = set()
    for e in entries:
        if e.id in seen:
            raise QueueError(f"id {e.id} is used by two entries", source=source, field="entries")
        seen.add(e.id)
    next_id = data.get("next_id", 1)
    if not isinstance(next_id, int) or isinstance(next_id, bool):
        raise QueueError(f"must be an integer, got {next_id!r}", source=source, field="next_id")
    # A hand-edited next_id below an existing id would hand out that id twice.
    next_id = max([next_id, *(e.id + 1 for e in entries)])
    return QueueState(entries=entries, next_id=next_id)


def _atomic_write_text(path: Path, text: str) -> None:
    """Write through a temp file in the same folder, fsync, ``os.replace``, then fsync the folder."""
    from kohya_recipe.files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    # Make the rename itself durable, so a reboot right after a run finishes does not forget its outcome.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ------------------------------------------------------------------------------------------------------------
# Locks


class _FileLock:
    """An ``fcntl.flock`` on a lock file. The kernel drops it when the holder dies, which is how a ``running``
    entry left by a killed or rebooted runner is told from a live one."""

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self._fd: int | None = None

    def acquire(self, *, blocking: bool = True) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            raise QueueError("the queue needs fcntl file locks (Linux or macOS)") from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        flags = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        if not blocking:
            flags |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class GpuLock:
    """Exclusive use of a GPU set for one training at a time.

    ``gpus == []`` means the recipe names no ``gpu_ids``, so accelerate may use any visible GPU: that takes
    the set-wide lock exclusively. A named set takes the set-wide lock shared plus one exclusive lock per GPU
    id, so ``["0"]`` and ``["1"]`` train side by side while ``["0", "1"]`` waits for both.
    """

    def __init__(self, queue_file: Path, gpus: list[str]) -> None:
        self.gpus = list(gpus)
        base = queue_file
        self._locks = [_FileLock(Path(f"{base}.gpus.lock"), shared=bool(gpus))]
        for gpu in sorted(set(gpus)):
            safe = gpu if _SAFE_ID.match(gpu) else f"x{gpu.encode().hex()}"
            self._locks.append(_FileLock(Path(f"{base}.gpu-{safe}.lock")))

    def try_acquire(self) -> bool:
        taken: list[_FileLock] = []
        for lock in self._locks:
            if not lock.acquire(blocking=False):
                for t in taken:
                    t.release()
                return False
            taken.append(lock)
        return True

    def release(self) -> None:
        for lock in reversed(self._locks):
            lock.release()


def describe_gpus(gpus: list[str] | None) -> str:
    if not gpus:
        return "all GPUs"
    return "GPU " + ",".join(gpus)


# ------------------------------------------------------------------------------------------------------------
# The queue object


class Queue:
    """A queue file plus its lock files (``<queue>.lock`` for edits, ``<queue>.gpu*.lock`` for training)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_queue_file()
        self.path = self.path.absolute()
        self._edit_lock = _FileLock(Path(f"{self.path}.lock"))

    def read(self) -> QueueState:
        """The queue as it is on disk (no lock needed: writes replace the file atomically)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return QueueState()
        except UnicodeDecodeError:
            raise QueueError(
                "not UTF-8 text; the file was not changed, fix it by hand or move it away",
                source=str(self.path),
            ) from None
        except OSError as exc:
            raise QueueError(f"cannot read: {exc.strerror}", source=str(self.path)) from None
        return parse_queue(text, str(self.path))

    @contextlib.contextmanager
    def edit(self) -> Iterator[QueueState]:
        """Read, let the caller change, and write back atomically, all under the edit lock."""
        if self.path.is_dir():
            raise QueueError("is a folder, not a queue file", source=str(self.path))
        try:
            self._edit_lock.acquire()
        except OSError as exc:
            raise QueueError(f"cannot create the lock file: {exc.strerror}", source=f"{self.path}.lock") from None
        try:
            state = self.read()
            before = state.to_dict()
            yield state
            after = state.to_dict()
            if after != before or not self.path.exists():
                import tomli_w

                try:
                    _atomic_write_text(self.path, tomli_w.dumps(after))
                except OSError as exc:
                    raise QueueError(f"cannot write: {exc.strerror}", source=str(self.path)) from None
        finally:
            self._edit_lock.release()

    def gpu_lock(self, gpus: list[str]) -> GpuLock:
        return GpuLock(self.path, gpus)


# ------------------------------------------------------------------------------------------------------------
# What the queue needs to know about a project


@dataclass(frozen=True)
class ProjectInfo:
    root: Path
    output_name: str
    gpus: list[str]
    model_dir: Path


def inspect_project(path: str | os.PathLike[str]) -> ProjectInfo:
    """Load a rendered project (raises the project loader's error when it is not one)."""
    from kohya_recipe.render.project import load_project

    project = load_project(Path(path))
    gpu_ids = list(project.recipe.accelerate.gpu_ids or [])
    return ProjectInfo(
        root=Path(project.root).absolute(),
        output_name=project.output_name,
        gpus=[str(g) for g in gpu_ids],
        model_dir=Path(project.model_dir),
    )


def has_resume_state(info: ProjectInfo) -> bool:
    """True when the project holds a ``<output_name>-…-state`` folder to ``--resume`` from.

    sd-scripts writes ``{name}-{epoch:06d}-state``, ``{name}-step{step:08d}-state`` and, at the end,
    ``{name}-state`` next to the checkpoints when ``save_state`` is on (reference/sd_scripts.md §8); each
    holds ``train_state.json``.
    """
    try:
        from kohya_recipe.train import run as train_module

        finder = getattr(train_module, "find_resume_state", None)
    except ImportError:
        finder = None
    if finder is not None:
        try:
            return finder(info.root) is not None
        except KohyaRecipeError:
            return False
    if not info.model_dir.is_dir():
        return False
    prefix = info.output_name + "-"
    return any(
        p.is_dir() and p.name.startswith(prefix) and p.name.endswith("-state") and (p / "train_state.json").is_file()
        for p in info.model_dir.iterdir()
    )


def trainer_processes(project_root: Path) -> list[int]:
    """PIDs of trainer processes still working in ``project_root`` (Linux ``/proc``; empty elsewhere).

    Killing ``queue run`` with SIGKILL does not kill the ``accelerate launch`` child it started, and
    sd-scripts is launched with cwd = PROJECT; a restarted queue must not start a second trainer over the same
    files and GPU.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found = []
    target = str(project_root.resolve())
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if str((entry / "cwd").readlink()) != target:
                continue
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(Path(arg.decode(errors="replace")).name in _TRAINER_SCRIPTS for arg in cmdline):
            found.append(int(entry.name))
    return sorted(found)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def entry_state(entry: QueueEntry) -> str:
    """The status to show: a ``running`` entry whose runner is gone from this host is ``running (stale)``."""
    if entry.status == RUNNING and entry.pid and entry.host == socket.gethostname() and not _pid_alive(entry.pid):
        return "running (stale)"
    return entry.status


# ------------------------------------------------------------------------------------------------------------
# add / list / remove


@dataclass
class AddResult:
    added: list[QueueEntry]
    skipped: list[tuple[str, QueueEntry]]  # (project path, the active entry that already holds it)


def _now() -> datetime:
    return datetime.now().astimezone().replace(microsecond=0)


def _is_sweep_manifest(path: Path) -> bool:
    from kohya_recipe.train.sweep import MANIFEST_NAME

    if path.is_file():
        return path.name == MANIFEST_NAME or path.suffix == ".toml"
    return (path / MANIFEST_NAME).is_file() and not (path / "config.toml").exists()


def _expand_targets(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[ProjectInfo, str | None]]:
    """Project folders as given, and every run of each sweep manifest (a ``sweep.toml`` or its folder)."""
    targets: list[tuple[ProjectInfo, str | None]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise QueueError("no such project folder or sweep manifest", source=str(raw))
        if _is_sweep_manifest(path):
            from kohya_recipe.train.sweep import MANIFEST_NAME, load_sweep

            manifest = path if path.is_file() else path / MANIFEST_NAME
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
    result = AddResult(added=[], skipped=[])
    with queue.edit() as state:
        for info, sweep in targets:
            project = str(info.root)
            holder = next(
                (e for e in [*state.entries, *result.added] if e.project == project and e.status in ACTIVE_STATUSES),
                None,
            )
            if holder is not None:
                result.skipped.append((project, holder))
                continue
            entry = QueueEntry(id=state.next_id, project=project, added=_now(), name=info.output_name, sweep=sweep)
            state.next_id += 1
            state.entries.append(entry)
            result.added.append(entry)
    return result


def list_queue(queue_file: str | os.PathLike[str] | None = None) -> list[QueueEntry]:
    """The queue's entries in order."""
    return Queue(queue_file).read().entries


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
            if entry.status == RUNNING and _runner_alive(queue, entry):
                raise QueueError(
                    f"entry {entry.label} is being trained by `queue run` (pid {entry.pid}); stop it with Ctrl-C first",
                    source=str(queue.path),
                )
            chosen.append(entry)
        state.entries = [e for e in state.entries if e not in chosen]
    return chosen


def _runner_alive(queue: Queue, entry: QueueEntry) -> bool:
    """Whether the runner that marked ``entry`` running still holds its GPU lock (the kernel frees it)."""
    probe = queue.gpu_lock(entry.gpus or [])
    if probe.try_acquire():
        probe.release()
        return False
    # The GPU set is held: by this entry's runner, or (if that runner died) by another runner on the same
    # GPUs. On this host a dead pid settles it.
    return not (entry.host == socket.gethostname() and entry.pid and not _pid_alive(entry.pid))


# ------------------------------------------------------------------------------------------------------------
# run


TrainFn = Callable[..., Any]


def _setup_errors() -> tuple[type[BaseException], ...]:
    """Errors of the training verb that mean "the trainer could not be launched at all" (not "this run failed")."""
    try:
        from kohya_recipe.train.launch import TrainerSetupError
    except ImportError:  # pragma: no cover - the launcher module is part of the package
        return ()
    return (TrainerSetupError,)


def default_train() -> TrainFn:
    """The training verb ``queue run`` calls: :func:`kohya_recipe.train.run.train_project`."""
    from kohya_recipe.train.run import train_project

    return train_project


@dataclass
class QueueRunResult:
    """What one ``run_queue`` call did: the entries it finished, in order (their final state)."""

    ran: list[QueueEntry] = field(default_factory=list)
    waiting: list[QueueEntry] = field(default_factory=list)  # runnable but their GPU set is busy elsewhere

    @property
    def failed(self) -> list[QueueEntry]:
        return [e for e in self.ran if e.status == FAILED]

    @property
    def succeeded(self) -> list[QueueEntry]:
        return [e for e in self.ran if e.status == DONE]


@dataclass
class _Pick:
    entry: QueueEntry
    lock: GpuLock
    info: ProjectInfo
    resume: bool
    recovered: bool  # left `running` by a dead runner
    previous_pid: int | None
    before: dict[str, Any]  # the entry's fields before it was marked running (restored on a setup error)


def _pick_next(queue: Queue, state: QueueState, log: Callable[[str], None]) -> tuple[_Pick | None, list[QueueEntry]]:
    """Under the edit lock: the first runnable entry whose GPU set is free, marked running by us."""
    waiting: list[QueueEntry] = []
    for entry in state.entries:
        if entry.status not in (PENDING, INTERRUPTED, RUNNING):
            continue
        recovered = False
        if entry.status == RUNNING:
            if _runner_alive(queue, entry):
                continue  # another live `queue run` is training it
            recovered = True
        try:
            info = inspect_project(entry.project)
        except KohyaRecipeError as exc:
            entry.status = FAILED
            entry.finished = _now()
            entry.last_outcome = FAILED
            entry.last_error = str(exc)
            entry.pid = entry.host = None
            log(f"queue: {entry.label}: failed: {exc}")
            continue
        lock = queue.gpu_lock(info.gpus)
        if not lock.try_acquire():
            waiting.append(entry)
            continue
        resume = entry.status in (RUNNING, INTERRUPTED) and has_resume_state(info)
        before = {k: getattr(entry, k) for k in ("status", "attempts", "started", "finished", "resumed")}
        if recovered:
            before["status"] = INTERRUPTED  # it was mid-run when its runner died
        pick = _Pick(entry, lock, info, resume, recovered, entry.pid, before)
        entry.status = RUNNING
        entry.attempts += 1
        entry.started = _now()
        entry.finished = None
        entry.pid = os.getpid()
        entry.host = socket.gethostname()
        entry.gpus = info.gpus
        entry.resumed = resume
        entry.name = info.output_name
        return pick, waiting
    return None, waiting


def _wait_for_orphans(pick: _Pick, log: Callable[[str], None], poll: float) -> None:
    pids = trainer_processes(pick.info.root)
    if not pids:
        return
    log(
        f"queue: {pick.entry.label}: a trainer left by the killed runner still works in {pick.info.root} "
        f"(pid {', '.join(map(str, pids))}); waiting for it to exit before continuing"
    )
    while trainer_processes(pick.info.root):
        time.sleep(poll)


def _record_fields(record: Any) -> tuple[str, int | None, str | None]:
    outcome = getattr(record, "outcome", None) or "success"
    exit_code = getattr(record, "exit_code", None)
    path = getattr(record, "path", None)
    return str(outcome), exit_code if isinstance(exit_code, int) else None, str(path) if path else None


def _finish(queue: Queue, pick: _Pick, **changes: Any) -> QueueEntry:
    """Write the outcome, then free the GPU set (this order: a free lock on a `running` entry means stale)."""
    try:
        with queue.edit() as state:
            entry = state.get(pick.entry.id)
            if entry is None:  # removed by hand while it ran; keep what we know for the caller
                entry = pick.entry
            entry.finished = _now()
            entry.pid = None
            entry.host = None
            for key, value in changes.items():
                setattr(entry, key, value)
            return entry
    finally:
        pick.lock.release()


def run_queue(
    queue_file: str | os.PathLike[str] | None = None,
    *,
    train: TrainFn | None = None,
    sd_scripts: str | os.PathLike[str] | None = None,
    python: str | None = None,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
    orphan_poll: float = 2.0,
) -> QueueRunResult:
    """Train the queue's runnable entries one after another until none is left.

    Runnable: ``pending``; ``interrupted`` (stopped with Ctrl-C); ``running`` left by a dead runner. The last
    two continue with ``resume=True`` when the project has a ``-state`` folder, else start over. Entries added
    while this runs are picked up. A failed run is recorded and the queue goes on. Ctrl-C marks the current
    entry ``interrupted`` and raises :class:`TrainingInterrupted` (exit 130); the next ``run_queue`` resumes
    it.

    ``train`` defaults to :func:`kohya_recipe.train.run.train_project`; it is called as
    ``train(project_dir, resume=..., quiet=..., [sd_scripts=..., python=...])`` and returns a run record with
    ``outcome`` (success/failed/interrupted), ``exit_code`` and ``path``, or raises.
    """
    say = log or (lambda _msg: None)
    queue = Queue(queue_file)
    options: dict[str, Any] = {}
    if sd_scripts is not None:
        options["sd_scripts"] = sd_scripts
    if python is not None:
        options["python"] = python
    result = QueueRunResult()
    while True:
        with queue.edit() as state:
            pick, waiting = _pick_next(queue, state, say)
        if pick is None:
            result.waiting = waiting
            return result
        entry = pick.entry
        try:
            if train is None:
                # Imported only when there is something to train, so list-like uses need no trainer module.
                train = default_train()
            if pick.recovered:
                how = "resuming from its newest state folder" if pick.resume else "restarting (no state folder)"
                say(f"queue: {entry.label}: left running by a runner that is gone (pid {pick.previous_pid}); {how}")
                _wait_for_orphans(pick, say, orphan_poll)
            elif pick.resume:
                say(f"queue: {entry.label}: resuming the interrupted run from its newest state folder")
            else:
                say(f"queue: {entry.label}: starting on {describe_gpus(pick.info.gpus)} (attempt {entry.attempts})")
            record = train(Path(entry.project), resume=pick.resume, quiet=quiet, **options)
        except (TrainingInterrupted, KeyboardInterrupt) as exc:
            rec = getattr(exc, "record", None)
            _, code, run_path = _record_fields(rec)
            done = _finish(
                queue,
                pick,
                status=INTERRUPTED,
                last_outcome=INTERRUPTED,
                last_exit_code=code,
                last_run=run_path or entry.last_run,
                last_error=None,
            )
            result.ran.append(done)
            raise TrainingInterrupted(
                f"queue stopped; entry {done.label} is interrupted and continues on the next `kohya-recipe queue run`"
            ) from None
        except KohyaRecipeError as exc:
            if isinstance(exc, _setup_errors()):
                # sd-scripts, the Python or accelerate is missing: nothing was launched, and every other entry
                # would fail the same way. Stop instead of burning through the queue; the entry keeps its place.
                kept = _finish(queue, pick, **pick.before)
                raise QueueError(
                    f"{exc} (nothing was launched; the queue stopped and {kept.label} is still {kept.status})"
                ) from None
            rec = getattr(exc, "record", None)
            _, code, run_path = _record_fields(rec)
            done = _finish(
                queue,
                pick,
                status=FAILED,
                last_outcome=FAILED,
                last_exit_code=code,
                last_run=run_path,
                last_error=str(exc),
            )
            say(f"queue: {done.label}: failed: {exc}")
            result.ran.append(done)
            continue
        except BaseException as exc:
            # Not a user-facing error (a bug, or SystemExit): record it so the entry is not left `running`,
            # and let it propagate with its traceback.
            _finish(queue, pick, status=FAILED, last_outcome=FAILED, last_error=f"{type(exc).__name__}: {exc}")
            raise
        outcome, code, run_path = _record_fields(record)
        if outcome == "interrupted":
            done = _finish(
                queue,
                pick,
                status=INTERRUPTED,
                last_outcome=INTERRUPTED,
                last_exit_code=code,
                last_run=run_path,
                last_error=None,
            )
            result.ran.append(done)
            raise TrainingInterrupted(
                f"queue stopped; entry {done.label} is interrupted and continues on the next `kohya-recipe queue run`"
            )
        status = DONE if outcome == "success" else FAILED
        done = _finish(
            queue,
            pick,
            status=status,
            last_outcome=outcome,
            last_exit_code=code,
            last_run=run_path,
            last_error=None if status == DONE else getattr(record, "error", None) or f"trainer outcome: {outcome}",
        )
        say(f"queue: {done.label}: {'done' if status == DONE else 'failed'}" + (f" ({run_path})" if run_path else ""))
        result.ran.append(done)
