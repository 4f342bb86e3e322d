"""What Ray says about a queue entry's job, and what that makes the entry: the one mapping, and cheap reads.

Nothing here imports Ray. A job is read as a :class:`JobView`, built from the JSON of the dashboard's REST API
(``GET /api/jobs/<submission id>``, what ``queue list`` uses: about 12 ms through urllib, where importing Ray's
client costs about 1.1 s and 89 MB) or from the ``JobDetails`` of Ray's ``JobSubmissionClient`` (what ``queue run
--ray`` uses, having Ray loaded anyway): both carry the same fields.

The mapping (:func:`settle`), entry status on the left of each arrow:

=========================================================  =================================================
Ray says                                                   the entry
=========================================================  =================================================
``PENDING`` (waiting for GPUs) / ``RUNNING``               ``running`` (``ray_status`` tells which)
``SUCCEEDED``                                              ``done`` (outcome, exit and record from the run's
                                                           own ``runs/*.json``)
``STOPPED`` after ``train`` started / exit 130             ``interrupted`` (resumes with ``--resume``)
``STOPPED`` before ``train`` opened its log; ``FAILED`` by   ``pending`` again, the attempt given back (it
the start timeout (``RAY_JOB_START_TIMEOUT_SECONDS``)      never ran; submitted again under a new id)
``FAILED``, supervisor died with its node                  ``interrupted``
``FAILED``, exit 7 / 127 / other                           ``failed``: project not on the node (needs a shared
                                                           filesystem) / kohya-recipe not on the node / the
                                                           run's own error
no such job (404) after a confirmed submit                 ``interrupted`` (the head restarted and forgot it)
no such job, submit never confirmed, its client gone       ``pending`` under the same id (submitted again:
                                                           Ray refuses a duplicate id, so this is idempotent)
=========================================================  =================================================
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kohya_recipe.errors import ExitCode, KohyaRecipeError
from kohya_recipe.files import read_json
from kohya_recipe.layout import LOG_DIR, RUNS_DIR
from kohya_recipe.train.liveness import pid_alive
from kohya_recipe.train.queuefile import DONE, FAILED, INTERRUPTED, PENDING, RUNNING, QueueEntry, QueueError, now
from kohya_recipe.train.rayjob import SHARED_FS_RULE
from kohya_recipe.train.runner import INTERRUPT_GRACE, TERMINATE_GRACE

# ray_status values of our own, next to Ray's PENDING/RUNNING/SUCCEEDED/FAILED/STOPPED
SUBMITTING = "SUBMITTING"  # the id is recorded, Ray has not confirmed the submit yet
UNSENT = "UNSENT"  # its client died before Ray confirmed: submitted again under the same id
LOST = "LOST"  # the cluster no longer knows the id (its head restarted)
LIVE = frozenset({"PENDING", "RUNNING", SUBMITTING})

# What Ray does to a job on `ray job stop` / stop_job: by default SIGTERM, then SIGKILL after 3 s, to every
# process of the job, trainer included. SIGINT is what Ctrl-C at a terminal does (the path `train` handles:
# forward, wait, keep checkpoints), and the wait covers `train`'s own graces.
STOP_WAIT_SECONDS = int(INTERRUPT_GRACE + TERMINATE_GRACE + 5)
STOP_ENV = {"RAY_JOB_STOP_SIGNAL": "SIGINT", "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_SECONDS)}

_NEVER_RAN = frozenset({"JOB_SUPERVISOR_ACTOR_START_TIMEOUT"})
_NODE_DIED = frozenset({"JOB_SUPERVISOR_ACTOR_DIED"})
_EXIT_NOT_INSTALLED = 127  # /bin/sh: command not found
_RECORD_SLACK = 5.0  # seconds of clock difference tolerated between the client and the nodes' shared files


class ClusterUnreachable(QueueError):
    """The Ray dashboard did not answer (or answered something that is not its API)."""


class ClusterAuthRequired(ClusterUnreachable):
    """The Ray dashboard wants a token (Ray's token authentication); Ray's own client sends it."""


@dataclass(frozen=True)
class JobView:
    """A Ray job as far as the queue cares."""

    status: str  # PENDING | RUNNING | SUCCEEDED | FAILED | STOPPED
    error_type: str | None = None
    exit_code: int | None = None  # the entrypoint's exit code (None while running, when stopped, timed out)
    node_ip: str | None = None  # set once the job's supervisor runs on a node
    node_id: str | None = None
    message: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobView:
        """From the REST API's job JSON, or ``JobDetails.model_dump(mode="json")``."""
        agent = str(data.get("driver_agent_http_address") or "")
        host = urllib.parse.urlsplit(agent).hostname if agent else None
        code = data.get("driver_exit_code")
        return cls(
            status=str(data.get("status") or "PENDING"),
            error_type=str(data["error_type"]) if data.get("error_type") else None,
            exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            node_ip=host or None,
            node_id=str(data["driver_node_id"]) if data.get("driver_node_id") else None,
            message=str(data.get("message") or ""),
        )

    @property
    def node(self) -> str | None:
        """``127.0.0.3 (Ray node be811addc23a)``: the node's IP and the start of its Ray node id."""
        if self.node_ip is None:
            return None
        return f"{self.node_ip} (Ray node {(self.node_id or '?')[:12]})"

    @property
    def last_line(self) -> str:
        """The last line of Ray's message (for a failed job: the tail of its output), ``Error: `` dropped."""
        lines = [line.strip() for line in self.message.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        return last.removeprefix("Error: ")[:300]


# ------------------------------------------------------------------------------------------------------------
# reading a job cheaply


def fetch_job(address: str, job_id: str, *, timeout: float = 10.0) -> JobView | None:
    """The job through the dashboard's REST API, or ``None`` when the cluster does not know the id."""
    url = f"{address.rstrip('/')}/api/jobs/{urllib.parse.quote(job_id, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        if exc.code in (401, 403):
            raise ClusterAuthRequired(f"the Ray cluster at {address} wants a token (HTTP {exc.code})") from None
        raise ClusterUnreachable(f"the Ray cluster at {address} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address}: {reason}") from None
    if not isinstance(data, dict) or "status" not in data:
        raise ClusterUnreachable(f"{address} did not answer like a Ray dashboard (no job status)")
    return JobView.from_json(data)


def node_gpus(address: str, *, timeout: float = 10.0) -> list[float] | None:
    """GPUs of each alive node (Ray's state API, ``GET /api/v0/nodes``), or ``None`` when it cannot be read."""
    url = f"{address.rstrip('/')}/api/v0/nodes?limit=1000&detail=1"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            nodes = json.loads(response.read())["data"]["result"]["result"]
        return [float((n.get("resources_total") or {}).get("GPU", 0)) for n in nodes if n.get("state") == "ALIVE"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# ------------------------------------------------------------------------------------------------------------
# the mapping


def owner_gone(entry: QueueEntry) -> bool:
    """Whether the client that submitted (or follows) ``entry`` is known to be dead: on this host, its pid is
    gone. A client on another host cannot be checked and counts as alive."""
    if entry.pid is None:
        return True
    return entry.host == socket.gethostname() and not pid_alive(entry.pid)


def _since(entry: QueueEntry) -> float:
    return entry.started.timestamp() - _RECORD_SLACK if entry.started else 0.0


def attempt_started(entry: QueueEntry) -> bool:
    """Whether the entry's latest attempt got as far as ``train`` opening its log (``PROJECT/log/train-*.log``):
    a job stopped before that never trained, whatever Ray says of its node."""
    try:
        return any(p.stat().st_mtime >= _since(entry) for p in (Path(entry.project) / LOG_DIR).glob("train-*.log"))
    except OSError:
        return False


def attempt_record(entry: QueueEntry) -> tuple[Path, dict[str, Any]] | None:
    """The run record (``PROJECT/runs/*.json``) the entry's latest attempt wrote, if any."""
    since = _since(entry)
    runs = Path(entry.project) / RUNS_DIR
    try:
        candidates = sorted(p for p in runs.glob("*.json") if p.is_file() and p.stat().st_mtime >= since)
    except OSError:
        return None
    for path in reversed(candidates):
        try:
            data = read_json(path)
        except KohyaRecipeError:
            continue
        if isinstance(data, dict):
            return path, data
    return None


def _finish(entry: QueueEntry, status: str, *, error: str | None = None, exit_code: int | None = None) -> None:
    """A terminal state: take outcome, exit code and record from the attempt's own run record when it wrote one."""
    entry.status = status
    entry.finished = now()
    entry.pid = entry.host = None
    entry.last_outcome = "success" if status == DONE else status
    found = attempt_record(entry)
    data = found[1] if found else {}
    code = data.get("exit_code")
    entry.last_exit_code = code if isinstance(code, int) and not isinstance(code, bool) else exit_code
    entry.last_run = str(found[0]) if found else None
    if status == FAILED and data.get("outcome") == "failed" and data.get("message"):
        error = str(data["message"])  # the run's own words beat the tail of Ray's log
    entry.last_error = error


def _give_back(entry: QueueEntry, why: str | None) -> None:
    """The job never ran: the entry is pending again and the attempt does not count."""
    entry.status = PENDING
    entry.attempts = max(entry.attempts - 1, 0)
    entry.pid = entry.host = None
    entry.started = None
    entry.last_error = why


def settle(entry: QueueEntry, view: JobView | None) -> None:
    """Bring a Ray entry (``entry.on_ray``) up to date with what Ray says of its job (module docstring)."""
    if view is None:
        if entry.ray_status in (SUBMITTING, UNSENT):
            if owner_gone(entry):  # its client died before Ray confirmed: submit again under the same id
                _give_back(entry, None)
                entry.ray_status = UNSENT
            return  # else: the live client is submitting it right now
        entry.ray_status = LOST
        _finish(
            entry,
            INTERRUPTED,
            error=f"the Ray cluster no longer knows job {entry.ray_job} (its head restarted?); "
            "it continues on the next `queue run --ray`",
        )
        return
    entry.ray_status = view.status
    if view.node:
        entry.ray_node = view.node
    if view.status in ("PENDING", "RUNNING"):
        entry.status = RUNNING
        return
    if view.status == "SUCCEEDED":
        _finish(entry, DONE, exit_code=view.exit_code)
    elif view.status == "STOPPED" or view.exit_code == ExitCode.INTERRUPTED:
        if not attempt_started(entry):
            # stopped while it waited for GPUs (Ray then still starts its supervisor, only to stop it)
            _give_back(entry, None)
        else:
            _finish(entry, INTERRUPTED, exit_code=view.exit_code)
    elif view.error_type in _NEVER_RAN:
        _give_back(entry, "waited longer than the cluster's RAY_JOB_START_TIMEOUT_SECONDS for GPUs; submitted again")
    elif view.error_type in _NODE_DIED:
        _finish(entry, INTERRUPTED, error=f"its Ray node {view.node or '?'} died: {view.last_line}")
    else:
        _finish(entry, FAILED, error=failure_message(view), exit_code=view.exit_code)


def failure_message(view: JobView) -> str:
    """Why a job failed, for the LAST column: the cluster's fault named first, else the run's own words."""
    node = view.node or "?"
    if view.exit_code == ExitCode.NOT_ON_NODE:
        return f"the project is not visible on node {node}: {SHARED_FS_RULE}"
    if view.exit_code == _EXIT_NOT_INSTALLED:
        return (
            f"kohya-recipe is not installed on node {node} ({view.last_line}); start `ray start` there from the "
            "environment that has kohya-recipe on its PATH"
        )
    if view.exit_code is None:
        what = f"Ray ended the job on node {node}" if view.node_ip else "Ray could not start the job"
        return f"{what} ({view.error_type or 'no exit code'}): {view.last_line}"
    return f"exit {view.exit_code} on node {node}: {view.last_line}"


def apply_views(entries: list[QueueEntry], views: dict[tuple[int, str], JobView | None]) -> list[QueueEntry]:
    """Settle every Ray entry whose job was read (``views`` keyed by entry id and submission id, so an entry that
    was submitted again meanwhile is left for the next look); returns the entries that changed state."""
    changed = []
    for entry in entries:
        key = (entry.id, entry.ray_job or "")
        if key not in views or not entry.on_ray:
            continue
        before = (entry.status, entry.ray_status)
        settle(entry, views[key])
        if (entry.status, entry.ray_status) != before:
            changed.append(entry)
    return changed


def job_id_for(entry: QueueEntry) -> str:
    """A fresh submission id: ``kohya-recipe-<entry>-<8 hex>``. Ray keeps every id until its head restarts and
    refuses a duplicate, so an id is never reused (a new attempt gets a new one)."""
    return f"kohya-recipe-{entry.id}-{os.urandom(4).hex()}"
