"""Caption format (length in tags and CLIP tokens, sentences, repeated and empty tags) and the tag table."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from kohya_recipe.dataset.captions import normalize_tag
from kohya_recipe.dataset.findings import Finding, Item
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.dataset.settings import CheckSettings

# CLIP's pre-tokenizer pattern without the \p classes: every letter run, every digit, every punctuation run is
# at least one token, so this count is a lower bound of the real token count.
_CLIP_PIECES = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+")


# A Danbooru caption for each purpose: the article's character; a style's content (the trigger carries the look); a
# concept's tag with its context.
EXAMPLE_CAPTIONS = {
    "likeness": "1girl, <trigger>, dark skin, braided hair, ...",
    "style": "<trigger>, 1girl, city street, night, rain, ...",
    "concept": "<trigger>, 1boy, outdoors, from side, ...",
}


def _clip_tokens_lower_bound(text: str) -> int:
    return len(_CLIP_PIECES.findall(text.lower()))


def format_findings(captioned: list[ImageRecord], settings: CheckSettings, rules: Rules) -> list[Finding]:
    """Captions too long (tags, CLIP tokens), written as sentences, with a tag twice or empty tags."""
    long_tags: list[Item] = []
    too_many_tokens: list[Item] = []
    sentences: list[Item] = []
    dup_tags: list[Item] = []
    empty_tags: list[Item] = []
    for r in captioned:
        cap = r.parsed
        assert cap is not None
        tags = cap.tags
        if len(tags) > rules.max_tags:
            long_tags.append(Item(r.path, f"{len(tags)} tags"))
        # Every token spans at least one character, so only a caption longer than the limit can exceed it.
        if len(cap.text) > settings.max_token_length:
            tokens = _clip_tokens_lower_bound(cap.text)
            if tokens > settings.max_token_length:
                too_many_tokens.append(Item(r.path, f"at least {tokens} tokens"))
        words_per_tag = [len(t.split()) for t in tags]
        if (len(tags) == 1 and words_per_tag[0] > 4) or any(w > 6 for w in words_per_tag) or cap.text.endswith("."):
            sentences.append(Item(r.path, cap.text[:80]))
        if len(set(r.ntags)) != len(r.ntags):
            twice = [t for t, c in Counter(r.ntags).items() if c > 1]
            dup_tags.append(Item(r.path, ", ".join(twice)))
        if ",," in cap.first_line.replace(" ", "") or cap.first_line.lstrip().startswith(","):
            empty_tags.append(Item(r.path, "',,' or a leading comma"))
    out: list[Finding] = []
    if long_tags:
        out.append(
            Finding(
                "warning",
                "captions",
                f"captions longer than {rules.max_tags} tags: the article keeps them short (its base caption has 8 "
                'tags; "longer ones will reduce the quality of your LoRA")',
                "keep the trigger and what should stay separable from the subject; drop the rest",
                long_tags,
            )
        )
    if too_many_tokens:
        out.append(
            Finding(
                "warning",
                "captions",
                f"captions over {settings.max_token_length} CLIP tokens: sd-scripts cuts the rest off "
                "(training.max_token_length)",
                "shorten them, or set training.max_token_length to 150 or 225",
                too_many_tokens,
            )
        )
    if sentences:
        out.append(
            Finding(
                "warning",
                "captions",
                "captions that read like sentences: the article uses Danbooru format (short comma-separated tags)",
                f"rewrite as tags: {EXAMPLE_CAPTIONS[rules.purpose]}",
                sentences,
            )
        )
    if dup_tags:
        out.append(Finding("warning", "captions", "the same tag twice in one caption", "remove the repeat", dup_tags))
    if empty_tags:
        out.append(
            Finding("info", "captions", "empty tags (stray commas): harmless, sd-scripts drops them", "", empty_tags)
        )
    return out


@dataclass(frozen=True)
class TagCount:
    """A tag, in its most common spelling, and how many captions hold it."""

    tag: str
    count: int


def tag_table(
    captioned: list[ImageRecord], settings: CheckSettings, rules: Rules
) -> tuple[list[TagCount], list[Finding]]:
    """The tag table (most frequent first) and the findings it shows: tags in (nearly) every caption, spelling
    variants."""
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for r in captioned:
        seen = set()
        for tag in r.tags:
            key = normalize_tag(tag)
            spellings[key][tag] += 1
            if key not in seen:
                seen.add(key)
                counts[key] += 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    table = [TagCount(spellings[k].most_common(1)[0][0], c) for k, c in ordered]
    spelling = {k: v.most_common(1)[0][0] for k, v in spellings.items()}
    out = _common_tag_findings(ordered, spelling, len(captioned), settings, rules)
    # CLIP lower-cases, so only spelling differences beyond case give different tokens (braided_hair vs braided hair).
    variants = []
    for key, spelled in spellings.items():
        forms: Counter[str] = Counter()
        for s, c in spelled.items():
            forms[" ".join(s.casefold().split())] += c
        if len(forms) > 1:
            variants.append(Item(key, ", ".join(f"'{f}' ({c}×)" for f, c in forms.most_common())))
    if variants:
        out.append(
            Finding(
                "warning",
                "tags",
                "the same tag spelt differently across captions: the text encoder sees different tokens",
                "pick one spelling (spaces, not underscores, in SD 1.5 prompts)",
                variants,
            )
        )
    return table, out


def _common_tag_findings(
    ordered: list[tuple[str, int]], spelling: dict[str, str], n: int, settings: CheckSettings, rules: Rules
) -> list[Finding]:
    """Tags besides the trigger in at least ``rules.tag_max_share`` of the captions: for a likeness (in every
    caption) a fact worth knowing; for a style or a concept a warning - what every image shares is learnt as part
    of the look or the concept."""
    if n < 3:
        return []
    own = {normalize_tag(settings.trigger or "")}
    if rules.purpose != "likeness" and settings.class_token:  # the concept's (or style's) own word
        own.add(normalize_tag(settings.class_token))
    common = [(spelling[k], c) for k, c in ordered if c / n >= rules.tag_max_share and k not in own]
    if not common:
        return []
    if rules.purpose == "likeness":
        return [
            Finding(
                "info",
                "tags",
                "tags in every caption besides the trigger: " + ", ".join(sorted(t for t, _c in common)) + ". A tag "
                "that never varies is learnt together with the subject (fused with the trigger)",
                "fine for deliberate ones (the article tags '3D render' so it can be negated); for a feature you "
                "want to control separately (lipstick, jewelry), keep the tag and add images without it",
            )
        ]
    share = f"at least {rules.tag_max_share:.0%} of the captions" if rules.tag_max_share < 1 else "every caption"
    items = [Item(t, f"{c} of {n} captions") for t, c in common]
    if rules.purpose == "style":
        return [
            Finding(
                "warning",
                "tags",
                f"the same tags in {share} (subjects not varied): "
                + ", ".join(t for t, _c in common)
                + ". A style LoRA learns what all its images share: a subject in every image becomes part of the "
                "style, and a tag naming the look itself takes the look away from the trigger",
                "add images of other subjects in the same style (people, places, objects) and leave the look "
                "untagged; or set [tags] max_share in a rules file",
                items,
            )
        ]
    return [
        Finding(
            "warning",
            "tags",
            f"the same tags in {share} (contexts not varied): "
            + ", ".join(t for t, _c in common)
            + ". What always comes with the concept is learnt as part of it",
            "show the concept in other contexts (backgrounds, subjects, angles); or set [tags] max_share in a rules "
            "file",
            items,
        )
    ]
