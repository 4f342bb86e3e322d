"""Adding projects and sweeps to the queue, listing it and removing entries (kohya_recipe/train/queue_edit.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.files import tomllib
from kohya_recipe.train.locks import GpuLock
from kohya_recipe.train.queue_edit import add_to_queue, list_queue, remove_from_queue
from kohya_recipe.train.queuefile import FAILED, PENDING, RUNNING, Queue, QueueError
from kohya_recipe.train.runqueue import run_queue
from kohya_recipe.train.sweep import parse_grid, write_sweep
from tests._queue_util import FakeTrain, write_recipe

# ----------------------------------------------------------------------------------------------------------------
# add / list / remove


def test_add_projects_and_list_them(projects: list[Path], qfile: Path) -> None:
    result = add_to_queue(projects[:2], qfile)
    assert [(e.id, e.name, e.status, e.attempts) for e in result.added] == [
        (1, "CharacterAI-1-A", PENDING, 0),
        (2, "CharacterAI-1-B", PENDING, 0),
    ]
    entries = list_queue(qfile)
    assert [e.project for e in entries] == [str(projects[0]), str(projects[1])]
    assert all(e.added is not None and e.added.tzinfo is not None for e in entries)
    # The file is plain TOML with one [[entries]] table per run.
    data = tomllib.loads(qfile.read_text(encoding="utf-8"))
    assert data["schema_version"] == 1 and data["next_id"] == 3
    assert data["entries"][1]["project"] == str(projects[1])
    assert not [p.name for p in qfile.parent.iterdir() if p.name.endswith(".tmp")]


def test_add_a_sweep_manifest_adds_every_run(tmp_path: Path, qfile: Path) -> None:
    from kohya_recipe.recipe.loading import load_recipe

    recipe = load_recipe(write_recipe(tmp_path))
    sweep = write_sweep(recipe, parse_grid(["network_alpha=48,72", "max_train_epochs=8,10"]), tmp_path / "sw")
    added = add_to_queue([sweep.path], qfile).added
    assert [e.name for e in added] == ["CharacterAI-1-A", "CharacterAI-1-B", "CharacterAI-1-C", "CharacterAI-1-D"]
    assert {e.sweep for e in added} == {str(sweep.path)}
    assert added[2].project == str(tmp_path / "sw" / "CharacterAI-1-C")
    # The folder holding sweep.toml works too; those runs are already queued, so nothing is added twice.
    again = add_to_queue([tmp_path / "sw"], qfile)
    assert again.added == []
    assert [(s.project, s.queued_as) for s in again.skipped] == [(e.project, e.id) for e in added]


def test_a_project_is_queued_once_while_it_still_has_work(projects: list[Path], qfile: Path) -> None:
    add_to_queue([projects[0]], qfile)
    result = add_to_queue([projects[0], projects[1], projects[1]], qfile)
    assert [e.name for e in result.added] == ["CharacterAI-1-B"]
    assert [(s.project, s.queued_as) for s in result.skipped] == [(str(projects[0]), 1), (str(projects[1]), 2)]


def test_a_finished_project_can_be_queued_again(projects: list[Path], qfile: Path) -> None:
    add_to_queue([projects[0]], qfile)
    run_queue(qfile, train=FakeTrain({"CharacterAI-1-A": "failed"}))
    again = add_to_queue([projects[0]], qfile)
    assert [e.id for e in again.added] == [2]
    assert [e.status for e in list_queue(qfile)] == [FAILED, PENDING]


def test_add_checks_every_path_before_writing(projects: list[Path], qfile: Path, tmp_path: Path) -> None:
    with pytest.raises(KohyaRecipeError) as exc:
        add_to_queue([projects[0], tmp_path / "missing"], qfile)
    assert str(exc.value) == f"{tmp_path / 'missing'}: no such project folder or sweep manifest"
    assert not qfile.exists()
    (tmp_path / "plain").mkdir()
    with pytest.raises(KohyaRecipeError, match=r"plain: not a kohya-recipe project \(no resolved-recipe\.toml\)"):
        add_to_queue([tmp_path / "plain"], qfile)
    assert not qfile.exists()


def test_add_a_toml_that_is_not_a_sweep_manifest(projects: list[Path], qfile: Path) -> None:
    with pytest.raises(KohyaRecipeError, match=r"config\.toml: not a sweep manifest written by `kohya-recipe sweep`"):
        add_to_queue([projects[0] / "config.toml"], qfile)


def test_ids_are_never_reused(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:2], qfile)
    assert [e.id for e in remove_from_queue([2], qfile)] == [2]
    assert [e.id for e in add_to_queue([projects[2]], qfile).added] == [3]


def test_remove_unknown_id(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:2], qfile)
    with pytest.raises(QueueError) as exc:
        remove_from_queue([1, 7], qfile)
    assert str(exc.value) == f"{qfile}: no entry #7 (ids in the queue: 1, 2)"
    assert [e.id for e in list_queue(qfile)] == [1, 2]  # all or nothing


def test_remove_refuses_an_entry_a_live_runner_trains(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:1], qfile)
    with Queue(qfile).edit() as state:
        state.entries[0].status = RUNNING
        state.entries[0].pid = os.getpid()
        state.entries[0].host = socket.gethostname()
        state.entries[0].gpus = []
    held = GpuLock(qfile.absolute(), [])
    assert held.try_acquire()  # what a live `queue run` holds while it trains
    try:
        with pytest.raises(QueueError, match=r"#1 CharacterAI-1-A is being trained by `queue run` \(pid \d+\)"):
            remove_from_queue([1], qfile)
    finally:
        held.release()
    # Once that runner is gone (its lock freed by the kernel) the entry can be removed.
    assert [e.id for e in remove_from_queue([1], qfile)] == [1]
