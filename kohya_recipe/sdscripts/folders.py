"""sd-scripts' folder mode: ``train_data_dir/<repeats>_<class tokens>/`` sub-folders are the subsets.

``library/config_util.py`` ``generate_dreambooth_subsets_config_by_subdirs``: each sub-folder's name is split on
``_``; ``int()`` of the first token is the repeat count (a folder without one is skipped with a warning, as is
one whose count is below 1), the other tokens joined with ``_`` are the class tokens used as the caption of images
without a caption file. Plain files next to the sub-folders are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# sd-scripts library/train_util.py IMAGE_EXTENSIONS (listed by glob_images): lower-case and upper-case variants only,
# so ".Png" is silently skipped by the trainer. AVIF/JXL count only when their Pillow plugins import.
TRAINER_IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    [".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP"]
)


@dataclass(frozen=True)
class RepeatsFolder:
    """What sd-scripts reads from one sub-folder name. ``repeats`` is ``None`` when the name has no count."""

    name: str
    repeats: int | None
    class_tokens: str

    @property
    def trained(self) -> bool:
        """Whether sd-scripts makes a subset of it (a count of at least 1)."""
        return self.repeats is not None and self.repeats >= 1


def parse_repeats_folder(name: str) -> RepeatsFolder:
    """Read ``"10_CharacterAI woman"`` as 10 repeats of ``"CharacterAI woman"``, exactly as sd-scripts does."""
    tokens = name.split("_")
    try:
        repeats = int(tokens[0])
    except ValueError:
        return RepeatsFolder(name, None, "")
    return RepeatsFolder(name, repeats, "_".join(tokens[1:]))


def repeats_folder_name(repeats: int, class_tokens: str) -> str:
    """The folder name sd-scripts reads back as ``repeats`` repeats of ``class_tokens``."""
    return f"{repeats}_{class_tokens}"


def is_trainer_image(path: Path) -> bool:
    """True when sd-scripts would pick ``path`` up as an image (exact-case extension match)."""
    return path.suffix in TRAINER_IMAGE_EXTENSIONS


def has_trainer_images(folder: Path) -> bool:
    """True when ``folder`` holds a file sd-scripts would train on (False when it cannot be listed)."""
    try:
        return any(p.is_file() and is_trainer_image(p) for p in folder.iterdir())
    except OSError:
        return False
