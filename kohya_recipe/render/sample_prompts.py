"""Sample prompts from the user's own subject: derived from the dataset's captions, in the article's structure.

A preset's sample prompt was written for the article's character. When the user's recipe does not set prompts,
:func:`choose_sample_prompts` keeps the preset's only when it fits the captions (most of its subject tags are
tags the captions share), and otherwise derives two prompts from the captions themselves:

* Danbooru-style tag captions: the tags most captions share, in their usual order (subject tags first), the
  trigger placed after a leading count tag (``1girl``) when the captions lack it, then the style of the output.
  For a likeness the article's rule applies: images captioned as renders are prompted for as photos
  (``photo, realistic, 8K, HDR``), with ``3D render`` in the negative; otherwise the captions' own medium tags
  are kept. The second prompt adds what the captions vary (a view such as ``from side`` first).
* Sentence captions (a captioning model's ``a painting of ..., by ...``): the caption most like the others, and
  the one least like it, each with the trigger.

The negative prompt is the preset's (the article's for a likeness), minus any word the prompt itself asks for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.dataset.captions import CaptionError, find_caption, normalize_tag, read_caption, split_tags
from kohya_recipe.dataset.images import list_trainer_images
from kohya_recipe.recipe.models import Recipe

# Tags that say what kind of picture it is (medium, quality), not what is in it.
MEDIUM_TAGS = frozenset(
    {
        "3d",
        "3d render",
        "render",
        "cgi",
        "photo",
        "photograph",
        "photography",
        "photorealistic",
        "realistic",
        "real",
        "hyperrealistic",
        "4k",
        "8k",
        "uhd",
        "hdr",
        "hd",
        "highres",
        "high resolution",
        "absurdres",
        "masterpiece",
        "best quality",
        "high quality",
        "detailed",
        "anime",
        "illustration",
        "painting",
        "drawing",
        "sketch",
        "digital art",
        "digital painting",
        "oil painting",
        "watercolor",
        "pencil drawing",
        "ink drawing",
        "monochrome",
        "greyscale",
        "cartoon",
        "comic",
        "manga",
        "pixel art",
        "concept art",
    }
)
# Tags that say how a shot is framed: the first thing captions vary on purpose (the article's shot list).
VIEW_TAGS = (
    "from side",
    "from behind",
    "from above",
    "from below",
    "upper body",
    "full body",
    "portrait",
    "close-up",
    "profile",
)
COUNT_TAGS = frozenset({"1girl", "1boy", "solo", "1other"})
# The article's output style for a likeness trained on renders (its sample prompt).
PHOTO_STYLE = ("photo", "realistic", "8K", "HDR")
SHARED = 0.5  # a tag most captions share
MAX_TAGS = 14


@dataclass
class PromptChoice:
    """The sample prompts to train with (``SamplePrompt`` data) and where they came from."""

    prompts: list[dict[str, Any]]
    source: str  # "preset" | "captions"
    reason: str


@dataclass
class _Captions:
    texts: list[str] = field(default_factory=list)
    tags: list[list[str]] = field(default_factory=list)


def _read_captions(folders: list[Path], extension: str) -> _Captions:
    out = _Captions()
    for folder in folders:
        try:
            images = list_trainer_images(folder)
        except OSError:
            continue
        for image in images:
            path = find_caption(image, extension)
            if path is None:
                continue
            try:
                text = read_caption(path).text
            except CaptionError:
                continue
            if text:
                out.texts.append(text)
                out.tags.append(split_tags(text))
    return out


def _is_medium(tag: str) -> bool:
    t = normalize_tag(tag)
    return t in MEDIUM_TAGS or t.endswith((" render", " painting", " drawing", " art", " style"))


def _shared_tags(captions: _Captions) -> tuple[list[str], Counter[str], dict[str, str]]:
    """Tags by how many captions hold them, their usual order, and their most common spelling."""
    counts: Counter[str] = Counter()
    positions: dict[str, list[float]] = {}
    spellings: dict[str, Counter[str]] = {}
    for tags in captions.tags:
        seen = set()
        for i, tag in enumerate(tags):
            key = normalize_tag(tag)
            if key in seen:
                continue
            seen.add(key)
            counts[key] += 1
            positions.setdefault(key, []).append(i / max(len(tags), 1))
            spellings.setdefault(key, Counter())[tag] += 1
    order = sorted(counts, key=lambda k: sum(positions[k]) / len(positions[k]))
    return order, counts, {k: c.most_common(1)[0][0] for k, c in spellings.items()}


def _fits(preset_prompt: str, common: set[str], trigger: str) -> bool:
    """Whether most of a preset prompt's subject tags are tags the captions share."""
    subject = [normalize_tag(t) for t in split_tags(preset_prompt) if not _is_medium(t)]
    subject = [t for t in subject if t and t != normalize_tag(trigger)]
    return bool(subject) and sum(t in common for t in subject) * 2 >= len(subject)


def _with_trigger(tags: list[str], trigger: str) -> list[str]:
    if not trigger or normalize_tag(trigger) in {normalize_tag(t) for t in tags}:
        return tags
    lead = 1 if tags and normalize_tag(tags[0]) in COUNT_TAGS else 0
    return [*tags[:lead], trigger, *tags[lead:]]


def _output_style(medium: list[str], purpose: str) -> tuple[list[str], list[str]]:
    """The style tags to prompt for, and the medium tags to add to the negative."""
    renders = [t for t in medium if "render" in normalize_tag(t) or normalize_tag(t) in {"3d", "cgi"}]
    if purpose == "likeness" and renders:
        # The article: "prompting at generation time will be for photo, realistic and 3D render will be in the
        # negative prompt" - the renders teach the face, the prompt asks for a photo.
        return list(PHOTO_STYLE), renders
    return medium, []


def _negative(base: str, prompt_tags: list[str], extra: list[str], *, photo: bool) -> str:
    """The preset's negative without what the prompt asks for; its medium tags (``Drawing``, ``3D render``) only
    when the prompt asks for a photo, since they would fight a drawn, painted or anime subject."""
    asked = {normalize_tag(t) for t in prompt_tags}
    kept = [t for t in split_tags(base) if normalize_tag(t) not in asked and (photo or not _is_medium(t))]
    kept += [t for t in extra if normalize_tag(t) not in {normalize_tag(k) for k in kept}]
    return ", ".join(kept)


def _asks_for_photo(tags: list[str]) -> bool:
    return any(normalize_tag(t) in {"photo", "photograph", "photography", "realistic", "photorealistic"} for t in tags)


def _tag_prompts(captions: _Captions, recipe: Recipe, base: dict[str, Any]) -> list[dict[str, Any]]:
    order, counts, spelling = _shared_tags(captions)
    n = len(captions.tags)
    common = [k for k in order if counts[k] >= SHARED * n]
    subject = [spelling[k] for k in common if not _is_medium(spelling[k])][:MAX_TAGS]
    medium = [spelling[k] for k in common if _is_medium(spelling[k])]
    subject = _with_trigger(subject, recipe.subject.trigger)
    style, unwanted = _output_style(medium, recipe.subject.purpose)
    varying = [k for k in order if 1 < counts[k] < SHARED * n and not _is_medium(spelling[k])] or [
        k for k in order if counts[k] == 1 and not _is_medium(spelling[k])
    ]
    views = [k for k in VIEW_TAGS if k in varying]
    extra = [spelling[k] for k in (views or varying)[:2]]
    photo = _asks_for_photo(style)
    prompts = []
    for tags in ([*subject, *style], [*subject, *extra, *style]) if extra else ([*subject, *style],):
        negative = _negative(base.get("negative", ""), tags, unwanted, photo=photo)
        prompts.append({**base, "prompt": ", ".join(tags), "negative": negative})
    return prompts


def _words(text: str) -> set[str]:
    return {w for w in normalize_tag(text.replace(",", " ")).split() if len(w) > 2}


def _sentence_prompts(captions: _Captions, recipe: Recipe, base: dict[str, Any]) -> list[dict[str, Any]]:
    words = [_words(t) for t in captions.texts]

    def likeness(i: int, j: int) -> float:
        union = words[i] | words[j]
        return len(words[i] & words[j]) / len(union) if union else 1.0

    n = len(captions.texts)
    centre = max(range(n), key=lambda i: (sum(likeness(i, j) for j in range(n) if j != i), -i))
    other = min((j for j in range(n) if j != centre), key=lambda j: (likeness(centre, j), j), default=None)
    out = []
    for i in (centre, other):
        if i is None:
            continue
        text = captions.texts[i].replace(" ,", ",").rstrip(",. ")
        trigger = recipe.subject.trigger
        if trigger and normalize_tag(trigger) not in normalize_tag(text):
            text = f"{trigger}, {text}"
        tags = split_tags(text)
        negative = _negative(base.get("negative", ""), tags, [], photo=_asks_for_photo(list(_words(text))))
        out.append({**base, "prompt": text, "negative": negative})
    return out


def _is_sentences(captions: _Captions) -> bool:
    lengths = sorted(len(t.split()) for tags in captions.tags for t in tags)
    return bool(lengths) and lengths[len(lengths) // 2] > 4


def choose_sample_prompts(recipe: Recipe, folders: list[Path]) -> PromptChoice:
    """The sample prompts for ``recipe`` trained on the images in ``folders`` (see the module docstring)."""
    preset = [p.model_dump(exclude_none=True) for p in recipe.samples.prompts]
    if not preset:
        return PromptChoice([], "preset", "the recipe has no sample prompts")
    captions = _read_captions(folders, recipe.dataset.caption_extension)
    if not captions.texts:
        return PromptChoice(preset, "preset", "no captions to derive sample prompts from: the preset's are kept")
    base = {k: v for k, v in preset[0].items() if k != "prompt"}
    if _is_sentences(captions):
        prompts = _sentence_prompts(captions, recipe, base)
        return PromptChoice(prompts, "captions", f"sample prompts from your captions ({len(captions.texts)} read)")
    order, counts, _ = _shared_tags(captions)
    common = {k for k in order if counts[k] >= SHARED * len(captions.tags)}
    if _fits(preset[0]["prompt"], common, recipe.subject.trigger):
        return PromptChoice(preset, "preset", "sample prompts: the preset's (its subject tags match your captions)")
    prompts = _tag_prompts(captions, recipe, base)
    return PromptChoice(prompts, "captions", f"sample prompts from your captions' tags ({len(captions.texts)} read)")
