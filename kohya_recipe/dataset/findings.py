"""What the dataset doctor reports: a :class:`Finding` (severity, check, message, fix, the files concerned).

Also the two ways a finding names things: paths relative to the checked folder (:func:`rel`) and counted nouns
(:func:`plural`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass
class Finding:
    """One problem (or note), with the files it concerns.

    ``items`` are ``(path, detail)`` pairs, the path relative to the checked folder.
    """

    severity: Severity
    check: str
    message: str
    fix: str = ""
    items: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "check": self.check,
            "message": self.message,
            "fix": self.fix,
            "items": [{"path": p, "detail": d} for p, d in self.items],
        }


def rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"
