"""The TensorBoard event reader: real sd-scripts files (tests/data/runs, from shared/fixtures/sd-scripts-runs),
files generated with our writer, and every kind of damage the issue lists."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from _report_util import DATA, RUNS, record_offsets, synthetic_rows, write_run
from hypothesis import given, settings
from hypothesis import strategies as st

from kohya_recipe.errors import EventsError
from kohya_recipe.report.events import (
    find_event_files,
    parse_event_bytes,
    read_event_file,
    read_log_dir,
    write_scalars,
)
from kohya_recipe.report.proto import decode_event, encode_scalar_event
from kohya_recipe.report.tfrecord import crc32c, crc32c_py, encode_record, masked_crc32c

STEP_TAGS = ["loss/average", "loss/current", "lr/group1", "lr/textencoder", "lr/unet"]


def fixture_file(run: str) -> Path:
    (path,) = find_event_files(DATA / run / "log")
    return path


def ea_scalars(path: Path) -> dict[str, list[tuple[int, float, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(path), size_guidance={"scalars": 0})
    ea.Reload()
    return {t: [(s.step, s.value, s.wall_time) for s in ea.Scalars(t)] for t in ea.Tags()["scalars"]}


# --- CRC ----------------------------------------------------------------------------------------------------------


def test_crc32c_known_vector() -> None:
    # The CRC-32C check value from RFC 3720 / the Castagnoli catalogue.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c_py(b"123456789") == 0xE3069283


@given(st.binary(max_size=300))
@settings(max_examples=60, deadline=None)
def test_pure_python_crc_matches_c(data: bytes) -> None:
    assert crc32c_py(data) == crc32c(data)


def test_masked_crc_matches_real_file_header() -> None:
    buf = fixture_file("article-mini").read_bytes()
    assert masked_crc32c(buf[:8]) == struct.unpack_from("<I", buf, 8)[0]


# --- real files ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", RUNS)
def test_reader_equals_event_accumulator_on_real_runs(run: str) -> None:
    path = fixture_file(run)
    ours = read_event_file(path)
    theirs = ea_scalars(path)
    assert ours.tags == sorted(theirs)
    for tag, points in theirs.items():
        assert ours.scalars[tag].points() == points, tag
    assert ours.warnings == []
    assert ours.end_offset == ours.size == path.stat().st_size
    assert ours.file_version == "brain.Event:2"


def test_article_mini_tags_and_steps() -> None:
    ef = read_event_file(fixture_file("article-mini"))
    assert ef.tags == sorted([*STEP_TAGS, "loss/epoch_average"])
    for tag in STEP_TAGS:
        assert list(ef.scalars[tag].steps) == list(range(1, 49))
    # step = epoch number for the epoch tag (train_network.py NetworkTrainer.epoch_logging)
    assert list(ef.scalars["loss/epoch_average"].steps) == [1, 2, 3, 4]
    assert ef.records == 245  # file_version + 48 * 5 + 4


def test_validation_run_has_validation_tags() -> None:
    ef = read_event_file(fixture_file("validation"))
    assert list(ef.scalars["loss/validation/epoch_average"].steps) == [1, 2, 3]
    assert list(ef.scalars["loss/validation/epoch_divergence"].steps) == [1, 2, 3]


def test_pure_python_crc_reads_the_same() -> None:
    path = fixture_file("validation")
    assert read_event_file(path, crc=crc32c_py).scalars == read_event_file(path).scalars


def test_prefix_filter_skips_other_tags() -> None:
    ef = read_event_file(fixture_file("article-mini"), prefixes=("loss/",))
    assert ef.tags == ["loss/average", "loss/current", "loss/epoch_average"]
    ef2 = read_event_file(fixture_file("article-mini"), prefixes=("lr/unet", "loss/epoch"))
    assert ef2.tags == ["loss/epoch_average", "lr/unet"]
    assert ef2.records == 245  # every record is still framed and CRC-checked


# --- writer round trip --------------------------------------------------------------------------------------------


def test_writer_round_trip_and_tensorboard_agrees(tmp_path: Path) -> None:
    rows = [
        ("loss/current", 0, 0.5, 100.0),  # step 0 is omitted on the wire (proto3), as with grad accumulation
        ("loss/current", 1, 0.25, 101.0),
        ("loss/current", 300, 0.125, 102.0),  # two-byte varint
        ("loss/current", 16383, 0.75, 102.1),  # the inlined 2- and 3-byte varint cases and their edges
        ("loss/current", 16384, 0.75, 102.2),
        ("loss/current", 2097151, 0.75, 102.3),
        ("loss/current", 2097152, 0.75, 102.4),  # four bytes: the generic varint reader
        ("loss/current", 2**40, 1.5, 103.0),  # long varint
        ("lr/d*lr/unet", 5, 1e-4, 104.0),
        ("loss/épöch", 1, 2.0, 105.0),  # non-ASCII tag
        ("x" * 200, 7, 3.0, 106.0),  # a tag too long for the fast path
    ]
    path = write_scalars(tmp_path / "events.out.tfevents.1.h.1.0", rows)
    ours = read_event_file(path)
    theirs = ea_scalars(path)
    for tag, points in theirs.items():
        assert ours.scalars[tag].points() == points
    assert ours.scalars["loss/current"].points() == [
        (0, 0.5, 100.0),
        (1, 0.25, 101.0),
        (300, 0.125, 102.0),
        (16383, 0.75, 102.1),
        (16384, 0.75, 102.2),
        (2097151, 0.75, 102.3),
        (2097152, 0.75, 102.4),
        (2**40, 1.5, 103.0),
    ]
    assert ours.scalars["x" * 200].points() == [(7, 3.0, 106.0)]
    assert ours.warnings == []


def test_tensor_style_scalars_are_read(tmp_path: Path) -> None:
    # TensorBoard's newer writers log scalars as one-element tensors with the "scalars" plugin.
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

    payloads = []
    for i, (dtype, field, value) in enumerate(
        [(types_pb2.DT_FLOAT, "float_val", 0.75), (types_pb2.DT_DOUBLE, "double_val", 0.125)]
    ):
        tensor = tensor_pb2.TensorProto(dtype=dtype)
        getattr(tensor, field).append(value)
        meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        ev = event_pb2.Event(
            wall_time=10.0 + i,
            step=3 + i,
            summary=summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag="loss/epoch_average", tensor=tensor, metadata=meta)]
            ),
        )
        payloads.append(ev.SerializeToString())
    text = event_pb2.Event(
        wall_time=12.0,
        step=5,
        summary=summary_pb2.Summary(
            value=[
                summary_pb2.Summary.Value(
                    tag="note",
                    tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"hi"]),
                    metadata=summary_pb2.SummaryMetadata(
                        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
                    ),
                )
            ]
        ),
    ).SerializeToString()
    path = tmp_path / "events.out.tfevents.2.h.1.0"
    path.write_bytes(b"".join(encode_record(p) for p in [*payloads, text]))
    ef = read_event_file(path)
    assert ef.scalars["loss/epoch_average"].points() == [(3, 0.75, 10.0), (4, 0.125, 11.0)]
    assert "note" not in ef.scalars


def test_decode_event_matches_fast_path() -> None:
    payload = encode_scalar_event("loss/current", 1234, 0.5, 99.5)
    assert decode_event(payload) == (99.5, 1234, [("loss/current", 0.5)], None)
    with pytest.raises(ValueError, match="not a TensorBoard Event"):
        decode_event(b"\x0f\xff")


def test_old_loss_epoch_tag(tmp_path: Path) -> None:
    rows, _means = synthetic_rows(epochs=3, steps_per_epoch=10, epoch_tag="loss/epoch")
    write_run(tmp_path / "log", rows)
    log = read_log_dir(tmp_path / "log")
    (seg,) = log.segments
    assert [s for s, _, _ in seg.scalars["loss/epoch"].points()] == [1, 2, 3]
    assert "loss/epoch_average" not in seg.scalars


# --- damage -------------------------------------------------------------------------------------------------------


def f32(rows: list[tuple[str, int, float, float]]) -> list[tuple[str, int, float, float]]:
    """Rows as they read back: values rounded to float32 (TensorBoard's simple_value)."""
    return [(t, s, struct.unpack("<f", struct.pack("<f", v))[0], w) for t, s, v, w in rows]


@pytest.fixture
def article_bytes(tmp_path: Path) -> tuple[bytes, list[tuple[str, int, float, float]]]:
    rows, _ = synthetic_rows(epochs=4, steps_per_epoch=30, seed=3)
    path = write_scalars(tmp_path / "events.out.tfevents.1.h.1.0", rows)
    return path.read_bytes(), f32(rows)


def all_points(ef) -> set[tuple[str, int, float, float]]:  # type: ignore[no-untyped-def]
    return {(t, s, v, w) for t, sc in ef.scalars.items() for s, v, w in sc.points()}


def test_truncated_mid_record_keeps_everything_before(article_bytes) -> None:  # type: ignore[no-untyped-def]
    data, _rows = article_bytes
    offs = record_offsets(data)
    cut = offs[200] + 20  # inside record 200's payload
    ef = parse_event_bytes(data[:cut], "run.tfevents")
    assert len(all_points(ef)) == 199  # records 1..199 (record 0 is file_version)
    (w,) = ef.warnings
    assert w.offset == offs[200]
    assert "file ends inside a record" in str(w) and "run.tfevents at byte" in str(w)
    assert ef.end_offset == offs[200]


def test_truncated_inside_header(article_bytes) -> None:  # type: ignore[no-untyped-def]
    data, _ = article_bytes
    offs = record_offsets(data)
    ef = parse_event_bytes(data[: offs[50] + 5], "f")
    assert len(all_points(ef)) == 49
    assert "record header (5 of 12 bytes)" in str(ef.warnings[0])


def test_flipped_payload_byte_loses_only_that_record(article_bytes) -> None:  # type: ignore[no-untyped-def]
    data, rows = article_bytes
    offs = record_offsets(data)
    bad = bytearray(data)
    bad[offs[100] + 12 + 30] ^= 0x01  # inside the float of record 100
    ef = parse_event_bytes(bytes(bad), "f")
    expected = set(rows) - {rows[99]}
    assert all_points(ef) == expected  # nothing silently wrong, only record 100 missing
    (w,) = ef.warnings
    assert w.offset == offs[100] and "payload fails its CRC" in w.message
    assert ef.skipped_records == 1


def test_flipped_length_byte_resyncs(article_bytes) -> None:  # type: ignore[no-untyped-def]
    data, rows = article_bytes
    offs = record_offsets(data)
    bad = bytearray(data)
    bad[offs[100]] ^= 0x04  # low byte of record 100's length
    ef = parse_event_bytes(bytes(bad), "f")
    assert all_points(ef) == set(rows) - {rows[99]}
    (w,) = ef.warnings
    assert "damaged record header" in w.message and f"at byte {offs[101]}" in w.message


def test_huge_length_resyncs(article_bytes) -> None:  # type: ignore[no-untyped-def]
    data, rows = article_bytes
    offs = record_offsets(data)
    bad = bytearray(data)
    bad[offs[10] + 6] = 0xFF  # length now runs far past the end of the file
    ef = parse_event_bytes(bytes(bad), "f")
    assert all_points(ef) == set(rows) - {rows[9]}


def test_garbage_tail_after_good_records(article_bytes) -> None:  # type: ignore[no-untyped-def]
    data, rows = article_bytes
    ef = parse_event_bytes(data + os.urandom(2000), "f")
    assert all_points(ef) == set(rows)
    assert ef.warnings and ef.end_offset == len(data)


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
@settings(max_examples=150, deadline=None)
def test_any_single_flipped_byte_loses_at_most_one_record(pos: int, xor: int) -> None:
    rows, _ = synthetic_rows(epochs=2, steps_per_epoch=8, seed=1, lr_tags=())
    rows = f32(rows)
    data = b"".join(encode_record(encode_scalar_event(t, s, v, w)) for t, s, v, w in rows)
    bad = bytearray(data)
    bad[pos % len(data)] ^= xor
    ef = parse_event_bytes(bytes(bad), "f")
    got = all_points(ef)
    assert got <= set(rows)  # never a wrong number
    assert len(got) >= len(rows) - 1
    if len(got) < len(rows):
        assert ef.warnings


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
@settings(max_examples=150, deadline=None)
def test_filtered_read_any_flipped_byte_loses_at_most_one_wanted_record(pos: int, xor: int) -> None:
    # With prefixes, records of other tags are framed by their exact known shape instead of a CRC: damage there
    # must still never misframe the records that are returned.
    rows = f32(synthetic_rows(epochs=2, steps_per_epoch=8, seed=1)[0])
    data = b"".join(encode_record(encode_scalar_event(t, s, v, w)) for t, s, v, w in rows)
    bad = bytearray(data)
    bad[pos % len(data)] ^= xor
    ef = parse_event_bytes(bytes(bad), "f", prefixes=("loss/current", "loss/epoch"))
    wanted = {r for r in rows if r[0] in ("loss/current", "loss/epoch_average")}
    got = all_points(ef)
    assert got <= wanted
    assert len(got) >= len(wanted) - 1


def test_filtered_read_matches_full_read_on_real_files() -> None:
    for run in RUNS:
        path = fixture_file(run)
        full = read_event_file(path)
        part = read_event_file(path, prefixes=("loss/current", "loss/validation/"))
        assert part.records == full.records and part.end_offset == full.end_offset
        assert part.scalars == {
            t: s for t, s in full.scalars.items() if t == "loss/current" or t.startswith("loss/validation/")
        }


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.0.h.1.0"
    path.write_bytes(b"")
    ef = read_event_file(path)
    assert ef.scalars == {}
    assert "empty file (0 bytes)" in str(ef.warnings[0])


def test_random_bytes_never_raise(tmp_path: Path) -> None:
    ef = parse_event_bytes(os.urandom(5000), "junk")
    assert ef.scalars == {} and ef.warnings


def test_other_program_tags_are_read(tmp_path: Path) -> None:
    rows = [("train/accuracy", i, 0.5 + i / 100, 100.0 + i) for i in range(5)]
    path = write_scalars(tmp_path / "x" / "events.out.tfevents.9.h.1.0", rows)
    assert read_event_file(path).tags == ["train/accuracy"]
    assert read_event_file(path, prefixes=("loss/",)).scalars == {}


# --- folders ------------------------------------------------------------------------------------------------------


def test_find_skips_hparams_folder(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(epochs=1, steps_per_epoch=3)
    main = write_run(tmp_path / "log", rows)
    hp = tmp_path / "log" / "20261125233907" / "network_train" / "1795649961.63" / "events.out.tfevents.1.h.1.0"
    write_scalars(hp, [])
    (hp.parent / "hparams.yml").write_text("lr: 1\n")
    assert find_event_files(tmp_path / "log") == [main]


def test_segments_sorted_by_time(tmp_path: Path) -> None:
    first, _ = synthetic_rows(epochs=2, steps_per_epoch=3, start_wall=1000.0)
    second, _ = synthetic_rows(epochs=1, steps_per_epoch=3, start_wall=5000.0, first_epoch=3)
    write_run(tmp_path / "log", second, folder="a_later")  # name sorts first, time says later
    write_run(tmp_path / "log", first, folder="b_earlier")
    log = read_log_dir(tmp_path / "log")
    assert [log.segment_name(s) for s in log.segments] == ["b_earlier/network_train", "a_later/network_train"]


def test_missing_folder_and_no_event_files(tmp_path: Path) -> None:
    with pytest.raises(EventsError, match="no such folder"):
        read_log_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EventsError, match=r"empty: no TensorBoard event files \(events\.out\.tfevents\.\*\)"):
        read_log_dir(tmp_path / "empty")


def test_unreadable_event_file(tmp_path: Path) -> None:
    folder = tmp_path / "events.out.tfevents.1.h.1.0"
    folder.mkdir()
    with pytest.raises(EventsError, match="cannot read event file"):
        read_event_file(folder)
