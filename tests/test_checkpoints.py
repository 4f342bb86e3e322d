"""Epoch -> checkpoint file mapping, on the real runs (tests/data/runs, from shared/fixtures/sd-scripts-runs) and
on generated folders for the naming cases the fixtures do not show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _report_util import materialise_runs, write_safetensors

from kohya_recipe.report.checkpoints import scan_checkpoints


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return materialise_runs(tmp_path_factory.mktemp("runs"))


def names(cset) -> dict[int, str]:  # type: ignore[no-untyped-def]
    return {e: cp.path.name for e, cp in cset.by_epoch().items()}


def test_article_mini_final_file_is_the_last_epoch(runs: Path) -> None:
    cset = scan_checkpoints(runs / "article-mini" / "model")
    assert cset.output_name == "testchar-1-A"
    assert names(cset) == {
        1: "testchar-1-A-000001.safetensors",
        2: "testchar-1-A-000002.safetensors",
        3: "testchar-1-A-000003.safetensors",
        4: "testchar-1-A.safetensors",
    }
    final = cset.final
    assert final is not None and final.kind == "final" and final.epoch == 4 and final.confirmed
    assert [cp.ss_steps for cp in cset.by_epoch().values()] == [12, 24, 36, 48]
    assert all(cp.confirmed for cp in cset.by_epoch().values())
    assert cset.num_epochs == 4 and cset.warnings == []


def test_interrupted_has_no_final(runs: Path) -> None:
    cset = scan_checkpoints(runs / "interrupted" / "model")
    assert cset.final is None
    assert sorted(cset.by_epoch()) == [1, 2, 3]
    assert cset.num_epochs == 20


def test_validation_and_resume(runs: Path) -> None:
    assert names(scan_checkpoints(runs / "validation" / "model")) == {
        1: "testchar-1-B-000001.safetensors",
        2: "testchar-1-B-000002.safetensors",
        3: "testchar-1-B.safetensors",
    }
    # The resumed project holds only the final file (ss_epoch 3, ss_steps 8: global_step restarted) and state
    # folders, whose model.safetensors are not checkpoints.
    cset = scan_checkpoints(runs / "resume" / "model")
    assert names(cset) == {3: "testchar-1-B.safetensors"}
    assert cset.final is not None and cset.final.ss_steps == 8


def test_step_files_and_explicit_name(tmp_path: Path) -> None:
    meta = {"ss_num_epochs": "3"}
    for e in (1, 2):
        write_safetensors(tmp_path / f"run-{e:06d}.safetensors", {**meta, "ss_epoch": str(e), "ss_steps": str(4 * e)})
    write_safetensors(tmp_path / "run.safetensors", {**meta, "ss_epoch": "3", "ss_steps": "12"})
    write_safetensors(tmp_path / "run-step00000004.safetensors", {**meta, "ss_epoch": "0", "ss_steps": "4"})
    write_safetensors(tmp_path / "other-000001.safetensors", {"ss_epoch": "1"})
    cset = scan_checkpoints(tmp_path, "run")
    assert names(cset) == {1: "run-000001.safetensors", 2: "run-000002.safetensors", 3: "run.safetensors"}
    assert [(c.number, c.epoch) for c in cset.step_files] == [(4, None)]  # step files carry a 0-based ss_epoch
    assert cset.other_names == ["other"]


def test_default_names_without_output_name(tmp_path: Path) -> None:
    # library/train_util.py DEFAULT_EPOCH_NAME, DEFAULT_STEP_NAME, DEFAULT_LAST_OUTPUT_NAME
    write_safetensors(tmp_path / "epoch-000001.safetensors", {"ss_epoch": "1", "ss_num_epochs": "2"})
    write_safetensors(tmp_path / "last.safetensors", {"ss_epoch": "2", "ss_num_epochs": "2"})
    write_safetensors(tmp_path / "at-step00000004.safetensors", {"ss_epoch": "0"})
    cset = scan_checkpoints(tmp_path)
    assert cset.output_name == "epoch"
    assert names(cset) == {1: "epoch-000001.safetensors", 2: "last.safetensors"}
    assert len(cset.step_files) == 1


def test_only_a_final_file(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "solo.safetensors", {"ss_epoch": "8", "ss_num_epochs": "8"})
    cset = scan_checkpoints(tmp_path)
    assert cset.output_name == "solo" and names(cset) == {8: "solo.safetensors"}


def test_several_runs_in_one_folder(tmp_path: Path) -> None:
    old = write_safetensors(tmp_path / "A-1-A-000001.safetensors", {"ss_epoch": "1"})
    os.utime(old, (1000, 1000))
    write_safetensors(tmp_path / "A-1-B-000001.safetensors", {"ss_epoch": "1"})
    cset = scan_checkpoints(tmp_path)
    assert cset.output_name == "A-1-B"
    assert "checkpoints of several runs (A-1-A, A-1-B); showing 'A-1-B', the newest" in cset.warnings[0]


def test_mismatched_epoch_and_bad_files(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "r-000001.safetensors", {"ss_epoch": "2"})
    (tmp_path / "r-000002.safetensors").write_bytes(b"PK\x03\x04 not safetensors")
    write_safetensors(tmp_path / "r-000003.safetensors", {"ss_network_dim": "4"})
    (tmp_path / "r.ckpt").write_bytes(b"\x80\x04pickle")
    cset = scan_checkpoints(tmp_path, "r")
    text = "\n".join(cset.warnings)
    assert "r-000001.safetensors: the name says epoch 1 but its metadata says ss_epoch=2" in text
    assert "r-000002.safetensors: not a safetensors file" in text
    assert "r-000003.safetensors: no ss_epoch in its metadata (saved with --no_metadata?)" in text
    assert "r.ckpt: saved as .ckpt, which has no metadata" in text
    assert not cset.epoch_files[1].confirmed and not cset.epoch_files[2].confirmed
    assert cset.final is not None and cset.final.epoch is None
    assert "the final file has no ss_epoch/ss_num_epochs" in text


def test_missing_folder(tmp_path: Path) -> None:
    cset = scan_checkpoints(tmp_path / "model")
    assert cset.by_epoch() == {} and "no checkpoint folder" in cset.warnings[0]
