"""Fixtures for the Ray tests: one real local Ray cluster per session (a head on 127.0.0.2 declaring 2 CPUs and 2
GPUs), a worker without the shared folder for the one test that needs two nodes, and projects for the fake
trainer.

Stdlib only (tests/ray/_cluster.py drives the ``ray`` command and the REST API), so collecting this folder needs
no Ray; the test modules skip themselves when Ray is not installed. The cluster is started by the first test that
asks for it (5-18 s on 2 busy cores) and ALWAYS stopped: at the end of the session, when a test fails, on Ctrl-C
(pytest runs fixture teardown on KeyboardInterrupt). A pytest killed outright leaves it to ``.ci/run``'s trap.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._train_util import FAKE_SITE
from tests.ray._cluster import LocalRayCluster, RayNode, ray_cli, stop_all_jobs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    """The session's cluster. Its nodes import the package under test (the repository on PYTHONPATH, and this
    venv's ``kohya-recipe`` first on PATH: jobs get the environment of ``ray start``) and the fake accelerate."""
    if not Path(ray_cli()).exists() and shutil.which("ray") is None:
        pytest.skip("the `ray` command is not installed: pip install -e '.[test,ray]'")
    pythonpath = os.pathsep.join([str(REPO), str(FAKE_SITE)])
    cluster = LocalRayCluster(num_cpus=2, num_gpus=2, env={"PYTHONPATH": pythonpath})
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def ray_address(ray_cluster: LocalRayCluster) -> Iterator[str]:
    """The dashboard address; after the test, whatever jobs it left are stopped, so the next starts with both GPUs
    free."""
    yield ray_cluster.address
    stop_all_jobs(ray_cluster.address)


@pytest.fixture
def worker_without_shared(ray_cluster: LocalRayCluster, tmp_path: Path) -> Iterator[tuple[Path, RayNode]]:
    """A second node (127.0.0.3, 1 GPU, resource ``node_b``) that cannot see ``tmp_path/shared``: an empty tmpfs
    is mounted over it in the node's own mount namespace. Removed after the test: the others count on exactly
    the head's 2 GPUs."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip(
            "a node without the shared folder is simulated with a private mount namespace: needs root and unshare(1)"
        )
    shared = tmp_path / "shared"
    shared.mkdir()
    node = ray_cluster.add_worker(num_gpus=1, resources={"node_b": 1}, hide=[shared])
    try:
        yield shared, node
    finally:
        stop_all_jobs(ray_cluster.address)
        ray_cluster.remove_worker(node)
