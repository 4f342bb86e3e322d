"""What the dataset doctor reports: a :class:`Finding` (severity, check, message, fix, the files concerned).

Also the two ways a finding names things: paths relative to the checked folder (:func:`rel`) and counted nouns
(:func:`plural`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Item:
    """One file (or folder, or tag) a finding concerns: its path relative to the checked folder, and what about it."""

    path: str
    detail: str = ""


@dataclass
class Finding:
    """One problem (or note), with the files it concerns (``items``)."""

    severity: Severity
    check: str
    message: str
    fix: str = ""
    items: list[Item] = field(default_factory=list)

    def details(self) -> dict[str, str]:
        """The items as ``{path: detail}``."""
        return {item.path: item.detail for item in self.items}


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in ``/`` form (``.`` for the root itself), or as given when outside it."""
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def plural(n: int, word: str, plural: str | None = None) -> str:
    """``1 image``, ``2 images`` (``plural`` for irregular nouns)."""
    return f"{n} {word if n == 1 else (plural or word + 's')}"
