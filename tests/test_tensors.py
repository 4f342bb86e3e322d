"""The NaN/inf scan of a safetensors file's weights (kohya_recipe.report.tensors): exact for every fp16 and bf16
bit pattern, right for fp32/fp64 specials, across chunk boundaries, and on damaged files."""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path

import pytest
from _report_util import materialise_run, write_safetensors

import kohya_recipe.report.tensors as tensors
from kohya_recipe.report.tensors import _has_non_finite, scan_tensors


def _write(path: Path, blobs: dict[str, tuple[str, bytes]], *, cut: int = 0) -> Path:
    """A safetensors file holding ``name -> (dtype, raw bytes)``; ``cut`` bytes chopped off the end."""
    header: dict[str, object] = {}
    off = 0
    for name, (dtype, raw) in blobs.items():
        header[name] = {"dtype": dtype, "shape": [len(raw)], "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    head = json.dumps(header).encode()
    data = struct.pack("<Q", len(head)) + head + b"".join(raw for _d, raw in blobs.values())
    path.write_bytes(data[: len(data) - cut] if cut else data)
    return path


def test_every_fp16_pattern() -> None:
    for bits in range(1 << 16):
        raw = struct.pack("<H", bits)
        expected = not math.isfinite(struct.unpack("<e", raw)[0])
        assert _has_non_finite(raw, "F16") is expected, hex(bits)


def test_every_bf16_pattern() -> None:
    # bf16 is the top half of an fp32
    for bits in range(1 << 16):
        expected = not math.isfinite(struct.unpack("<f", struct.pack("<I", bits << 16))[0])
        assert _has_non_finite(struct.pack("<H", bits), "BF16") is expected, hex(bits)


@pytest.mark.parametrize("dtype", ["F32", "F64"])
@pytest.mark.parametrize(
    "special",
    [math.nan, math.inf, -math.inf, 3.0e38, -3.0e38, 1.7e308, 1e-45, 0.0, -0.0, 2.0**127, -(2.0**127)],
)
def test_fp32_and_fp64_values(dtype: str, special: float) -> None:
    fmt = "<f" if dtype == "F32" else "<d"
    rng = random.Random(0)
    values = [rng.gauss(0, 1) for _ in range(999)]
    try:
        packed_special = struct.pack(fmt, special)
    except OverflowError:
        packed_special = struct.pack(fmt, math.inf)
    raw = b"".join(struct.pack(fmt, v) for v in values[:500]) + packed_special + struct.pack(fmt, 1.0) * 10
    value = struct.unpack(fmt, packed_special)[0]
    assert _has_non_finite(raw, dtype) is (not math.isfinite(value))


def test_scan_names_the_broken_tensors(tmp_path: Path) -> None:
    nan16 = struct.pack("<e", math.nan)
    one16 = struct.pack("<e", 1.0)
    f = _write(
        tmp_path / "x.safetensors",
        {
            "lora_unet_a.lora_down.weight": ("F16", one16 * 64),
            "lora_unet_b.lora_up.weight": ("F16", one16 * 10 + nan16 + one16 * 5),
            "lora_unet_b.alpha": ("F32", struct.pack("<f", math.inf)),
            "lora_te_c.lora_down.weight": ("BF16", b"\x80\x3f" * 8),  # bf16 1.0
            "steps": ("I64", struct.pack("<q", -1)),  # integers hold no NaN: not scanned
        },
    )
    scan = scan_tensors(f)
    assert scan.scanned == 4 and scan.not_scanned == ["I64"]
    assert scan.non_finite == ["lora_unet_b.lora_up.weight", "lora_unet_b.alpha"]  # file order
    assert not scan.ok
    assert scan.problem == (
        "its weights hold NaN/inf in 2 of 4 tensors (first: lora_unet_b.lora_up.weight): the LoRA is broken"
    )


def test_scan_reads_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensors, "CHUNK", 64)  # a NaN at every position relative to a chunk boundary
    for pos in range(0, 200):
        raw = bytearray(struct.pack("<f", 0.5) * 50)
        if pos < 50:
            raw[pos * 4 : pos * 4 + 4] = struct.pack("<f", math.nan)
        scan = scan_tensors(_write(tmp_path / "c.safetensors", {"t": ("F32", bytes(raw))}))
        assert scan.non_finite == (["t"] if pos < 50 else []), pos


def test_truncated_and_damaged_files(tmp_path: Path) -> None:
    cut = _write(tmp_path / "cut.safetensors", {"t": ("F16", b"\x00\x3c" * 100)}, cut=10)
    scan = scan_tensors(cut)
    assert scan.truncated and scan.problem == "the file is truncated: its weights are incomplete"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04 a pickle")
    scan = scan_tensors(bad)
    assert scan.error is not None and scan.problem is not None and scan.problem.startswith("cannot read its weights")


def test_real_checkpoints_are_finite(tmp_path: Path) -> None:
    run = materialise_run("article-mini", tmp_path)  # real headers, zero bodies
    for f in sorted((run / "model").glob("*.safetensors")):
        scan = scan_tensors(f)
        assert scan.ok and scan.scanned == 792 and scan.problem is None
    ok = write_safetensors(tmp_path / "w.safetensors", {"ss_epoch": "1"})
    assert scan_tensors(ok).ok


def test_real_trained_weights_when_available() -> None:
    """The real run's full files (trained weights, not zeros), from shared/fixtures when this checkout has them."""
    real = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "sd-scripts-runs" / "article-mini" / "model"
    files = sorted(real.glob("*.safetensors"))
    if not files:
        pytest.skip(f"{real} is not here (the project tests without ../shared)")
    for f in files:
        scan = scan_tensors(f)
        assert scan.ok and scan.scanned == 792, scan
