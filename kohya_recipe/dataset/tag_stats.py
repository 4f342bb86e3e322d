"""Tag frequency over the captions of a dataset (the table ``kohya-recipe caption show`` prints)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kohya_recipe.dataset.captions import CaptionError, find_caption, normalize_tag, read_caption
from kohya_recipe.dataset.detect import dataset_folders
from kohya_recipe.dataset.images import list_trainer_images
from kohya_recipe.text import fit_lines, format_table


@dataclass(frozen=True)
class UnreadableCaption:
    """A caption file that cannot be read as text, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class TagShare:
    """A tag (its most common spelling), how many captions hold it, and their share (4 decimals)."""

    tag: str
    count: int
    share: float


@dataclass
class TagStats:
    """Tag frequency over a set of captions (the table ``caption show`` prints).

    Tags are counted once per caption under their normalised form (``counts``); ``spelling`` keeps the most
    common way each is written; ``tag_totals`` is the number of tags of each caption.
    """

    captions: int = 0
    images: int = 0
    missing: list[Path] = field(default_factory=list)
    unreadable: list[UnreadableCaption] = field(default_factory=list)
    extension: str = ".txt"
    counts: Counter[str] = field(default_factory=Counter, metadata={"json": False})
    spelling: dict[str, str] = field(default_factory=dict, metadata={"json": False})
    tag_totals: list[int] = field(default_factory=list, metadata={"json": False})

    __json_properties__ = ("mean_tags", "tags")

    def rows(self) -> list[tuple[str, int, float]]:
        """(tag, captions containing it, share of captions), most frequent first, then by name."""
        n = max(self.captions, 1)
        ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(self.spelling[k], c, c / n) for k, c in ordered]

    @property
    def tags(self) -> list[TagShare]:
        return [TagShare(t, c, round(s, 4)) for t, c, s in self.rows()]

    @property
    def mean_tags(self) -> float:
        """Tags per caption, on average."""
        return (sum(self.tag_totals) / len(self.tag_totals)) if self.tag_totals else 0.0


def format_tag_stats(stats: TagStats, *, top: int | None = None) -> str:
    """The tag table as ``caption show`` prints it (the ``top`` most frequent tags), then the images without a
    caption and the captions that cannot be read."""
    rows = stats.rows()[:top] if top else stats.rows()
    lines = [
        f"{stats.captions} captions ({stats.extension}) for {stats.images} images, {len(stats.counts)} distinct "
        f"tags, {stats.mean_tags:.1f} tags per caption"
    ]
    if rows:
        table = [[tag, str(count), f"{share:.0%}"] for tag, count, share in rows]
        lines += format_table(["tag", "captions", "share"], table, right={1, 2}, indent=2)
    lines += [f"no caption: {path}" for path in stats.missing]
    lines += [f"unreadable: {u.path}: {u.reason}" for u in stats.unreadable]
    return "\n".join(fit_lines(lines))


def tag_stats(dataset: str | Path, *, extension: str | None = None) -> TagStats:
    """Count tags over the captions of the trainer images in ``dataset`` (first line only, as sd-scripts)."""
    folders, ext = dataset_folders(dataset, extension)
    stats = TagStats(extension=ext)
    spellings: dict[str, Counter[str]] = {}
    for folder in folders:
        for image in list_trainer_images(folder):
            stats.images += 1
            path = find_caption(image, ext)
            if path is None:
                stats.missing.append(image)
                continue
            try:
                cap = read_caption(path)
            except CaptionError as exc:
                stats.unreadable.append(UnreadableCaption(path, exc.message))
                continue
            stats.captions += 1
            stats.tag_totals.append(len(cap.tags))
            seen = set()
            for tag in cap.tags:
                key = normalize_tag(tag)
                spellings.setdefault(key, Counter())[tag] += 1
                if key not in seen:
                    seen.add(key)
                    stats.counts[key] += 1
    stats.spelling = {k: c.most_common(1)[0][0] for k, c in spellings.items()}
    return stats
