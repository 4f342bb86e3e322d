"""Caption editing (init/add/remove/set): style preservation, atomic writes, dry run, no clobber."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kohya_recipe.dataset.caption_edits import add_tags, init_captions, remove_tags, set_caption
from kohya_recipe.dataset.captions import CaptionError
from kohya_recipe.errors import DatasetError
from kohya_recipe.files import atomic_write_bytes
from tests._dataset_util import ARTICLE_CAPTION, copy_article_mini, dataset, image

BASE = ARTICLE_CAPTION


# ----------------------------------------------------------------------------------------------------------
# init


def test_init_writes_missing_and_never_clobbers(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 3, caption=None)
    (folder / "img01.txt").write_bytes(b"1girl, mine\n")
    report = init_captions(folder, BASE)
    assert [(c.path.name, c.action) for c in report.changes] == [
        ("img00.txt", "created"),
        ("img01.txt", "skipped"),
        ("img02.txt", "created"),
    ]
    assert (folder / "img00.txt").read_text() == BASE + "\n"
    assert (folder / "img01.txt").read_bytes() == b"1girl, mine\n"
    assert "pass --force" in report.changes[1].reason
    assert report.summary() == "2 created, 1 skipped"


def test_init_force_keeps_the_files_style(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 1, caption=None)
    (folder / "img00.txt").write_bytes(b"\xef\xbb\xbfold,tags\r\nsecond\r\n")
    report = init_captions(folder, "1girl, Zed", force=True)
    assert report.changes[0].action == "updated"
    assert (folder / "img00.txt").read_bytes() == b"\xef\xbb\xbf1girl,Zed\r\nsecond\r\n"


def test_init_fills_empty_captions_and_leaves_non_text_alone(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 3, caption=None)
    (folder / "img00.txt").write_bytes(b"")
    junk = b"\x00\xffbinary junk"
    (folder / "img01.txt").write_bytes(junk)
    latin = "café".encode("latin-1")
    (folder / "img02.txt").write_bytes(latin)
    report = init_captions(folder, "1girl, Zed", force=True)
    actions = {c.path.name: (c.action, c.reason) for c in report.changes}
    assert actions["img00.txt"] == ("updated", "was empty")
    assert actions["img01.txt"][0] == "failed" and "left untouched" in actions["img01.txt"][1]
    assert actions["img02.txt"][0] == "failed" and "not UTF-8" in actions["img02.txt"][1]
    assert (folder / "img01.txt").read_bytes() == junk and (folder / "img02.txt").read_bytes() == latin
    assert not report.ok


def test_init_dry_run_writes_nothing_and_diffs(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 2, caption=None)
    before = sorted(p.name for p in folder.iterdir())
    report = init_captions(folder, "1girl, Zed", dry_run=True)
    assert sorted(p.name for p in folder.iterdir()) == before
    diff = report.changes[0].diff()
    assert diff.splitlines() == ["--- /dev/null", f"+++ {folder / 'img00.txt'}", "@@ -0,0 +1 @@", "+1girl, Zed"]
    assert report.summary() == "2 would be created"


def test_init_uses_the_folders_line_ending(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 3, caption=None)
    (folder / "img00.txt").write_bytes(b"a, b")  # no trailing newline, like the real article-mini captions
    (folder / "img01.txt").write_bytes(b"c, d")
    init_captions(folder, "1girl, Zed")
    assert (folder / "img02.txt").read_bytes() == b"1girl, Zed"


def test_init_on_a_project_style_folder_and_other_extension(tmp_path: Path) -> None:
    img = copy_article_mini(tmp_path)
    report = init_captions(img, "x, y", extension=".caption")
    assert report.count("created") == 6
    # No .caption file to copy the style from: the base as written, with a newline.
    assert (img / "2_testchar woman" / "img00.caption").read_text() == "x, y\n"
    assert (img / "2_testchar woman" / "img00.txt").read_text() == "1girl, testchar, braided hair, 3D render"
    with pytest.raises(DatasetError, match="no tags"):
        init_captions(img, " , ")


# ----------------------------------------------------------------------------------------------------------
# add / remove / set


def _folder_with(tmp_path: Path, captions_by_name: dict[str, bytes]) -> Path:
    folder = tmp_path / "imgs"
    for i, (name, raw) in enumerate(captions_by_name.items()):
        image(folder / f"{name}.png", color=i)
        (folder / f"{name}.txt").write_bytes(raw)
    return folder


def test_add_keeps_order_and_style(tmp_path: Path) -> None:
    folder = _folder_with(
        tmp_path,
        {
            "back_01": b"1girl, Zed, earrings",
            "back_02": b"\xef\xbb\xbf1girl,Zed,From_Behind\r\nsecond line\r\n",
            "front_01": b"1girl, Zed\n",
        },
    )
    report = add_tags(["from behind", "3D render"], match=["back_*.png"], root=folder)
    assert [(c.path.name, c.action) for c in report.changes] == [("back_01.txt", "updated"), ("back_02.txt", "updated")]
    assert (folder / "back_01.txt").read_bytes() == b"1girl, Zed, earrings, from behind, 3D render"
    # "From_Behind" already counts as "from behind"; BOM, separator, CRLF and the second line survive.
    assert (folder / "back_02.txt").read_bytes() == b"\xef\xbb\xbf1girl,Zed,From_Behind,3D render\r\nsecond line\r\n"
    assert (folder / "front_01.txt").read_bytes() == b"1girl, Zed\n"
    again = add_tags(["from behind", "3D render"], match=["back_*.png"], root=folder)
    assert again.count("unchanged") == 2


def test_add_front_and_where(tmp_path: Path) -> None:
    folder = _folder_with(tmp_path, {"a": b"1girl, from side\n", "b": b"1girl\n"})
    add_tags(["Zed"], match=["*.txt"], root=folder, front=True, where=["from side"])
    assert (folder / "a.txt").read_text() == "Zed, 1girl, from side\n"
    assert (folder / "b.txt").read_text() == "1girl\n"


def test_add_reports_images_without_caption_and_rejects_bad_input(tmp_path: Path) -> None:
    folder = _folder_with(tmp_path, {"a": b"1girl\n"})
    image(folder / "b.png")
    report = add_tags(["x"], match=["*.png"], root=folder)
    failed = report.failed
    assert len(failed) == 1 and "b.png has no .txt caption" in failed[0].reason
    assert not (folder / "b.txt").exists()
    with pytest.raises(DatasetError, match="no file matches"):
        add_tags(["x"], match=["nothing_*.png"], root=folder)
    with pytest.raises(DatasetError, match="no comma"):
        add_tags(["a, b"], match=["*.txt"], root=folder)


def test_remove_with_globs_and_where(tmp_path: Path) -> None:
    folder = _folder_with(
        tmp_path,
        {"back": b"1girl, Zed, earrings, brown eyes, from behind\n", "front": b"1girl, Zed, earrings, brown eyes\n"},
    )
    report = remove_tags(["earrings", "* eyes"], match=["*.txt"], root=folder, where=["from behind"])
    assert (folder / "back.txt").read_text() == "1girl, Zed, from behind\n"
    assert (folder / "front.txt").read_text() == "1girl, Zed, earrings, brown eyes\n"
    assert report.count("updated") == 1 and report.count("skipped") == 1


def test_remove_dry_run_shows_a_diff_and_writes_nothing(tmp_path: Path) -> None:
    folder = _folder_with(tmp_path, {"back": b"1girl, earrings, from behind"})
    report = remove_tags(["earrings"], match=["back.png"], root=folder, dry_run=True)
    assert (folder / "back.txt").read_bytes() == b"1girl, earrings, from behind"
    diff = report.changes[0].diff()
    assert diff.splitlines()[2:] == [
        "@@ -1 +1 @@",
        "-1girl, earrings, from behind",
        "\\ No newline at end of file",
        "+1girl, from behind",
        "\\ No newline at end of file",
    ]


def test_edits_leave_non_text_captions_untouched(tmp_path: Path) -> None:
    folder = _folder_with(tmp_path, {"a": b"\x00\x00junk", "b": b"1girl\n"})
    report = add_tags(["x"], match=["*.txt"], root=folder)
    assert (folder / "a.txt").read_bytes() == b"\x00\x00junk"
    assert (folder / "b.txt").read_bytes() == b"1girl, x\n"
    assert [c.action for c in report.changes] == ["failed", "updated"]


def test_set_creates_refuses_and_forces(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    img = image(folder / "a.png")
    report = set_caption(img, "1girl, Zed, from side")
    assert report.changes[0].action == "created"
    assert (folder / "a.txt").read_text() == "1girl, Zed, from side\n"
    assert set_caption(folder / "a.txt", "1girl,Zed,from side").changes[0].action == "unchanged"
    with pytest.raises(DatasetError, match=r"a\.txt: exists with other tags .*--force"):
        set_caption(img, "1girl, other")
    set_caption(img, "1girl, other", force=True)
    assert (folder / "a.txt").read_text() == "1girl, other\n"
    with pytest.raises(DatasetError, match="not an image sd-scripts reads"):
        set_caption(folder / "a.gif", "x")
    (folder / "bad.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(CaptionError, match="not UTF-8"):
        set_caption(folder / "bad.txt", "x", force=True)
    assert (folder / "bad.txt").read_bytes() == b"\xff\xfe"


# ----------------------------------------------------------------------------------------------------------
# atomic writes


def test_failed_replace_keeps_the_original_and_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    folder = _folder_with(tmp_path, {"a": b"1girl, earrings\n"})
    before = sorted(p.name for p in folder.iterdir())

    def boom(self: Path, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", boom)
    report = remove_tags(["earrings"], match=["a.txt"], root=folder)
    assert report.changes[0].action == "failed" and "No space left" in report.changes[0].reason
    assert (folder / "a.txt").read_bytes() == b"1girl, earrings\n"
    assert sorted(p.name for p in folder.iterdir()) == before


def test_interrupted_write_keeps_the_original(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"old\n")

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new\n")
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_write_keeps_permissions_and_edits_through_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_bytes(b"a\n")
    real.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write_bytes(link, b"b\n")
    assert link.is_symlink() and real.read_bytes() == b"b\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_edit_goes_through_a_temp_file_in_the_same_folder(tmp_path: Path, monkeypatch) -> None:
    folder = _folder_with(tmp_path, {"a": b"1girl\n"})
    seen: list[Path] = []
    real_replace = Path.replace

    def spy(self: Path, target: Path) -> Path:
        seen.append(self)
        assert (folder / "a.txt").read_bytes() == b"1girl\n"  # the original is intact until the rename
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", spy)
    add_tags(["x"], match=["a.txt"], root=folder)
    assert len(seen) == 1 and seen[0].parent == folder and seen[0].name.startswith(".a.txt.")
    assert (folder / "a.txt").read_bytes() == b"1girl, x\n"


def test_hard_linked_caption_is_replaced_not_written_through(tmp_path: Path) -> None:
    # kohya-recipe build hard-links captions into the project; editing the project must not edit the source.
    source = _folder_with(tmp_path, {"a": b"1girl\n"})
    project = tmp_path / "project"
    project.mkdir()
    os.link(source / "a.txt", project / "a.txt")
    image(project / "a.png")
    add_tags(["x"], match=["a.txt"], root=project)
    assert (project / "a.txt").read_bytes() == b"1girl, x\n"
    assert (source / "a.txt").read_bytes() == b"1girl\n"
