"""``queue run --ray``: every runnable queue entry becomes one Ray job, trained on a node with free GPUs.

Each job's entrypoint is ``kohya-recipe train PROJECT --quiet --ray-job [--resume]`` (:mod:`.rayjob`), asking for
the recipe's ``accelerate.num_processes`` GPUs, so Ray runs as many at once as there are GPUs and sets each
one's ``CUDA_VISIBLE_DEVICES``. Projects live on a filesystem every node (and this client) sees at the same path;
no ``working_dir`` is shipped. Ray is imported only here, inside :func:`connect` (``pip install
'kohya-recipe[ray]'``); ``queue list`` reads job states through the REST API without it (:mod:`.raystate`).

- **Nothing is lost when the client dies.** The submission id (ours, never reused) is written to the queue file
  *before* the job is submitted, so a second ``queue run --ray`` asks Ray about every recorded id, follows what
  runs, submits what is left, and submits again under the same id what was recorded but never confirmed (Ray
  refuses a duplicate id, so that is idempotent).
- **Ctrl-C** stops the jobs this client owns (submitted, or adopted from a dead client on this host) with
  Ray's stop, which sends SIGINT and waits :data:`~.raystate.STOP_WAIT_SECONDS` (set per job), exactly as a
  Ctrl-C at a terminal reaches ``train``: checkpoints are kept and the entries are ``interrupted``; the next run
  resumes them from their ``-state`` folder. A second Ctrl-C leaves them stopping. SIGTERM and SIGHUP (a closed
  terminal) only detach: the jobs go on.
- **A job waiting for GPUs fails after the head's ``RAY_JOB_START_TIMEOUT_SECONDS``** (900 s by default, one
  value for the whole cluster). While following, the queue submits as many runs as the cluster has GPUs for, and
  at most ``max_waiting`` beyond that; the next is submitted when one starts, so no job waits long. ``--detach``
  submits everything at once; a job that times out that way never ran and goes back to ``pending`` (submitted
  again by the next run).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.train.queuefile import (
    DONE,
    FAILED,
    INTERRUPTED,
    PENDING,
    RUNNING,
    Queue,
    QueueEntry,
    QueueError,
    now,
)
from kohya_recipe.train.rayfollow import FollowDisplay, follow_display
from kohya_recipe.train.raystate import (
    STOP_ENV,
    STOP_WAIT_SECONDS,
    SUBMITTING,
    UNSENT,
    ClusterAuthRequired,
    ClusterUnreachable,
    JobView,
    apply_views,
    fetch_job,
    job_id_for,
    node_gpus,
    owner_gone,
)

INSTALL_HINT = "pip install 'kohya-recipe[ray]'"
_API_ENV = "RAY_API_SERVER_ADDRESS"
_RUNNABLE = (PENDING, INTERRUPTED)
_NO_ROOM = object()  # _claim: the run would only wait in Ray's queue; submit it later


# ------------------------------------------------------------------------------------------------------------
# Ray's client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _explicit_address(address: str | None) -> Iterator[None]:
    """Ray's client lets ``RAY_API_SERVER_ADDRESS`` and ``RAY_ADDRESS`` override the address it is given; an
    explicit ``--ray ADDRESS`` must win, so it is put where Ray looks first while the client is made."""
    saved = os.environ.get(_API_ENV)
    if address:
        os.environ[_API_ENV] = address
    try:
        yield
    finally:
        if address:
            if saved is None:
                os.environ.pop(_API_ENV, None)
            else:
                os.environ[_API_ENV] = saved


class RayJobs:
    """The four calls the queue makes through Ray's ``JobSubmissionClient``; errors become :class:`QueueError`."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.address = str(client.get_address()).rstrip("/")

    def view(self, job_id: str) -> JobView | None:
        try:
            details = self.client.get_job_info(job_id)
        except RuntimeError as exc:
            if "404" in str(exc) or "does not exist" in str(exc):
                return None
            raise ClusterUnreachable(f"Ray: {_first_line(exc)}") from None
        except OSError as exc:  # requests' ConnectionError and timeouts
            raise ClusterUnreachable(f"cannot reach the Ray cluster at {self.address}: {_first_line(exc)}") from None
        dump = getattr(details, "model_dump", None)
        return JobView.from_json(dump(mode="json") if callable(dump) else details.dict())

    def submit(self, job_id: str, entrypoint: str, **kwargs: Any) -> None:
        try:
            self.client.submit_job(entrypoint=entrypoint, submission_id=job_id, **kwargs)
        except (RuntimeError, ValueError, TypeError, OSError) as exc:
            if "already exists" in str(exc):
                return  # an earlier submit under this id reached Ray after all
            raise QueueError(f"Ray refused job {job_id}: {_first_line(exc)}") from None

    def stop(self, job_id: str) -> None:
        with contextlib.suppress(RuntimeError, OSError):  # already finished or gone: nothing to stop
            self.client.stop_job(job_id)


def connect(address: str | None) -> RayJobs:
    """Ray's job client for ``address`` (else ``RAY_API_SERVER_ADDRESS``, else ``RAY_ADDRESS``)."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as exc:
        raise QueueError(f"--ray needs Ray, which is not installed ({exc}): {INSTALL_HINT}") from None
    target = address or os.environ.get(_API_ENV) or os.environ.get("RAY_ADDRESS")
    if not target:
        raise QueueError("no Ray cluster given: pass --ray http://HEAD:8265 or set RAY_ADDRESS")
    try:
        with _explicit_address(address):
            return RayJobs(JobSubmissionClient(target))
    except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
        raise QueueError(f"cannot reach the Ray cluster at {target}: {_first_line(exc)}") from None


# ------------------------------------------------------------------------------------------------------------
# options and result


@dataclass
class RayOptions:
    """How ``queue run --ray`` submits: where, what each job gets, how it follows."""

    address: str | None = None  # --ray ADDRESS; None: RAY_API_SERVER_ADDRESS, then RAY_ADDRESS
    detach: bool = False
    env: dict[str, str] = field(default_factory=dict)  # --ray-env: runtime_env env_vars of every job
    resources: dict[str, float] = field(default_factory=dict)  # --ray-resource: entrypoint_resources
    sd_scripts: str | None = None  # node paths, passed on to `train`
    python: str | None = None
    quiet: bool = False
    poll: float = 1.0
    max_waiting: int = 1  # jobs of this queue waiting in Ray's queue beyond the cluster's GPUs, while following
    give_up_after: float = 120.0  # seconds without an answer from the cluster before following stops


@dataclass
class RayRunResult:
    """What one ``queue run --ray`` saw: the entries it followed (final state), and how it ended."""

    address: str
    entries: list[QueueEntry] = field(default_factory=list)
    detached: bool = False
    interrupted: bool = False
    wall_seconds: float = 0.0

    __json_properties__: ClassVar[tuple[str, ...]] = ("done", "failed")

    @property
    def done(self) -> list[int]:
        return [e.id for e in self.entries if e.status == DONE]

    @property
    def failed(self) -> list[int]:
        return [e.id for e in self.entries if e.status == FAILED]


def format_ray_summary(result: RayRunResult) -> str:
    """The last lines of ``queue run --ray`` (stderr): what ran where, and why each failure failed."""
    if result.detached:
        live = [e for e in result.entries if e.on_ray]
        jobs = ", ".join(f"{e.label} ({e.ray_job})" for e in live) or "none"
        return (
            f"Detached from Ray at {result.address}; running or waiting: {jobs}. `queue list` shows their states, "
            "`queue run --ray` follows them again."
        )
    if not result.entries:
        return f"Nothing to run on Ray ({result.address})."
    lines = [
        f"Queue on Ray ({result.address}) finished in {result.wall_seconds:.0f} s: {len(result.done)} done, "
        f"{len(result.failed)} failed."
    ]
    lines += [f"{e.label} failed: {e.last_error}" for e in result.entries if e.status == FAILED]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# submitting


@dataclass(frozen=True)
class _Claim:
    entry_id: int
    label: str
    job_id: str
    entrypoint: str
    gpus: int


def entrypoint(project: str, *, resume: bool, sd_scripts: str | None, python: str | None) -> str:
    """``exec kohya-recipe train PROJECT --quiet --ray-job ...``: ``exec`` so Ray's stop signal and the exit code
    are the run's own, not a shell's."""
    argv = ["kohya-recipe", "train", project, "--quiet", "--ray-job"]
    if resume:
        argv.append("--resume")
    if sd_scripts:
        argv += ["--sd-scripts", sd_scripts]
    if python:
        argv += ["--python", python]
    return "exec " + shlex.join(argv)


def _node_path(path: str | None) -> str | None:
    """A path the nodes can use: absolute (jobs run in the cwd of `ray start`); a bare command stays as it is."""
    if not path:
        return None
    expanded = Path(path).expanduser()
    return str(expanded.absolute()) if os.sep in str(expanded) or expanded.exists() else str(expanded)


def _project_needs(entry: QueueEntry) -> tuple[str, int, bool]:
    """The run name, its GPU count and whether an interrupted entry can ``--resume`` (read on the shared
    filesystem from here, as the local queue does); raises the project loader's error."""
    from kohya_recipe.render.project import load_project
    from kohya_recipe.train.run import find_resume_state

    project = load_project(Path(entry.project))
    resume = False
    if entry.status == INTERRUPTED:
        with contextlib.suppress(KohyaRecipeError):
            resume = find_resume_state(project) is not None
    return project.output_name, project.recipe.accelerate.num_processes, resume


class _Signals:
    """Ctrl-C means "stop the jobs I own" (a second one: leave them stopping); SIGTERM and SIGHUP (a closed
    terminal) mean "detach"."""

    def __init__(self) -> None:
        self.stops = 0
        self.detach = False
        self.wake = threading.Event()

    def on_interrupt(self, *_: Any) -> None:
        self.stops += 1
        self.wake.set()
        if self.stops > 1:
            raise KeyboardInterrupt  # the stops are requested already; leave them stopping

    def on_detach(self, *_: Any) -> None:
        self.detach = True
        self.wake.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        handlers = {signal.SIGINT: self.on_interrupt, signal.SIGTERM: self.on_detach}
        if hasattr(signal, "SIGHUP"):
            handlers[signal.SIGHUP] = self.on_detach
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


class _RaySession:
    """One ``queue run --ray``: reattach, submit, follow, stop on Ctrl-C."""

    def __init__(
        self, queue: Queue, jobs: RayJobs, options: RayOptions, log: Callable[[str], None], signals: _Signals
    ) -> None:
        self.queue, self.jobs, self.options, self.log, self.signals = queue, jobs, options, log, signals
        self.pid, self.host = os.getpid(), socket.gethostname()
        self.watched: set[int] = set()
        self.gpus_of: dict[int, int] = {}  # GPUs each entry submitted here asked for
        self.t0 = time.monotonic()
        self.display: FollowDisplay | None = None
        self.gpus_per_node = node_gpus(jobs.address)
        self.unreachable_since: float | None = None
        self._warned: set[int] = set()

    # -- helpers -------------------------------------------------------------------------------------------

    def say(self, message: str) -> None:
        if self.display is not None:
            self.display.note(message)
        else:
            self.log(message)

    def ours(self, entry: QueueEntry) -> bool:
        return entry.on_ray and entry.ray_address == self.jobs.address

    def mine(self, entry: QueueEntry) -> bool:
        return self.ours(entry) and entry.pid == self.pid and entry.host == self.host

    def result(self, **how: bool) -> RayRunResult:
        entries = [e for e in self.queue.read().entries if e.id in self.watched]
        return RayRunResult(self.jobs.address, entries, wall_seconds=round(time.monotonic() - self.t0, 1), **how)

    # -- claim and submit ----------------------------------------------------------------------------------

    def _claim(self, entry_id: int, room: Callable[[int], bool]) -> _Claim | object | None:
        """Under the edit lock: mark a runnable entry running on Ray, its submission id recorded first. Returns
        ``None`` when it is not runnable (any more), :data:`_NO_ROOM` when ``room(gpus)`` says not now."""
        with self.queue.edit() as state:
            entry = state.get(entry_id)
            if entry is None or entry.status not in _RUNNABLE:
                return None  # another runner took it, or it was removed
            try:
                name, gpus, resume = _project_needs(entry)
            except KohyaRecipeError as exc:
                entry.status, entry.finished, entry.last_outcome, entry.last_error = FAILED, now(), FAILED, str(exc)
                self.say(f"{entry.label}: failed: {exc}")
                return None
            if not room(gpus):
                return _NO_ROOM
            job_id = entry.ray_job if entry.ray_status == UNSENT and entry.ray_job else job_id_for(entry)
            entry.status, entry.attempts, entry.started, entry.finished = RUNNING, entry.attempts + 1, now(), None
            entry.pid, entry.host, entry.gpus, entry.resumed, entry.name = self.pid, self.host, None, resume, name
            entry.ray_job, entry.ray_address, entry.ray_status, entry.ray_node = (
                job_id,
                self.jobs.address,
                SUBMITTING,
                None,
            )
            entry.last_error = None
            command = entrypoint(
                entry.project,
                resume=resume,
                sd_scripts=_node_path(self.options.sd_scripts),
                python=_node_path(self.options.python),
            )
            return _Claim(entry.id, entry.label, job_id, command, gpus)

    def _send(self, claim: _Claim) -> None:
        try:
            self.jobs.submit(
                claim.job_id,
                claim.entrypoint,
                entrypoint_num_gpus=claim.gpus,
                entrypoint_num_cpus=0,  # GPUs alone decide how many run at once
                entrypoint_resources=self.options.resources or None,
                runtime_env={"env_vars": {**STOP_ENV, **self.options.env}},
                metadata={"kohya_recipe_queue": str(self.queue.path), "entry": str(claim.entry_id)},
            )
        except QueueError as exc:
            with self.queue.edit() as state:  # never reached Ray: the entry is as it was, with the reason
                entry = state.get(claim.entry_id)
                if entry is not None and entry.ray_job == claim.job_id:
                    entry.status, entry.attempts, entry.pid, entry.host = (
                        PENDING,
                        max(entry.attempts - 1, 0),
                        None,
                        None,
                    )
                    entry.ray_job = entry.ray_address = entry.ray_status = None
                    entry.last_error = str(exc)
            raise
        with self.queue.edit() as state:
            entry = state.get(claim.entry_id)
            if entry is not None and entry.ray_job == claim.job_id and entry.ray_status == SUBMITTING:
                entry.ray_status = "PENDING"
        gpus = f"{claim.gpus} GPU" + ("s" if claim.gpus > 1 else "")
        self.say(f"{claim.label}: submitted as Ray job {claim.job_id} ({gpus})")
        self._warn_infeasible(claim)

    def _warn_infeasible(self, claim: _Claim) -> None:
        most = max(self.gpus_per_node or [0.0])
        if self.gpus_per_node is not None and claim.gpus > most and claim.entry_id not in self._warned:
            self._warned.add(claim.entry_id)
            self.say(
                f"{claim.label} needs {claim.gpus} GPU(s) on one node and no node of the cluster has that many "
                f"now (most: {most:g}); it waits until one joins"
            )

    def submit_runnable(self) -> None:
        """Claim and submit runnable entries in queue order while there is room (see :meth:`_room`)."""
        live = [e for e in self.queue.read().entries if self.ours(e)]
        waiting = sum(1 for e in live if e.ray_status != "RUNNING")
        held = sum(self.gpus_of.get(e.id, 1) for e in live)
        for entry in self.queue.read().entries:
            if entry.status not in _RUNNABLE:
                continue
            if self.signals.stops or self.signals.detach:
                return
            claim = self._claim(entry.id, functools.partial(self._room, waiting, held))
            if claim is _NO_ROOM:
                return
            if not isinstance(claim, _Claim):
                continue
            self.watched.add(entry.id)
            self.gpus_of[entry.id] = claim.gpus
            self._send(claim)
            waiting, held = waiting + 1, held + claim.gpus

    def _room(self, waiting: int, held: int, gpus: int) -> bool:
        """Whether to submit a run of ``gpus`` GPUs now. ``--detach``: always. Following: while the cluster's
        GPUs are not all spoken for by this queue's live jobs (then they start at once), plus ``max_waiting``
        jobs beyond that, so that no job waits in Ray's queue long enough to hit the start timeout (a job that
        does is submitted again anyway)."""
        if self.options.detach or waiting < self.options.max_waiting:
            return True
        total = sum(self.gpus_per_node) if self.gpus_per_node is not None else None
        return total is not None and held + gpus <= total

    # -- following -----------------------------------------------------------------------------------------

    def refresh(self) -> list[QueueEntry]:
        """Ask Ray about every followed job (outside the lock), then settle them and adopt orphans under it."""
        state = self.queue.read()
        views: dict[tuple[int, str], JobView | None] = {}
        try:
            for entry in state.entries:
                if entry.id in self.watched and self.ours(entry) and entry.ray_job:
                    views[(entry.id, entry.ray_job)] = self.jobs.view(entry.ray_job)
            self.unreachable_since = None
        except ClusterUnreachable as exc:
            self._unreachable(exc)
        with self.queue.edit() as state:
            apply_views(state.entries, views)
            for entry in state.entries:
                if entry.id in self.watched and self.ours(entry) and owner_gone(entry):
                    entry.pid, entry.host = self.pid, self.host
                    self.say(f"reattached {entry.label}: Ray job {entry.ray_job} ({entry.ray_status})")
            return [e for e in state.entries if e.id in self.watched]

    def _unreachable(self, exc: ClusterUnreachable) -> None:
        if self.unreachable_since is None:
            self.unreachable_since = time.monotonic()
            self.say(f"{exc}; retrying")
        elif time.monotonic() - self.unreachable_since > self.options.give_up_after:
            raise QueueError(
                f"{exc} for {self.options.give_up_after:.0f} s; the queue keeps the entries as they were: "
                "`queue run --ray` again follows them when the cluster is back"
            )

    def header(self, entries: list[QueueEntry]) -> str:
        running = sum(1 for e in entries if e.on_ray and e.ray_status == "RUNNING")
        waiting = sum(1 for e in entries if (e.on_ray and e.ray_status != "RUNNING") or e.status in _RUNNABLE)
        done = sum(1 for e in entries if e.status == DONE)
        failed = sum(1 for e in entries if e.status == FAILED)
        elapsed = int(time.monotonic() - self.t0)
        return (
            f"Ray {self.jobs.address}: {running} running, {waiting} waiting, {done} done, {failed} failed  "
            f"{elapsed // 60:02d}:{elapsed % 60:02d}"
        )

    def follow(self) -> RayRunResult:
        self.display = follow_display(quiet=self.options.quiet)
        while True:
            self.submit_runnable()
            entries = self.refresh()
            self.display.show(entries, self.header(entries))
            if self.signals.detach:
                self.say("detached: the jobs go on; `queue run --ray` follows them again")
                return self.result(detached=True)
            if self.signals.stops:
                return self.stop_mine()
            if not any(e.on_ray or e.status in _RUNNABLE for e in entries):
                return self.result()
            self.signals.wake.wait(self.options.poll)
            self.signals.wake.clear()

    def stop_mine(self) -> RayRunResult:
        # The waiting ones first: a running one that stops frees its GPU, and a waiting job could start on it
        # before its own stop arrives.
        mine = sorted((e for e in self.queue.read().entries if self.mine(e)), key=lambda e: e.ray_status == "RUNNING")
        self.say(f"stopping {len(mine)} run(s) on Ray (Ctrl-C again to leave them stopping)…")
        for entry in mine:
            if entry.ray_job:
                self.jobs.stop(entry.ray_job)
        deadline = time.monotonic() + STOP_WAIT_SECONDS + 15
        while time.monotonic() < deadline:
            entries = self.refresh()
            assert self.display is not None
            self.display.show(entries, self.header(entries))
            if not any(self.mine(e) for e in entries):
                break
            time.sleep(0.5)
        return self.result(interrupted=True)


def run_on_ray(
    queue_file: str | os.PathLike[str] | None, options: RayOptions, *, log: Callable[[str], None] | None = None
) -> RayRunResult:
    """Submit the queue's runnable entries as Ray jobs and follow them (module docstring); with
    ``options.detach`` only submit. Reattaches to entries a previous client left running on the same cluster."""
    say = log or (lambda _msg: None)
    signals = _Signals()
    with signals.installed():
        session = _RaySession(Queue(queue_file), connect(options.address), options, say, signals)
        try:
            return _run(session)
        except KeyboardInterrupt:  # a second Ctrl-C: the stops are requested, the jobs are left stopping
            return session.result(interrupted=True)
        finally:
            if session.display is not None:
                session.display.close()


def _run(session: _RaySession) -> RayRunResult:
    state = session.queue.read()
    elsewhere = sorted({e.ray_address or "?" for e in state.entries if e.on_ray and not session.ours(e)})
    if elsewhere:
        session.say(f"queue: entries running on another Ray cluster ({', '.join(elsewhere)}) are not followed here")
    session.watched = {e.id for e in state.entries if session.ours(e) or e.status in _RUNNABLE}
    session.refresh()
    if not session.options.detach:
        return session.follow()
    session.submit_runnable()
    _note_waiting(session)
    return session.result(detached=True, interrupted=session.signals.stops > 0)


def _note_waiting(session: _RaySession) -> None:
    """After ``--detach``: say when more runs wait than the cluster has GPUs (Ray's start timeout applies)."""
    waiting = [e for e in session.queue.read().entries if session.ours(e) and e.ray_status != "RUNNING"]
    total = sum(session.gpus_per_node or [])
    if session.gpus_per_node is not None and len(waiting) > total:
        session.log(
            f"queue: {len(waiting)} run(s) wait for {total:g} GPU(s): Ray fails a job that waits longer than the "
            "head's RAY_JOB_START_TIMEOUT_SECONDS (900 s unless set); such a run never started, goes back to "
            "pending at the next `queue list`, and the next `queue run --ray` submits it again"
        )


# ------------------------------------------------------------------------------------------------------------
# `queue list`: refresh without Ray


def refresh_queue(queue_file: str | os.PathLike[str] | None) -> list[str]:
    """Settle the queue's live Ray entries from their clusters through the REST API (no Ray import); returns
    notes for the entries it could not read (their states stay as last seen)."""
    queue = Queue(queue_file)
    views: dict[tuple[int, str], JobView | None] = {}
    notes: list[str] = []
    failed_addresses: set[str] = set()
    for entry in queue.read().entries:
        address = entry.ray_address
        if not entry.on_ray or not address or not entry.ray_job or address in failed_addresses:
            continue
        try:
            views[(entry.id, entry.ray_job)] = fetch_job(address, entry.ray_job)
        except ClusterAuthRequired as exc:
            failed_addresses.add(address)
            notes.append(f"{exc}: states as last seen; `queue run --ray {address}` reads them with Ray's client")
        except ClusterUnreachable as exc:
            failed_addresses.add(address)
            notes.append(f"{exc}: states as last seen")
    if views:
        with queue.edit() as state:
            apply_views(state.entries, views)
    return notes
