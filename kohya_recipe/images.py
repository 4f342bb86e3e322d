"""Which files sd-scripts reads as training images, and their sizes (header only, no decoding)."""

from __future__ import annotations

from pathlib import Path

# sd-scripts train_util.IMAGE_EXTENSIONS: lower-case and upper-case variants only, so ".Png" is silently
# skipped by the trainer (reference/sd_scripts.md §5). AVIF/JXL count only when their Pillow plugins import.
TRAINER_IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP"]
)


def is_trainer_image(path: Path) -> bool:
    """True when sd-scripts would pick ``path`` up as an image (exact-case extension match)."""
    return path.suffix in TRAINER_IMAGE_EXTENSIONS


def list_trainer_images(folder: Path) -> list[Path]:
    """The images sd-scripts would read from ``folder``: non-recursive, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_trainer_image(p))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) read from the file header; Pillow's ``open`` does not decode pixels."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size
