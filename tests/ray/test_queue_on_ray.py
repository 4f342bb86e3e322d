"""``queue run --ray`` against a real local Ray cluster (tests/ray/conftest.py), the fake trainer in every job.

Each test drives the CLI in its own processes, as a user would: ``kohya-recipe queue run --ray ADDRESS`` submits
every entry as a Ray job running ``kohya-recipe train PROJECT --ray-job`` on the cluster's node, which trains with
the fake sd-scripts. The cluster declares 2 GPUs (there are none: Ray still hands them out and sets
``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kohya_recipe.train.queue_edit import add_to_queue
from tests._queue_util import subprocess_env, wait_for
from tests._train_util import FAKE_SD_SCRIPTS
from tests.ray._cluster import RayNode
from tests.ray._ray_util import entries, kohya_recipe_args, ray_project, records
from tests.test_startup import _imported_by_importtime

pytest.importorskip(
    "ray.job_submission", reason="Ray is not installed: pip install -e '.[test,ray]' runs the Ray cluster tests"
)

TIMEOUT = 300  # a whole client run; CI's 2 cores are shared with the cluster


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=env or subprocess_env(), timeout=TIMEOUT, stdin=subprocess.DEVNULL
    )


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A client in the background, its output to ``log``; SIGINT is delivered by ``send_signal`` (a shell's ``&``
    would start it with SIGINT ignored)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(), stdin=subprocess.DEVNULL
        )


def seconds(record: dict[str, Any], key: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(record[key]).timestamp()


def break_dataset(project: Path) -> None:
    """A hand edit sd-scripts refuses (its dataset schema has no ``batch_sise``): the trainer exits 1."""
    path = project / "dataset.toml"
    path.write_text(path.read_text().replace("[general]\n", "[general]\nbatch_sise = 1\n"))


def test_two_runs_share_the_two_gpus_a_third_waits_and_a_failure_stops_nothing(
    ray_address: str, tmp_path: Path
) -> None:
    a, b, c, d = (ray_project(tmp_path, letter, max_train_epochs=3) for letter in "ABCD")
    break_dataset(c)
    queue = tmp_path / "queue.toml"
    add_to_queue([a, b, c, d], queue)

    proc = run(kohya_recipe_args("queue", "run", "--queue-file", queue, "--json", address=ray_address, step=0.5))

    assert proc.returncode == 4, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert (summary["done"], summary["failed"]) == ([1, 2, 4], [3]), proc.stderr[-4000:]
    ra, rb, rc, rd = (records(p)[-1] for p in (a, b, c, d))
    # A and B trained at the same time, each on one of the two GPUs Ray declared
    assert {ra["ray"]["cuda_visible_devices"], rb["ray"]["cuda_visible_devices"]} == {"0", "1"}
    assert seconds(ra, "started_at") < seconds(rb, "ended_at") and seconds(rb, "started_at") < seconds(ra, "ended_at")
    # C waited in Ray's queue until one of them gave its GPU back
    assert seconds(rc, "started_at") >= min(seconds(ra, "ended_at"), seconds(rb, "ended_at")) - 1
    assert [r["outcome"] for r in (ra, rb, rc, rd)] == ["success", "success", "failed", "success"]
    state = entries(queue)
    assert [state[i]["status"] for i in (1, 2, 3, 4)] == ["done", "done", "failed", "done"]
    assert all(state[i]["attempts"] == 1 for i in state)
    assert "batch_sise" in state[3]["last_error"] and state[3]["last_exit_code"] == 1
    assert state[1]["ray_node"].startswith("127.0.0.2 (Ray node ") and state[1]["ray_status"] == "SUCCEEDED"
    failed_line = next(line for line in proc.stderr.splitlines() if "#3 testchar-1-C  failed" in line)
    assert "the trainer failed (exit 1)" in failed_line  # the follow lines on stderr; --json has the summary


def test_a_killed_client_loses_nothing_and_a_new_one_reattaches(ray_address: str, tmp_path: Path) -> None:
    a, b = (ray_project(tmp_path, letter, max_train_epochs=6) for letter in "AB")
    queue = tmp_path / "queue.toml"
    add_to_queue([a, b], queue)
    client = start(
        kohya_recipe_args("queue", "run", "--queue-file", queue, address=ray_address, step=0.5), tmp_path / "c1.log"
    )
    try:
        assert wait_for(lambda: [e.get("ray_status") for e in entries(queue).values()] == ["RUNNING"] * 2, proc=client)
    finally:
        client.kill()
        client.wait()

    # The jobs go on; `queue list` sees them through the REST API, without importing Ray.
    listed = run(
        [sys.executable, "-X", "importtime", "-m", "kohya_recipe", "queue", "list", "--queue-file", str(queue)]
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "running (Ray)" in listed.stdout
    assert not {m for m in _imported_by_importtime(listed.stderr) if m.split(".")[0] == "ray"}

    # A bare --ray takes RAY_ADDRESS; the new client adopts the orphans, follows them, trains nothing twice.
    env = {**subprocess_env(), "RAY_ADDRESS": ray_address}
    again = run(kohya_recipe_args("queue", "run", "--queue-file", queue, address="", step=0.5), env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reattached #1 testchar-1-A: Ray job kohya-recipe-1-" in again.stderr
    state = entries(queue)
    assert [(e["status"], e["attempts"]) for e in state.values()] == [("done", 1), ("done", 1)]
    assert [len(records(p)) for p in (a, b)] == [1, 1]
    assert "2 done, 0 failed" in again.stderr


def test_ctrl_c_stops_the_runs_and_the_next_run_resumes_them(ray_address: str, tmp_path: Path) -> None:
    a, b, c = (ray_project(tmp_path, letter, max_train_epochs=6, save_state=True) for letter in "ABC")
    queue = tmp_path / "queue.toml"
    add_to_queue([a, b, c], queue)
    log = tmp_path / "client.log"
    client = start(kohya_recipe_args("queue", "run", "--queue-file", queue, address=ray_address, step=0.4), log)

    def two_states_and_c_waiting() -> bool:
        states = all(list((p / "model").glob("*-000001-state/train_state.json")) for p in (a, b))
        return states and entries(queue)[3].get("ray_status") == "PENDING"

    try:
        assert wait_for(two_states_and_c_waiting, proc=client)
        client.send_signal(signal.SIGINT)
        client.wait(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
    err = log.read_text()
    assert client.returncode == 130, err[-3000:]
    assert "stopping 3 run(s) on Ray" in err  # C too: it was submitted, waiting for a GPU
    assert "interrupted on Ray: #1 testchar-1-A, #2 testchar-1-B" in err
    state = entries(queue)
    assert [(state[i]["status"], state[i]["attempts"]) for i in (1, 2, 3)] == [
        ("interrupted", 1),
        ("interrupted", 1),
        ("pending", 0),  # it was still waiting for a GPU: that attempt does not count
    ]
    stopped = records(a)[-1]
    # Ray's stop is a Ctrl-C to the whole tree: Ray signals `train` and the trainer alike (psutil children), so
    # the trainer dies of SIGINT whether or not `train` had forwarded its own first (a race); checkpoints kept
    assert (stopped["outcome"], stopped["exit_code"]) == ("interrupted", -2)
    assert stopped["signals_sent"] in ([], ["SIGINT"])
    assert records(c) == []

    again = run(kohya_recipe_args("queue", "run", "--queue-file", queue, address=ray_address, step=0.2))
    assert again.returncode == 0, again.stderr[-3000:]
    state = entries(queue)
    assert [(state[i]["status"], state[i]["attempts"], state[i].get("resumed")) for i in (1, 2, 3)] == [
        ("done", 2, True),
        ("done", 2, True),
        ("done", 1, False),
    ]
    resumed = records(a)[-1]
    assert resumed["outcome"] == "success" and resumed["resume"]["epoch"] >= 1


def test_a_node_that_cannot_see_the_project_fails_it_at_once_naming_the_node(
    ray_address: str, worker_without_shared: tuple[Path, RayNode]
) -> None:
    shared, node = worker_without_shared
    project = ray_project(shared, "A")
    queue = shared.parent / "queue.toml"
    add_to_queue([project], queue)

    args = kohya_recipe_args("queue", "run", "--queue-file", queue, address=ray_address)
    proc = run([*args, "--ray-resource", "node_b=1"])  # only the worker has node_b

    assert proc.returncode == 4, proc.stderr[-3000:]
    entry = entries(queue)[1]
    assert entry["status"] == "failed" and entry["ray_node"].startswith(f"{node.ip} (Ray node ")
    assert entry["last_error"] == (
        f"the project is not visible on node {entry['ray_node']}: a Ray cluster needs the projects on a "
        "filesystem every node mounts at the same path"
    )
    assert f"#1 testchar-1-A failed: the project is not visible on node {node.ip}" in proc.stderr
    assert records(project) == []  # nothing ran; the project on the shared folder is untouched


def test_detach_then_list_and_the_local_runner_leaves_ray_jobs_alone(ray_address: str, tmp_path: Path) -> None:
    a, b = (ray_project(tmp_path, letter, max_train_epochs=3) for letter in "AB")
    queue = tmp_path / "queue.toml"
    add_to_queue([a, b], queue)
    # an explicit --ray wins over RAY_ADDRESS (Ray's own client would let the variable override it)
    env = {**subprocess_env(), "RAY_ADDRESS": "http://127.0.0.1:9"}
    detached = run(kohya_recipe_args("queue", "run", "--queue-file", queue, "--detach", address=ray_address), env=env)
    assert detached.returncode == 0, detached.stderr[-3000:]
    assert "Detached from Ray at" in detached.stderr
    assert all(e["ray_status"] in ("PENDING", "RUNNING") for e in entries(queue).values())

    local_env = {
        **subprocess_env(),
        "PYTHONPATH": os.pathsep.join([subprocess_env()["PYTHONPATH"], str(FAKE_SD_SCRIPTS / "site")]),
    }
    local = run(
        kohya_recipe_args(
            "queue", "run", "--queue-file", queue, "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable
        ),
        env=local_env,
    )
    assert (local.returncode, local.stderr.strip().splitlines()[-1]) == (0, "Nothing to run.")

    listing = run(kohya_recipe_args("queue", "list", "--queue-file", queue))
    assert "(Ray)" in listing.stdout and "Ray job kohya-recipe-1-" in listing.stdout

    def both_done() -> bool:
        out = run(kohya_recipe_args("queue", "list", "--queue-file", queue, "--json"))
        return [e["status"] for e in json.loads(out.stdout)["entries"]] == ["done", "done"]

    assert wait_for(both_done, timeout=TIMEOUT)
    assert [len(records(p)) for p in (a, b)] == [1, 1]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--ray"], {}, "Error: no Ray cluster given: pass --ray http://HEAD:8265 or set RAY_ADDRESS"),
        (
            ["--ray"],
            {"RAY_ADDRESS": "http://127.0.0.1:{port}"},
            "Error: cannot reach the Ray cluster at http://127.0.0.1:{port}: ",
        ),
        (["--ray", "http://127.0.0.1:{port}"], {}, "Error: cannot reach the Ray cluster at http://127.0.0.1:{port}: "),
    ],
    ids=["no address", "RAY_ADDRESS unreachable", "--ray unreachable"],
)
def test_a_cluster_that_is_not_there_is_one_line_and_exit_1(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    base = {k: v for k, v in subprocess_env().items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    full = {**base, **{k: v.format(port=port) for k, v in env.items()}}
    queue = tmp_path / "queue.toml"
    proc = run(kohya_recipe_args("queue", "run", "--queue-file", queue, *(a.format(port=port) for a in args)), env=full)
    assert proc.returncode == 1
    assert proc.stderr.startswith(message.format(port=port)) and proc.stderr.count("\n") == 1
    assert not queue.exists()
