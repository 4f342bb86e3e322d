"""Helpers for the dataset doctor and caption tests: tiny datasets made on the fly with Pillow."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DATA = Path(__file__).parent / "data" / "dataset"
ARTICLE_CAPTION = "1girl, CharacterAI, dark skin, braided hair, earrings, 3D render, UHD, 4K"


def image(
    path: Path, size: tuple[int, int] = (64, 80), *, mode: str = "RGB", color: int = 0, fmt: str | None = None, **save
) -> Path:
    """A small image with a gradient that depends on ``color`` (so different colours hash differently)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    im = Image.linear_gradient("L").resize((w, h)).rotate(color * 37 % 360)
    if mode == "RGB":
        im = Image.merge("RGB", (im, im.point(lambda v: (v + color * 50) % 256), Image.new("L", (w, h), color % 256)))
    elif mode == "RGBA":
        im = Image.merge("RGBA", (im, im, im, Image.new("L", (w, h), 0 if color % 2 == 0 else 255)))
    else:
        im = im.convert(mode)
    im.save(path, fmt, **save)
    return path


def dataset(
    folder: Path,
    n: int,
    *,
    size: tuple[int, int] = (64, 80),
    caption: str | None = ARTICLE_CAPTION,
    ext: str = ".txt",
    start: int = 0,
) -> list[Path]:
    """``n`` distinct PNGs ``img00.png``... with ``caption`` in ``img00<ext>`` (no caption when None)."""
    paths = []
    for i in range(start, start + n):
        p = image(folder / f"img{i:02d}.png", size, color=i + 1)
        if caption is not None:
            (folder / f"img{i:02d}{ext}").write_text(caption + "\n", encoding="utf-8")
        paths.append(p)
    return paths


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``root`` (symlinks not followed): content, mtime_ns and mode, to prove nothing changed."""
    out: dict[str, tuple[bytes, int, int]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            st = p.lstat()
            data = p.read_bytes() if p.is_file() and os.access(p, os.R_OK) else b""
            out[str(p.relative_to(root))] = (data, st.st_mtime_ns, st.st_mode)
    return out


def copy_article_mini(tmp: Path) -> Path:
    """The real article-mini image folder (see tests/data/dataset/README.md), copied to ``tmp``; returns img/."""
    target = tmp / "article-mini" / "img"
    shutil.copytree(DATA / "article-mini" / "img", target)
    return target


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def finishes(fn, seconds: float = 20.0):  # fn: any callable; returns its result
    """``fn()``'s result, or an AssertionError when it has not returned within ``seconds`` (instead of a test that
    hangs: a read from a FIFO without a writer never returns). An exception of ``fn`` is re-raised."""
    import threading

    out: dict[str, object] = {}

    def target() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # handed to the test thread
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (blocked on a read?)"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["result"]
