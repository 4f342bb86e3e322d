"""Is a queue entry's runner still alive, and is a trainer still working in a project?

A runner that is killed leaves its entry marked ``running`` and may leave its ``accelerate launch`` child
training; these checks tell such leftovers from live work (the GPU-set lock, the runner's pid on this host,
the processes whose cwd is the project).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from kohya_recipe.train.queuefile import RUNNING, Queue, QueueEntry

# The trainer script names sd-scripts runs; used to tell an orphaned trainer from a shell that happens to sit
# in the project folder (accelerate's simple_launcher runs `<python> <sd-scripts>/train_network.py`; see
# launch.build_launch).
_TRAINER_SCRIPTS = ("train_network.py", "sdxl_train_network.py")


def trainer_processes(project_root: Path) -> list[int]:
    """PIDs of trainer processes still working in ``project_root`` (Linux ``/proc``; empty elsewhere).

    Killing ``queue run`` with SIGKILL does not kill the ``accelerate launch`` child it started, and
    sd-scripts is launched with cwd = PROJECT; a restarted queue must not start a second trainer over the same
    files and GPU.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found = []
    target = str(project_root.resolve())
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if str((entry / "cwd").readlink()) != target:
                continue
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(Path(arg.decode(errors="replace")).name in _TRAINER_SCRIPTS for arg in cmdline):
            found.append(int(entry.name))
    return sorted(found)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def entry_state(entry: QueueEntry) -> str:
    """The status to show: a ``running`` entry whose runner is gone from this host is ``running (stale)``."""
    if entry.status == RUNNING and entry.pid and entry.host == socket.gethostname() and not pid_alive(entry.pid):
        return "running (stale)"
    return entry.status


def runner_alive(queue: Queue, entry: QueueEntry) -> bool:
    """Whether the runner that marked ``entry`` running still holds its GPU lock (the kernel frees it)."""
    probe = queue.gpu_lock(entry.gpus or [])
    if probe.try_acquire():
        probe.release()
        return False
    # The GPU set is held: by this entry's runner, or (if that runner died) by another runner on the same
    # GPUs. On this host a dead pid settles it.
    return not (entry.host == socket.gethostname() and entry.pid and not pid_alive(entry.pid))
