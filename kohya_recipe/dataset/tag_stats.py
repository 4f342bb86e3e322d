"""Tag frequency over the captions of a dataset (the table ``kohya-recipe caption show`` prints)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kohya_recipe.dataset.captions import CaptionError, find_caption, normalize_tag, read_caption
from kohya_recipe.dataset.detect import dataset_folders
from kohya_recipe.dataset.images import list_trainer_images


@dataclass
class TagStats:
    """Tag frequency over a set of captions (the table ``caption show`` prints).

    Tags are counted once per caption under their normalised form; ``spelling`` keeps the most common way
    each is written.
    """

    captions: int = 0
    images: int = 0
    missing: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    extension: str = ".txt"
    counts: Counter[str] = field(default_factory=Counter)
    spelling: dict[str, str] = field(default_factory=dict)
    tag_totals: list[int] = field(default_factory=list)

    def rows(self) -> list[tuple[str, int, float]]:
        """(tag, captions containing it, share of captions), most frequent first, then by name."""
        n = max(self.captions, 1)
        ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(self.spelling[k], c, c / n) for k, c in ordered]

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "extension": self.extension,
            "captions": self.captions,
            "missing": [str(p) for p in self.missing],
            "unreadable": [{"path": str(p), "reason": r} for p, r in self.unreadable],
            "mean_tags": (sum(self.tag_totals) / len(self.tag_totals)) if self.tag_totals else 0.0,
            "tags": [{"tag": t, "count": c, "share": round(s, 4)} for t, c, s in self.rows()],
        }


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
                stats.unreadable.append((path, exc.message))
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
