"""``queue run``: train the queue's runnable entries one after another, surviving kills and reboots.

``run_queue`` trains the runnable entries in order (pending, interrupted, and ``running`` entries whose runner
died), records each outcome and goes on after a failure. A runner holds a lock per GPU set (the project's
``[accelerate] gpu_ids``) while it trains, so two ``queue run`` processes never train on the same GPUs, and an
entry marked ``running`` whose GPU lock is free was left by a dead process: it is resumed from its newest
``<name>-…-state`` folder when one exists (sd-scripts ``--resume``), else restarted.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kohya_recipe.errors import KohyaRecipeError, TrainingInterrupted
from kohya_recipe.text import fit_lines
from kohya_recipe.train.launch import TrainerNotFound
from kohya_recipe.train.liveness import runner_alive, trainer_processes
from kohya_recipe.train.locks import GpuLock, describe_gpus
from kohya_recipe.train.queue_edit import ProjectInfo, has_resume_state, inspect_project
from kohya_recipe.train.queuefile import (
    DONE,
    FAILED,
    INTERRUPTED,
    MAX_ID,
    PENDING,
    RUNNING,
    Queue,
    QueueEntry,
    QueueError,
    QueueState,
    now,
)
from kohya_recipe.train.run import train_project

# ------------------------------------------------------------------------------------------------------------
# run


TrainFn = Callable[..., Any]


def default_train() -> TrainFn:
    """The training verb ``queue run`` calls: :func:`kohya_recipe.train.run.train_project`."""
    return train_project


@dataclass
class QueueRunResult:
    """What one ``run_queue`` call did: the entries it finished, in order (their final state), and the runnable
    entries left for another runner because their GPU set is busy. ``failed`` and ``waiting_for_gpus`` are ids."""

    ran: list[QueueEntry] = field(default_factory=list)
    waiting: list[QueueEntry] = field(default_factory=list, metadata={"json": False})

    __json_properties__: ClassVar[tuple[str, ...]] = ("failed", "waiting_for_gpus")

    @property
    def failed(self) -> list[int]:
        return [e.id for e in self.ran if e.status == FAILED]

    @property
    def succeeded(self) -> list[int]:
        return [e.id for e in self.ran if e.status == DONE]

    @property
    def waiting_for_gpus(self) -> list[int]:
        return [e.id for e in self.waiting]


def format_run_summary(result: QueueRunResult) -> str:
    """The last lines of ``queue run`` (the CLI prints them on stderr, next to the runner's log)."""
    done = f"Queue finished: {len(result.succeeded)} done, {len(result.failed)} failed."
    lines = [done if result.ran else "Nothing to run."]
    if result.waiting:
        ids = ", ".join(f"#{i}" for i in result.waiting_for_gpus)
        lines.append(f"Left for another `queue run` that holds their GPUs: {ids}")
    return "\n".join(fit_lines(lines))


@dataclass
class _Pick:
    entry: QueueEntry
    lock: GpuLock
    info: ProjectInfo
    resume: bool
    recovered: bool  # left `running` by a dead runner
    previous_pid: int | None
    before: dict[str, Any]  # the entry's fields before it was marked running (restored on a setup error)


def _pick_next(
    queue: Queue, state: QueueState, log: Callable[[str], None], failed: list[QueueEntry]
) -> tuple[_Pick | None, list[QueueEntry]]:
    """Under the edit lock: the first runnable entry whose GPU set is free, marked running by us. Entries whose
    project cannot be loaded (folder gone, not a project, a recipe that no longer loads) are marked failed on
    the way and appended to ``failed``."""
    waiting: list[QueueEntry] = []
    for entry in state.entries:
        if entry.status not in (PENDING, INTERRUPTED, RUNNING) or entry.on_ray:
            continue  # done/failed, or a Ray job trains it (`queue list` refreshes it from the cluster)
        recovered = False
        if entry.status == RUNNING:
            if runner_alive(queue, entry):
                continue  # another live `queue run` is training it
            recovered = True
        try:
            info = inspect_project(entry.project)
        except KohyaRecipeError as exc:
            entry.status = FAILED
            entry.finished = now()
            entry.last_outcome = FAILED
            entry.last_error = str(exc)
            entry.pid = entry.host = None
            log(f"queue: {entry.label}: failed: {exc}")
            failed.append(entry)
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
        entry.attempts = min(entry.attempts + 1, MAX_ID)  # stays readable (queuefile bounds every integer)
        entry.started = now()
        entry.finished = None
        entry.pid = os.getpid()
        entry.host = socket.gethostname()
        entry.gpus = info.gpus
        entry.resumed = resume
        entry.name = info.output_name
        entry.ray_job = entry.ray_address = entry.ray_status = entry.ray_node = None  # trained here now
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
            entry.finished = now()
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
            pick, waiting = _pick_next(queue, state, say, result.ran)
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
            if isinstance(exc, TrainerNotFound):
                # sd-scripts, the Python or accelerate is missing: nothing was launched, and every other entry
                # would fail the same way. Stop instead of burning through the queue; the entry keeps its place.
                # A setup error of this project alone (locked, nothing to resume) fails the entry like a crash.
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
