"""Reading and writing files safely: the one TOML/JSON reader, atomic writes, hashing.

Reads take regular files only and never block (a FIFO named ``recipe.toml`` would otherwise hang the command),
and every problem becomes one line that names the file, raised as the caller's error class. Writes go to a temp
file in the same folder and are ``replace()``-d into place, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kohya_recipe.errors import KohyaRecipeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "MAX_CONFIG_BYTES",
    "atomic_temp_target",
    "atomic_write_bytes",
    "atomic_write_text",
    "loads_json",
    "loads_toml",
    "open_regular_file",
    "read_bytes",
    "read_json",
    "read_text",
    "read_toml",
    "sha256_bytes",
    "sha256_file",
    "tomllib",
]

# Recipes, GUI configs, queues and manifests are a few kilobytes; 64 MiB is far beyond any real one and keeps a
# wrong file (a checkpoint named config.toml) from being read into memory whole.
MAX_CONFIG_BYTES = 64 << 20

ErrorClass = type[KohyaRecipeError]

# O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer forever; on a regular file it changes nothing.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_BOM = "\ufeff"


def open_regular_file(name: str | os.PathLike[str]) -> int:
    """``os.open`` for reading that never blocks, and refuses anything but a regular file (after symlinks).

    Raises ``OSError`` from ``open`` and ``ValueError`` for a FIFO, socket or device; the caller owns the fd.
    """
    fd = os.open(name, _OPEN_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(name))
        if stat.S_ISFIFO(mode):
            kind = "a FIFO"
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = "a device"
        else:
            kind = "a socket or other special file"
        raise ValueError(f"not a regular file ({kind}): reading it would block or never end")
    return fd


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc)


def read_bytes(path: Path, *, error: ErrorClass = KohyaRecipeError, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of the regular file ``path`` (at most ``max_bytes``); any problem is one ``error`` naming it."""
    try:
        fd = open_regular_file(path)
    except OSError as exc:
        raise error(_os_reason(exc), source=str(path)) from None
    except ValueError as exc:
        raise error(str(exc), source=str(path)) from None
    try:
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(_os_reason(exc), source=str(path)) from None
    if len(data) > max_bytes:
        raise error(f"larger than {max_bytes >> 20} MiB: not a config file", source=str(path))
    return data


def read_text(path: Path, *, error: ErrorClass = KohyaRecipeError, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """UTF-8 text of ``path``; a leading byte-order mark (Windows editors write one) is dropped."""
    data = read_bytes(path, error=error, max_bytes=max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (byte {exc.start})", source=str(path)) from None
    return text.removeprefix(_BOM)


#: The deepest nesting of tables/lists a file we read may have. Ours and the GUI's go 3 levels deep; a TOML file of
#: dotted keys parses to any depth without recursion, but copying or walking it later would overflow Python's stack.
MAX_NESTING = 64


class TooDeep(Exception):
    """Parsed data nests more than :data:`MAX_NESTING` levels, or too deep for the parser itself."""


def parse_bounded(parse: Callable[[str], Any], text: str) -> Any:
    """``parse(text)``; :class:`TooDeep` when the result nests more than :data:`MAX_NESTING` levels."""
    try:
        data = parse(text)
    except RecursionError:
        raise TooDeep from None
    if _too_deep(data):
        raise TooDeep
    return data


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests dicts/lists deeper than :data:`MAX_NESTING` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= MAX_NESTING:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads_toml(text: str, *, source: str | None = None, error: ErrorClass = KohyaRecipeError) -> dict[str, Any]:
    """Parse TOML text; a syntax error or absurd nesting is one ``error`` naming ``source``."""
    try:
        data: dict[str, Any] = parse_bounded(tomllib.loads, text.removeprefix(_BOM))
    except tomllib.TOMLDecodeError as exc:
        raise error(f"invalid TOML: {exc}", source=source) from None
    except TooDeep:
        raise error(f"invalid TOML: nested more than {MAX_NESTING} levels deep", source=source) from None
    return data


def read_toml(path: Path, *, error: ErrorClass = KohyaRecipeError) -> dict[str, Any]:
    """Parse the TOML file ``path``; any problem (missing, special file, not UTF-8, bad TOML) is one line."""
    return loads_toml(read_text(path, error=error), source=str(path), error=error)


def loads_json(text: str, *, source: str | None = None, error: ErrorClass = KohyaRecipeError) -> Any:
    """Parse JSON text; a syntax error or absurd nesting is one ``error`` naming ``source``."""
    try:
        return parse_bounded(json.loads, text)
    except json.JSONDecodeError as exc:
        raise error(f"invalid JSON: {exc}", source=source) from None
    except TooDeep:
        raise error(f"invalid JSON: nested more than {MAX_NESTING} levels deep", source=source) from None


def read_json(path: Path, *, error: ErrorClass = KohyaRecipeError) -> Any:
    """Parse the JSON file ``path``; any problem is one line naming it."""
    return loads_json(read_text(path, error=error), source=str(path), error=error)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (same-folder temp file, fsync, ``os.replace``, fsync of the folder);
    return the path written.

    A symlink is written where it points (the link stays a link). An existing file keeps its permissions; a new
    one gets ``0o666 & ~umask`` (mkstemp alone would leave 0600). On failure the original is untouched.
    """
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target.name), suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).chmod(mode)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)
    return target


# atomic_write_bytes' temp files: ".<target name>.<8 random characters of mkstemp>.tmp", the target name cut at its
# end when the whole would pass the usual 255-byte limit of a file name.
_TEMP_NAME_BYTES = 255
_TEMP_EXTRA = len("..") + 8 + len(".tmp")
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp", re.DOTALL)


def _temp_prefix(name: str) -> str:
    raw = os.fsencode(name)
    room = _TEMP_NAME_BYTES - _TEMP_EXTRA
    # fsdecode keeps a cut multi-byte character as surrogates, which encode back to the same bytes.
    return "." + (os.fsdecode(raw[:room]) if len(raw) > room else name) + "."


def atomic_temp_target(temp_name: str) -> tuple[str, bool] | None:
    """For a name :func:`atomic_write_bytes` gives its temp files: (the target's name, or its start when
    ``maybe_cut``: a temp name at the length limit may hold only the first bytes of a long target name); ``None``
    for any other name. An interrupted write (``kill -9``, a power cut) can leave such a file next to its target."""
    m = _TEMP_NAME.fullmatch(temp_name)
    if m is None:
        return None
    return m["target"], len(os.fsencode(temp_name)) == _TEMP_NAME_BYTES


def _sync_folder(folder: Path) -> None:
    """fsync ``folder``, so that the rename survives a crash or reboot right after it (the file itself was synced
    before). Best effort: some filesystems and platforms cannot open or sync a folder."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
