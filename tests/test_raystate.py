"""The Ray side of the queue without a cluster: what each Ray job state makes a queue entry (train/raystate.py),
the queue file's Ray fields, the local runner leaving live Ray entries alone, and how `queue list` shows them.

The real cluster runs in tests/ray/; these pin every row of the mapping, including the ones a cluster cannot be
made to produce on demand (a head that forgot a job, a supervisor whose node died, the start timeout).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest

from kohya_recipe.train.queue_edit import QueueListing, format_queue, remove_from_queue
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
    parse_queue,
)
from kohya_recipe.train.raystate import LOST, SUBMITTING, UNSENT, JobView, apply_views, settle
from kohya_recipe.train.runqueue import run_queue
from tests._queue_util import FakeTrain

SUBMISSION = "kohya-recipe-1-0a1b2c3d"
AGENT = "http://127.0.0.3:28266"
NODE_ID = "be811addc23a4f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c"
NODE = "127.0.0.3 (Ray node be811addc23a)"


def ray_entry(project: Path, **fields: object) -> QueueEntry:
    """An entry a `queue run --ray` client (this process) submitted a minute ago."""
    values: dict[str, object] = {
        "id": 1,
        "project": str(project),
        "status": RUNNING,
        "attempts": 1,
        "started": now() - timedelta(minutes=1),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "ray_job": SUBMISSION,
        "ray_address": "http://127.0.0.1:8265",
        "ray_status": "RUNNING",
    }
    values.update(fields)
    return QueueEntry.model_validate(values)


def job(status: str, **fields: object) -> JobView:
    """A job as Ray's REST API (or JobDetails.model_dump) describes it."""
    data: dict[str, object] = {
        "type": "SUBMISSION",
        "submission_id": SUBMISSION,
        "status": status,
        "message": "",
        "error_type": None,
        "driver_agent_http_address": AGENT,
        "driver_node_id": NODE_ID,
        "driver_exit_code": None,
    }
    data.update(fields)
    return JobView.from_json(data)


def attempt_log(project: Path) -> None:
    (project / "log").mkdir(parents=True, exist_ok=True)
    (project / "log" / "train-20261203-120000.log").write_bytes(b"epoch 1/3\n")


def attempt_record(project: Path, **data: object) -> Path:
    path = project / "runs" / "20261203-120000.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"outcome": "success", "exit_code": 0, "message": "", **data}))
    return path


def test_a_job_read_from_the_rest_api_names_its_node() -> None:
    view = job("FAILED", driver_exit_code=1, message="Job entrypoint command failed with exit code 1, last "
               "available logs (truncated to 20,000 chars):\ntraining x\nError: --sd-scripts /sd: folder does not exist\n")  # fmt: skip
    assert (view.status, view.exit_code, view.node) == ("FAILED", 1, NODE)
    assert view.last_line == "--sd-scripts /sd: folder does not exist"
    assert job("PENDING", driver_agent_http_address=None, driver_node_id=None).node is None


@pytest.mark.parametrize("status", ["PENDING", "RUNNING"])
def test_a_live_job_keeps_its_entry_running(tmp_path: Path, status: str) -> None:
    entry = ray_entry(tmp_path, ray_status=SUBMITTING)
    settle(entry, job(status))
    assert (entry.status, entry.ray_status, entry.ray_node, entry.on_ray) == (RUNNING, status, NODE, True)


def test_a_succeeded_job_takes_its_outcome_from_the_run_record(tmp_path: Path) -> None:
    record = attempt_record(tmp_path)
    entry = ray_entry(tmp_path)
    settle(entry, job("SUCCEEDED", driver_exit_code=0))
    assert (entry.status, entry.last_outcome, entry.last_exit_code, entry.last_run) == (DONE, "success", 0, str(record))
    assert (entry.pid, entry.host, entry.on_ray, entry.finished is not None) == (None, None, False, True)


def test_a_record_older_than_the_attempt_is_not_its_record(tmp_path: Path) -> None:
    record = attempt_record(tmp_path, outcome="failed", exit_code=1, message="old failure")
    old = (now() - timedelta(hours=2)).timestamp()
    os.utime(record, (old, old))
    entry = ray_entry(tmp_path)
    settle(entry, job("FAILED", driver_exit_code=1, message="Error: new failure"))
    assert (entry.status, entry.last_run, entry.last_error) == (FAILED, None, f"exit 1 on node {NODE}: new failure")


def test_a_job_stopped_after_train_started_is_interrupted_and_keeps_its_attempt(tmp_path: Path) -> None:
    attempt_log(tmp_path)
    record = attempt_record(tmp_path, outcome="interrupted", exit_code=-2)
    entry = ray_entry(tmp_path)
    settle(entry, job("STOPPED", message="Job was intentionally stopped."))
    assert (entry.status, entry.attempts, entry.last_outcome, entry.last_exit_code) == (INTERRUPTED, 1, INTERRUPTED, -2)
    assert entry.last_run == str(record)


def test_a_job_stopped_while_it_waited_for_gpus_goes_back_to_pending(tmp_path: Path) -> None:
    # Ray starts the supervisor of a stopped waiting job once a GPU frees, only to stop it: a node is named,
    # but `train` never opened its log
    entry = ray_entry(tmp_path, ray_status="PENDING")
    settle(entry, job("STOPPED", message="Job was intentionally stopped."))
    assert (entry.status, entry.attempts, entry.started, entry.pid) == (PENDING, 0, None, None)


def test_exit_130_is_an_interruption(tmp_path: Path) -> None:
    attempt_log(tmp_path)
    entry = ray_entry(tmp_path)
    settle(entry, job("FAILED", driver_exit_code=130, error_type="JOB_ENTRYPOINT_COMMAND_ERROR"))
    assert (entry.status, entry.last_exit_code) == (INTERRUPTED, 130)


def test_the_start_timeout_gives_the_attempt_back(tmp_path: Path) -> None:
    entry = ray_entry(tmp_path, ray_status="PENDING")
    settle(entry, job("FAILED", error_type="JOB_SUPERVISOR_ACTOR_START_TIMEOUT", driver_agent_http_address=None))
    assert (entry.status, entry.attempts) == (PENDING, 0)
    assert "RAY_JOB_START_TIMEOUT_SECONDS" in (entry.last_error or "")


def test_a_node_that_died_under_a_run_interrupts_it(tmp_path: Path) -> None:
    attempt_log(tmp_path)
    entry = ray_entry(tmp_path)
    settle(entry, job("FAILED", error_type="JOB_SUPERVISOR_ACTOR_DIED", message="The actor died unexpectedly"))
    assert entry.status == INTERRUPTED
    assert entry.last_error == f"its Ray node {NODE} died: The actor died unexpectedly"


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (
            7,
            "Error: project folder /shared/a does not exist on this node (host n2): ...",
            f"the project is not visible on node {NODE}: a Ray cluster needs the projects on a filesystem every "
            "node mounts at the same path",
        ),
        (
            127,
            "/bin/sh: 1: exec: kohya-recipe: not found",
            f"kohya-recipe is not installed on node {NODE} (/bin/sh: 1: exec: kohya-recipe: not found); start "
            "`ray start` there from the environment that has kohya-recipe on its PATH",
        ),
        (
            1,
            "tail\nError: --python /venv/bin/python: not found or not executable",
            f"exit 1 on node {NODE}: --python /venv/bin/python: not found or not executable",
        ),
    ],
    ids=["project not on the node", "kohya-recipe not on the node", "nothing launched"],
)
def test_failures_name_the_node_and_the_cause(tmp_path: Path, code: int, message: str, expected: str) -> None:
    entry = ray_entry(tmp_path)
    settle(entry, job("FAILED", driver_exit_code=code, message=message, error_type="JOB_ENTRYPOINT_COMMAND_ERROR"))
    assert (entry.status, entry.last_outcome, entry.last_exit_code, entry.last_error) == (
        FAILED,
        FAILED,
        code,
        expected,
    )


def test_a_failed_run_is_told_in_its_own_words(tmp_path: Path) -> None:
    attempt_record(tmp_path, outcome="failed", exit_code=1, message="the trainer failed (exit 1): ValueError: x")
    entry = ray_entry(tmp_path)
    settle(entry, job("FAILED", driver_exit_code=4, message="Error: the trainer failed (exit 1): Valu"))
    assert (entry.status, entry.last_exit_code, entry.last_error) == (
        FAILED,
        1,
        "the trainer failed (exit 1): ValueError: x",
    )


def test_a_job_the_head_forgot_is_interrupted(tmp_path: Path) -> None:
    entry = ray_entry(tmp_path)
    settle(entry, None)
    assert (entry.status, entry.ray_status) == (INTERRUPTED, LOST)
    assert "no longer knows job kohya-recipe-1-0a1b2c3d" in (entry.last_error or "")


def test_an_unconfirmed_submit_of_a_dead_client_is_sent_again_under_the_same_id(tmp_path: Path) -> None:
    entry = ray_entry(tmp_path, ray_status=SUBMITTING, pid=2**22 + 12345)  # no such pid on Linux
    settle(entry, None)
    assert (entry.status, entry.ray_status, entry.ray_job, entry.attempts) == (PENDING, UNSENT, SUBMISSION, 0)
    live = ray_entry(tmp_path, ray_status=SUBMITTING)  # this process: still submitting, leave it
    settle(live, None)
    assert (live.status, live.ray_status) == (RUNNING, SUBMITTING)


def test_views_apply_only_to_the_submission_they_were_read_for(tmp_path: Path) -> None:
    entry = ray_entry(tmp_path, ray_job="kohya-recipe-1-ffffffff")  # submitted again meanwhile
    assert apply_views([entry], {(1, SUBMISSION): job("SUCCEEDED", driver_exit_code=0)}) == []
    assert entry.status == RUNNING


# ------------------------------------------------------------------------------------------------------------
# the queue file and the local runner


def test_ray_fields_round_trip_and_mark_the_file_version_2(tmp_path: Path) -> None:
    queue = Queue(tmp_path / "q.toml")
    with queue.edit() as state:
        state.entries.append(QueueEntry(id=1, project="/p"))
    assert "schema_version = 1" in queue.path.read_text()
    with queue.edit() as state:
        state.entries[0] = ray_entry(Path("/p"), ray_node=NODE)
    text = queue.path.read_text()
    assert "schema_version = 2" in text and f'ray_job = "{SUBMISSION}"' in text
    back = parse_queue(text, "q").entries[0]
    assert (back.ray_job, back.ray_status, back.ray_node, back.on_ray) == (SUBMISSION, "RUNNING", NODE, True)
    with pytest.raises(QueueError, match=r"entries\[0\]\.ray_node: must be a string, got 3"):
        parse_queue('[[entries]]\nid = 1\nproject = "/p"\nray_node = 3\n', "q")


def test_the_local_runner_leaves_live_ray_entries_to_ray(tmp_path: Path, projects: list[Path]) -> None:
    queue = Queue(tmp_path / "q.toml")
    with queue.edit() as state:
        # #1 runs on Ray (its client is gone: only the cluster knows how it goes); #2 is an interrupted Ray run
        state.entries.append(ray_entry(projects[0], pid=None, host=None))
        state.entries.append(ray_entry(projects[1], id=2, status=INTERRUPTED, ray_status="STOPPED", ray_node=NODE))
        state.next_id = 3
    train = FakeTrain()
    result = run_queue(queue.path, train=train)
    assert train.calls == [(projects[1].name, False)]
    assert [e.id for e in result.ran] == [2]
    first, second = queue.read().entries
    assert (first.status, first.ray_job, first.attempts) == (RUNNING, SUBMISSION, 1)
    # trained here now: its Ray fields are gone, so nothing takes it for a Ray job
    assert (second.status, second.ray_job, second.ray_status, second.ray_node) == (DONE, None, None, None)


def test_a_live_ray_entry_cannot_be_removed(tmp_path: Path) -> None:
    queue = Queue(tmp_path / "q.toml")
    with queue.edit() as state:
        state.entries.append(ray_entry(tmp_path / "a", name="CharacterAI-1-A"))
    with pytest.raises(QueueError, match=f"runs as Ray job {SUBMISSION}; stop it first"):
        remove_from_queue([1], queue.path)


def test_queue_list_shows_where_ray_runs_are() -> None:
    running = ray_entry(Path("/p/A"), name="CharacterAI-1-A", ray_node=NODE)
    waiting = ray_entry(Path("/p/B"), id=2, name="CharacterAI-1-B", ray_status="PENDING", ray_job="kohya-recipe-2-1")
    text = format_queue(QueueListing(Path("/q.toml"), [running, waiting]))
    lines = text.splitlines()
    assert "running (Ray)" in lines[2] and f"Ray job {SUBMISSION} on {NODE} since" in lines[2]
    assert "pending (Ray)" in lines[3] and "Ray job kohya-recipe-2-1 since" in lines[3]
