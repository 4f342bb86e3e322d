"""Tag statistics over a dataset's captions (``caption show``)."""

from __future__ import annotations

from pathlib import Path

from kohya_recipe.cli.output import jsonable
from kohya_recipe.dataset.tag_stats import tag_stats
from tests._dataset_util import copy_article_mini, dataset


def test_tag_stats_on_the_real_article_mini_captions(tmp_path: Path) -> None:
    stats = tag_stats(copy_article_mini(tmp_path))
    assert (stats.images, stats.captions) == (6, 6)
    rows = {t: c for t, c, _s in stats.rows()}
    assert rows == {
        "1girl": 6,
        "testchar": 6,
        "braided hair": 6,
        "3D render": 6,
        "from side": 1,
        "from behind": 1,
        "upper body": 1,
    }
    assert stats.rows()[0][2] == 1.0


def test_tag_stats_reports_missing_and_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    dataset(folder, 3)
    (folder / "img01.txt").unlink()
    (folder / "img02.txt").write_bytes(b"\xff")
    stats = tag_stats(folder)
    assert stats.captions == 1 and [p.name for p in stats.missing] == ["img01.png"]
    assert stats.unreadable[0].path.name == "img02.txt"
    assert jsonable(stats)["tags"][0] == {"tag": "1girl", "count": 1, "share": 1.0}
