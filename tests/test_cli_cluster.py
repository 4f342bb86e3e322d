"""`queue run --ray` and friends where no cluster is needed: option errors, Ray not installed, `queue list` never
importing Ray, the job side (`train --ray-job`), the REST reads' errors, following a run's log, the summary.

The runs on a real cluster are in tests/ray/.
"""

from __future__ import annotations

import http.server
import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _train_util import FAKE_SD_SCRIPTS, fake_env
from _train_util import make_project as make_train_project

from kohya_recipe.text import format_table
from kohya_recipe.train.launch import build_launch
from kohya_recipe.train.progress import ProgressState
from kohya_recipe.train.queuefile import DONE, FAILED, Queue, QueueEntry
from kohya_recipe.train.raybackend import RayRunResult, entrypoint, format_ray_summary, refresh_queue
from kohya_recipe.train.rayfollow import HEADER, FollowDisplay, Follower, RunProgress, progress_cells
from kohya_recipe.train.rayjob import ray_context
from kohya_recipe.train.raystate import ClusterAuthRequired, ClusterUnreachable, fetch_job
from tests._cli_util import run_cli
from tests._queue_util import subprocess_env
from tests.test_raystate import SUBMISSION, ray_entry
from tests.test_startup import _imported_by_importtime


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


# ------------------------------------------------------------------------------------------------------------
# options and Ray's absence


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--detach"], "--detach, --ray-env and --ray-resource need --ray"),
        (["--ray", "http://h:8265", "--ray-env", "NOVALUE"], "'NOVALUE' is not KEY=VALUE"),
        (["--ray", "http://h:8265", "--ray-env", "1X=2"], "'1X' is not an environment variable name"),
        (["--ray", "http://h:8265", "--ray-resource", "node_b=lots"], "node_b: the amount must be a number > 0"),
        (["--ray", "http://h:8265", "--ray-resource", "node_b=-1"], "node_b: the amount must be a number > 0"),
    ],
)
def test_bad_ray_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = run_cli("queue", "run", "--queue-file", tmp_path / "q.toml", *args)
    assert code == 2 and message in err
    assert not (tmp_path / "q.toml").exists()


def test_ray_not_installed_says_how_to_install_it(tmp_path: Path) -> None:
    # `sys.modules["ray"] = None` makes every `import ray...` fail as if Ray were not installed
    script = "import sys; sys.modules['ray'] = None; from kohya_recipe.cli import main; main(sys.argv[1:])"
    argv = [sys.executable, "-c", script, "queue", "run", "--ray", "http://127.0.0.1:8265", "--queue-file"]
    proc = subprocess.run([*argv, str(tmp_path / "q.toml")], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: --ray needs Ray, which is not installed (")
    assert proc.stderr.rstrip().endswith("): pip install 'kohya-recipe[ray]'")


def _imports_of_queue_list(queue_file: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    argv = [sys.executable, "-X", "importtime", "-m", "kohya_recipe", "queue", "list", "--queue-file", str(queue_file)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=subprocess_env())
    return proc, _imported_by_importtime(proc.stderr)


def test_queue_list_without_ray_entries_never_imports_ray_or_the_backend(tmp_path: Path) -> None:
    queue = Queue(tmp_path / "q.toml")
    with queue.edit() as state:
        state.entries.append(QueueEntry(id=1, project=str(tmp_path / "a"), status=DONE))
    proc, imported = _imports_of_queue_list(queue.path)
    assert proc.returncode == 0 and "kohya_recipe.train.queue_edit" in imported
    assert not {m for m in imported if m.split(".")[0] == "ray" or m.startswith("kohya_recipe.train.ray")}


def test_queue_list_with_an_unreachable_cluster_warns_and_shows_the_last_known_state(tmp_path: Path) -> None:
    address = f"http://127.0.0.1:{closed_port()}"
    queue = Queue(tmp_path / "q.toml")
    with queue.edit() as state:
        state.entries.append(ray_entry(tmp_path / "a", ray_address=address))
    before = queue.path.read_bytes()
    proc, imported = _imports_of_queue_list(queue.path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "running (Ray)" in proc.stdout
    warning = [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]
    assert warning == [
        f"Warning: cannot reach the Ray cluster at {address}: [Errno 111] Connection refused: states as last seen"
    ]
    assert not {m for m in imported if m.split(".")[0] == "ray"}  # the REST API, through urllib
    assert queue.path.read_bytes() == before


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 401
    body = b"{}"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.HTTPServer]:
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_rest_reads_tell_a_token_wall_and_a_stranger_from_a_job(server: http.server.HTTPServer, tmp_path: Path) -> None:
    address = f"http://127.0.0.1:{server.server_address[1]}"
    _Answer.status, _Answer.body = 401, b"{}"
    with pytest.raises(ClusterAuthRequired, match=r"wants a token \(HTTP 401\)"):
        fetch_job(address, SUBMISSION)
    queue = Queue(tmp_path / "q.toml")
    with queue.edit() as state:
        state.entries.append(ray_entry(tmp_path / "a", ray_address=address))
    assert refresh_queue(queue.path) == [
        f"the Ray cluster at {address} wants a token (HTTP 401): states as last seen; `queue run --ray {address}` "
        "reads them with Ray's client"
    ]
    _Answer.status, _Answer.body = 200, b"<html>hello</html>"
    with pytest.raises(ClusterUnreachable, match="cannot reach the Ray cluster"):
        fetch_job(address, SUBMISSION)
    _Answer.status, _Answer.body = 200, b'{"hello": 1}'
    with pytest.raises(ClusterUnreachable, match="did not answer like a Ray dashboard"):
        fetch_job(address, SUBMISSION)
    _Answer.status, _Answer.body = 404, b"Job x does not exist"
    assert fetch_job(address, SUBMISSION) is None


# ------------------------------------------------------------------------------------------------------------
# the job side


def test_a_job_whose_project_is_not_on_its_node_exits_7_naming_the_host(tmp_path: Path) -> None:
    missing = tmp_path / "shared" / "CharacterAI-1-A"
    code, _, err = run_cli("train", missing, "--ray-job", "--quiet")
    assert code == 7
    assert err == (
        f"Error: project folder {missing} does not exist on this node (host {socket.gethostname()}): a Ray cluster "
        "needs the projects on a filesystem every node mounts at the same path\n"
    )
    assert not missing.exists()  # checked before anything could create it


def test_a_job_trains_on_the_gpus_ray_gave_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_env(monkeypatch)
    root = make_train_project(tmp_path, accelerate={"gpu_ids": ["3"]})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    config = {"runtime_env": {}, "metadata": {"job_submission_id": SUBMISSION, "entry": "1"}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(config))
    code, out, err = run_cli(
        "train", root, "--ray-job", "--quiet", "--json", "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable
    )
    assert code == 0, err
    record = json.loads(next((root / "runs").glob("*.json")).read_text())
    assert record["ray"] == {"submission_id": SUBMISSION, "host": socket.gethostname(), "cuda_visible_devices": "1"}
    assert json.loads(out)["ray"] == record["ray"]
    assert "--gpu_ids" not in record["command"]  # accelerate's --gpu_ids would override Ray's choice


def test_ray_context_reads_what_ray_puts_in_a_jobs_environment() -> None:
    assert ray_context({"CUDA_VISIBLE_DEVICES": "0,1", "RAY_JOB_CONFIG_JSON_ENV_VAR": "not json"}) == {
        "submission_id": None,
        "host": socket.gethostname(),
        "cuda_visible_devices": "0,1",
    }


def test_a_scheduled_multi_gpu_launch_drops_gpu_ids_and_takes_a_free_port(tmp_path: Path) -> None:
    from kohya_recipe.render.project import load_project

    root = make_train_project(
        tmp_path, accelerate={"num_processes": 2, "gpu_ids": ["0", "1"], "main_process_port": 29500}
    )
    project = load_project(root)
    plain = build_launch(project, "/sd", "python").argv
    scheduled = build_launch(project, "/sd", "python", scheduled=True).argv
    assert plain[plain.index("--gpu_ids") + 1] == "0,1" and plain[plain.index("--main_process_port") + 1] == "29500"
    assert "--gpu_ids" not in scheduled and scheduled.count("--main_process_port") == 1
    assert int(scheduled[scheduled.index("--main_process_port") + 1]) != 29500
    assert [a for a in scheduled if a not in ("--main_process_port",) and not a.isdigit()] == [
        a for a in plain if a not in ("--gpu_ids", "0,1", "--main_process_port") and not a.isdigit()
    ]


def test_the_entrypoint_is_the_train_command_exec_ed() -> None:
    assert entrypoint("/shared/a b", resume=True, sd_scripts="/opt/sd-scripts", python="/venv/bin/python") == (
        "exec kohya-recipe train '/shared/a b' --quiet --ray-job --resume --sd-scripts /opt/sd-scripts "
        "--python /venv/bin/python"
    )


# ------------------------------------------------------------------------------------------------------------
# following


def test_progress_is_read_from_the_attempts_own_log_as_it_grows(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    progress = RunProgress(tmp_path, since=0.0)
    assert progress.poll() is None  # train has not opened its log yet
    log = log_dir / "train-20261203-120000.log"
    bar = b"\rsteps:  10%%|#  | %d/30 [00:0%d<00:%d,  1.00s/it, avr_loss=%.2f]"
    fourth = bar % (4, 4, 26, 1.2)
    log.write_bytes(b"  num epochs / epoch\xe6\x95\xb0: 8\nepoch 1/8\n" + bar % (3, 3, 27, 1.25) + fourth[:20])
    state = progress.poll()  # a bar update is read once the next one (tqdm's \r) ends it
    assert state is not None and (state.epoch, state.epochs, state.step, state.avr_loss) == (1, 8, 3, 1.25)
    with log.open("ab") as fh:
        fh.write(fourth[20:] + b"\r")
    state = progress.poll()
    assert state is not None and (state.step, state.avr_loss, state.remaining) == (4, 1.2, "00:26")
    assert progress_cells(state) == ["1/8", "4/30", "1.200", "00:26"]
    assert progress_cells(state, running=False) == ["1/8", "4/30", "1.200", ""]


def test_a_resumed_run_counts_the_steps_before_it() -> None:
    state = ProgressState(epoch=3, epochs=4, step=2, total_steps=24, rate="2.00s/it", remaining="00:44")
    state.resumed_from, state.first_epoch = "model/x-000002-state", 3
    assert progress_cells(state) == ["3/4", "14/24", "", "00:20"]


def test_plain_follow_lines_say_each_change_once(tmp_path: Path) -> None:
    out = io.StringIO()
    display = FollowDisplay(out)
    entry = ray_entry(tmp_path, name="CharacterAI-1-A", ray_status="PENDING")
    display.show([entry], "")
    display.show([entry], "")
    entry.ray_status, entry.ray_node = "RUNNING", "127.0.0.2 (Ray node be811addc23a)"
    display.show([entry], "")
    entry.status, entry.ray_job, entry.last_error = FAILED, None, "the trainer failed (exit 1): ValueError: x"
    display.show([entry], "")
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "#1 CharacterAI-1-A  waiting for GPU",
        "#1 CharacterAI-1-A  running  on 127.0.0.2",
        "#1 CharacterAI-1-A  failed  the trainer failed (exit 1): ValueError: x",
    ]


def test_the_live_table_fits_80_columns(tmp_path: Path) -> None:
    follower = Follower()
    entries = [
        ray_entry(tmp_path, id=i, name=f"CharacterAI-with-a-long-name-{i}", ray_node="10.20.30.40 (Ray node x)")
        for i in range(1, 4)
    ]
    follower.states = {1: ProgressState(epoch=10, epochs=10, step=3360, total_steps=3360, avr_loss=0.0812)}
    lines = format_table(HEADER, [follower.row(e) for e in entries], right={0}, width=80)
    assert max(len(line) for line in lines) <= 80
    assert lines[1].split()[3:6] == ["10/10", "3360/3360", "0.081"]  # numbers whole, the name cut


def test_the_summary_says_what_ran_and_why_each_failure_failed() -> None:
    done = ray_entry(Path("/p/a"), status=DONE, name="A", ray_status="SUCCEEDED")
    failed = ray_entry(Path("/p/b"), id=2, status=FAILED, name="B", last_error="exit 1 on node n: boom")
    result = RayRunResult("http://h:8265", [done, failed], wall_seconds=61.4)
    assert format_ray_summary(result) == (
        "Queue on Ray (http://h:8265) finished in 61 s: 1 done, 1 failed.\n#2 B failed: exit 1 on node n: boom"
    )
    assert (result.done, result.failed) == ([1], [2])
    assert format_ray_summary(RayRunResult("http://h:8265")) == "Nothing to run on Ray (http://h:8265)."
    live = ray_entry(Path("/p/c"), id=3, name="C")
    assert format_ray_summary(RayRunResult("http://h:8265", [live], detached=True)).startswith(
        f"Detached from Ray at http://h:8265; running or waiting: #3 C ({SUBMISSION})."
    )


def test_the_cli_modules_and_train_import_nothing_of_ray() -> None:
    probe = (
        "import sys, kohya_recipe.cli.queue, kohya_recipe.cli.train, kohya_recipe.cli.cluster, kohya_recipe.train.run; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray' or m.startswith('kohya_recipe.train.ray')))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=subprocess_env())
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr[-2000:]
