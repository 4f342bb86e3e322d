"""File locks for the queue: the edit lock of the queue file and one lock per GPU set while a run trains.

Both are ``fcntl.flock`` locks on lock files next to the queue file. The kernel drops a flock when its holder
dies, so a lock that can be taken tells a ``running`` entry left by a killed runner from a live one.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import IO

from kohya_recipe.errors import KohyaRecipeError


def _open_lock_fd(path: Path) -> int:
    """A lock file's descriptor (created if missing; O_NONBLOCK so that a FIFO in its place cannot block the
    open). Raises ``ValueError`` when something other than a regular file sits there."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("not a regular file: a lock file must be one")
    return fd


def open_lock_file(path: Path) -> IO[str]:
    """:func:`_open_lock_fd` as a text file object (read-write, positioned at the start)."""
    return os.fdopen(_open_lock_fd(path), "r+", encoding="utf-8")


class FileLock:
    """An ``fcntl.flock`` on a lock file. The kernel drops it when the holder dies, which is how a ``running``
    entry left by a killed or rebooted runner is told from a live one."""

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self._fd: int | None = None

    def acquire(self, *, blocking: bool = True) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            raise KohyaRecipeError("the queue needs fcntl file locks (Linux or macOS)") from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = _open_lock_fd(self.path)
        except ValueError as exc:
            raise KohyaRecipeError(f"{exc}; remove it (it is only a lock file)", source=str(self.path)) from None
        flags = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        if not blocking:
            flags |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


class GpuLock:
    """Exclusive use of a GPU set for one training at a time.

    ``gpus == []`` means the recipe names no ``gpu_ids``, so accelerate may use any visible GPU: that takes
    the set-wide lock exclusively. A named set takes the set-wide lock shared plus one exclusive lock per GPU
    id, so ``["0"]`` and ``["1"]`` train side by side while ``["0", "1"]`` waits for both.
    """

    def __init__(self, queue_file: Path, gpus: list[str]) -> None:
        self.gpus = list(gpus)
        base = queue_file
        self._locks = [FileLock(Path(f"{base}.gpus.lock"), shared=bool(gpus))]
        for gpu in sorted(set(gpus)):
            safe = gpu if _SAFE_ID.match(gpu) else f"x{gpu.encode().hex()}"
            self._locks.append(FileLock(Path(f"{base}.gpu-{safe}.lock")))

    def try_acquire(self) -> bool:
        taken: list[FileLock] = []
        for lock in self._locks:
            if not lock.acquire(blocking=False):
                for t in taken:
                    t.release()
                return False
            taken.append(lock)
        return True

    def release(self) -> None:
        for lock in reversed(self._locks):
            lock.release()


def describe_gpus(gpus: list[str] | None) -> str:
    if not gpus:
        return "all GPUs"
    return "GPU " + ",".join(gpus)
