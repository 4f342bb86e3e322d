"""The queue file: entries, their states and ids, and reading and writing the file under its edit lock.

The queue is a TOML file (default ``$XDG_DATA_HOME/kohya-recipe/queue.toml``, overridable with
``--queue-file`` or ``KOHYA_RECIPE_QUEUE``). Every change is read-modify-write under a lock file, and every
write is a temp file in the same folder, fsynced, then ``os.replace``-d over the old one, so a kill or a power
cut leaves either the old or the new queue, never half of one. A queue file that does not parse is reported
and left untouched.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, field_serializer, model_serializer

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.files import atomic_write_text, loads_toml, read_text
from kohya_recipe.train.locks import FileLock, GpuLock

SCHEMA_VERSION = 1
# A queue holding Ray entries is written as version 2, so an older kohya-recipe refuses it instead of training a
# live Ray job's project a second time on its own machine; without Ray entries the file stays version 1.
RAY_SCHEMA_VERSION = 2
QUEUE_ENV = "KOHYA_RECIPE_QUEUE"

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"
STATUSES: tuple[str, ...] = (PENDING, RUNNING, DONE, FAILED, INTERRUPTED)
# Entries that still hold work: adding the same project again while one of these exists would train it twice.
ACTIVE_STATUSES: frozenset[str] = frozenset({PENDING, RUNNING, INTERRUPTED})

_LEFT_AS_IS = "the file was not changed, fix it by hand or move it away"

#: Entry ids and ``next_id`` stay below this: far more runs than anyone queues, and far inside TOML's 64-bit
#: integers, so a hand-edited ``next_id`` near 2**63 cannot make the next write produce a file no TOML reader
#: (tomllib included, in other tools) accepts.
MAX_ID = 10**9
# The other integers an entry holds, with what bounds them: a pid is a 32-bit pid_t (Linux caps it at 2**22);
# an exit code is a process status or a negative signal number (subprocess), both 32-bit.
_INT_BOUNDS: dict[str, tuple[int, int, str]] = {
    "id": (1, MAX_ID - 1, "ids are handed out from 1"),
    "attempts": (0, MAX_ID, "a count of training attempts"),
    "pid": (1, 2**31 - 1, "a process id is a 32-bit number"),
    "last_exit_code": (-(2**31), 2**31 - 1, "an exit status is a 32-bit number"),
}


class QueueError(KohyaRecipeError):
    """The queue file is unreadable or an entry cannot be added, removed or run."""


# ------------------------------------------------------------------------------------------------------------
# Entries and the file


class QueueEntry(BaseModel):
    """One queued training run.

    Its serialised form is the same in the queue file and in ``--json``: unset optional fields are left out (TOML
    has no null), and ``model_dump(mode="json")`` writes the times as ISO 8601 with their UTC offset.
    """

    model_config = ConfigDict(extra="forbid")

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
    # Ray (`queue run --ray`): the latest submission id, the dashboard it went to, Ray's status at the last look
    # (plus SUBMITTING/UNSENT/LOST, see train/raystate.py) and the node it ran on. pid/host name the client.
    ray_job: str | None = None
    ray_address: str | None = None
    ray_status: str | None = None
    ray_node: str | None = None

    @property
    def on_ray(self) -> bool:
        """A Ray job holds this entry: the local runner must leave it alone (train/raystate.py settles it)."""
        return self.status == RUNNING and self.ray_job is not None

    @property
    def label(self) -> str:
        return f"#{self.id} {self.name or Path(self.project).name}"

    @field_serializer("added", "started", "finished", when_used="json-unless-none")
    def _iso_time(self, value: datetime) -> str:
        return value.isoformat()  # "+00:00", where pydantic alone would write "Z"

    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


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
    "ray_job": ((str,), "a string"),
    "ray_address": ((str,), "a string"),
    "ray_status": ((str,), "a string"),
    "ray_node": ((str,), "a string"),
}


@dataclass
class QueueState:
    """The whole queue file: entries in queue order and the next id to hand out (ids are never reused)."""

    entries: list[QueueEntry] = field(default_factory=list)
    next_id: int = 1

    def get(self, entry_id: int) -> QueueEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)


def queue_file_data(state: QueueState) -> dict[str, Any]:
    """What the queue file holds (written with tomli-w): the schema version, the next id, the entries."""
    ray = any(e.ray_job is not None for e in state.entries)
    return {
        "schema_version": RAY_SCHEMA_VERSION if ray else SCHEMA_VERSION,
        "next_id": state.next_id,
        "entries": [e.model_dump() for e in state.entries],
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
    for key, (low, high, why) in _INT_BOUNDS.items():
        value = raw.get(key)
        if value is not None and not low <= value <= high:
            raise QueueError(f"{value} is out of range {low}..{high} ({why})", source=source, field=f"{where}.{key}")
    return QueueEntry(**raw)


def parse_queue(text: str, source: str) -> QueueState:
    """Parse and check a queue file's text; raise :class:`QueueError` naming the file, entry and key."""
    data = loads_toml(text, source=source, error=QueueError)
    unknown = sorted(set(data) - {"schema_version", "next_id", "entries"})
    if unknown:
        raise QueueError(f"unknown key '{unknown[0]}'", source=source)
    version = data.get("schema_version", SCHEMA_VERSION)
    if version not in (SCHEMA_VERSION, RAY_SCHEMA_VERSION):
        raise QueueError(
            f"schema_version {version!r} is not supported (this kohya-recipe reads {SCHEMA_VERSION} and "
            f"{RAY_SCHEMA_VERSION})",
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
    if not 1 <= next_id <= MAX_ID:
        raise QueueError(
            f"{next_id} is out of range 1..{MAX_ID} (the next id to hand out)", source=source, field="next_id"
        )
    # A hand-edited next_id below an existing id would hand out that id twice.
    next_id = max([next_id, *(e.id + 1 for e in entries)])
    return QueueState(entries=entries, next_id=next_id)


# ------------------------------------------------------------------------------------------------------------
# The queue object


class Queue:
    """A queue file plus its lock files (``<queue>.lock`` for edits, ``<queue>.gpu*.lock`` for training)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_queue_file()
        self.path = self.path.absolute()
        self._edit_lock = FileLock(Path(f"{self.path}.lock"))

    def read(self) -> QueueState:
        """The queue as it is on disk (no lock needed: writes replace the file atomically)."""
        if not self.path.exists():
            return QueueState()
        try:
            return parse_queue(read_text(self.path, error=QueueError), str(self.path))
        except QueueError as exc:
            # Nothing is written over a file that does not read: the user's hand edit is theirs to fix.
            raise QueueError(f"{exc.message}; {_LEFT_AS_IS}", source=exc.source, field=exc.field) from None

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
            before = queue_file_data(state)
            yield state
            after = queue_file_data(state)
            if after != before or not self.path.exists():
                import tomli_w

                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(self.path, tomli_w.dumps(after))
                except OSError as exc:
                    raise QueueError(f"cannot write: {exc.strerror}", source=str(self.path)) from None
        finally:
            self._edit_lock.release()

    def gpu_lock(self, gpus: list[str]) -> GpuLock:
        return GpuLock(self.path, gpus)


def now() -> datetime:
    return datetime.now().astimezone().replace(microsecond=0)
