"""A real local Ray cluster on loopback for the Ray tests: started as ``ray start --block`` children, always stopped.

Stdlib only: it drives the ``ray`` command and the dashboard's REST API and never imports ray, so it also serves
by hand (``python tests/ray/_cluster.py up [--worker]`` prints the dashboard address and blocks until Ctrl-C).

What it relies on (ray 2.60; measured in the issue 13 research, /work/notes/issue13/findings.md):

* A ``ray start --block`` child in a session of its own: SIGTERM to that one process drains the node and stops
  all of its processes.
* ``--node-ip-address 127.0.0.1`` is rewritten by Ray to the machine's routable address; any other loopback
  address is kept. The head uses 127.0.0.2 and a worker 127.0.0.3, so nothing leaves ``lo``.
* Every port with a fixed default (GCS 6379, dashboard 8265, client server 10001, dashboard agent 52365) is
  given explicitly, from the kernel's ephemeral range (never inside Ray's worker-port range 10002-19999), so two
  clusters, or a head and a worker on one host, never clash.
* ``--temp-dir`` keeps sessions, logs and sockets out of /tmp/ray; it is short because Unix socket paths under
  it must stay below 107 bytes.
* Job entrypoints run in sessions of their own and a trainer started by ``kohya-recipe train`` in yet another;
  after a node is stopped they may survive as orphans. All of them inherit the environment of ``ray start``,
  so teardown stops the jobs through the API first and then kills every process that carries this cluster's
  marker variable.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "KR_TEST_RAY_CLUSTER"  # every process of a test cluster (and every job it runs) inherits it
LIVE = ("PENDING", "RUNNING")


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port from the kernel's ephemeral range (32768-60999 on Linux)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def ray_cli() -> str:
    """The ``ray`` script beside the Python running the tests (not whatever ``ray`` is first on PATH)."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def http_json(url: str, data: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="GET" if data is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def processes_with_marker(token: str) -> list[int]:
    """PIDs whose environment holds ``MARKER=token`` (Linux /proc), this process excluded."""
    needle = f"{MARKER}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def live_jobs(address: str) -> list[str]:
    jobs = http_json(f"{address}/api/jobs/") or []
    return [j["submission_id"] for j in jobs if j.get("status") in LIVE and j.get("submission_id")]


def stop_all_jobs(address: str, grace: float = 60.0) -> None:
    """Stop every live job of the cluster through the API and wait until none is live."""
    live = live_jobs(address)
    for sid in live:
        with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
            http_json(f"{address}/api/jobs/{sid}/stop", data={})
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        time.sleep(0.3)
        live = live_jobs(address)


@dataclass
class RayNode:
    proc: subprocess.Popen[bytes]
    ip: str
    log: Path


@dataclass
class LocalRayCluster:
    """A head (and optional workers) on loopback addresses, each a ``ray start --block`` child."""

    num_cpus: int = 2
    num_gpus: int = 2
    env: dict[str, str] = field(default_factory=dict)  # extra environment for every node, and so every job
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    nodes: list[RayNode] = field(default_factory=list)
    temp_dir: Path | None = None
    gcs_port: int = 0
    dashboard_port: int = 0

    @property
    def address(self) -> str:
        """The dashboard URL: what ``queue run --ray`` takes."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):  # a developer's shell must not redirect the tests
            env.pop(var, None)
        # Jobs get the PATH of `ray start`, not the client's: this venv's bin first, so `kohya-recipe` on the
        # nodes is the one installed with the tests.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update({MARKER: self.token, "RAY_USAGE_STATS_ENABLED": "0"})
        # Ray kills workers (job supervisors included) when the *machine* is above 95% memory; on a shared CI
        # machine that is other work's memory, not the test's: the OOM killer is off in test clusters.
        env["RAY_memory_monitor_refresh_ms"] = "0"
        env.update(self.env)
        return env

    def _popen(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        assert self.temp_dir is not None
        with (self.temp_dir / f"{name}.log").open("wb") as out:
            return subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(),
                start_new_session=True,
            )

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.proc.poll() is not None:
                    raise RuntimeError(f"ray start exited {node.proc.returncode}:\n{node.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError, ValueError, urllib.error.URLError):
                if ready():
                    return
            time.sleep(0.2)
        raise TimeoutError(f"Ray cluster: {what} not ready after {timeout:.0f} s")

    def alive_nodes(self) -> list[dict[str, Any]]:
        data = http_json(f"{self.address}/api/v0/nodes?limit=100&detail=1")
        return [n for n in data["data"]["result"]["result"] if n.get("state") == "ALIVE"]

    def start(self, timeout: float = 180.0) -> LocalRayCluster:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="kr-ray-", dir="/tmp"))  # short: socket paths < 107 bytes
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        args = [
            *("--head", "--port", str(self.gcs_port), "--num-cpus", str(self.num_cpus)),
            *("--num-gpus", str(self.num_gpus), "--include-dashboard", "true", "--dashboard-host", "127.0.0.1"),
            *("--dashboard-port", str(self.dashboard_port), "--ray-client-server-port", str(free_port())),
            *("--dashboard-agent-listen-port", str(free_port()), "--temp-dir", str(self.temp_dir / "head")),
            *("--node-ip-address", "127.0.0.2", "--disable-usage-stats"),
        ]
        head = self._popen([ray_cli(), "start", "--block", *args], "head")
        self.nodes.append(RayNode(head, "127.0.0.2", self.temp_dir / "head.log"))
        self._wait("Jobs API", lambda: http_json(f"{self.address}/api/jobs/") is not None, timeout)
        self._wait("head node", lambda: len(self.alive_nodes()) >= 1, timeout)
        return self

    def add_worker(
        self,
        *,
        num_gpus: int = 1,
        resources: dict[str, float] | None = None,
        hide: list[Path] | None = None,
        timeout: float = 180.0,
    ) -> RayNode:
        """Join a worker on 127.0.0.(2+n). ``hide``: folders this node must not see. An empty tmpfs is mounted
        over each in a private mount namespace (root and util-linux ``unshare``), which is how a node without
        the shared filesystem is made on one machine: everything the node starts inherits that mount table."""
        assert self.temp_dir is not None
        n = len(self.nodes)
        ip = f"127.0.0.{2 + n}"
        args = [
            *("--address", f"127.0.0.2:{self.gcs_port}", "--num-cpus", "1", "--num-gpus", str(num_gpus)),
            *("--dashboard-agent-listen-port", str(free_port()), "--temp-dir", str(self.temp_dir / f"w{n}")),
            *("--node-ip-address", ip, "--disable-usage-stats"),
        ]
        if resources:
            args += ["--resources", json.dumps(resources)]
        start = [ray_cli(), "start", "--block", *args]
        if hide:
            mounts = " && ".join(f"mount -t tmpfs -o size=1m,mode=0755 kr-hidden {shlex.quote(str(p))}" for p in hide)
            # `exec` keeps the `ray start --block` pid the one that is signalled
            argv = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"{mounts} && exec {shlex.join(start)}",
            ]
        else:
            argv = start
        node = RayNode(self._popen(argv, f"w{n}"), ip, self.temp_dir / f"w{n}.log")
        self.nodes.append(node)
        want = len(self.nodes)
        self._wait(f"worker {ip}", lambda: len(self.alive_nodes()) >= want, timeout)
        return node

    def remove_worker(self, node: RayNode, grace: float = 60.0) -> None:
        """Stop one worker (its jobs should be stopped first); wait until the head counts it gone."""
        _stop_node(node, grace)
        self.nodes.remove(node)
        want = len(self.nodes)
        self._wait("worker gone", lambda: len(self.alive_nodes()) <= want, grace)

    def stop(self, job_grace: float = 60.0, node_grace: float = 60.0) -> None:
        """Stop the jobs (through Ray, so trainers stop as in production), then the nodes, then any straggler."""
        with contextlib.suppress(Exception):  # the head may already be gone; the kills below still run
            stop_all_jobs(self.address, job_grace)
        for node in reversed(self.nodes):  # workers first, then the head; all drain at once
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in reversed(self.nodes):
            _stop_node(node, node_grace, signalled=True)
        for _ in range(5):  # job entrypoints and trainers live in sessions of their own
            pids = processes_with_marker(self.token)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)  # hidden-folder tmpfs mounts died with their node
        self.nodes.clear()


def _stop_node(node: RayNode, grace: float, *, signalled: bool = False) -> None:
    """SIGTERM to ``ray start --block`` (it drains and stops its node), SIGKILL to its session after ``grace``."""
    if not signalled and node.proc.poll() is None:
        node.proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(node.proc.pid, signal.SIGKILL)  # whatever is left in the node's session
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.proc.wait(timeout=10)


@contextlib.contextmanager
def local_ray_cluster(**kwargs: Any) -> Iterator[LocalRayCluster]:
    cluster = LocalRayCluster(**kwargs)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _main(argv: list[str]) -> int:
    """``up [--worker] [--hide=DIR]``: start a cluster, print its address, stop it on Ctrl-C or SIGTERM."""
    if not argv or argv[0] != "up":
        print(__doc__)
        return 2

    def _interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's `&` starts it with SIGINT ignored
    t0 = time.monotonic()
    with local_ray_cluster() as cluster:
        print(f"head up in {time.monotonic() - t0:.1f} s: {cluster.address}  (temp {cluster.temp_dir})", flush=True)
        if "--worker" in argv:
            hide = [Path(a.split("=", 1)[1]) for a in argv if a.startswith("--hide=")]
            cluster.add_worker(resources={"node_b": 1}, hide=hide or None)
            print("worker up on 127.0.0.3 (resource node_b)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
