"""Header-only safetensors reading, on the real sd-scripts checkpoints' headers (tests/data/runs, from
shared/fixtures/sd-scripts-runs) and on broken files."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
from _report_util import materialise_runs, write_safetensors

from kohya_recipe.report.safetensors_meta import (
    SafetensorsError,
    format_summary,
    lora_summary,
    read_header,
    read_metadata,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return materialise_runs(tmp_path_factory.mktemp("runs"), ("article-mini", "validation"))


def test_real_final_file(runs: Path) -> None:
    h = read_header(runs / "article-mini" / "model" / "testchar-1-A.safetensors")
    assert h.metadata["ss_epoch"] == "4" and h.metadata["ss_steps"] == "48"
    assert len(h.tensors) == 792  # 264 modules x (down, up, alpha): networks/lora.py LoRAModule
    assert h.warnings == []
    s = lora_summary(h)
    assert s["network_dim"] == 1 and s["network_alpha"] == 0.75 and s["rank_from_weights"] == 1
    assert s["modules"] == 264 and s["trains_text_encoder"] and s["trains_unet"]
    assert s["dtypes"] == ["F16"]  # save_precision = "fp16" in the run's config.toml
    assert (s["epoch"], s["steps"], s["num_epochs"]) == (4, 48, 4)
    assert h.metadata["ss_resolution"] == "(64, 64)" and s["resolution"] == "64x64"  # as in dataset_config mode
    assert s["tag_frequency_top"][0] == ("1girl", 6)
    assert s["dataset_dirs"] == {"2_testchar woman": {"n_repeats": 2, "img_count": 6}}
    assert s["warnings"] == []


def test_dataset_config_resolution_comes_from_ss_datasets(runs: Path) -> None:
    # modelspec.resolution says 512x512 in dataset_config mode; the trained resolution is in ss_datasets.
    h = read_header(runs / "validation" / "model" / "testchar-1-B.safetensors")
    assert h.metadata["modelspec.resolution"] == "512x512"
    assert lora_summary(h)["resolution"] == "64x64"
    assert lora_summary(h)["batch_size"] == 1


def test_format_summary(runs: Path) -> None:
    h = read_header(runs / "article-mini" / "model" / "testchar-1-A-000002.safetensors")
    text = format_summary(lora_summary(h))
    assert "dim / alpha          1 / 0.75" in text
    assert "epoch                2 of 4, step 24" in text
    assert "2_testchar woman: 6 images x 2 repeats" in text
    assert "1girl (6)" in text
    full = format_summary(lora_summary(h), h.metadata)
    assert "    ss_session_id = " in full and full.count("\n    ss_") >= 80


def test_rank_from_weights_when_dim_is_none(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "x.safetensors", {"ss_network_dim": "None", "ss_epoch": "1"})
    s = lora_summary(read_header(path))
    assert s["network_dim"] is None and s["rank_from_weights"] == 4
    assert "weights have rank 4" in format_summary(s)


def test_no_metadata(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "x.safetensors", None)
    assert read_metadata(path) == {}
    assert "no metadata in the header" in lora_summary(read_header(path))["warnings"][0]


def test_summary_of_a_header_without_tensors_or_steps(tmp_path: Path) -> None:
    raw = json.dumps({"__metadata__": {"ss_epoch": "3"}}).encode()
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    text = format_summary(lora_summary(read_header(path)))
    assert "  epoch                3\n" in text + "\n"
    assert "trains" not in text and "None" not in text.split("dim / alpha")[1].split("\n", 1)[1]


def test_metadata_without_epoch(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "x.safetensors", {"ss_network_dim": "8"})
    assert "--no_metadata" in lora_summary(read_header(path))["warnings"][0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "only 0 bytes"),
        (b"\x01\x02", "only 2 bytes"),
        (pickle.dumps({"a": 1}) + b"\0" * 20, "not a safetensors file: the first 8 bytes give a header of"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "not UTF-8 JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
        (struct.pack("<Q", 12) + b'{"t": {"a":1}}'[:12], "not UTF-8 JSON"),
    ],
)
def test_not_safetensors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(SafetensorsError, match=message) as info:
        read_header(path)
    assert str(path) in str(info.value)


def test_malformed_tensor_entry(tmp_path: Path) -> None:
    raw = json.dumps({"t": {"dtype": "F16"}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(SafetensorsError, match="tensor 't' has a malformed entry"):
        read_header(path)


def test_truncated_body_is_a_warning(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "x.safetensors", {"ss_epoch": "1"})
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    h = read_header(path)
    assert "file is truncated" in h.warnings[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SafetensorsError, match="cannot read"):
        read_header(tmp_path / "nope.safetensors")


def test_a_deeply_nested_header_is_one_line(tmp_path: Path) -> None:
    """Issue 14: a header of 100,000 nested lists was a RecursionError traceback in `inspect`."""
    for depth in (100_000, 65):
        raw = ('{"t": ' + "[" * depth + "]" * depth + "}").encode()
        path = tmp_path / f"deep{depth}.safetensors"
        path.write_bytes(struct.pack("<Q", len(raw)) + raw)
        with pytest.raises(SafetensorsError, match=r"the header nests more than 64 levels$"):
            read_header(path)
