"""The queue file (kohya_recipe/train/queuefile.py): where it lives, its entries' serialised form, and hand edits
that do not parse (reported in one line, the file left untouched)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import tomli_w

from kohya_recipe.train.queue_edit import add_to_queue, list_queue, remove_from_queue
from kohya_recipe.train.queuefile import Queue, QueueEntry, QueueError, default_queue_file, parse_queue
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
