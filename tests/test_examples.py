"""The bundled example dataset (examples/CharacterAI/) and its generator (examples/make_example.py).

The shipped files must be what the generator writes: the same names, image sizes and captions. Image bytes are
not compared, because Pillow's shape drawing and zlib differ between versions. The article preset must build
the example into a project whose plan is the article's 42 × 10 × 8 / 1 = 3360 steps.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner
from PIL import Image

from kohya_recipe.cli import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "CharacterAI"
BASE_TAGS = ["1girl", "CharacterAI", "dark skin", "braided hair"]
TAIL_TAGS = ["3D render", "UHD", "4K"]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_example", ROOT / "examples" / "make_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve the module through sys.modules while the class is created.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _listing(folder: Path) -> dict[str, tuple[tuple[int, int], str]]:
    """image file name -> (pixel size, caption text) for every PNG in ``folder``."""
    out = {}
    for png in sorted(folder.glob("*.png")):
        with Image.open(png) as img:
            size = img.size
        out[png.name] = (size, png.with_suffix(".txt").read_text(encoding="utf-8"))
    return out


def test_shipped_files_match_the_generator(tmp_path: Path) -> None:
    _generator().generate(tmp_path)
    shipped = _listing(EXAMPLE)
    assert shipped == _listing(tmp_path)
    # Nothing else in the folder: every file is an image or its caption.
    names = {p.name for p in EXAMPLE.iterdir()}
    assert names == {p.name for p in tmp_path.iterdir()}


def test_shot_list_follows_the_article() -> None:
    shipped = _listing(EXAMPLE)
    assert len(shipped) == 42  # "I take a total of 42 images"
    sizes = [size for size, _ in shipped.values()]
    portrait, square = sizes.count((640, 768)), sizes.count((768, 768))
    # "mostly 640x768 (portrait) ... the rest are square", plus a few larger source images.
    assert portrait > len(sizes) / 2
    assert square >= 8
    assert {s for s in sizes if s not in ((640, 768), (768, 768))} >= {(1024, 1024), (1536, 1536)}
    assert all(min(s) >= 640 and max(s) >= 768 for s in sizes)  # "a minimum resolution of 768px on a side"

    tags = {name: [t.strip() for t in caption.split(",")] for name, (_, caption) in shipped.items()}
    count = {
        t: sum(t in v for v in tags.values())
        for t in ("from side", "from behind", "from above", "upper body", "full body")
    }
    # 2-3 slightly from each side + one 90° each side; one from above; two from behind; torso and full body.
    assert count == {"from side": 8, "from behind": 2, "from above": 1, "upper body": 2, "full body": 1}
    fronts = [n for n, t in tags.items() if not set(t) & set(count)]
    assert len(fronts) > 21  # "almost all of the images should be very close portraits of the face"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLE.glob("*.txt")))
def test_caption_is_the_articles_danbooru_line(name: str) -> None:
    text = (EXAMPLE / name).read_text(encoding="utf-8")
    assert text.endswith("\n") and text.count("\n") == 1
    tags = [t.strip() for t in text.strip().split(",")]
    assert tags[:4] == BASE_TAGS and tags[-3:] == TAIL_TAGS
    assert len(tags) == len(set(tags))
    # "ensure you remove any tags that may not be visible in the images from the back like earrings"
    assert ("earrings" in tags) == ("from behind" not in tags)
    assert re.fullmatch(r"[0-9a-zA-Z ,]+", text.strip())


def test_build_with_the_article_preset(tmp_path: Path) -> None:
    out = tmp_path / "CharacterAI"
    args = [
        "build",
        str(EXAMPLE),
        "--preset",
        "likeness-sd15",
        "--trigger",
        "CharacterAI",
        "--class",
        "woman",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps" in result.output
    # With batch 1 every bucket's batches are whole, so bucketing cannot change the total.
    assert "total optimization steps: 3360" in result.output
    assert re.search(r"704x832\s+27\s+270\s+270", result.output)  # 640x768 lands in the 704x832 bucket at 768
    subset = out / "img" / "10_CharacterAI woman"
    assert len(list(subset.glob("*.png"))) == 42
    assert len(list(subset.glob("*.txt"))) == 42
    # The example stays untouched: images are linked or copied, never moved.
    assert len(list(EXAMPLE.glob("*.png"))) == 42
    # The plan of the bundled example (every image's bucket), byte for byte; regenerate with
    # KOHYA_RECIPE_REGEN_GOLDEN=1. The configs are the article goldens of tests/test_project.py.
    from tests.test_project import golden

    golden("example-build.txt", result.output.replace(str(tmp_path), "<tmp>").replace(str(EXAMPLE), "<example>"))


def test_example_folder_stays_small() -> None:
    total = sum(p.stat().st_size for p in EXAMPLE.iterdir())
    assert total < 2 * 1024 * 1024
