"""The job side of ``queue run --ray``: what ``kohya-recipe train PROJECT --ray-job`` does on a Ray node.

Ray runs the entrypoint on whichever node has the GPUs, with the environment of that node's ``ray start`` plus
the job's ``runtime_env`` env vars and ``CUDA_VISIBLE_DEVICES`` set to the GPUs it assigned. Three things differ
from a plain ``train``:

1. The project folder must exist on this node, checked before anything could create it: a cluster needs the
   projects on a filesystem every node mounts at the same path. If not, exit 7 (``ExitCode.NOT_ON_NODE``) with
   a message naming this host; the client adds the node's IP and Ray node id (a job gets neither from Ray).
2. Ray's GPU choice wins: the recipe's ``accelerate.gpu_ids`` are not passed on (``--gpu_ids`` would overwrite
   ``CUDA_VISIBLE_DEVICES``, putting two runs on one GPU) and a multi-GPU run rendezvouses on a free port.
3. The run record gets a ``ray`` section: the submission id, this host, and the ``CUDA_VISIBLE_DEVICES`` Ray set.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

from kohya_recipe.errors import ExitCode, KohyaRecipeError
from kohya_recipe.files import read_json

#: Set by Ray in every job's environment: the job config (its metadata holds ``job_submission_id``).
RAY_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
SHARED_FS_RULE = "a Ray cluster needs the projects on a filesystem every node mounts at the same path"


class ProjectNotOnNode(KohyaRecipeError):
    """The project folder a Ray job was given does not exist on the node it runs on."""

    exit_code = ExitCode.NOT_ON_NODE


def check_project_on_node(project: str | os.PathLike[str]) -> Path:
    """The project folder, or :class:`ProjectNotOnNode` when this node does not see it."""
    path = Path(project)
    if not path.is_dir():
        raise ProjectNotOnNode(
            f"project folder {path} does not exist on this node (host {socket.gethostname()}): {SHARED_FS_RULE}"
        )
    return path


def ray_context(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """What this job knows of its place in the cluster: submission id, host, the GPUs Ray gave it."""
    env = dict(os.environ) if environ is None else environ
    submission_id = None
    try:
        config = json.loads(env.get(RAY_JOB_CONFIG_ENV) or "{}")
        submission_id = (config.get("metadata") or {}).get("job_submission_id")
    except (ValueError, AttributeError):
        pass
    return {
        "submission_id": submission_id,
        "host": socket.gethostname(),
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
    }


def train_ray_job(
    project: str | os.PathLike[str],
    *,
    sd_scripts: str | os.PathLike[str] | None = None,
    python: str | None = None,
    resume: bool = False,
    quiet: bool = True,
) -> Any:
    """Check the project is here, train it with Ray's GPUs, add the ``ray`` section to the run record."""
    from kohya_recipe.train.run import train_project, write_record

    root = check_project_on_node(project)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Ray stops a job with SIGINT (raystate.STOP_ENV). A node whose `ray start` ran in the background of a
        # script passes SIGINT on as ignored, and the trainer would inherit that and never stop: undo it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    record = train_project(root, sd_scripts=sd_scripts, python=python, resume=resume, quiet=quiet, scheduled_gpus=True)
    context = ray_context()
    record.data["ray"] = context
    if record.path is not None:
        data = read_json(record.path)
        data["ray"] = context
        write_record(record.path, data)
    return record
