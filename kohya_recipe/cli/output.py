"""How the CLI prints: one JSON printer for every ``--json``, one renderer of results, warnings, progress.

Library calls return data (dataclasses, pydantic models); :func:`emit` prints a result once, as JSON or as text.
:func:`jsonable` turns such a result into plain JSON data: dataclass fields (minus those marked
``field(metadata={"json": False})``) plus the properties a class names in ``__json_properties__``, pydantic models
through ``model_dump(mode="json")``, paths as strings, tuples and sets as lists, NaN and infinity as ``null``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

import click

PROGRESS_MIN_ITEMS = 500  # below this a folder is read faster than a bar is worth drawing


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON data (see the module docstring)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None  # JSON has no NaN/inf (a diverged loss); strict parsers refuse them
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {
            f.name: jsonable(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("json", True) and not f.name.startswith("_")
        }
        for name in getattr(obj, "__json_properties__", ()):
            out[name] = jsonable(getattr(obj, name))
        return out
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):
        return model_dump(mode="json")
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [jsonable(v) for v in items]
    return str(obj)


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON with sorted keys (UTF-8 kept as is)."""
    click.echo(json.dumps(jsonable(data), indent=2, sort_keys=True, ensure_ascii=False))


def emit(result: Any, as_json: bool, text: Callable[[Any], str] | None = None) -> None:
    """Print a library result: as JSON with ``--json``, else as ``text(result)`` (or ``str(result)``)."""
    if as_json:
        echo_json(result)
        return
    out = text(result) if text is not None else str(result)
    if out:
        click.echo(out.rstrip("\n"))


def warn(lines: list[str] | tuple[str, ...]) -> None:
    """Each line as ``Warning: ...`` on stderr."""
    for line in lines:
        click.echo(f"Warning: {line}", err=True)


class _Bar:
    """The callback :func:`progress` yields: draws a bar once the total is known to be large."""

    def __init__(self, label: str, on: bool, min_items: int) -> None:
        self.label, self.on, self.min_items = label, on, min_items
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.on:
            return
        if self.bar is None:
            if total < self.min_items:
                self.on = False
                return
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        # Redrawing per item costs more than a cheap item; every 64th (and the last) is smooth enough. A short
        # list of slow items (a sweep's renders) redraws on every one.
        if done - self.shown >= min(64, max(1, total // 64)) or done == total:
            self.bar.update(done - self.shown)
            self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@contextmanager
def progress(
    label: str, *, enabled: bool = True, min_items: int = PROGRESS_MIN_ITEMS
) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback that draws a bar on stderr, on a terminal only, for long work only.

    The library reports progress through such callbacks; this is the CLI's one way of showing them.
    """
    bar = _Bar(label, enabled and sys.stderr.isatty(), min_items)
    try:
        yield bar
    finally:
        bar.close()
