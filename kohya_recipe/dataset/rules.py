"""The rules file: thresholds that are judgement calls, not the trainer's behaviour.

The defaults come from what the LoRA learns (the recipe's ``subject.purpose``, :func:`rules_for`):

- **likeness** (one person or character): the article's rules - about 42 images, mostly close front portraits
  plus its shot list (side, above, behind, upper body, full body);
- **style** (a look): no shot list and no front views; many images, and *varied subjects*: a tag in most captions
  (``1girl`` in 40 of 42) becomes part of the style;
- **concept** (an object, a pose, an idea): no shot list; the trigger as the concept's tag in every caption, and
  *varied contexts*: a tag that always comes with the concept is learnt as part of it.

:class:`Rules` holds one purpose's values; :func:`load_rules` reads a TOML file that changes any of them
(docs/dataset-checks.md shows every key and each purpose's defaults).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kohya_recipe.dataset.findings import SEVERITIES, Severity
from kohya_recipe.errors import DatasetError
from kohya_recipe.files import read_toml
from kohya_recipe.recipe.fields import Purpose

PURPOSES: tuple[str, ...] = typing.get_args(Purpose)


@dataclass(frozen=True)
class ShotRule:
    """One entry of the article's shot list, recognised by tags (any of ``tags``; ``*`` globs allowed).

    ``angle`` shots (side, above, behind) are not front portraits; framing shots (upper body, full body) are.
    """

    name: str
    tags: tuple[str, ...]
    min: int = 1
    article: str = ""
    angle: bool = True


@dataclass(frozen=True)
class ContradictionRule:
    """Tags that cannot both describe one image: when ``when`` is present, none of ``forbid`` may be."""

    when: str
    forbid: tuple[str, ...]
    reason: str
    severity: Severity = "warning"


# The article: "Almost all of the images should be very close portraits of the face from the front ... Take 2 or
# 3 slightly from each side and one 90 degrees to each side. Take one slightly from above. Take two from behind
# (one close to the head and the other including the torso). Take one of the torso and head from the front. Take
# one of the full body from the front." Its captions mark these with "from side" / "from behind".
DEFAULT_SHOTS: tuple[ShotRule, ...] = (
    ShotRule("from side", ("from side", "profile"), 4, "2-3 slightly from each side and one at 90° to each side"),
    ShotRule("from above", ("from above",), 1, "one slightly from above"),
    ShotRule("from behind", ("from behind",), 2, "two from behind: one close to the head, one with the torso"),
    ShotRule("upper body", ("upper body", "cowboy shot"), 1, "one of the torso and head from the front", False),
    ShotRule("full body", ("full body",), 1, "one of the full body from the front", False),
)

# The article's clean-up step: "ensure you remove any tags that may not be visible in the images from the back
# like 'earrings'"; plus framing/angle tags that exclude each other.
DEFAULT_CONTRADICTIONS: tuple[ContradictionRule, ...] = (
    ContradictionRule(
        "from behind",
        ("earrings", "* eyes", "lipstick", "eyelashes"),
        "not visible from behind; the article removes such tags (e.g. 'earrings') on back views",
    ),
    ContradictionRule(
        "full body", ("upper body", "portrait", "close-up", "cowboy shot"), "framing tags that exclude each other"
    ),
    ContradictionRule("upper body", ("portrait", "close-up"), "framing tags that exclude each other"),
    ContradictionRule("from above", ("from below",), "camera angles that exclude each other"),
)


@dataclass(frozen=True)
class Rules:
    """The judgement calls, with the article's values (a likeness) as defaults; :func:`rules_for` gives another
    purpose's, and a TOML rules file can change any of them.

    ``count_*``: the article takes 42 images, "any number close-ish to 40"; ``min_side``: "a minimum
    resolution of 768px on a side"; ``generation_aspect``: it generates at 640x768 and keeps "a good
    proportion of the training images in that same aspect ratio - the rest are square"; ``max_tags``: short
    captions ("longer ones will reduce the quality of your LoRA"; its base caption has 8 tags);
    ``tag_max_share``: a tag (besides the trigger) in more than this share of the captions is reported - for a
    likeness only one in every caption (info), for a style or concept one in most (a warning: not varied).
    """

    count_min: int = 25
    count_max: int = 60
    count_ideal: int = 42
    min_side: int = 768
    max_tags: int = 15
    generation_aspect: tuple[int, int] = (640, 768)
    aspect_tolerance: float = 0.04
    aspect_min_share: float = 0.75
    front_min_share: float = 0.5
    near_duplicate_distance: int = 6
    tag_max_share: float = 1.0
    shots: tuple[ShotRule, ...] = DEFAULT_SHOTS
    contradictions: tuple[ContradictionRule, ...] = DEFAULT_CONTRADICTIONS
    purpose: str = "likeness"
    source: str = "the article's defaults"


# Each purpose's defaults where they differ from the article's likeness rules. The numbers for a style and a
# concept are kohya-recipe's (the article trains a likeness): a look needs many examples of varied subjects, a
# concept fewer, in varied contexts; neither has a shot list or front portraits to count.
_PURPOSE_DEFAULTS: dict[str, dict[str, Any]] = {
    "likeness": {},
    "style": {
        "count_min": 30,
        "count_ideal": 100,
        "count_max": 1000,
        "aspect_min_share": 0.0,
        "front_min_share": 0.0,
        "tag_max_share": 0.8,
        "shots": (),
        "source": "kohya-recipe's defaults for a style",
    },
    "concept": {
        "count_min": 15,
        "count_ideal": 40,
        "count_max": 200,
        "aspect_min_share": 0.0,
        "front_min_share": 0.0,
        "tag_max_share": 0.8,
        "shots": (),
        "source": "kohya-recipe's defaults for a concept",
    },
}


def rules_for(purpose: str = "likeness") -> Rules:
    """The default rules for what the LoRA learns: ``likeness`` (the article's), ``style`` or ``concept``."""
    if purpose not in _PURPOSE_DEFAULTS:
        raise DatasetError(f"unknown purpose {purpose!r} (known: {', '.join(PURPOSES)})")
    return replace(Rules(), purpose=purpose, **_PURPOSE_DEFAULTS[purpose])


_RULE_KEYS: dict[str, dict[str, tuple[str, type | tuple[type, ...]]]] = {
    "count": {"min": ("count_min", int), "max": ("count_max", int), "ideal": ("count_ideal", int)},
    "resolution": {"min_side": ("min_side", int)},
    "captions": {"max_tags": ("max_tags", int)},
    "aspect": {
        "generation": ("generation_aspect", list),
        "tolerance": ("aspect_tolerance", (int, float)),
        "min_share": ("aspect_min_share", (int, float)),
    },
    "shots": {"front_min_share": ("front_min_share", (int, float))},
    "tags": {"max_share": ("tag_max_share", (int, float))},
    "duplicates": {"max_distance": ("near_duplicate_distance", int)},
}


def load_rules(path: str | Path, purpose: str = "likeness") -> Rules:
    """Read a rules TOML file (docs/dataset-checks.md shows every key); unknown keys are errors.

    Scalars override the ``purpose``'s defaults (:func:`rules_for`) one by one; a ``[[shot]]`` or
    ``[[contradiction]]`` list replaces the default list.
    """
    path = Path(path)
    src = str(path)
    data = read_toml(path, error=DatasetError)
    changes: dict[str, Any] = {"source": src}
    for section, value in data.items():
        if section == "shot":
            changes["shots"] = tuple(
                _shot_rule(v, f"shot[{i}]", src) for i, v in enumerate(_table_list(value, section, src))
            )
        elif section == "contradiction":
            changes["contradictions"] = tuple(
                _contradiction_rule(v, f"contradiction[{i}]", src)
                for i, v in enumerate(_table_list(value, section, src))
            )
        elif section in _RULE_KEYS and isinstance(value, dict):
            for key, raw in value.items():
                spec = _RULE_KEYS[section].get(key)
                if spec is None:
                    known = ", ".join(_RULE_KEYS[section])
                    raise DatasetError(f"unknown key (known: {known})", source=src, field=f"{section}.{key}")
                name, kind = spec
                if isinstance(raw, bool) or not isinstance(raw, kind):
                    raise DatasetError(f"wrong type {type(raw).__name__}", source=src, field=f"{section}.{key}")
                item: Any = raw
                if name == "generation_aspect":
                    if len(item) != 2 or not all(isinstance(x, int) and x > 0 for x in item):
                        raise DatasetError("must be [width, height]", source=src, field=f"{section}.{key}")
                    item = (item[0], item[1])
                elif item < 0:
                    raise DatasetError("must be >= 0", source=src, field=f"{section}.{key}")
                changes[name] = item
        elif section in _RULE_KEYS:
            raise DatasetError(f"write it as a [{section}] table of keys", source=src, field=section)
        else:
            known = ", ".join([*_RULE_KEYS, "shot", "contradiction"])
            raise DatasetError(f"unknown section (known: {known})", source=src, field=section)
    return replace(rules_for(purpose), **changes)


def _table_list(value: Any, section: str, src: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise DatasetError(f"write it as [[{section}]] tables", source=src, field=section)
    return value


def _str_list(value: Any, src: str, field_name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise DatasetError("must be a tag or a non-empty list of tags", source=src, field=field_name)
    return tuple(value)


def _check_keys(table: dict[str, Any], allowed: set[str], required: set[str], src: str, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise DatasetError(f"unknown key (known: {', '.join(sorted(allowed))})", source=src, field=f"{where}.{key}")
    for key in required - set(table):
        raise DatasetError("required key missing", source=src, field=f"{where}.{key}")


def _shot_rule(table: dict[str, Any], where: str, src: str) -> ShotRule:
    _check_keys(table, {"name", "tags", "min", "article", "angle"}, {"name", "tags"}, src, where)
    minimum = table.get("min", 1)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        raise DatasetError("must be an integer >= 0", source=src, field=f"{where}.min")
    return ShotRule(
        str(table["name"]),
        _str_list(table["tags"], src, f"{where}.tags"),
        minimum,
        str(table.get("article", "")),
        bool(table.get("angle", True)),
    )


def _contradiction_rule(table: dict[str, Any], where: str, src: str) -> ContradictionRule:
    _check_keys(table, {"when", "forbid", "reason", "severity"}, {"when", "forbid"}, src, where)
    severity = table.get("severity", "warning")
    if severity not in SEVERITIES:
        raise DatasetError(f"must be one of {', '.join(SEVERITIES)}", source=src, field=f"{where}.severity")
    when = _str_list(table["when"], src, f"{where}.when")
    if len(when) != 1:
        raise DatasetError("must be one tag", source=src, field=f"{where}.when")
    return ContradictionRule(
        when[0], _str_list(table["forbid"], src, f"{where}.forbid"), str(table.get("reason", "")), severity
    )
