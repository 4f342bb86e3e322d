"""Read the scalars sd-scripts logs to TensorBoard — fast, CRC-checked, and honest about damage.

An event file is a TFRecord stream: ``[u64 length][u32 masked CRC-32C of length][payload][u32 masked CRC-32C of
payload]``, each payload one serialised ``tensorboard.Event``. sd-scripts logs through accelerate's
TensorBoardTracker (torch SummaryWriter), which writes **one Event per scalar** (``TensorBoardTracker.log`` calls
``add_scalar`` once per key; ``torch/utils/tensorboard/summary.py`` ``scalar`` makes one ``Summary.Value`` with a
``simple_value``), laid out as ``09 <f64 wall_time> 10 <varint step> 2a .. 0a .. 0a <len> <tag> 15 <f32 value>``.
We decode that layout straight from the bytes and send anything else to a small generic protobuf walker
(:mod:`kohya_recipe.report.proto`, also pure Python). Measured (benchmarks/bench_report.py): ``event_pb2`` costs
~30 ms of import and about twice the per-record time, because upb attribute access is slower than slicing bytes.

Damage policy. TensorBoard's own loader stops at the first bad record without a word
(``tensorboard/backend/event_processing/event_file_loader.py`` ``RawEventFileLoader.Load`` ends the read on a
``DataLossError`` and logs it at debug level), so one flipped byte can hide half a run. Here:

* a record whose payload CRC fails is skipped (its length is trusted only if the header CRC checks);
* a record whose header is damaged is resynchronised past, to the next offset where both CRCs check;
* a file that ends inside a record (a run still writing, or killed) stops cleanly at the last whole record;

and every case comes back as an :class:`EventWarning` with the file and byte offset — never an exception, never a
silently wrong number. Only the payload CRC is checked on the fast path; the header CRC is consulted when the
payload CRC fails or the length runs past the end of the file (a wrong length fails the payload CRC too, except
with probability 2^-32), which saves 6-19 % of the read time. Records of tags the caller did not ask for (the
learning rates, when only the ranking is wanted) are framed by their exact byte shape, first seen in a CRC-checked
record, instead of a CRC of their own: their values are never returned, and a misframed record cannot match a
shape byte for byte. Every value returned has passed its CRC.
"""

from __future__ import annotations

import os
import re
import struct
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from kohya_recipe.errors import EventsError
from kohya_recipe.files import open_regular_file
from kohya_recipe.report.proto import (
    Malformed,
    decode_event,
    encode_file_version_event,
    encode_scalar_event,
    varint,
)
from kohya_recipe.report.tfrecord import MASK_DELTA, U32, crc32c, encode_record, header_ok, resync

# Tags sd-scripts writes: train_network.py NetworkTrainer.generate_step_logs (per step) and the end-of-epoch and
# validation logging in NetworkTrainer.train.
TAG_CURRENT = "loss/current"  # every micro-batch, step = global_step
TAG_AVERAGE = "loss/average"  # running mean, step = global_step
TAG_EPOCH_AVERAGE = "loss/epoch_average"  # once per epoch, step = epoch number (sd-scripts >= 0.10)
TAG_EPOCH_OLD = "loss/epoch"  # the same value in sd-scripts <= 0.9.1
TAG_VAL_EPOCH = "loss/validation/epoch_average"  # validation split on; step = epoch number
TAG_VAL_DIVERGENCE = "loss/validation/epoch_divergence"  # validation minus loss/average; step = epoch number
EPOCH_TAGS = (TAG_EPOCH_AVERAGE, TAG_EPOCH_OLD, TAG_VAL_EPOCH, TAG_VAL_DIVERGENCE)

EVENT_FILE_MARK = "events.out.tfevents."

_Q = struct.Struct("<Q")
_I = struct.Struct("<I")
_d = struct.Struct("<d")
_f = struct.Struct("<f")
_GENERIC = object()  # marks a record shape the fast path does not decode


# --- data model ---------------------------------------------------------------------------------------------------


class Record:
    """Light record classes: ``__eq__`` and ``__repr__`` from ``__slots__``.

    Not dataclasses: importing ``dataclasses`` pulls in ``inspect`` (~6 ms) and building each class costs ~0.5 ms,
    a fifth of what the whole reader takes on an article-size run.
    """

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.__slots__)})"


class EventWarning(Record):
    """Something wrong in an event file that the reader worked around; ``offset`` is a byte position."""

    __slots__ = ("message", "offset", "path")

    def __init__(self, path: str, offset: int | None, message: str) -> None:
        self.path = path
        self.offset = offset
        self.message = message

    def __str__(self) -> str:
        where = f" at byte {self.offset}" if self.offset is not None else ""
        return f"{self.path}{where}: {self.message}"


class Scalars(Record):
    """One tag's points in file order. Arrays keep a 200,000-step run in a few MB instead of boxed floats."""

    __slots__ = ("steps", "tag", "values", "wall_times")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.steps = array("q")
        self.values = array("d")
        self.wall_times = array("d")

    def __len__(self) -> int:
        return len(self.values)

    def points(self) -> list[tuple[int, float, float]]:
        """``(step, value, wall_time)`` tuples (convenient in tests and small tools)."""
        return list(zip(self.steps, self.values, self.wall_times, strict=True))


class EventFile(Record):
    """What one event file held. ``end_offset`` is just past the last intact record (where a live file resumes);
    ``skipped_records`` counts records lost to damage; ``unread_tags`` names the tags seen but filtered out by
    the caller's prefixes (so a report can still say they exist)."""

    __slots__ = (
        "end_offset",
        "file_version",
        "first_wall_time",
        "path",
        "records",
        "scalars",
        "size",
        "skipped_records",
        "unread_tags",
        "warnings",
    )

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.records = 0
        self.scalars: dict[str, Scalars] = {}
        self.warnings: list[EventWarning] = []
        self.end_offset = 0
        self.file_version: str | None = None
        self.first_wall_time: float | None = None
        self.skipped_records = 0
        self.unread_tags: list[str] = []

    @property
    def tags(self) -> list[str]:
        return sorted(self.scalars)


class LogDir(Record):
    """Every event file under a log folder. ``segments`` are the files holding scalars, oldest first.

    sd-scripts opens one writer per training process, so each segment is one process: the first training, then
    one per ``--resume`` (whose step-level tags restart at 1 while epoch tags keep the epoch number).
    """

    __slots__ = ("files", "root", "warnings")

    def __init__(self, root: Path, files: list[EventFile], warnings: list[EventWarning]) -> None:
        self.root = root
        self.files = files
        self.warnings = warnings

    @property
    def segments(self) -> list[EventFile]:
        found = [f for f in self.files if f.scalars]
        return sorted(found, key=lambda f: (f.first_wall_time or 0.0, str(f.path)))

    @property
    def tags(self) -> list[str]:
        return sorted({t for f in self.files for t in f.scalars})

    def segment_name(self, ef: EventFile) -> str:
        try:
            return ef.path.parent.relative_to(self.root).as_posix() or "."
        except ValueError:
            return ef.path.parent.as_posix()


# --- the reader ---------------------------------------------------------------------------------------------------


def read_event_file(
    path: str | Path,
    prefixes: Sequence[str] | None = None,
    *,
    crc: Callable[[bytes], int] | None = None,
) -> EventFile:
    """Read the scalars of one event file.

    ``prefixes`` keeps only tags starting with one of them (``("loss/",)`` skips decoding the learning-rate tags);
    ``None`` keeps every scalar. Damage never raises: see the module docstring. An unreadable file (permissions,
    a folder) raises :class:`EventsError`.
    """
    path = Path(path)
    try:
        with os.fdopen(open_regular_file(path), "rb") as fh:  # a FIFO named like an event file would block forever
            buf = fh.read()
    except ValueError as exc:
        raise EventsError(f"cannot read event file: {exc}", source=str(path)) from None
    except OSError as exc:
        raise EventsError(f"cannot read event file: {exc.strerror or exc}", source=str(path)) from None
    return parse_event_bytes(buf, path, prefixes, crc=crc)


# One inlined loop is the point (~1 µs per record): its complexity is the cost of not calling a function per record.
# Measured on the article file (16,809 records; min of 150 runs, CPU time): decoding the step varint in a function
# instead makes it 12 % slower with every tag (22.0 -> 24.7 ms) and 10 % with the ranking tags (11.3 -> 12.4 ms).
def parse_event_bytes(  # noqa: C901
    buf: bytes,
    path: str | Path = "<bytes>",
    prefixes: Sequence[str] | None = None,
    *,
    crc: Callable[[bytes], int] | None = None,
) -> EventFile:
    """:func:`read_event_file` on bytes already in memory."""
    path = Path(path)
    crc_fn = crc or crc32c
    n = len(buf)
    ef = EventFile(path=path, size=n)
    name = str(path)
    warn = ef.warnings.append
    if n == 0:
        warn(EventWarning(name, None, "empty file (0 bytes): the writer was opened but nothing was logged yet"))
        return ef

    pref = tuple(p.encode() for p in prefixes) if prefixes is not None else None
    single = pref[0] if pref is not None and len(pref) == 1 else None
    # tag bytes -> the three append methods of its Scalars, or None for a tag the prefixes filter out; filtering
    # happens once per tag, not once per record.
    series: dict[bytes, tuple[Callable[[int], None], Callable[[float], None], Callable[[float], None]] | None] = {}
    scalars = ef.scalars

    def entry_for(
        tag_b: bytes,
    ) -> tuple[Callable[[int], None], Callable[[float], None], Callable[[float], None]] | None:
        if pref is not None and not tag_b.startswith(pref):
            series[tag_b] = None
            return None
        tag = tag_b.decode("utf-8", "replace")
        s = scalars.get(tag)
        if s is None:
            s = scalars[tag] = Scalars(tag)
        e = series[tag_b] = (s.steps.append, s.values.append, s.wall_times.append)
        return e

    def shape_for(key: bytes) -> object:
        """Check a record shape ``2a <L+9> 0a <L+7> 0a <L> <tag> 15`` once; cache its series (or _GENERIC)."""
        lt = len(key) - 7
        if (
            0 <= lt < 0x80
            and key[0] == 0x2A
            and key[1] == lt + 9
            and key[2] == 0x0A
            and key[3] == lt + 7
            and key[4] == 0x0A
            and key[5] == lt
            and key[-1] == 0x15
        ):
            entry = entry_for(key[6:-1])
            shapes[key] = entry
            return entry
        shapes[key] = _GENERIC
        return _GENERIC

    shapes: dict[bytes, object] = {}
    get = shapes.get
    unpack_q = _Q.unpack_from
    unpack_i = _I.unpack_from
    unpack_d = _d.unpack_from
    unpack_f = _f.unpack_from
    series_get = series.get
    mask_delta = MASK_DELTA
    u32 = U32
    records = 0
    skipped = 0
    off = 0

    def resync_or_stop(at: int, what: str) -> int | None:
        nxt = resync(buf, at + 1, crc_fn)
        if nxt is None:
            warn(EventWarning(name, at, f"{what}; no intact record after it, so the last {n - at} bytes are ignored"))
        else:
            warn(EventWarning(name, at, f"{what}; skipped {nxt - at} bytes to the next intact record at byte {nxt}"))
        return nxt

    while off < n:
        if off + 12 > n:
            warn(
                EventWarning(
                    name,
                    off,
                    f"file ends inside a record header ({n - off} of 12 bytes): a run still "
                    "writing, or killed; the partial record is ignored",
                )
            )
            break
        length = unpack_q(buf, off)[0]
        start = off + 12
        end = start + length
        if end + 4 > n:
            if header_ok(buf, off, crc_fn):
                warn(
                    EventWarning(
                        name,
                        off,
                        f"file ends inside a record ({n - start} of {length + 4} bytes "
                        "present): a run still writing, or killed; the partial record is "
                        "ignored",
                    )
                )
                break
            skipped += 1
            nxt = resync_or_stop(off, "damaged record header")
            if nxt is None:
                break
            off = nxt
            continue
        # The torch/tensorboardX add_scalar layout (one simple_value per Event), read in place from the buffer:
        # 09 <f64 wall> [10 <varint step>] 2a <L+9> 0a <L+7> 0a <L> <tag> 15 <f32>. Everything between the step
        # and the value is the same bytes for every record of a tag ("shape"), so those bytes are a cache key,
        # checked once per tag, then one slice and one dict lookup per record.
        entry: object = 0
        if length > 20 and buf[start] == 0x09:
            if buf[start + 9] == 0x10:
                # steps < 2,097,152 take at most 3 varint bytes: inlined, a call per record costs ~1 µs
                step = buf[start + 10]
                p = 11
                if step & 0x80:
                    b = buf[start + 11]
                    step = (step & 0x7F) | ((b & 0x7F) << 7)
                    p = 12
                    if b & 0x80:
                        b = buf[start + 12]
                        step |= (b & 0x7F) << 14
                        p = 13
                        if b & 0x80:
                            try:
                                step, p = varint(buf[start:end], 10)
                            except Malformed:
                                p = length
            else:
                step = 0
                p = 9
            key = buf[start + p : end - 4]
            entry = get(key, 0)
            if entry is None:
                # A tag the caller did not ask for, in a shape already seen in a CRC-checked record: its value is
                # never used, and a misframed record cannot match a known shape byte for byte (the key spans the
                # record from its step to its value), so the framing is verified without the ~0.5 µs CRC.
                off = end + 4
                records += 1
                continue
        payload = buf[start:end]
        c = crc_fn(payload)
        if (((c >> 15) | (c << 17)) + mask_delta) & u32 != unpack_i(buf, end)[0]:
            skipped += 1
            if header_ok(buf, off, crc_fn):
                warn(
                    EventWarning(name, off, "record payload fails its CRC (damaged bytes); that one record is skipped")
                )
                off = end + 4
                continue
            nxt = resync_or_stop(off, "damaged record header")
            if nxt is None:
                break
            off = nxt
            continue
        off = end + 4
        records += 1
        if records == 1:
            try:
                ef.first_wall_time, _s, _v, ef.file_version = decode_event(payload)
            except ValueError:
                pass
        if entry == 0 and length > 20 and payload[0] == 0x09:
            entry = shape_for(key)  # first record of this shape: CRC-checked just above
        if entry is None:
            continue
        if entry != 0 and entry is not _GENERIC:
            entry[0](step)  # type: ignore[index]
            entry[1](unpack_f(payload, length - 4)[0])  # type: ignore[index]
            entry[2](unpack_d(payload, 1)[0])  # type: ignore[index]
            continue
        # The generic decoder is slow: skip records that cannot hold a wanted tag before calling it.
        if single is not None:
            if single not in payload:
                continue
        elif pref is not None and not any(p in payload for p in pref):
            continue
        try:
            wall, step, values, _version = decode_event(payload)
        except ValueError as exc:
            skipped += 1
            warn(EventWarning(name, off - length - 16, f"record checks but is {exc}; skipped"))
            continue
        for tag, value in values:
            tag_b = tag.encode()
            entry = series_get(tag_b, 0)
            if entry == 0:
                entry = entry_for(tag_b)
            if entry is not None:
                entry[0](step)  # type: ignore[index]
                entry[1](value)  # type: ignore[index]
                entry[2](wall)  # type: ignore[index]

    ef.records = records
    ef.skipped_records = skipped
    ef.unread_tags = sorted(t.decode("utf-8", "replace") for t, e in series.items() if e is None)
    # Where intact records end: the whole file, or the start of the partial record the loop stopped at.
    ef.end_offset = min(off, n)
    if ef.first_wall_time is None and scalars:
        ef.first_wall_time = min(s.wall_times[0] for s in scalars.values())
    return ef


# --- folders ------------------------------------------------------------------------------------------------------

_FLOAT_DIR = re.compile(r"^\d+(\.\d+)?$")


def find_event_files(log_dir: str | Path) -> list[Path]:
    """Every ``events.out.tfevents.*`` under ``log_dir``, sorted, minus ``--log_config``'s hparams-only folder.

    With ``--log_config`` sd-scripts hands its settings to the tracker (``library/train_util.py``
    ``init_trackers``), and accelerate's ``TensorBoardTracker.store_init_configuration`` writes them as an hparams
    summary into ``network_train/<unix time as a float>/`` next to ``hparams.yml``: not a training segment.
    """
    root = Path(log_dir)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        if here != root and _FLOAT_DIR.match(here.name) and (here / "hparams.yml").exists():
            continue
        found.extend(here / f for f in sorted(filenames) if f.startswith(EVENT_FILE_MARK))
    return found


def read_log_dir(log_dir: str | Path, prefixes: Sequence[str] | None = None) -> LogDir:
    """Read every event file under ``log_dir``. Raises :class:`EventsError` when there is nothing to read."""
    root = Path(log_dir)
    if not root.exists():
        raise EventsError("no such folder", source=str(root))
    if root.is_file():
        files = [root]
        root = root.parent
    else:
        files = find_event_files(root)
        if not files:
            raise EventsError(
                "no TensorBoard event files (events.out.tfevents.*) in this folder or below it; sd-scripts writes "
                "them only when logging_dir or log_with is set",
                source=str(root),
            )
    read = [read_event_file(f, prefixes) for f in files]
    warnings = [w for ef in read for w in ef.warnings]
    return LogDir(root=root, files=read, warnings=warnings)


# --- the writer (tests, benchmarks, fixtures) ---------------------------------------------------------------------


def write_scalars(
    path: str | Path,
    rows: Iterable[tuple[str, int, float, float]],
    *,
    file_version: bool = True,
    append: bool = False,
) -> Path:
    """Write ``(tag, step, value, wall_time)`` rows as an event file the way sd-scripts' writer does.

    Used by the tests and the benchmark to make runs of any size, the old ``loss/epoch`` tag, or files to damage.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks: list[bytes] = []
    first = True
    with path.open("ab" if append else "wb") as fh:
        for tag, step, value, wall in rows:
            if first and file_version and not append:
                chunks.append(encode_record(encode_file_version_event(wall)))
            first = False
            chunks.append(encode_record(encode_scalar_event(tag, int(step), float(value), float(wall))))
            if len(chunks) >= 8192:  # stream: a 200,000-step run is a million records
                fh.write(b"".join(chunks))
                chunks.clear()
        fh.write(b"".join(chunks))
    return path


def event_file_name(wall_time: float, host: str = "host", pid: int = 1) -> str:
    """``events.out.tfevents.<unix seconds>.<host>.<pid>.0`` as torch names them."""
    return f"{EVENT_FILE_MARK}{int(wall_time)}.{host}.{pid}.0"
