"""Tags as evidence: the article's shot list (front, side, above, behind, framing; a likeness only) and contradicting
tags."""

from __future__ import annotations

from collections import defaultdict

from kohya_recipe.dataset.captions import TagPattern
from kohya_recipe.dataset.findings import Finding, Item
from kohya_recipe.dataset.rules import Rules, ShotRule
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.dataset.settings import CheckSettings


def shot_findings(trained: list[ImageRecord], rules: Rules) -> tuple[list[Finding], dict[str, int]]:
    """How many images each shot of the rules' list has (from their tags; an image without an angle shot is a
    front view), and the findings: coverage, missing shots, too few front views."""
    if not rules.shots:  # a style or a concept: no shot list, no front views to count
        return [], {}
    captioned = [r for r in trained if r.parsed is not None and r.parsed.text]
    counts: dict[str, int] = {"front": 0, **{s.name: 0 for s in rules.shots}}
    if not captioned:
        return [], counts
    matchers = [(shot, TagPattern(shot.tags)) for shot in rules.shots]
    for r in captioned:
        angle = False
        for shot, matcher in matchers:
            if matcher.any(r.ntags):
                counts[shot.name] += 1
                r.shots.append(shot.name)
                angle = angle or shot.angle
        if not angle:
            counts["front"] += 1
            r.shots.insert(0, "front")
    out: list[Finding] = []
    n = len(captioned)
    text = ", ".join(f"{k} {v}" + (f"/{s.min}" if (s := _shot(rules, k)) else "") for k, v in counts.items())
    out.append(Finding("info", "shots", f"shot coverage from tags ({n} captions): {text}"))
    missing = [Item(s.name, f"{counts[s.name]} of {s.min}: {s.article}") for s in rules.shots if counts[s.name] < s.min]
    if missing:
        out.append(
            Finding(
                "warning",
                "shots",
                "shots of the article's list are missing or untagged: "
                + ", ".join(f"{s.name} ({counts[s.name]}/{s.min})" for s in rules.shots if counts[s.name] < s.min),
                "take those shots, or tag the images that are (the article adds 'from side' / 'from behind')",
                missing,
            )
        )
    if counts["front"] / n < rules.front_min_share:
        out.append(
            Finding(
                "warning",
                "shots",
                f"only {counts['front']} of {n} images are front views: the article makes almost all of them close "
                "front portraits",
                "add close front portraits with good lighting",
            )
        )
    return out, counts


def _shot(rules: Rules, name: str) -> ShotRule | None:
    return next((s for s in rules.shots if s.name == name), None)


def contradiction_findings(trained: list[ImageRecord], rules: Rules, settings: CheckSettings) -> list[Finding]:
    """Captions holding tags that cannot both describe one image (the rules' contradictions)."""
    by_rule: dict[int, list[Item]] = defaultdict(list)
    matchers = [(TagPattern([rule.when]), TagPattern(rule.forbid)) for rule in rules.contradictions]
    for r in trained:
        if not r.tags:
            continue
        for i, rule in enumerate(rules.contradictions):
            when, forbid = matchers[i]
            if when.any(r.ntags):
                bad = [t for t, nt in zip(r.tags, r.ntags, strict=True) if forbid.match(nt) and not when.match(nt)]
                if bad:
                    by_rule[i].append(Item(r.path, f"'{rule.when}' with " + ", ".join(f"'{b}'" for b in bad)))
                    r.notes.append("contradiction")
    out = []
    for i, items in by_rule.items():
        rule = rules.contradictions[i]
        out.append(
            Finding(
                rule.severity,
                "contradictions",
                f"'{rule.when}' together with {' / '.join(repr(f) for f in rule.forbid)}: {rule.reason}",
                f'remove the contradicting tag, e.g. kohya-recipe caption remove "{rule.forbid[0]}" --where '
                f"\"{rule.when}\" --dir DIR --match '**/*{settings.caption_extension}'",
                items,
            )
        )
    return out
