"""Caption reading: sd-scripts' rules (first line, UTF-8, candidates), style parts, normalised tags, files
that are not text or not regular (refused at once, never touched)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kohya_recipe.dataset import captions
from kohya_recipe.dataset.caption_edits import add_tags, set_caption
from kohya_recipe.dataset.captions import (
    CaptionError,
    caption_candidates,
    find_caption,
    normalize_tag,
    parse_caption,
    read_caption,
    split_tags,
    tag_matches,
)
from tests._dataset_util import dataset, finishes, image


@pytest.mark.parametrize(
    "raw",
    [
        b"1girl, testchar, braided hair, 3D render",  # the real article-mini caption: no trailing newline
        b"a,b,c\n",
        b"\xef\xbb\xbfa, b\r\nsecond line\r\n",
        b"  a, b, c, \n",
        b"a, b\n\n",
        b"",
        b"\n",
    ],
)
def test_parse_and_render_round_trip(raw: bytes) -> None:
    cap = parse_caption(raw)
    assert cap.render() == raw
    assert cap.with_tags(cap.tags).render() == raw  # a rebuilt first line equals the original in these styles


def test_parse_parts() -> None:
    cap = parse_caption(b"\xef\xbb\xbf1girl,  x , y,\r\nmore\n")
    assert cap.bom and cap.tags == ("1girl", "x", "y") and cap.eol == "\r\n" and cap.rest == "more\n"
    assert cap.trail == "," and cap.text == "1girl,  x , y,"
    assert cap.line_count == 2
    assert split_tags(" a , ,b,") == ["a", "b"]


def test_text_errors() -> None:
    with pytest.raises(CaptionError, match="not UTF-8 .*UnicodeDecodeError"):
        parse_caption("café, tag".encode("latin-1"))
    with pytest.raises(CaptionError, match="binary data"):
        parse_caption(b"\x00\x01\x02junk")


def test_normalised_matching() -> None:
    assert normalize_tag("From_Behind") == normalize_tag("from  behind") == "from behind"
    assert tag_matches("brown eyes", "* eyes") and not tag_matches("eyes", "* eyes")
    assert tag_matches("Earrings", "earrings") and not tag_matches("hoop earrings", "earrings")


def test_caption_lookup_follows_sd_scripts(tmp_path: Path) -> None:
    img = tmp_path / "a_1_2_3_4.png"
    assert [p.name for p in caption_candidates(img, "txt")] == ["a_1_2_3_4.txt", "a.txt"]
    image(img)
    (tmp_path / "a.txt").write_text("x")
    assert find_caption(img, ".txt") == tmp_path / "a.txt"  # sd-scripts' face-crop naming fallback
    (tmp_path / "a_1_2_3_4.txt").mkdir()  # a folder is not a caption (os.path.isfile)
    assert find_caption(img, ".txt") == tmp_path / "a.txt"


def test_read_caption_errors_name_the_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x")

    def denied(name: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(captions, "open_regular_file", denied)
    with pytest.raises(CaptionError, match=r"a\.txt: cannot read: permission denied"):
        read_caption(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_caption_is_refused_at_once_and_left_alone(tmp_path: Path) -> None:
    # A FIFO named like a caption: reading it would wait for a writer forever; every verb reports it instead.
    folder = tmp_path / "10_Zed woman"
    dataset(folder, 2, caption="1girl, Zed")
    os.mkfifo(folder / "pipe.txt")
    with pytest.raises(CaptionError, match=r"pipe\.txt: not a regular file \(a FIFO\)"):
        finishes(lambda: read_caption(folder / "pipe.txt"))
    report = finishes(lambda: add_tags(["smile"], match=["*.txt"], root=folder))
    assert {c.path.name: c.action for c in report.changes} == {
        "img00.txt": "updated",
        "img01.txt": "updated",
        "pipe.txt": "failed",
    }
    assert (folder / "pipe.txt").is_fifo()
    with pytest.raises(CaptionError, match="not a regular file"):
        finishes(lambda: set_caption(folder / "pipe.txt", "1girl, Zed", force=True))
    assert (folder / "pipe.txt").is_fifo()


def test_module_exports_the_extensions() -> None:
    assert captions.CAPTION_EXTENSIONS == (".txt", ".caption", ".cap")
