"""The Event protobuf decoder's generic path: every way TensorBoard's writers store a scalar, checked against
protobuf's own serialiser (the fast path for torch's layout is tested in test_events.py)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from kohya_recipe.report.proto import decode_event, encode_file_version_event, encode_scalar_event


def tensor_event(**tensor: Any) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2

    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    value = summary_pb2.Summary.Value(tag="t", tensor=tensor_pb2.TensorProto(**tensor), metadata=meta)
    return event_pb2.Event(wall_time=1.5, step=7, summary=summary_pb2.Summary(value=[value])).SerializeToString()


def shape(*sizes: int) -> Any:
    from tensorboard.compat.proto import tensor_shape_pb2

    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in sizes])


def half_bits(value: float) -> int:
    return int(struct.unpack("<H", struct.pack("<e", value))[0])


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        ({"dtype": "DT_FLOAT", "float_val": [0.75]}, 0.75),
        ({"dtype": "DT_DOUBLE", "double_val": [0.125]}, 0.125),
        ({"dtype": "DT_FLOAT", "tensor_content": struct.pack("<f", 0.5)}, 0.5),
        ({"dtype": "DT_DOUBLE", "tensor_content": struct.pack("<d", 0.25)}, 0.25),
        ({"dtype": "DT_HALF", "half_val": [half_bits(1.5)]}, 1.5),
        ({"dtype": "DT_HALF", "tensor_content": struct.pack("<e", 2.0)}, 2.0),
        ({"dtype": "DT_BFLOAT16", "tensor_content": struct.pack("<f", 3.0)[2:]}, 3.0),
        ({"dtype": "DT_FLOAT", "float_val": [1.0], "tensor_shape": shape(1, 1)}, 1.0),
        ({"dtype": "DT_FLOAT", "float_val": [1.0, 2.0], "tensor_shape": shape(2)}, None),  # not a scalar
        ({"dtype": "DT_INT32", "int_val": [3]}, None),  # not a float
    ],
)
def test_tensor_scalars(tensor: dict[str, Any], expected: float | None) -> None:
    wall, step, values, version = decode_event(tensor_event(**tensor))
    assert (wall, step, version) == (1.5, 7, None)
    assert values == ([] if expected is None else [("t", expected)])


def test_simple_value_and_file_version() -> None:
    assert decode_event(encode_scalar_event("loss/current", 0, 0.5, 2.0)) == (2.0, 0, [("loss/current", 0.5)], None)
    assert decode_event(encode_file_version_event(3.0)) == (3.0, 0, [], "brain.Event:2")


def test_negative_step_is_int64() -> None:
    assert decode_event(encode_scalar_event("x", -2, 1.0, 1.0))[1] == -2
