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
                "rewrite as tags: 1girl, <trigger>, dark skin, braided hair, ...",
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


def tag_table(captioned: list[ImageRecord], settings: CheckSettings) -> tuple[list[TagCount], list[Finding]]:
    """The tag table (most frequent first) and the findings it shows: tags in every caption, spelling variants."""
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
    out: list[Finding] = []
    n = len(captioned)
    if n >= 3:
        nt = normalize_tag(settings.trigger) if settings.trigger else None
        everywhere = [spellings[k].most_common(1)[0][0] for k, c in counts.items() if c == n and k != nt]
        if everywhere:
            out.append(
                Finding(
                    "info",
                    "tags",
                    "tags in every caption besides the trigger: " + ", ".join(sorted(everywhere)) + ". A tag that "
                    "never varies is learnt together with the subject (fused with the trigger)",
                    "fine for deliberate ones (the article tags '3D render' so it can be negated); for a feature you "
                    "want to control separately (lipstick, jewelry), keep the tag and add images without it",
                )
            )
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
