"""The queue file (kohya_recipe/train/queuefile.py): where it lives, its entries' serialised form, and hand edits
that do not parse (reported in one line, the file left untouched)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import tomli_w

from kohya_recipe.files import tomllib
from kohya_recipe.train.queue_edit import add_to_queue, list_queue, remove_from_queue
from kohya_recipe.train.queuefile import MAX_ID, Queue, QueueEntry, QueueError, default_queue_file, parse_queue
from kohya_recipe.train.runqueue import run_queue
from tests._queue_util import FakeTrain

# ----------------------------------------------------------------------------------------------------------------
# Where the queue lives


def test_default_queue_file_honours_env_and_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KOHYA_RECIPE_QUEUE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_queue_file() == tmp_path / "home" / ".local" / "share" / "kohya-recipe" / "queue.toml"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_queue_file() == tmp_path / "data" / "kohya-recipe" / "queue.toml"
    # The XDG spec: a relative XDG_DATA_HOME is invalid and ignored.
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")
    assert default_queue_file() == tmp_path / "home" / ".local" / "share" / "kohya-recipe" / "queue.toml"
    monkeypatch.setenv("KOHYA_RECIPE_QUEUE", str(tmp_path / "q.toml"))
    assert default_queue_file() == tmp_path / "q.toml"
    assert Queue().path == tmp_path / "q.toml"


# ----------------------------------------------------------------------------------------------------------------
# The file: hand edits


def test_invalid_toml_is_one_clear_error_and_the_file_is_untouched(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:2], qfile)
    broken = qfile.read_text(encoding="utf-8").replace('status = "pending"', 'status = "pending', 1)
    qfile.write_text(broken, encoding="utf-8")
    for action in (
        lambda: list_queue(qfile),
        lambda: add_to_queue([projects[2]], qfile),
        lambda: remove_from_queue([1], qfile),
        lambda: run_queue(qfile, train=FakeTrain()),
    ):
        with pytest.raises(QueueError) as exc:
            action()
        message = str(exc.value)
        assert message.startswith(f"{qfile}: invalid TOML: ")
        assert "line " in message and message.endswith("the file was not changed, fix it by hand or move it away")
        assert "\n" not in message
        assert qfile.read_text(encoding="utf-8") == broken
    # Fixing the line by hand brings every entry back.
    qfile.write_text(broken.replace('status = "pending\n', 'status = "pending"\n'), encoding="utf-8")
    assert [e.id for e in list_queue(qfile)] == [1, 2]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ('status = "runing"', r"entries\[0\]\.status: 'runing' is not one of: pending, running, done, failed"),
        ('attempts = "two"', r"entries\[0\]\.attempts: must be an integer, got 'two'"),
        ("atempts = 2", r"entries\[0\]: unknown key 'atempts' \(did you mean 'attempts'\?\)"),
        ("resumed = 1", r"entries\[0\]\.resumed: must be a boolean, got 1"),
    ],
)
def test_bad_entry_values_name_the_entry_and_key(qfile: Path, edit: str, message: str) -> None:
    text = f'schema_version = 1\n[[entries]]\nid = 1\nproject = "/p"\n{edit}\n'
    with pytest.raises(QueueError, match=rf"^{qfile}: {message}"):
        parse_queue(text, str(qfile))


def test_duplicate_ids_and_missing_keys(qfile: Path) -> None:
    with pytest.raises(QueueError, match=r"entries: id 1 is used by two entries"):
        parse_queue('[[entries]]\nid = 1\nproject = "/a"\n[[entries]]\nid = 1\nproject = "/b"\n', "q")
    with pytest.raises(QueueError, match=r"^q: entries\[0\]: missing required key 'project'$"):
        parse_queue("[[entries]]\nid = 1\n", "q")
    with pytest.raises(QueueError, match=r"^q: schema_version 3 is not supported"):
        parse_queue("schema_version = 3\n", "q")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("next_id = 9223372036854775807\n", r"next_id: 9223372036854775807 is out of range 1\.\.1000000000"),
        ("next_id = 99999999999999999999999\n", r"next_id: 99999999999999999999999 is out of range"),
        ("next_id = 0\n", r"next_id: 0 is out of range"),
        ('[[entries]]\nid = 9223372036854775807\nproject = "/a"\n', r"entries\[0\]\.id: 9223372036854775807 is out"),
        ('[[entries]]\nid = 0\nproject = "/a"\n', r"entries\[0\]\.id: 0 is out of range 1\.\.999999999"),
        ('[[entries]]\nid = 1\nproject = "/a"\nattempts = -1\n', r"entries\[0\]\.attempts: -1 is out of range"),
        ('[[entries]]\nid = 1\nproject = "/a"\npid = 4294967296\n', r"entries\[0\]\.pid: 4294967296 is out"),
        (
            '[[entries]]\nid = 1\nproject = "/a"\nlast_exit_code = 10000000000\n',
            r"entries\[0\]\.last_exit_code: 10000000000 is",
        ),
    ],
)
def test_numbers_beyond_their_range_are_refused_and_the_file_is_kept(qfile: Path, text: str, message: str) -> None:
    """Issue 14: a next_id of 2**63-1 was accepted and the next write stored 2**63, which TOML cannot hold."""
    qfile.parent.mkdir(parents=True)
    qfile.write_text(text, encoding="utf-8")
    for action in (lambda: list_queue(qfile), lambda: remove_from_queue([1], qfile)):
        with pytest.raises(QueueError, match=rf"^{qfile}: {message}.*; the file was not changed") as exc:
            action()
        assert "\n" not in str(exc.value)
    assert qfile.read_text(encoding="utf-8") == text


def test_the_last_id_is_handed_out_once_and_then_add_refuses(projects: list[Path], qfile: Path) -> None:
    qfile.parent.mkdir(parents=True)
    qfile.write_text(f"schema_version = 1\nnext_id = {MAX_ID - 1}\n", encoding="utf-8")
    assert [e.id for e in add_to_queue(projects[:1], qfile).added] == [MAX_ID - 1]
    before = qfile.read_text(encoding="utf-8")
    with pytest.raises(QueueError) as exc:
        add_to_queue(projects[1:2], qfile)
    assert str(exc.value) == (
        f"{qfile}: every entry id up to {MAX_ID - 1} has been handed out; the file was not changed (start a new "
        "queue file, or renumber the entries and next_id by hand)"
    )
    assert qfile.read_text(encoding="utf-8") == before
    assert tomllib.loads(before)["next_id"] == MAX_ID  # what was written reads back


def test_a_hand_written_next_id_cannot_reissue_an_id() -> None:
    state = parse_queue('next_id = 1\n[[entries]]\nid = 5\nproject = "/a"\n', "q")
    assert state.next_id == 6


def test_a_queue_file_that_is_not_utf8(qfile: Path) -> None:
    qfile.parent.mkdir(parents=True)
    qfile.write_bytes(b"\xff\xfe junk")
    with pytest.raises(QueueError, match=r"not UTF-8 text \(byte 0\); the file was not changed"):
        list_queue(qfile)
    assert qfile.read_bytes() == b"\xff\xfe junk"


def test_a_queue_entry_serialises_without_nulls() -> None:
    entry = QueueEntry(id=1, project="/p")
    assert entry.model_dump() == {"id": 1, "project": "/p", "status": "pending", "attempts": 0}
    # the same form in --json, with times as ISO 8601 and their UTC offset ("+00:00", not pydantic's "Z")
    entry.added = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert entry.model_dump(mode="json")["added"] == "2026-01-02T03:04:05+00:00"
    assert "added = 2026-01-02 03:04:05+00:00" in tomli_w.dumps(entry.model_dump())
