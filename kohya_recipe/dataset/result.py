"""The outcome of a dataset check: layout, settings, rules, every image and every finding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kohya_recipe.dataset.detect import Layout
from kohya_recipe.dataset.findings import SEVERITIES, Finding, Severity
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.dataset.settings import CheckSettings
from kohya_recipe.errors import ExitCode


@dataclass
class CheckResult:
    """The full outcome of :func:`check_dataset` (``to_dict`` is the ``--json`` output)."""

    root: Path
    layout: Layout
    settings: CheckSettings
    rules: Rules
    images: list[ImageRecord]
    findings: list[Finding]
    tag_counts: list[tuple[str, int]]
    shot_counts: dict[str, int]
    decoded: bool = False

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return self.count("error") == 0

    def exit_code(self, fail_on: Severity = "error") -> int:
        """0, or :attr:`ExitCode.CHECK_FAILED` when a finding reaches ``fail_on`` (error, or warning too)."""
        levels = SEVERITIES[: SEVERITIES.index(fail_on) + 1]
        failed = any(f.severity in levels for f in self.findings)
        return int(ExitCode.CHECK_FAILED) if failed else int(ExitCode.OK)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "ok": self.ok,
            "summary": {s: self.count(s) for s in SEVERITIES},
            "layout": self.layout.to_dict(),
            "settings": self.settings.to_dict(),
            "rules_source": self.rules.source,
            "decoded": self.decoded,
            "images": [r.to_dict(self.root) for r in self.images],
            "findings": [f.to_dict() for f in self.findings],
            "tags": [{"tag": t, "count": c} for t, c in self.tag_counts],
            "shots": self.shot_counts,
        }
