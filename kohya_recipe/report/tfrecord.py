"""TFRecord framing of TensorBoard event files: the masked CRC-32C, record headers, and finding the next record.

An event file is a TFRecord stream: ``[u64 length][u32 masked CRC-32C of length][payload][u32 masked CRC-32C of
payload]``, as TensorBoard's ``tensorboard/summary/writer/record_writer.py`` ``RecordWriter.write`` writes it,
with the CRC masked as in ``tensorboard/compat/tensorflow_stub/pywrap_tensorflow.py`` ``masked_crc32c``. This
module owns the framing and its checksums; :mod:`kohya_recipe.report.proto` decodes the payloads
and :mod:`kohya_recipe.report.events` reads whole files.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

_Q = struct.Struct("<Q")
_I = struct.Struct("<I")
MASK_DELTA = 0xA282EAD8
U32 = 0xFFFFFFFF


# --- CRC-32C ------------------------------------------------------------------------------------------------------


def _make_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE: list[int] | None = None


def crc32c_py(data: bytes) -> int:
    """CRC-32C (Castagnoli) in pure Python: the fallback when google-crc32c is not installed (~10x slower)."""
    global _TABLE
    table = _TABLE
    if table is None:
        table = _TABLE = _make_table()
    crc = U32
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ U32


def _load_crc() -> Callable[[bytes], int]:
    # google-crc32c is a C CRC with SSE4.2 and imports in ~2.5 ms (measured); its own fallback is pure Python
    # too, so ours is used only when the C extension is missing.
    try:
        import google_crc32c
    except ImportError:  # pragma: no cover - depends on the installation
        return crc32c_py
    if getattr(google_crc32c, "implementation", "c") != "c":  # pragma: no cover
        return crc32c_py
    return google_crc32c.value  # type: ignore[no-any-return]


crc32c: Callable[[bytes], int] = _load_crc()


def masked_crc32c(data: bytes, crc: Callable[[bytes], int] | None = None) -> int:
    """TFRecord's masked CRC: rotate right by 15 and add a constant (so a CRC of CRCs is not trivially 0)."""
    c = (crc or crc32c)(data)
    return (((c >> 15) | (c << 17)) + MASK_DELTA) & U32


# --- records ------------------------------------------------------------------------------------------------------


def header_ok(buf: bytes, off: int, crc: Callable[[bytes], int]) -> bool:
    return masked_crc32c(buf[off : off + 8], crc) == _I.unpack_from(buf, off + 8)[0]


def resync(buf: bytes, start: int, crc: Callable[[bytes], int]) -> int | None:
    """The next offset >= start where a whole record checks (or a checked header runs into the end of the file).

    Every Event serialiser writes field 1 (wall_time, tag byte 0x09) first, so candidates are found with
    ``bytes.find`` instead of trying a CRC at every byte of a damaged stretch.
    """
    n = len(buf)
    pos = start + 12
    while True:
        i = buf.find(b"\x09", pos)
        if i < 0:
            return None
        pos = i + 1
        cand = i - 12
        if buf[cand + 4 : cand + 8] != b"\x00\x00\x00\x00":  # an event is never 4 GiB long
            continue
        if not header_ok(buf, cand, crc):
            continue
        length = _Q.unpack_from(buf, cand)[0]
        end = cand + 12 + length
        if end + 4 > n:
            return cand  # a checked header whose record is cut off: the caller reports the truncated tail
        if masked_crc32c(buf[cand + 12 : end], crc) == _I.unpack_from(buf, end)[0]:
            return cand


def encode_record(payload: bytes) -> bytes:
    """Frame one payload as a TFRecord with masked CRC-32C of the length and of the payload."""
    header = _Q.pack(len(payload))
    return header + _I.pack(masked_crc32c(header)) + payload + _I.pack(masked_crc32c(payload))
