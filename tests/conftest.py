"""Shared test settings: hypothesis profiles.

CI runs the property tests derandomized (the same examples on every run, so a run cannot fail by luck: set
``HYPOTHESIS_PROFILE=ci``, as ``.ci/run`` does); a local run draws new random examples each time (``dev``, the
default) to keep finding new cases. A failure found locally is printed with its ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests._queue_util import make_project, write_recipe

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile(
    "dev", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# Queue tests: a queue file in a fresh state folder, and three rendered projects (A, B, C) of one recipe.


@pytest.fixture
def qfile(tmp_path: Path) -> Path:
    return tmp_path / "state" / "queue.toml"


@pytest.fixture
def projects(tmp_path: Path) -> list[Path]:
    write_recipe(tmp_path)
    return [make_project(tmp_path, letter) for letter in "ABC"]
