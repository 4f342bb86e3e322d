"""The report's numbers for other tools (issue 15 item 9): ``kohya_recipe.read_scalars`` returns a pandas DataFrame
of every logged scalar (what tbparse gives notebook users), and the epoch table is written as CSV."""

from __future__ import annotations

import csv
import io
import math
import shutil
import sys
from pathlib import Path

import pytest
from _report_util import materialise_runs, synthetic_rows, write_run

import kohya_recipe as kr
from kohya_recipe.report.build import build_report
from kohya_recipe.report.events import read_log_dir
from kohya_recipe.report.export import EPOCH_COLUMNS, SCALAR_COLUMNS, csv_text, epoch_records
from kohya_recipe.report.model import ReportError

pd = pytest.importorskip("pandas", reason="pandas is the extra read_scalars needs: pip install 'kohya-recipe[pandas]'")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return materialise_runs(tmp_path_factory.mktemp("runs"), ("article-mini", "resume", "validation"))


def test_read_scalars_is_exported_and_matches_the_reader(runs: Path) -> None:
    df = kr.read_scalars(runs / "article-mini")
    assert list(df.columns) == list(SCALAR_COLUMNS) == ["step", "wall_time", "tag", "value", "run", "segment"]
    assert str(df["step"].dtype) == "int64" and str(df["value"].dtype) == "float64"
    log = read_log_dir(runs / "article-mini" / "log")
    (ef,) = log.files
    assert len(df) == sum(len(s) for s in ef.scalars.values()) == 244
    cur = df[df.tag == "loss/current"].sort_values("step")
    assert cur["step"].tolist() == list(ef.scalars["loss/current"].steps) == list(range(1, 49))
    assert cur["value"].tolist() == list(ef.scalars["loss/current"].values)
    assert set(df["run"]) == {"testchar-1-A"} and set(df["segment"]) == {"20261125233907/network_train"}
    epoch = df[df.tag == "loss/epoch_average"]
    assert epoch["step"].tolist() == [1, 2, 3, 4]  # step = the epoch number, as sd-scripts logs it


def test_read_scalars_of_a_sweep_and_a_filter(runs: Path, tmp_path: Path) -> None:
    for name in ("validation", "resume"):
        shutil.copytree(runs / name, tmp_path / "sweep" / name)
    df = kr.read_scalars(tmp_path / "sweep", tags=("loss/validation/",))
    assert sorted(set(df["run"])) == ["resume", "validation"]
    assert set(df["tag"]) == {"loss/validation/epoch_average", "loss/validation/epoch_divergence"}
    empty = kr.read_scalars(runs / "article-mini", tags=("nothing/",))
    assert list(empty.columns) == list(SCALAR_COLUMNS) and len(empty) == 0


def test_read_scalars_keeps_nan(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=2, steps_per_epoch=3)
    rows = [(t, s, math.nan if t == "loss/current" and s == 2 else v, w) for t, s, v, w in rows]
    write_run(tmp_path / "log", rows)
    df = kr.read_scalars(tmp_path / "log", tags=("loss/current",))
    assert df["value"].isna().tolist() == [False, True, False, False, False, False]


def test_read_scalars_without_pandas(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ReportError) as info:
        kr.read_scalars(runs / "article-mini")
    assert str(info.value) == "read_scalars needs pandas, which is not installed: pip install 'kohya-recipe[pandas]'"


def test_csv_of_a_sweep_reads_back_with_pandas(runs: Path, tmp_path: Path) -> None:
    for name in ("article-mini", "validation"):
        shutil.copytree(runs / name, tmp_path / "sweep" / name)
    rep = build_report(tmp_path / "sweep")
    text = csv_text(rep)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(EPOCH_COLUMNS)
    assert [(r["run"], r["epoch"]) for r in rows] == [
        ("article-mini", "1"),
        ("article-mini", "2"),
        ("article-mini", "3"),
        ("article-mini", "4"),
        ("validation", "1"),
        ("validation", "2"),
        ("validation", "3"),
    ]
    assert [r["tied"] for r in rows[4:]] == ["True"] * 3  # the validation fixture's three-way tie
    df = pd.read_csv(io.StringIO(text))
    records = epoch_records(rep)
    assert df["loss"].tolist() == [r["loss"] for r in records]  # floats written in full (repr), read back exactly


def test_csv_writes_nan_as_nan(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=2, steps_per_epoch=3)
    rows = [(t, s, math.nan if t == "loss/epoch_average" and s == 2 else v, w) for t, s, v, w in rows]
    write_run(tmp_path / "run" / "log", rows)
    text = csv_text(build_report(tmp_path / "run"))
    second = list(csv.DictReader(io.StringIO(text)))[1]
    assert second["loss"] == "nan" and second["rank"] == ""
