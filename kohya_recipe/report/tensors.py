"""Are a checkpoint's weights finite? A cheap scan of a safetensors file's raw tensor bytes: no torch, no numpy.

A run that diverged (too high a learning rate, an fp16 overflow) saves LoRA files whose weights are NaN or
infinite; A1111 then draws noise or black images. Before the report recommends a file it scans the file's float
tensors (the header gives each one's dtype and byte range, :mod:`kohya_recipe.report.safetensors_meta`).

How, without decoding a single float: in IEEE formats a value is NaN or infinite exactly when its exponent bits
are all ones, and those bits sit in the value's most significant (last, little-endian) byte and, for all but
fp16, the top of the byte before it. ``bytes[k::size]`` picks out every value's last byte at C speed and
``bytes.translate`` deletes those that cannot be NaN/inf; the few candidates left (values beyond ±2^127, or
really NaN/inf) are then checked exactly. A 1.3 MB LoRA takes ~1 ms; benchmarks/bench_report.py compares the
scan with numpy's ``isfinite`` on a full-size file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kohya_recipe.report.safetensors_meta import SafetensorsError, SafetensorsHeader, read_header

CHUNK = 8 << 20  # bytes read at a time: a tensor of hundreds of MB is scanned in pieces


@dataclass(frozen=True)
class _Layout:
    """Where a float's exponent bits are: its top byte (``size - 1``) under ``top`` and the byte before it under
    ``next``; all those bits set means NaN or infinity."""

    size: int
    top: int
    next: int

    def candidates(self) -> bytes:
        """The top-byte values that may be NaN/inf (deleted from a copy, everything else goes)."""
        return bytes(b for b in range(256) if b & self.top != self.top)


# safetensors dtype names (safetensors/src/tensor.rs Dtype)
LAYOUTS = {
    "F16": _Layout(2, 0x7C, 0x00),  # 1 sign, 5 exponent bits: all in the top byte
    "BF16": _Layout(2, 0x7F, 0x80),  # 8 exponent bits: 7 in the top byte, 1 in the next
    "F32": _Layout(4, 0x7F, 0x80),
    "F64": _Layout(8, 0x7F, 0xF0),  # 11 exponent bits: 7 + 4
}
_NOT_CANDIDATE = {name: layout.candidates() for name, layout in LAYOUTS.items()}
_CANDIDATE = {
    name: re.compile(b"[" + re.escape(bytes(b for b in range(256) if b & layout.top == layout.top)) + b"]")
    for name, layout in LAYOUTS.items()
}


@dataclass
class TensorScan:
    """What the scan of one file found. ``non_finite``: names of the tensors holding NaN or infinity."""

    path: Path
    scanned: int = 0  # float tensors scanned
    non_finite: list[str] = field(default_factory=list)
    not_scanned: list[str] = field(default_factory=list)  # dtypes with no NaN (integers) or not known here
    truncated: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.non_finite and not self.truncated and self.error is None

    @property
    def problem(self) -> str | None:
        """Why the file must not be recommended, in one phrase; None when its weights are sound."""
        if self.error is not None:
            return f"cannot read its weights ({self.error})"
        if self.truncated:
            return "the file is truncated: its weights are incomplete"
        if self.non_finite:
            n = len(self.non_finite)
            return (
                f"its weights hold NaN/inf in {n} of {self.scanned} tensors (first: {self.non_finite[0]}): "
                "the LoRA is broken"
            )
        return None


def _has_non_finite(data: bytes, dtype: str) -> bool:
    layout = LAYOUTS[dtype]
    tops = data[layout.size - 1 :: layout.size]
    if not tops.translate(None, _NOT_CANDIDATE[dtype]):
        return False
    if layout.next == 0:
        return True  # fp16: the top byte holds every exponent bit
    for m in _CANDIDATE[dtype].finditer(tops):
        if data[m.start() * layout.size + layout.size - 2] & layout.next == layout.next:
            return True
    return False


def scan_tensors(path: str | Path, header: SafetensorsHeader | None = None) -> TensorScan:
    """Scan the float tensors of the safetensors file ``path`` for NaN and infinity (``header``: already read)."""
    path = Path(path)
    result = TensorScan(path=path)
    try:
        header = header if header is not None else read_header(path)
    except SafetensorsError as exc:
        result.error = exc.message
        return result
    start = 8 + header.header_size
    data_len = header.file_size - start
    try:
        with path.open("rb") as fh:
            for name, info in sorted(header.tensors.items(), key=lambda kv: kv[1].data_offsets[0]):
                begin, end = info.data_offsets
                if end > data_len or begin > end:
                    result.truncated = True
                    continue
                if info.dtype not in LAYOUTS:
                    result.not_scanned.append(info.dtype)
                    continue
                result.scanned += 1
                if _scan_range(fh, start + begin, end - begin, info.dtype):
                    result.non_finite.append(name)
    except OSError as exc:
        result.error = exc.strerror or str(exc)
    result.not_scanned = sorted(set(result.not_scanned))
    return result


def _scan_range(fh: BinaryIO, offset: int, length: int, dtype: str) -> bool:
    """Whether the ``length`` bytes at ``offset`` hold a NaN/inf ``dtype`` value (read in aligned chunks)."""
    size = LAYOUTS[dtype].size
    step = CHUNK - CHUNK % size
    fh.seek(offset)
    done = 0
    while done < length:
        data = fh.read(min(step, length - done))
        if not data:
            return False
        if _has_non_finite(data, dtype):
            return True
        done += len(data)
    return False
