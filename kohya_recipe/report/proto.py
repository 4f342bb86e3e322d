"""The ``tensorboard.Event`` protobuf, decoded (and, for tests and benchmarks, encoded) in pure Python.

:func:`decode_event` is the generic path of the event reader: any Event layout, scalar summaries only. The
reader's fast path (:func:`kohya_recipe.report.events.parse_event_bytes`) decodes torch's one-scalar layout
straight from the bytes and sends everything else here.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable

_d = struct.Struct("<d")
_f = struct.Struct("<f")


class Malformed(Exception):
    """Bytes that are not a well-formed protobuf message."""


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise Malformed("bad varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterable[tuple[int, int, object]]:
    """(field number, wire type, value) for each field; length-delimited values are bytes."""
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: object
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise Malformed("short fixed64")
            value = buf[pos : pos + 8]
            pos += 8
        elif wire == 2:
            size, pos = varint(buf, pos)
            if pos + size > n:
                raise Malformed("short bytes")
            value = buf[pos : pos + size]
            pos += size
        elif wire == 5:
            if pos + 4 > n:
                raise Malformed("short fixed32")
            value = buf[pos : pos + 4]
            pos += 4
        else:
            raise Malformed(f"wire type {wire}")
        yield number, wire, value


# tensorflow/core/framework/types.proto
_DT_FLOAT, _DT_DOUBLE, _DT_HALF, _DT_BFLOAT16 = 1, 2, 19, 14


class _Tensor:
    """The fields of a ``TensorProto`` (tensorflow/core/framework/tensor.proto) that a scalar can be in."""

    __slots__ = ("content", "dims", "dtype", "floats", "halves")

    def __init__(self) -> None:
        self.dtype = 0
        self.dims: list[int] = []
        self.content = b""
        self.floats: list[float] = []
        self.halves: list[int] = []


def _read_tensor(buf: bytes) -> _Tensor:
    t = _Tensor()
    for number, wire, value in fields(buf):
        if number == 1 and wire == 0:
            t.dtype = int(value)  # type: ignore[call-overload]
        elif number == 2 and wire == 2:
            t.dims += _tensor_dims(value)  # type: ignore[arg-type]
        elif number == 4 and wire == 2:
            t.content = value  # type: ignore[assignment]
        elif number == 5:  # float_val: packed (wire 2) or one fixed32 (wire 5), both bytes here
            t.floats.extend(x for (x,) in struct.iter_unpack("<f", value))  # type: ignore[arg-type]
        elif number == 6:  # double_val
            t.floats.extend(x for (x,) in struct.iter_unpack("<d", value))  # type: ignore[arg-type]
        elif number == 13:  # half_val: float16 bits in int32 varints
            t.halves += _half_bits(value, wire)
    return t


def _tensor_dims(shape: bytes) -> list[int]:
    """The dim sizes of a ``TensorShapeProto``."""
    dims = []
    for number, wire, dim in fields(shape):
        if number == 2 and wire == 2:
            size = 1
            for n2, w2, v2 in fields(dim):  # type: ignore[arg-type]
                if n2 == 1 and w2 == 0:
                    size = int(v2)  # type: ignore[call-overload]
            dims.append(size)
    return dims


def _half_bits(value: object, wire: int) -> list[int]:
    if wire == 0:
        return [int(value)]  # type: ignore[call-overload]
    if wire != 2:
        return []
    raw: bytes = value  # type: ignore[assignment]
    out = []
    pos = 0
    while pos < len(raw):
        v, pos = varint(raw, pos)
        out.append(v)
    return out


def _tensor_scalar(buf: bytes) -> float | None:
    """The value of a one-element float tensor (TensorBoard's "new style" scalar), else None."""
    t = _read_tensor(buf)
    if math.prod(t.dims) != 1:
        return None
    if t.dtype in (_DT_FLOAT, _DT_DOUBLE):
        if t.floats:
            return t.floats[0]
        size, fmt = (4, _f) if t.dtype == _DT_FLOAT else (8, _d)
        return float(fmt.unpack(t.content)[0]) if len(t.content) == size else None
    if t.dtype == _DT_HALF:
        if t.halves:
            return float(struct.unpack("<e", struct.pack("<H", t.halves[0] & 0xFFFF))[0])
        return float(struct.unpack("<e", t.content)[0]) if len(t.content) == 2 else None
    if t.dtype == _DT_BFLOAT16 and len(t.content) == 2:
        return float(_f.unpack(b"\x00\x00" + t.content)[0])
    return None


def _is_scalar_metadata(buf: bytes) -> bool:
    """SummaryMetadata marks a scalar with plugin "scalars" or data_class DATA_CLASS_SCALAR (1)."""
    plugin = b""
    data_class = 0
    for number, wire, value in fields(buf):
        if number == 1 and wire == 2:
            for n2, w2, v2 in fields(value):  # type: ignore[arg-type]
                if n2 == 1 and w2 == 2:
                    plugin = v2  # type: ignore[assignment]
        elif number == 4 and wire == 0:
            data_class = int(value)  # type: ignore[call-overload]
    return plugin in (b"", b"scalars") or data_class == 1


def decode_event(payload: bytes) -> tuple[float, int, list[tuple[str, float]], str | None]:
    """Decode any Event payload: ``(wall_time, step, [(tag, value), ...], file_version)``.

    Only scalar summaries are returned: ``simple_value`` (what torch and tensorboardX write) and one-element float
    tensors (TensorBoard's newer scalar summaries). Raises ValueError on bytes that are not an Event.
    """
    wall = 0.0
    step = 0
    version: str | None = None
    values: list[tuple[str, float]] = []
    try:
        for number, wire, value in fields(payload):
            if number == 1 and wire == 1:
                wall = _d.unpack(value)[0]  # type: ignore[arg-type]
            elif number == 2 and wire == 0:
                step = int(value)  # type: ignore[call-overload]
                if step >= 1 << 63:  # int64 two's complement
                    step -= 1 << 64
            elif number == 3 and wire == 2:
                version = bytes(value).decode("utf-8", "replace")  # type: ignore[call-overload]
            elif number == 5 and wire == 2:
                values += _summary_scalars(value)  # type: ignore[arg-type]
    except (Malformed, struct.error) as exc:
        raise ValueError(f"not a TensorBoard Event ({exc})") from None
    return wall, step, values, version


def _summary_scalars(summary: bytes) -> list[tuple[str, float]]:
    """``(tag, value)`` of each scalar ``Summary.Value``."""
    out = []
    for number, wire, value in fields(summary):
        if number == 1 and wire == 2:
            scalar = _summary_value(value)  # type: ignore[arg-type]
            if scalar is not None:
                out.append(scalar)
    return out


def _summary_value(buf: bytes) -> tuple[str, float] | None:
    tag = ""
    simple: float | None = None
    tensor: bytes | None = None
    scalar_meta = True
    for number, wire, value in fields(buf):
        if number == 1 and wire == 2:
            tag = bytes(value).decode("utf-8", "replace")  # type: ignore[call-overload]
        elif number == 2 and wire == 5:
            simple = _f.unpack(value)[0]  # type: ignore[arg-type]
        elif number == 8 and wire == 2:
            tensor = value  # type: ignore[assignment]
        elif number == 9 and wire == 2:
            scalar_meta = _is_scalar_metadata(value)  # type: ignore[arg-type]
    if simple is not None:
        return tag, simple
    if tensor is not None and scalar_meta:
        t = _tensor_scalar(tensor)
        if t is not None:
            return tag, t
    return None


# --- encoding (tests, benchmarks, fixtures) -----------------------------------------------------------------------


def _enc_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(number: int, data: bytes) -> bytes:
    return _enc_varint(number << 3 | 2) + _enc_varint(len(data)) + data


def encode_scalar_event(tag: str, step: int, value: float, wall_time: float) -> bytes:
    """An Event payload laid out exactly as torch's SummaryWriter.add_scalar writes it (step 0 omitted, proto3)."""
    out = b"\x09" + _d.pack(wall_time)
    if step:
        out += b"\x10" + _enc_varint(step)
    val = _len_field(1, tag.encode()) + b"\x15" + _f.pack(value)
    return out + _len_field(5, _len_field(1, val))


def encode_file_version_event(wall_time: float, version: str = "brain.Event:2") -> bytes:
    return b"\x09" + _d.pack(wall_time) + _len_field(3, version.encode())
