"""The outcome of a dataset check: layout, settings, rules, every image and every finding.

A :class:`CheckResult` is also the ``--json`` output: its fields, plus ``ok``, ``summary`` and ``rules_source``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kohya_recipe.dataset.checks.duplicates import DuplicateCluster
from kohya_recipe.dataset.checks.tags import TagCount
from kohya_recipe.dataset.detect import Layout
from kohya_recipe.dataset.findings import SEVERITIES, Finding, Severity
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.dataset.settings import CheckSettings
from kohya_recipe.errors import ExitCode


@dataclass
class CheckResult:
    """The full outcome of :func:`~kohya_recipe.dataset.check.check_dataset`.

    ``tags`` is the tag table of the trained captions, ``shots`` how many images each shot of the rules' shot
    list has (plus ``front``); ``decoded`` whether every image was decoded; ``duplicates`` the clusters of
    byte-identical and (decoded) near-identical images, every image listed.
    """

    root: Path
    layout: Layout
    settings: CheckSettings
    rules: Rules = field(metadata={"json": False})
    images: list[ImageRecord]
    findings: list[Finding]
    tags: list[TagCount]
    shots: dict[str, int]
    decoded: bool = False
    duplicates: list[DuplicateCluster] = field(default_factory=list)

    __json_properties__ = ("ok", "summary", "rules_source")

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return self.count("error") == 0

    @property
    def summary(self) -> dict[str, int]:
        """The number of findings of each severity."""
        return {s: self.count(s) for s in SEVERITIES}

    @property
    def rules_source(self) -> str:
        return self.rules.source

    def exit_code(self, fail_on: Severity = "error") -> int:
        """0, or :attr:`ExitCode.CHECK_FAILED` when a finding reaches ``fail_on`` (error, or warning too)."""
        levels = SEVERITIES[: SEVERITIES.index(fail_on) + 1]
        failed = any(f.severity in levels for f in self.findings)
        return int(ExitCode.CHECK_FAILED) if failed else int(ExitCode.OK)
