"""The trigger word: in every caption, spelt right, and kept in place when captions are shuffled."""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Sequence

from kohya_recipe.dataset.captions import normalize_tag
from kohya_recipe.dataset.findings import Finding, Item, plural
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.dataset.settings import CheckSettings


def _trigger_finder(trigger: str) -> Callable[[Sequence[str]], int | None]:
    """A function giving the index of the first (normalised) tag that is the trigger or contains it as a word."""
    nt = normalize_tag(trigger)
    pattern = re.compile(r"(?<!\w)" + re.escape(nt) + r"(?!\w)")

    def find(ntags: Sequence[str]) -> int | None:
        for i, t in enumerate(ntags):
            if t == nt or (nt in t and pattern.search(t)):
                return i
        return None

    return find


def trigger_findings(captioned: list[ImageRecord], settings: CheckSettings) -> list[Finding]:
    """Captions without the trigger, near-misspellings of it, and a trigger that shuffling moves around."""
    if not settings.trigger:
        return [
            Finding(
                "info",
                "trigger",
                "trigger word unknown: the trigger check was skipped",
                "pass --trigger WORD or --recipe recipe.toml (subject.trigger)",
            )
        ]
    if not captioned:
        return []
    trigger = settings.trigger
    without: list[Item] = []
    shuffled: list[Item] = []
    near: Counter[str] = Counter()
    nt = normalize_tag(trigger)
    find = _trigger_finder(trigger)
    for r in captioned:
        index = find(r.ntags)
        if index is None:
            without.append(Item(r.path, r.parsed.text[:80] if r.parsed else ""))
            r.notes.append("no trigger")
            for tag in r.tags:
                t = normalize_tag(tag)
                if t != nt and difflib.SequenceMatcher(None, t, nt).ratio() >= 0.8:
                    near[tag] += 1
        elif settings.shuffle_caption and index >= settings.keep_tokens:
            shuffled.append(Item(r.path, f"trigger is tag {index + 1}, keep_tokens = {settings.keep_tokens}"))
    out: list[Finding] = []
    source = f" (from {settings.trigger_source})" if settings.trigger_source else ""
    if without and len(without) == len(captioned):
        out.append(
            Finding(
                "error",
                "trigger",
                f"the trigger '{trigger}'{source} is in no caption: the LoRA will not respond to it",
                f'add it to every caption: kohya-recipe caption add "{trigger}" --front --dir DIR '
                f"--match '**/*{settings.caption_extension}'",
                without[:5] + ([Item("...", f"{len(without) - 5} more")] if len(without) > 5 else []),
            )
        )
    elif without:
        out.append(
            Finding(
                "warning",
                "trigger",
                f"{plural(len(without), 'caption')} without the trigger '{trigger}'{source}: those images teach the "
                "subject without its trigger",
                f'add it: kohya-recipe caption add "{trigger}" --front --match FILE...',
                without,
            )
        )
    if near:
        out.append(
            Finding(
                "warning",
                "trigger",
                "tags that look like a misspelt trigger: " + ", ".join(f"'{t}' ({n}×)" for t, n in near.most_common()),
                f"correct them to '{trigger}'",
            )
        )
    if shuffled:
        out.append(
            Finding(
                "warning",
                "trigger",
                "shuffle_caption is on and the trigger is not kept in place: it moves around every epoch (the "
                "article turns shuffling off)",
                "turn augmentation.shuffle_caption off, or put the trigger first and set keep_tokens >= 1",
                shuffled,
            )
        )
    return out
