"""The dataset doctor: everything that ruins a LoRA before any GPU time is spent, checked in one pass.

``check_dataset(DIR)`` takes a plain folder of images, a sd-scripts ``train_data_dir`` (``img/N_name/...``), one
``N_name`` folder or a rendered kohya-recipe project, works out what sd-scripts would read from it, and checks:

- **layout** — ``train_data_dir`` must be the *parent* of ``N_name`` folders (the most reported mistake:
  sd-scripts then finds no data and exits 0), folders without a repeats prefix, regularization folders, more
  than one subject folder (reference/sd_scripts.md §4; peers-and-user-asks.md asks 13-14);
- **count**, **resolution** (the article's 768 px minimum and, through :mod:`kohya_recipe.sdscripts.buckets`, the images
  the trainer will upscale), **aspect** ratios against the generation aspect and the bucket each image lands in;
- **files the trainer silently skips** (``.Png``, ``.gif``, nested folders, hidden files, two images sharing one
  caption), **corrupt** images (header-only scan; a real decode for suspicious headers or on demand),
  **EXIF** rotation and **alpha** channels (sd-scripts ignores both), **duplicates** (exact, and perceptual
  when decoding);
- **captions** — the recipe's extension (``.txt`` vs sd-scripts' ``.caption`` default, ask 15), missing,
  orphan, empty, non-UTF-8 and multi-line files, the **trigger** in every caption, length, Danbooru format,
  the tag table, tags in every caption; **shots** (the article's shot list) and **contradictions** from tags,
  from a configurable rules file.

Thresholds come from the recipe when one is given (or found in a project), else from the article. Nothing is
ever written. Every finding has a severity (error / warning / info), says what is wrong and what to do.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kohya_recipe.dataset.captions import (
    CAPTION_EXTENSIONS,
    Caption,
    CaptionError,
    TagPattern,
    caption_candidates,
    normalize_tag,
    parse_caption,
)
from kohya_recipe.dataset.images import (
    TRAINER_IMAGE_EXTENSIONS,
    DecodeResult,
    ImageHeader,
    ImageReadError,
    decode_image,
    looks_like_image,
    read_header,
)
from kohya_recipe.errors import DatasetError, ExitCode, KohyaRecipeError

if TYPE_CHECKING:
    from kohya_recipe.recipe.models import Recipe
    from kohya_recipe.sdscripts.buckets import BucketAssignment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
Progress = Callable[[int, int], None]  # (images done, images in total)

RESOLVED_RECIPE = "resolved-recipe.toml"
# Files sd-scripts or its tools leave next to images: latent/text-encoder caches (*.npz) and the image-info cache
# of `cache_info` (metadata_cache.json). They are not data problems.
_TRAINER_SIDE_FILES = re.compile(r"(\.npz|metadata_cache\.json)$")
_REG_NAME = re.compile(r"(^|[\W_])(reg|regs|regulari[sz]ation|class[ _-]?images?)($|[\W_])", re.IGNORECASE)
_REG_SIBLINGS = ("reg", "regularization", "regularisation", "reg_data", "reg_images")
# CLIP's pre-tokenizer pattern without the \p classes: every letter run, every digit, every punctuation run is
# at least one token, so this count is a lower bound of the real token count.
_CLIP_PIECES = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+")


# ----------------------------------------------------------------------------------------------------------
# Rules (thresholds that are the article's judgement, not the trainer's behaviour)


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
    """The judgement calls, with the article's values as defaults; a TOML rules file can change any of them.

    ``count_*``: the article takes 42 images, "any number close-ish to 40"; ``min_side``: "a minimum
    resolution of 768px on a side"; ``generation_aspect``: it generates at 640x768 and keeps "a good
    proportion of the training images in that same aspect ratio - the rest are square"; ``max_tags``: short
    captions ("longer ones will reduce the quality of your LoRA"; its base caption has 8 tags).
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
    shots: tuple[ShotRule, ...] = DEFAULT_SHOTS
    contradictions: tuple[ContradictionRule, ...] = DEFAULT_CONTRADICTIONS
    source: str = "the article's defaults"


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
    "duplicates": {"max_distance": ("near_duplicate_distance", int)},
}


def load_rules(path: str | Path) -> Rules:
    """Read a rules TOML file (docs/dataset-checks.md shows every key); unknown keys are errors.

    Scalars override the defaults one by one; a ``[[shot]]`` or ``[[contradiction]]`` list replaces the
    default list.
    """
    path = Path(path)
    src = str(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise DatasetError("rules file not found", source=src) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read: {exc}", source=src) from None
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"invalid TOML: {exc}", source=src) from None
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
    return replace(Rules(), **changes)


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


# ----------------------------------------------------------------------------------------------------------
# Settings (what the trainer will be told: from the recipe, or the article's values)


@dataclass(frozen=True)
class CheckSettings:
    """The training settings the checks depend on.

    Without a recipe these are the article's (resolution 768,768, ``.txt`` captions, shuffle off, flip on)
    with sd-scripts' bucket defaults (256-1024 in steps of 64, upscaling allowed).
    """

    trigger: str | None = None
    class_token: str | None = None
    caption_extension: str = ".txt"
    resolution: tuple[int, int] = (768, 768)
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    max_token_length: int = 75
    shuffle_caption: bool = False
    keep_tokens: int = 0
    flip: bool = True
    repeats: int | None = None
    regularization: str | None = None
    source: str = "the article's defaults (no recipe)"
    trigger_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def settings_from_recipe(recipe: Recipe, source: str = "recipe") -> CheckSettings:
    """The check settings a :class:`kohya_recipe.recipe.models.Recipe` implies."""
    tr = recipe.training
    trigger = recipe.subject.trigger or None
    return CheckSettings(
        trigger=trigger,
        class_token=recipe.subject.class_token or None,
        caption_extension=recipe.dataset.caption_extension,
        resolution=(int(tr.resolution[0]), int(tr.resolution[1])),
        enable_bucket=tr.enable_bucket,
        min_bucket_reso=tr.min_bucket_reso,
        max_bucket_reso=tr.max_bucket_reso,
        bucket_reso_steps=tr.bucket_reso_steps,
        bucket_no_upscale=tr.bucket_no_upscale,
        # sd-scripts: max_token_length None means 75 tokens (77 with the start/end tokens).
        max_token_length=tr.max_token_length or 75,
        shuffle_caption=recipe.augmentation.shuffle_caption,
        keep_tokens=recipe.augmentation.keep_tokens,
        flip=recipe.augmentation.flip,
        repeats=recipe.dataset.repeats,
        regularization=recipe.dataset.regularization,
        source=source,
        trigger_source=source if trigger else "",
    )


# ----------------------------------------------------------------------------------------------------------
# Findings and results


@dataclass
class Finding:
    """One problem (or note), with the files it concerns.

    ``items`` are ``(path, detail)`` pairs, the path relative to the checked folder.
    """

    severity: Severity
    check: str
    message: str
    fix: str = ""
    items: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "check": self.check,
            "message": self.message,
            "fix": self.fix,
            "items": [{"path": p, "detail": d} for p, d in self.items],
        }


@dataclass
class Subset:
    """A folder sd-scripts reads images from, as it would parse it.

    ``repeats``/``class_tokens`` come from the ``N_name`` folder name or the dataset config; ``trained`` is
    false for a folder sd-scripts skips (no repeats prefix, repeats < 1) — its images are still checked.
    """

    path: Path
    name: str
    repeats: int | None = None
    class_tokens: str | None = None
    is_reg: bool = False
    caption_extension: str | None = None
    trained: bool = True
    image_count: int = 0

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {
            "path": _rel(self.path, root),
            "name": self.name,
            "repeats": self.repeats,
            "class_tokens": self.class_tokens,
            "is_reg": self.is_reg,
            "caption_extension": self.caption_extension,
            "trained": self.trained,
            "images": self.image_count,
        }


@dataclass
class Layout:
    """What kind of folder was given and which subsets sd-scripts would read from it.

    ``kind``: ``project`` (a rendered kohya-recipe project), ``train_data_dir`` (parent of ``N_name``
    folders), ``subset`` (one ``N_name`` folder) or ``images`` (a plain folder of images).
    """

    kind: str
    root: Path
    train_data_dir: Path | None
    subsets: list[Subset]
    recipe_file: Path | None = None
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "root": str(self.root),
            "train_data_dir": None if self.train_data_dir is None else str(self.train_data_dir),
            "recipe_file": None if self.recipe_file is None else str(self.recipe_file),
            "subsets": [s.to_dict(self.root) for s in self.subsets],
        }


@dataclass
class ImageRecord:
    """Everything the doctor learnt about one image sd-scripts would train on."""

    path: Path
    rel: str
    subset: Subset
    header: ImageHeader | None = None
    error: str | None = None
    decoded: DecodeResult | None = None
    bucket: BucketAssignment | None = None
    caption_path: Path | None = None
    caption: Caption | None = None
    caption_status: str = "missing"  # ok, missing, empty, blank, not-text, unreadable, other-extension
    caption_error: str | None = None
    ntags: tuple[str, ...] = ()  # the caption's tags, normalised (captions.normalize_tag)
    shots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.header is None else (self.header.width, self.header.height)

    @property
    def tags(self) -> tuple[str, ...]:
        return () if self.caption is None else self.caption.tags

    def to_dict(self, root: Path) -> dict[str, Any]:
        h = self.header
        b = self.bucket
        return {
            "path": self.rel,
            "subset": self.subset.name,
            "format": None if h is None else h.format,
            "width": None if h is None else h.width,
            "height": None if h is None else h.height,
            "file_size": None if h is None else h.file_size,
            "orientation": None if h is None else h.orientation,
            "has_alpha": None if h is None else h.has_alpha,
            "suspicious": [] if h is None else list(h.suspicious),
            "error": self.error,
            "decoded": None if self.decoded is None else self.decoded.ok,
            "decode_error": None if self.decoded is None else self.decoded.error,
            "bucket": None if b is None or b.bucket is None else list(b.bucket),
            "resized": None if b is None or b.resized is None else list(b.resized),
            "upscaled": None if b is None else b.upscaled,
            "caption": None if self.caption_path is None else _rel(self.caption_path, root),
            "caption_status": self.caption_status,
            "caption_text": None if self.caption is None else self.caption.text,
            "tags": list(self.tags),
            "shots": self.shots,
            "notes": self.notes,
        }


@dataclass
class CheckResult:
    """The full outcome of :func:`check_dataset` (``to_dict`` is the ``--json`` output)."""

    root: Path
    layout: Layout
    settings: CheckSettings
    rules: Rules
    images: list[ImageRecord]
    findings: list[Finding]
    tag_counts: list[tuple[str, int]]
    shot_counts: dict[str, int]
    decoded: bool = False

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return self.count("error") == 0

    def exit_code(self, fail_on: Severity = "error") -> int:
        """0, or :attr:`ExitCode.CHECK_FAILED` when a finding reaches ``fail_on`` (error, or warning too)."""
        levels = SEVERITIES[: SEVERITIES.index(fail_on) + 1]
        failed = any(f.severity in levels for f in self.findings)
        return int(ExitCode.CHECK_FAILED) if failed else int(ExitCode.OK)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "ok": self.ok,
            "summary": {s: self.count(s) for s in SEVERITIES},
            "layout": self.layout.to_dict(),
            "settings": self.settings.to_dict(),
            "rules_source": self.rules.source,
            "decoded": self.decoded,
            "images": [r.to_dict(self.root) for r in self.images],
            "findings": [f.to_dict() for f in self.findings],
            "tags": [{"tag": t, "count": c} for t, c in self.tag_counts],
            "shots": self.shot_counts,
        }


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return str(path)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


# ----------------------------------------------------------------------------------------------------------
# Layout


def _parse_repeats(name: str) -> tuple[int | None, str]:
    """sd-scripts' folder-mode parse: ``int(name.split("_")[0])`` repeats, the rest joined with ``_``."""
    tokens = name.split("_")
    try:
        repeats = int(tokens[0])
    except ValueError:
        return None, name
    return repeats, "_".join(tokens[1:])


def _has_images(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(not e.name.startswith(".") and looks_like_image(Path(e.name)) for e in it)
    except OSError:
        return False


def _subdirs(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


def _folder_subsets(parent: Path, root: Path, *, is_reg: bool, findings: list[Finding]) -> list[Subset]:
    """The subsets sd-scripts' folder mode makes of ``parent`` (train_data_dir or reg_data_dir)."""
    subsets: list[Subset] = []
    ignored: list[tuple[str, str]] = []
    for sub in _subdirs(parent):
        repeats, tokens = _parse_repeats(sub.name)
        if repeats is None:
            if _has_images(sub):
                ignored.append((_rel(sub, root), "no repeats prefix"))
                subsets.append(Subset(sub, sub.name, None, None, is_reg, trained=False))
            continue
        if repeats < 1:
            ignored.append((_rel(sub, root), f"repeats {repeats} < 1"))
            subsets.append(Subset(sub, sub.name, repeats, tokens, is_reg, trained=False))
            continue
        subsets.append(Subset(sub, sub.name, repeats, tokens, is_reg))
    if ignored:
        trained = [s for s in subsets if s.trained]
        where = "reg_data_dir" if is_reg else "train_data_dir"
        if trained:
            msg = (
                f"sd-scripts skips {_plural(len(ignored), 'folder')} in {where} (no usable `N_` repeats prefix): "
                "their images are not trained"
            )
            severity: Severity = "warning"
        else:
            msg = (
                f"no folder in the {where} {parent} starts with a repeats number (`N_name`): sd-scripts "
                "skips them all, logs 'No data found' and exits with code 0 without training"
            )
            severity = "error"
        findings.append(
            Finding(
                severity,
                "layout",
                msg,
                "rename each image folder to `<repeats>_<trigger> <class>`, e.g. `10_CharacterAI woman` "
                "(the article's 10 repeats)",
                ignored,
            )
        )
    return subsets


def _dataset_config_subsets(project: Path, findings: list[Finding]) -> list[Subset] | None:
    """Subsets of a project's ``dataset.toml`` (image_dir is relative to the project: the trainer's cwd)."""
    path = project / "dataset.toml"
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        findings.append(
            Finding("error", "layout", f"dataset.toml cannot be read: {exc}", "re-render it: kohya-recipe render")
        )
        return None
    general = data.get("general", {}) if isinstance(data.get("general"), dict) else {}
    subsets: list[Subset] = []
    for dataset in data.get("datasets", []) or []:
        if not isinstance(dataset, dict):
            continue
        for sub in dataset.get("subsets", []) or []:
            if not isinstance(sub, dict) or not isinstance(sub.get("image_dir"), str):
                continue
            folder = Path(sub["image_dir"])
            folder = folder if folder.is_absolute() else project / folder
            ext = sub.get("caption_extension", dataset.get("caption_extension", general.get("caption_extension")))
            repeats = sub.get("num_repeats", 1)
            subsets.append(
                Subset(
                    folder,
                    _rel(folder, project),
                    repeats if isinstance(repeats, int) else None,
                    sub.get("class_tokens"),
                    bool(sub.get("is_reg", False)),
                    ext if isinstance(ext, str) else None,
                    trained=isinstance(repeats, int) and repeats >= 1,
                )
            )
    return subsets


def detect_layout(path: str | Path) -> Layout:
    """Work out what ``path`` is (project, train_data_dir, one ``N_name`` folder, plain images) and its subsets.

    Raises :class:`DatasetError` when ``path`` is not a folder; every layout problem is a finding.
    """
    root = Path(path)
    if not root.exists():
        raise DatasetError("folder not found", source=str(root))
    if not root.is_dir():
        raise DatasetError("not a folder (give the image folder, the train_data_dir or the project)", source=str(root))
    findings: list[Finding] = []
    resolved = root / RESOLVED_RECIPE

    img = root / "img"
    # A kohya-recipe project, or a kohya_ss GUI-style project folder (img/ with N_name folders, reg/, model/, log/).
    gui_project = img.is_dir() and any(_parse_repeats(d.name)[0] is not None for d in _subdirs(img))
    if resolved.is_file() or ((root / "dataset.toml").is_file() and img.is_dir()) or gui_project:
        subsets = _dataset_config_subsets(root, findings) if (root / "dataset.toml").is_file() else None
        if subsets is None:
            subsets = _folder_subsets(root / "img", root, is_reg=False, findings=findings)
            if (root / "reg").is_dir():
                subsets += _folder_subsets(root / "reg", root, is_reg=True, findings=findings)
        for s in subsets:
            if not s.path.is_dir():
                findings.append(
                    Finding(
                        "error",
                        "layout",
                        f"dataset.toml names image_dir '{_rel(s.path, root)}', which does not exist: sd-scripts "
                        "logs 'not directory' and skips it",
                        "rebuild the project (kohya-recipe build) or fix image_dir",
                    )
                )
        layout = Layout("project", root, root / "img", subsets, resolved if resolved.is_file() else None, findings)
        _common_layout_findings(layout)
        return layout

    subdirs = _subdirs(root)
    numbered = [d for d in subdirs if _parse_repeats(d.name)[0] is not None]
    direct_images = _has_images(root)
    own_repeats, own_tokens = _parse_repeats(root.name)

    if numbered:
        subsets = _folder_subsets(root, root, is_reg=False, findings=findings)
        if direct_images:
            findings.append(
                Finding(
                    "warning",
                    "layout",
                    "images lie directly in this train_data_dir: sd-scripts reads only the `N_name` sub-folders "
                    "and ignores them",
                    "move them into the `N_name` folder they belong to",
                    [(".", "images next to the N_name folders")],
                )
            )
        layout = Layout("train_data_dir", root, root, subsets, _enclosing_recipe(root), findings)
    elif own_repeats is not None and direct_images:
        findings.append(
            Finding(
                "warning",
                "layout",
                f"'{root.name}' is an image folder (`N_name`), not a train_data_dir: pointed at it, sd-scripts "
                "looks for `N_name` folders *inside* it, finds none, logs 'No data found' and exits 0 "
                "(the most reported kohya_ss mistake)",
                f"set train_data_dir to its parent: {root.resolve().parent}",
            )
        )
        subset = Subset(root, root.name, own_repeats, own_tokens, trained=own_repeats >= 1)
        layout = Layout("subset", root, root.parent, [subset], _enclosing_recipe(root), findings)
    elif subdirs and not direct_images and any(_has_images(d) for d in subdirs):
        # Folders of images, none with a repeats prefix: exactly sd-scripts' "No data found" case.
        subsets = _folder_subsets(root, root, is_reg=False, findings=findings)
        layout = Layout("train_data_dir", root, root, subsets, None, findings)
    else:
        findings.append(
            Finding(
                "info",
                "layout",
                "a plain image folder: as a train_data_dir sd-scripts would ignore these images (it reads "
                "`N_name` sub-folders only)",
                "kohya-recipe build renders the `img/<repeats>_<trigger> <class>/` layout from it",
            )
        )
        layout = Layout("images", root, None, [Subset(root, root.name)], None, findings)
    _common_layout_findings(layout)
    return layout


def _enclosing_recipe(root: Path) -> Path | None:
    """The ``resolved-recipe.toml`` of the project whose ``img/`` folder (or ``img/N_name`` folder) ``root`` is.

    ``check PROJECT/img`` must judge the images by the project's own settings (caption extension, resolution,
    trigger), as ``check PROJECT`` does, not by the article's defaults.
    """
    here = root.resolve()
    for project in (here.parent, here.parent.parent):
        candidate = project / RESOLVED_RECIPE
        if (here == project / "img" or here.parent == project / "img") and candidate.is_file():
            return candidate
    return None


def _common_layout_findings(layout: Layout) -> None:
    root = layout.root
    reg = [s for s in layout.subsets if s.is_reg]
    named_reg = [s for s in layout.subsets if not s.is_reg and _REG_NAME.search(s.name)]
    siblings: list[Path] = []
    base = layout.train_data_dir if layout.kind != "project" else None
    if base is not None:
        siblings = [base.parent / n for n in _REG_SIBLINGS if (base.parent / n).is_dir() and base.parent / n != base]
    if reg or siblings:
        items = [(_rel(s.path, root), "is_reg subset") for s in reg] + [
            (str(p), "next to the image folder") for p in siblings
        ]
        layout.findings.append(
            Finding(
                "warning",
                "layout",
                "regularization images are present: the article never uses them for a LoRA (they slow training and "
                "dilute a single subject)",
                "drop the reg folder (and dataset.regularization in the recipe) unless you mean to use it",
                items,
            )
        )
    if named_reg:
        layout.findings.append(
            Finding(
                "warning",
                "layout",
                "a folder inside the train_data_dir looks like regularization images: sd-scripts trains it as a "
                "second subject, not as regularization (reg images go in reg_data_dir)",
                "move it out of the train_data_dir; the article trains without regularization",
                [(_rel(s.path, root), s.name) for s in named_reg],
            )
        )
    subjects = [s for s in layout.subsets if s.trained and not s.is_reg]
    if len(subjects) > 1:
        layout.findings.append(
            Finding(
                "warning",
                "layout",
                f"{len(subjects)} subject folders: the article trains one thing per LoRA (combine LoRAs at "
                "generation time instead)",
                "keep one `N_name` folder; train other characters/styles as separate LoRAs",
                [(_rel(s.path, root), f"{s.repeats} repeats") for s in subjects],
            )
        )


# ----------------------------------------------------------------------------------------------------------
# Scanning


@dataclass
class _FolderScan:
    images: list[Path] = field(default_factory=list)
    files: dict[str, os.DirEntry[str]] = field(default_factory=dict)
    skipped_images: list[tuple[Path, str]] = field(default_factory=list)
    hidden_images: list[Path] = field(default_factory=list)
    nested: list[tuple[Path, int]] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)
    not_files: list[tuple[Path, str]] = field(default_factory=list)
    unreadable: str | None = None


def _count_images_below(folder: Path, limit: int = 10000) -> int:
    count = 0
    for _dirpath, _dirs, files in os.walk(folder):
        count += sum(1 for f in files if looks_like_image(Path(f)))
        if count >= limit:
            break
    return count


def _scan_folder(folder: Path) -> _FolderScan:
    scan = _FolderScan()
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        scan.unreadable = exc.strerror or str(exc)
        return scan
    for entry in entries:
        name = entry.name
        scan.files[name] = entry
        suffix = _split_name(name)[1]
        if suffix.lower() in CAPTION_EXTENSIONS and not name.startswith("."):
            continue  # the common case first: captions are looked up by name later
        path = folder / name
        if name.startswith("."):
            # sd-scripts globs `*<ext>`, and `*` never matches a leading dot.
            if looks_like_image(path) and not name.endswith(".tmp"):
                scan.hidden_images.append(path)
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if suffix in TRAINER_IMAGE_EXTENSIONS:
            # glob lists broken symlinks and folders named like images too; sd-scripts then fails to open them.
            if is_dir:
                scan.not_files.append((path, "a folder named like an image"))
            else:
                scan.images.append(path)
        elif is_dir:
            n = _count_images_below(path)
            if n:
                scan.nested.append((path, n))
        elif looks_like_image(path):
            low = suffix.lower()
            if low in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
                reason = f"mixed-case extension '{suffix}': sd-scripts matches only '{low}' or '{low.upper()}'"
            elif low in (".avif", ".jxl"):
                plugin = "pillow_avif" if low == ".avif" else "jxlpy or pillow_jxl"
                reason = f"'{suffix}' is read only when {plugin} is installed in sd-scripts' environment"
            else:
                reason = f"sd-scripts does not read '{suffix}' files"
            scan.skipped_images.append((path, reason))
        elif _TRAINER_SIDE_FILES.search(name):
            continue
        else:
            scan.others.append(path)
    return scan


def _split_name(name: str) -> tuple[str, str]:
    """(stem, suffix) of a file name, as ``Path.stem``/``Path.suffix`` split it, without building a Path: this
    runs for every file of a 10,000-image folder."""
    stem, suffix = os.path.splitext(name)  # noqa: PTH122
    return stem, suffix


def _is_file(scan: _FolderScan, name: str) -> bool:
    entry = scan.files.get(name)
    if entry is None:
        return False
    try:
        return entry.is_file()  # follows symlinks, as sd-scripts' os.path.isfile does
    except OSError:
        return False


def _read_caption_for(record: ImageRecord, scan: _FolderScan, extension: str) -> None:
    # sd-scripts' candidates (captions.caption_candidates), with plain strings: this runs once per image.
    spath = os.fspath(record.path)
    base = spath[: len(spath) - len(_split_name(record.path.name)[1])]
    first = _split_name(record.path.name)[0] + extension
    if _is_file(scan, first):
        record.caption_path = record.subset.path / first
    else:
        pieces = base.split("_")
        second = "_".join(pieces[:-4]) + extension if len(pieces) >= 5 else None
        if second is not None and Path(second).is_file():
            record.caption_path = Path(second)
        else:
            # A broken symlink, a folder or a FIFO with the caption's name: os.path.isfile is false, sd-scripts treats
            # the image as uncaptioned.
            if first in scan.files:
                record.caption_status = "not-a-file"
                record.caption_error = "is a broken symlink, a folder or a FIFO, not a file: sd-scripts sees no caption"
            return
    try:
        with open(record.caption_path, "rb") as f:  # noqa: PTH123 - the hot path; Path.open adds overhead
            raw = f.read()
    except OSError as exc:
        record.caption_status = "unreadable"
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        record.caption_error = f"cannot read ({reason}): sd-scripts stops with an exception on it"
        return
    if not raw:
        record.caption_status = "empty"
        record.caption_error = "0 bytes: sd-scripts stops with 'caption file is empty'"
        return
    try:
        record.caption = parse_caption(raw, record.caption_path)
    except CaptionError as exc:
        record.caption_status = "not-text"
        record.caption_error = exc.message
        return
    record.ntags = tuple(normalize_tag(t) for t in record.caption.tags)
    record.caption_status = "ok" if record.caption.text else "blank"
    if not record.caption.text:
        record.caption_error = "has no text: the image trains with an empty caption"


# ----------------------------------------------------------------------------------------------------------
# The checks


def check_dataset(
    path: str | Path,
    *,
    recipe: Recipe | str | Path | None = None,
    rules: Rules | str | Path | None = None,
    trigger: str | None = None,
    decode: bool = False,
    progress: Progress | None = None,
    settings: CheckSettings | None = None,
) -> CheckResult:
    """Check ``path`` (images, train_data_dir, ``N_name`` folder or project) and return every finding.

    ``recipe``: a Recipe or a recipe TOML path; a project's ``resolved-recipe.toml`` is used when none is given.
    ``rules``: a :class:`Rules` or a rules TOML path. ``trigger`` overrides the recipe's trigger word.
    ``settings`` replaces the recipe altogether (e.g. settings read from an sd-scripts config by a script).
    ``decode`` decodes every image (pixels verified, alpha use measured, near-duplicates searched); without
    it only images whose header looks wrong are decoded. ``progress(done, total)`` is called per image.
    Nothing is written. Raises only for an unusable input (``path`` missing, recipe or rules invalid).
    """
    layout = detect_layout(path)
    root = layout.root
    if settings is None:
        settings = _resolve_settings(layout, recipe, trigger)
    elif trigger:
        settings = replace(settings, trigger=trigger, trigger_source="--trigger")
    the_rules = rules if isinstance(rules, Rules) else (load_rules(rules) if rules is not None else Rules())
    findings: list[Finding] = list(layout.findings)

    bucketer, bucket_problem = _bucketer(settings)
    if bucket_problem:
        findings.append(bucket_problem)

    scans: list[tuple[Subset, _FolderScan]] = []
    for subset in layout.subsets:
        if not subset.path.is_dir():
            continue
        scan = _scan_folder(subset.path)
        scans.append((subset, scan))
        subset.image_count = len(scan.images)
        if scan.unreadable:
            findings.append(
                Finding(
                    "error",
                    "files",
                    f"cannot list the folder ({scan.unreadable}): sd-scripts cannot read it either",
                    "fix the folder's permissions",
                    [(_rel(subset.path, root), scan.unreadable)],
                )
            )

    total = sum(len(scan.images) for _s, scan in scans)
    records: list[ImageRecord] = []
    for subset, scan in scans:
        ext = subset.caption_extension or settings.caption_extension
        prefix = _rel(subset.path, root)
        prefix = "" if prefix == "." else prefix + "/"
        for image in scan.images:
            record = ImageRecord(image, prefix + image.name, subset)
            try:
                record.header = read_header(image)
            except ImageReadError as exc:
                record.error = exc.message
            if record.header is not None and (decode or record.header.suspicious):
                record.decoded = decode_image(image, want_hash=decode)
            if record.header is not None and bucketer is not None:
                record.bucket = bucketer(record.header.width, record.header.height)
            _read_caption_for(record, scan, ext)
            records.append(record)
            if progress is not None:
                progress(len(records), total)

    trained = [r for r in records if r.subset.trained and not r.subset.is_reg]
    settings = _infer_trigger(settings, layout)

    findings += _layout_subset_findings(layout, scans, settings)
    findings += _file_findings(scans, root)
    findings += _count_findings(trained, the_rules, layout)
    findings += _image_findings(records, settings, the_rules)
    findings += _aspect_findings(trained, the_rules, settings)
    findings += _duplicate_findings(records, the_rules, settings, decode)
    caption_findings, tag_counts = _caption_findings(records, scans, settings, the_rules, root)
    findings += caption_findings
    shot_findings, shot_counts = _shot_findings(trained, the_rules)
    findings += shot_findings
    findings += _contradiction_findings(trained, the_rules, settings)

    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: order[f.severity])
    return CheckResult(root, layout, settings, the_rules, records, findings, tag_counts, shot_counts, decode)


def _resolve_settings(layout: Layout, recipe: Recipe | str | Path | None, trigger: str | None) -> CheckSettings:
    if recipe is None and layout.recipe_file is not None:
        recipe = layout.recipe_file
    if recipe is None:
        settings = CheckSettings()
    elif isinstance(recipe, (str, Path)):
        from kohya_recipe.recipe.loading import load_recipe

        settings = settings_from_recipe(load_recipe(recipe), source=str(recipe))
    else:
        settings = settings_from_recipe(recipe)
    if trigger:
        settings = replace(settings, trigger=trigger, trigger_source="--trigger")
    # A dataset config may set the caption extension per subset; the folder-mode default is the recipe's.
    return settings


def _infer_trigger(settings: CheckSettings, layout: Layout) -> CheckSettings:
    """Without a trigger, take it from a `N_<trigger> <class>` folder name (the kohya_ss GUI's convention)."""
    if settings.trigger:
        return settings
    names = {s.class_tokens for s in layout.subsets if s.trained and not s.is_reg and s.class_tokens}
    if len(names) != 1:
        return settings
    tokens = names.pop()
    words = tokens.split()
    trigger = None
    if settings.class_token and tokens.endswith(" " + settings.class_token):
        trigger = tokens[: -len(settings.class_token) - 1].strip()
    elif len(words) >= 2:
        trigger = words[0]
    if not trigger:
        return settings
    folder = next(s.name for s in layout.subsets if s.class_tokens == tokens)
    return replace(settings, trigger=trigger, trigger_source=f"folder name '{folder}'")


def _bucketer(settings: CheckSettings) -> tuple[Callable[[int, int], BucketAssignment] | None, Finding | None]:
    """A cached ``select_bucket`` for the settings, or the finding that says why there is none."""
    from kohya_recipe.sdscripts.buckets import bucket_manager_for

    try:
        manager = bucket_manager_for(
            settings.resolution,
            enable_bucket=settings.enable_bucket,
            min_bucket_reso=settings.min_bucket_reso,
            max_bucket_reso=settings.max_bucket_reso,
            bucket_reso_steps=settings.bucket_reso_steps,
            bucket_no_upscale=settings.bucket_no_upscale,
        )
    except KohyaRecipeError as exc:
        return None, Finding(
            "error", "resolution", f"the bucket settings stop sd-scripts: {exc}", "fix the recipe's training section"
        )
    cache: dict[tuple[int, int], BucketAssignment] = {}

    def select(width: int, height: int) -> BucketAssignment:
        key = (width, height)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = manager.select_bucket(width, height)
        return hit

    return select, None


def _layout_subset_findings(
    layout: Layout, scans: list[tuple[Subset, _FolderScan]], settings: CheckSettings
) -> list[Finding]:
    out: list[Finding] = []
    root = layout.root
    if settings.regularization and not any(s.is_reg for s in layout.subsets):
        out.append(
            Finding(
                "warning",
                "layout",
                f"the recipe trains with regularization images ({settings.regularization}): the article never does "
                "for a LoRA (they slow training and dilute a single subject)",
                "remove dataset.regularization from the recipe",
            )
        )
    empty = [
        (_rel(s.path, root), "no image sd-scripts reads")
        for s, scan in scans
        if s.trained and not scan.images and not scan.unreadable
    ]
    if empty:
        out.append(
            Finding(
                "warning" if len(empty) < len([s for s, _ in scans if s.trained]) else "error",
                "layout",
                "image folder without any image sd-scripts reads: it logs 'no images' and skips the folder",
                "put the images (.png/.jpg/.jpeg/.webp/.bmp) directly in the folder",
                empty,
            )
        )
    if settings.repeats is not None and layout.kind in ("train_data_dir", "subset"):
        differ = [
            (_rel(s.path, root), f"{s.repeats} repeats")
            for s in layout.subsets
            if s.trained and not s.is_reg and s.repeats != settings.repeats
        ]
        if differ:
            out.append(
                Finding(
                    "warning",
                    "layout",
                    f"the folder's repeats differ from the recipe's dataset.repeats = {settings.repeats}: in folder "
                    "mode sd-scripts takes the repeats from the folder name",
                    "rename the folder or change dataset.repeats so the step plan is what you expect",
                    differ,
                )
            )
    return out


def _file_findings(scans: list[tuple[Subset, _FolderScan]], root: Path) -> list[Finding]:
    out: list[Finding] = []
    skipped = [(_rel(p, root), reason) for _s, scan in scans for p, reason in scan.skipped_images]
    if skipped:
        out.append(
            Finding(
                "warning",
                "files",
                f"{_plural(len(skipped), 'image')} that sd-scripts silently skips",
                "convert or rename them to .png/.jpg/.jpeg/.webp/.bmp (all lower-case or all upper-case)",
                skipped,
            )
        )
    hidden = [(_rel(p, root), "name starts with '.'") for _s, scan in scans for p in scan.hidden_images]
    if hidden:
        out.append(
            Finding(
                "warning",
                "files",
                f"{_plural(len(hidden), 'hidden image')}: sd-scripts' glob never matches names starting with '.'",
                "rename them without the leading dot, or delete them if they are editor/OS leftovers",
                hidden,
            )
        )
    nested = [(_rel(p, root), f"{n} images inside") for _s, scan in scans for p, n in scan.nested]
    if nested:
        out.append(
            Finding(
                "warning",
                "files",
                "images in sub-folders of an image folder: sd-scripts does not look into sub-folders",
                "move them up into the image folder (or make the sub-folder its own `N_name` folder)",
                nested,
            )
        )
    not_files = [(_rel(p, root), why) for _s, scan in scans for p, why in scan.not_files]
    if not_files:
        out.append(
            Finding(
                "error",
                "files",
                "sd-scripts lists these as images and fails to open them",
                "rename or remove them",
                not_files,
            )
        )
    others = [(_rel(p, root), "") for _s, scan in scans for p in scan.others]
    if others:
        out.append(
            Finding(
                "info",
                "files",
                f"{_plural(len(others), 'other file')} in the image folders (ignored by sd-scripts)",
                "",
                others,
            )
        )
    # Same stem, two image extensions: both are trained, and both read the same caption file.
    stems: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for subset, scan in scans:
        for image in scan.images:
            stems[(subset.path, _split_name(image.name)[0])].append(image)
    shared = [
        (_rel(folder / stem, root), ", ".join(p.name for p in ps))
        for (folder, stem), ps in stems.items()
        if len(ps) > 1
    ]
    if shared:
        out.append(
            Finding(
                "warning",
                "files",
                "the same name with two image extensions: sd-scripts trains both and gives both the same caption "
                "file (usually one image saved twice)",
                "keep one of each pair",
                shared,
            )
        )
    return out


def _count_findings(trained: list[ImageRecord], rules: Rules, layout: Layout) -> list[Finding]:
    n = len(trained)
    if n == 0:
        return [
            Finding(
                "error",
                "count",
                "no image sd-scripts would train on: it logs 'No data found' and exits 0 without a LoRA",
                "check the layout findings above; train_data_dir must contain `N_name` folders with images",
            )
        ]
    repeats = sorted({r.subset.repeats for r in trained if r.subset.repeats})
    per_epoch = sum(r.subset.repeats or 1 for r in trained)
    detail = f"{n} images" + (f" × {repeats[0]} repeats = {per_epoch} images per epoch" if len(repeats) == 1 else "")
    if n < rules.count_min:
        return [
            Finding(
                "warning",
                "count",
                f'only {detail}: the article takes {rules.count_ideal} ("any number close-ish to 40"); fewer '
                "images give the LoRA too few views of the subject",
                f"add images until you have about {rules.count_ideal} (mostly close front portraits)",
            )
        ]
    if n > rules.count_max:
        return [
            Finding(
                "warning",
                "count",
                f"{detail}: more than the article's ~{rules.count_ideal} for a single-subject LoRA; more images mean "
                "more steps per epoch and usually a less focused likeness",
                f"pick the best ~{rules.count_ideal}, or lower the repeats",
            )
        ]
    return [Finding("info", "count", f"{detail} (the article: {rules.count_ideal})")]


def _image_findings(records: list[ImageRecord], settings: CheckSettings, rules: Rules) -> list[Finding]:
    unreadable: list[tuple[str, str]] = []
    corrupt: list[tuple[str, str]] = []
    odd_ok: list[tuple[str, str]] = []
    mismatch: list[tuple[str, str]] = []
    small: list[tuple[str, str]] = []
    upscaled: list[tuple[str, str]] = []
    bucket_errors: list[tuple[str, str]] = []
    rotated: list[tuple[str, str]] = []
    alpha: list[tuple[str, str]] = []
    alpha_opaque: list[tuple[str, str]] = []
    grey: list[tuple[str, str]] = []
    animated: list[tuple[str, str]] = []
    for r in records:
        if r.error is not None:
            unreadable.append((r.rel, r.error))
            r.notes.append("unreadable")
            continue
        h = r.header
        assert h is not None
        if r.decoded is not None and not r.decoded.ok:
            why = f"; header: {'; '.join(h.suspicious)}" if h.suspicious else ""
            corrupt.append((r.rel, f"decoding failed: {r.decoded.error}{why}"))
            r.notes.append("corrupt")
        elif h.suspicious:
            wrong_format = [s for s in h.suspicious if "as its extension says" in s]
            other = [s for s in h.suspicious if s not in wrong_format and "not parsed" not in s]
            if wrong_format:
                mismatch.append((r.rel, wrong_format[0]))
                r.notes.append(f"is {h.format}")
            if other and r.decoded is not None:
                odd_ok.append((r.rel, "; ".join(other)))
        short = min(h.width, h.height)
        b = r.bucket
        if short < rules.min_side:
            small.append((r.rel, f"{h.width}x{h.height}"))
            r.notes.append(f"<{rules.min_side}")
        if b is not None and b.error:
            bucket_errors.append((r.rel, b.error))
            r.notes.append("bucket error")
        elif b is not None and b.upscaled and b.resized is not None and b.bucket is not None:
            scale = max(b.resized[0] / h.width, b.resized[1] / h.height)
            upscaled.append(
                (
                    r.rel,
                    f"{h.width}x{h.height} -> {b.resized[0]}x{b.resized[1]} (×{scale:.2f}), "
                    f"bucket {b.bucket[0]}x{b.bucket[1]}",
                )
            )
            r.notes.append(f"upscaled ×{scale:.2f}")
        if h.orientation not in (None, 1):
            rotated.append((r.rel, f"EXIF orientation {h.orientation} ({_ORIENTATION[h.orientation]})"))
            r.notes.append(f"exif {h.orientation}")
        if h.has_alpha:
            if r.decoded is not None and r.decoded.ok and r.decoded.alpha_used is False:
                alpha_opaque.append((r.rel, "alpha channel, every pixel opaque"))
            else:
                alpha.append(
                    (
                        r.rel,
                        "alpha channel" + (" with transparent pixels" if r.decoded and r.decoded.alpha_used else ""),
                    )
                )
                r.notes.append("alpha")
        if h.grayscale:
            grey.append((r.rel, "greyscale"))
            r.notes.append("grey")
        if h.animated:
            animated.append((r.rel, "animated"))
    out: list[Finding] = []
    if unreadable:
        out.append(
            Finding(
                "error",
                "corrupt",
                f"{_plural(len(unreadable), 'file')} with an image extension that cannot be read as an image: "
                "sd-scripts stops with an exception when it reaches them",
                "replace them with good copies, fix permissions or broken links, or delete them",
                unreadable,
            )
        )
    if corrupt:
        out.append(
            Finding(
                "error",
                "corrupt",
                f"{_plural(len(corrupt), 'image')} cannot be decoded (truncated or corrupt): sd-scripts stops when it "
                "loads them (while caching latents or in the first epoch)",
                "re-export or re-download them",
                corrupt,
            )
        )
    if odd_ok:
        out.append(Finding("info", "corrupt", "the header looked odd, but the image decodes completely", "", odd_ok))
    if mismatch:
        out.append(
            Finding(
                "info",
                "files",
                "the extension does not match the content: sd-scripts reads it anyway (Pillow looks at the content), "
                "but other tools may not",
                "rename the file to its real format's extension",
                mismatch,
            )
        )
    if bucket_errors:
        out.append(
            Finding(
                "error",
                "resolution",
                "sd-scripts cannot bucket these images",
                "fix the bucket settings or drop the images",
                bucket_errors,
            )
        )
    if small:
        out.append(
            Finding(
                "warning",
                "resolution",
                f"{_plural(len(small), 'image')} shorter than {rules.min_side} px on a side: the article needs "
                f"at least {rules.min_side} (and recommends ~4096)",
                "replace them with larger captures",
                small,
            )
        )
    if upscaled:
        mode = f"resolution {settings.resolution[0]}x{settings.resolution[1]}" + (
            ", buckets" if settings.enable_bucket else ", no buckets"
        )
        out.append(
            Finding(
                "warning",
                "resolution",
                f"sd-scripts will upscale {_plural(len(upscaled), 'image')} to fill its bucket ({mode}): upscaled "
                "images teach blur",
                "use larger source images, or set training.bucket_no_upscale = true",
                upscaled,
            )
        )
    if rotated:
        out.append(
            Finding(
                "warning",
                "exif",
                f"{_plural(len(rotated), 'image')} rely on EXIF rotation, which sd-scripts ignores: they train "
                "sideways or mirrored, as the pixels are stored",
                "rotate the pixels and drop the tag (e.g. `exiftran -ai FILE` or `mogrify -auto-orient FILE`)",
                rotated,
            )
        )
    if alpha:
        out.append(
            Finding(
                "warning",
                "alpha",
                f"{_plural(len(alpha), 'image')} with an alpha channel: sd-scripts converts to RGB and drops it, so "
                "transparent areas train as whatever colour is stored under them (usually black)",
                "flatten them onto a plain background (the article: simple, solid-colour backgrounds)",
                alpha,
            )
        )
    if alpha_opaque:
        out.append(Finding("info", "alpha", "alpha channel present but fully opaque: harmless", "", alpha_opaque))
    if grey:
        out.append(
            Finding(
                "info", "images", "greyscale images train as grey RGB (colour comes only from the others)", "", grey
            )
        )
    if animated:
        out.append(Finding("info", "images", "animated images: sd-scripts trains the first frame only", "", animated))
    return out


_ORIENTATION = {
    1: "normal",
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped vertically",
    5: "mirrored and rotated 90° CCW",
    6: "rotated 90° CW",
    7: "mirrored and rotated 90° CW",
    8: "rotated 90° CCW",
}


def _aspect_findings(trained: list[ImageRecord], rules: Rules, settings: CheckSettings) -> list[Finding]:
    sized = [r for r in trained if r.header is not None]
    if not sized:
        return []
    gw, gh = rules.generation_aspect
    target = gw / gh
    groups: Counter[str] = Counter()
    others: list[tuple[str, str]] = []
    for r in sized:
        assert r.header is not None
        ar = r.header.width / r.header.height
        if abs(ar - target) / target <= rules.aspect_tolerance:
            groups[f"{gw}:{gh}"] += 1
        elif abs(ar - 1.0) <= rules.aspect_tolerance:
            groups["square"] += 1
        else:
            kind = "portrait" if ar < 1 else "landscape"
            groups[f"other {kind}"] += 1
            others.append((r.rel, f"{r.header.width}x{r.header.height} ({kind}, {ar:.2f})"))
    buckets: Counter[str] = Counter(
        f"{r.bucket.bucket[0]}x{r.bucket.bucket[1]}"
        for r in sized
        if r.bucket is not None and r.bucket.bucket is not None
    )
    mix = ", ".join(f"{k} {v}" for k, v in groups.most_common())
    bucket_text = ", ".join(f"{k}: {v}" for k, v in sorted(buckets.items(), key=lambda kv: (-kv[1], kv[0])))
    out = [Finding("info", "aspect", f"aspect mix: {mix}; buckets: {bucket_text or 'none'}")]
    share = (groups[f"{gw}:{gh}"] + groups["square"]) / len(sized)
    if share < rules.aspect_min_share:
        out.append(
            Finding(
                "warning",
                "aspect",
                f"only {share:.0%} of the images are {gw}:{gh} portraits or square: the article keeps a good "
                f"proportion at its generation size {gw}x{gh} and the rest square (aspect ratio shapes the output)",
                f"crop the others to {gw}:{gh} or square",
                others,
            )
        )
    elif groups[f"{gw}:{gh}"] == 0 and len(sized) >= 4:
        out.append(
            Finding(
                "info",
                "aspect",
                f"no image at the generation aspect {gw}:{gh}: the article keeps a good proportion at the size it "
                "generates at",
                f"crop some portraits to {gw}:{gh}",
            )
        )
    return out


def _sample_digest(path: Path, offsets: Sequence[int]) -> bytes | None:
    """blake2b of the 4 KiB blocks at ``offsets`` (cheap evidence before hashing a whole file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        h = hashlib.blake2b(digest_size=16)
        for offset in offsets:
            h.update(os.pread(fd, 4096, offset))
        return h.digest()
    except OSError:
        return None
    finally:
        os.close(fd)


def _full_digest(path: Path) -> bytes | None:
    h = hashlib.blake2b(digest_size=32)
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.digest()


def _exact_duplicates(records: list[ImageRecord]) -> list[list[ImageRecord]]:
    """Groups of byte-identical images, narrowed step by step so that distinct files are rarely read whole:
    same size, then the same first 4 KiB (metadata differs between photos), then the same middle and last
    4 KiB, then the same full hash."""
    by_size: dict[int, list[ImageRecord]] = defaultdict(list)
    for r in records:
        if r.header is not None:
            by_size[r.header.file_size].append(r)
    groups: list[list[ImageRecord]] = []

    def split(candidates: list[ImageRecord], key: Callable[[ImageRecord], bytes | None]) -> list[list[ImageRecord]]:
        buckets: dict[bytes, list[ImageRecord]] = defaultdict(list)
        for r in candidates:
            k = key(r)
            if k is not None:
                buckets[k].append(r)
        return [b for b in buckets.values() if len(b) > 1]

    for size, same_size in by_size.items():
        if len(same_size) < 2:
            continue
        tail = (size // 2, max(0, size - 4096))
        for same_head in split(same_size, lambda r: _sample_digest(r.path, (0,))):
            for same_sample in split(same_head, lambda r, t=tail: _sample_digest(r.path, t)):  # type: ignore[misc]
                groups += split(same_sample, lambda r: _full_digest(r.path))
    return groups


def _near_duplicates(records: list[ImageRecord], max_distance: int) -> list[tuple[ImageRecord, ImageRecord, int, bool]]:
    """Pairs whose 64-bit dHashes differ in at most ``max_distance`` bits (also against the mirror image).

    Multi-index search: split the hash into ``max_distance + 1`` bands; two hashes that close share at least
    one band exactly (pigeonhole), so only records sharing a band are compared.
    """
    hashed = [r for r in records if r.decoded is not None and r.decoded.ok and r.decoded.dhash is not None]
    bands = max_distance + 1
    width = -(-64 // bands)
    index: dict[tuple[int, int], list[int]] = defaultdict(list)

    def band_keys(h: int) -> list[tuple[int, int]]:
        return [(b, (h >> (b * width)) & ((1 << width) - 1)) for b in range(bands)]

    for i, r in enumerate(hashed):
        assert r.decoded is not None and r.decoded.dhash is not None
        for key in band_keys(r.decoded.dhash):
            index[key].append(i)
    pairs: dict[tuple[int, int], tuple[int, bool]] = {}
    for i, r in enumerate(hashed):
        assert r.decoded is not None and r.decoded.dhash is not None
        for mirrored, h in ((False, r.decoded.dhash), (True, r.decoded.dhash_mirror)):
            if h is None:
                continue
            for key in band_keys(h):
                for j in index[key]:
                    if j == i:
                        continue
                    other = hashed[j].decoded
                    assert other is not None and other.dhash is not None
                    dist = (h ^ other.dhash).bit_count()
                    pair = (min(i, j), max(i, j))
                    if dist <= max_distance and (pair not in pairs or dist < pairs[pair][0]):
                        pairs[pair] = (dist, mirrored)
    return [(hashed[i], hashed[j], d, m) for (i, j), (d, m) in sorted(pairs.items())]


def _duplicate_findings(
    records: list[ImageRecord], rules: Rules, settings: CheckSettings, decoded: bool
) -> list[Finding]:
    out: list[Finding] = []
    exact = _exact_duplicates(records)
    exact_pairs: set[frozenset[str]] = set()
    if exact:
        items = []
        for group in exact:
            names = [r.rel for r in group]
            for r in group:
                r.notes.append("duplicate")
            items.append((names[0], "identical to " + ", ".join(names[1:])))
            exact_pairs |= {frozenset((a, b)) for a in names for b in names if a != b}
        out.append(
            Finding(
                "warning",
                "duplicates",
                f"{_plural(len(exact), 'group')} of byte-identical images: each copy trains the same picture again "
                "(it weighs double)",
                "delete the extra copies",
                items,
            )
        )
    if decoded:
        near = [
            (a, b, d, m)
            for a, b, d, m in _near_duplicates(records, rules.near_duplicate_distance)
            if frozenset((a.rel, b.rel)) not in exact_pairs
        ]
        if near:
            items = []
            for a, b, dist, mirrored in near:
                a.notes.append("near-duplicate")
                b.notes.append("near-duplicate")
                how = "a mirror image of" if mirrored else "nearly identical to"
                items.append((a.rel, f"{how} {b.rel} (hash distance {dist}/64)"))
            flip = " (flip augmentation already trains every image mirrored)" if settings.flip else ""
            out.append(
                Finding(
                    "warning",
                    "duplicates",
                    f"{_plural(len(near), 'pair')} of near-duplicate images{flip}: near copies add steps, not views",
                    "keep the better of each pair, or vary the pose/angle",
                    items,
                )
            )
    elif records:
        out.append(
            Finding(
                "info",
                "duplicates",
                "near-duplicates not searched (header-only scan)",
                "run with --decode to decode every image and compare perceptual hashes",
            )
        )
    return out


def _clip_tokens_lower_bound(text: str) -> int:
    return len(_CLIP_PIECES.findall(text.lower()))


def _caption_findings(
    records: list[ImageRecord],
    scans: list[tuple[Subset, _FolderScan]],
    settings: CheckSettings,
    rules: Rules,
    root: Path,
) -> tuple[list[Finding], list[tuple[str, int]]]:
    out: list[Finding] = []
    trained = [r for r in records if r.subset.trained and not r.subset.is_reg and r.error is None]
    by_status: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_status[r.caption_status].append(r)

    # Captions that exist, but with another extension than the trainer is told to read.
    other_ext: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in by_status["missing"]:
        ext = r.subset.caption_extension or settings.caption_extension
        for alt in CAPTION_EXTENSIONS:
            if alt != ext and caption_candidates(r.path, alt)[0].is_file():
                other_ext[alt].append(r)
                r.caption_status = "other-extension"
                break
    for alt, recs in other_ext.items():
        ext = recs[0].subset.caption_extension or settings.caption_extension
        tokens = recs[0].subset.class_tokens
        instead = f"the folder's class tokens '{tokens}'" if tokens else "an empty caption"
        out.append(
            Finding(
                "error",
                "captions",
                f"{_plural(len(recs), 'image')} have a '{alt}' caption but the trainer reads '{ext}' "
                f"(caption_extension): sd-scripts will not see them and trains with {instead} instead "
                "(kohya_ss#1370; sd-scripts' own default is '.caption')",
                f"set dataset.caption_extension = \"{alt}\" in the recipe, or rename the captions to '{ext}'",
                [(r.rel, r.path.stem + alt) for r in recs],
            )
        )
        for r in recs:
            r.notes.append(f"caption is {alt}")

    missing = [r for r in by_status["missing"] if r.caption_status == "missing"] + by_status["not-a-file"]
    if missing:
        tokens = missing[0].subset.class_tokens
        instead = f"with only the folder's class tokens '{tokens}' as caption" if tokens else "with an empty caption"
        ext = missing[0].subset.caption_extension or settings.caption_extension
        out.append(
            Finding(
                "error",
                "captions",
                f"{_plural(len(missing), 'image')} without a caption file ({ext}): sd-scripts trains them "
                f"{instead} (it only logs a warning)",
                'write one per image, e.g. kohya-recipe caption init DIR --base "1girl, <trigger>, ..."',
                [(r.rel, r.caption_error or f"no {r.path.stem}{ext}") for r in missing],
            )
        )
        for r in missing:
            r.notes.append("no caption")
    for status, severity, message, fix in (
        ("empty", "error", "empty caption files (0 bytes): sd-scripts stops with 'caption file is empty'",
         "write the tags into them, or delete them"),
        ("blank", "error", "caption files with no text: these images train with an empty caption",
         "write the tags into them"),
        ("not-text", "error", "caption files that are not UTF-8 text: sd-scripts stops with UnicodeDecodeError",
         "re-save them as UTF-8 (or delete binary junk)"),
        ("unreadable", "error", "caption files that cannot be read: sd-scripts stops when it reaches them",
         "fix their permissions"),
    ):  # fmt: skip
        recs = by_status[status]
        if recs:
            out.append(
                Finding(
                    severity,  # type: ignore[arg-type]
                    "captions",
                    f"{len(recs)} {message}",
                    fix,
                    [(_rel(r.caption_path, root) if r.caption_path else r.rel, r.caption_error or "") for r in recs],
                )
            )
            for r in recs:
                r.notes.append(f"caption {status}")

    out += _orphan_findings(scans, settings, root)

    captioned = [r for r in trained if r.caption is not None and r.caption.text]
    bom = [
        (_rel(r.caption_path, root), "starts with a UTF-8 BOM")
        for r in captioned
        if r.caption and r.caption.bom and r.caption_path
    ]
    if bom:
        out.append(
            Finding(
                "warning",
                "captions",
                "captions starting with a byte-order mark: sd-scripts keeps it, so the first tag becomes "
                "'\\ufeff<tag>', a different token",
                "re-save them as UTF-8 without BOM",
                bom,
            )
        )
    multi = [(r.rel, f"{r.caption.line_count} lines") for r in captioned if r.caption and r.caption.line_count > 1]
    if multi:
        out.append(
            Finding(
                "warning",
                "captions",
                "captions with more than one line: sd-scripts uses only the first line (unless enable_wildcard)",
                "join the tags into one line",
                multi,
            )
        )

    out += _trigger_findings(captioned, settings)
    out += _format_findings(captioned, settings, rules)
    tag_counts, tag_findings = _tag_table(captioned, settings)
    out += tag_findings
    return out, tag_counts


def _orphan_findings(scans: list[tuple[Subset, _FolderScan]], settings: CheckSettings, root: Path) -> list[Finding]:
    items: list[tuple[str, str]] = []
    for subset, scan in scans:
        ext = subset.caption_extension or settings.caption_extension
        stems = {_split_name(p.name)[0] for p in scan.images}
        used = {stem + ext for stem in stems}
        for image in scan.images:  # sd-scripts' face-crop fallback: a_1_2_3_4.png also reads a.txt
            if image.name.count("_") >= 4:
                candidates = caption_candidates(image, ext)
                if len(candidates) > 1 and candidates[1].parent == image.parent:
                    used.add(candidates[1].name)
        skipped = {_split_name(p.name)[0]: p for p, _ in scan.skipped_images}
        for name in scan.files:
            stem, suffix = _split_name(name)
            if name.startswith(".") or suffix != ext or name in used:
                continue
            path = subset.path / name
            if stem in skipped:
                items.append((_rel(path, root), f"belongs to {skipped[stem].name}, which sd-scripts skips"))
            else:
                items.append((_rel(path, root), "no image with this name"))
    if not items:
        return []
    return [
        Finding(
            "warning",
            "captions",
            f"{_plural(len(items), 'caption')} without an image sd-scripts reads (renamed or deleted image?)",
            "restore the image or delete the caption",
            items,
        )
    ]


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


def _trigger_findings(captioned: list[ImageRecord], settings: CheckSettings) -> list[Finding]:
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
    without: list[tuple[str, str]] = []
    shuffled: list[tuple[str, str]] = []
    near: Counter[str] = Counter()
    nt = normalize_tag(trigger)
    find = _trigger_finder(trigger)
    for r in captioned:
        index = find(r.ntags)
        if index is None:
            without.append((r.rel, r.caption.text[:80] if r.caption else ""))
            r.notes.append("no trigger")
            for tag in r.tags:
                t = normalize_tag(tag)
                if t != nt and difflib.SequenceMatcher(None, t, nt).ratio() >= 0.8:
                    near[tag] += 1
        elif settings.shuffle_caption and index >= settings.keep_tokens:
            shuffled.append((r.rel, f"trigger is tag {index + 1}, keep_tokens = {settings.keep_tokens}"))
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
                without[:5] + ([("...", f"{len(without) - 5} more")] if len(without) > 5 else []),
            )
        )
    elif without:
        out.append(
            Finding(
                "warning",
                "trigger",
                f"{_plural(len(without), 'caption')} without the trigger '{trigger}'{source}: those images teach the "
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


def _format_findings(captioned: list[ImageRecord], settings: CheckSettings, rules: Rules) -> list[Finding]:
    long_tags: list[tuple[str, str]] = []
    too_many_tokens: list[tuple[str, str]] = []
    sentences: list[tuple[str, str]] = []
    dup_tags: list[tuple[str, str]] = []
    empty_tags: list[tuple[str, str]] = []
    for r in captioned:
        cap = r.caption
        assert cap is not None
        tags = cap.tags
        if len(tags) > rules.max_tags:
            long_tags.append((r.rel, f"{len(tags)} tags"))
        # Every token spans at least one character, so only a caption longer than the limit can exceed it.
        if len(cap.text) > settings.max_token_length:
            tokens = _clip_tokens_lower_bound(cap.text)
            if tokens > settings.max_token_length:
                too_many_tokens.append((r.rel, f"at least {tokens} tokens"))
        words_per_tag = [len(t.split()) for t in tags]
        if (len(tags) == 1 and words_per_tag[0] > 4) or any(w > 6 for w in words_per_tag) or cap.text.endswith("."):
            sentences.append((r.rel, cap.text[:80]))
        if len(set(r.ntags)) != len(r.ntags):
            twice = [t for t, c in Counter(r.ntags).items() if c > 1]
            dup_tags.append((r.rel, ", ".join(twice)))
        if ",," in cap.first_line.replace(" ", "") or cap.first_line.lstrip().startswith(","):
            empty_tags.append((r.rel, "',,' or a leading comma"))
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


def _tag_table(captioned: list[ImageRecord], settings: CheckSettings) -> tuple[list[tuple[str, int]], list[Finding]]:
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
    table = [(spellings[k].most_common(1)[0][0], c) for k, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
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
            variants.append((key, ", ".join(f"'{f}' ({c}×)" for f, c in forms.most_common())))
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


def _shot_findings(trained: list[ImageRecord], rules: Rules) -> tuple[list[Finding], dict[str, int]]:
    captioned = [r for r in trained if r.caption is not None and r.caption.text]
    counts: dict[str, int] = {"front": 0, **{s.name: 0 for s in rules.shots}}
    if not captioned or not rules.shots:
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
    missing = [(s.name, f"{counts[s.name]} of {s.min}: {s.article}") for s in rules.shots if counts[s.name] < s.min]
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


def _contradiction_findings(trained: list[ImageRecord], rules: Rules, settings: CheckSettings) -> list[Finding]:
    by_rule: dict[int, list[tuple[str, str]]] = defaultdict(list)
    matchers = [(TagPattern([rule.when]), TagPattern(rule.forbid)) for rule in rules.contradictions]
    for r in trained:
        if not r.tags:
            continue
        for i, rule in enumerate(rules.contradictions):
            when, forbid = matchers[i]
            if when.any(r.ntags):
                bad = [t for t, nt in zip(r.tags, r.ntags, strict=True) if forbid.match(nt) and not when.match(nt)]
                if bad:
                    by_rule[i].append((r.rel, f"'{rule.when}' with " + ", ".join(f"'{b}'" for b in bad)))
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


# ----------------------------------------------------------------------------------------------------------
# Text report


def format_report(result: CheckResult, *, table: str = "auto", max_items: int = 10, color: bool = False) -> str:
    """The human report: header, per-image table, findings with fixes, tag table, summary.

    ``table``: ``all`` rows, ``problems`` (rows with notes), ``none``, or ``auto`` (all up to 60 images).
    """
    import click

    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    lines: list[str] = []
    lay = result.layout
    s = result.settings
    subsets = list(lay.subsets)
    lines.append(f"Checked {result.root} ({lay.kind}, {_plural(len(result.images), 'image')})")
    for sub in subsets:
        flags = []
        if sub.is_reg:
            flags.append("regularization")
        if not sub.trained:
            flags.append("SKIPPED by sd-scripts")
        rep = f", {sub.repeats} repeats" if sub.repeats is not None else ""
        lines.append(
            f"  {_rel(sub.path, result.root)}: {_plural(sub.image_count, 'image')}{rep}"
            + (f" ({', '.join(flags)})" if flags else "")
        )
    bucket = (
        f"buckets {s.min_bucket_reso}-{s.max_bucket_reso}/{s.bucket_reso_steps}"
        + (", no upscale" if s.bucket_no_upscale else "")
        if s.enable_bucket
        else "no buckets"
    )
    trig = f"trigger '{s.trigger}' ({s.trigger_source})" if s.trigger else "trigger unknown"
    lines.append(
        f"Settings from {s.source}: resolution {s.resolution[0]}x{s.resolution[1]}, {bucket}, captions "
        f"'{s.caption_extension}', {trig}"
    )
    if result.rules.source != Rules().source:
        lines.append(f"Rules from {result.rules.source}")

    mode = table
    if mode == "auto":
        mode = "all" if len(result.images) <= 60 else "problems"
    rows = result.images if mode == "all" else [r for r in result.images if r.notes] if mode == "problems" else []
    if rows:
        lines.append("")
        header = ("image", "size", "format", "bucket", "caption", "tags", "shots", "notes")
        data = []
        for r in rows:
            size = f"{r.size[0]}x{r.size[1]}" if r.size else "-"
            b = r.bucket
            bucket_text = f"{b.bucket[0]}x{b.bucket[1]}" if b is not None and b.bucket is not None else "-"
            data.append(
                (
                    r.rel,
                    size,
                    r.header.format if r.header else "-",
                    bucket_text,
                    r.caption_status,
                    str(len(r.tags)) if r.caption else "-",
                    ", ".join(r.shots),
                    ", ".join(dict.fromkeys(r.notes)),
                )
            )
        widths = [max(len(h), *(len(d[i]) for d in data)) for i, h in enumerate(header)]
        widths[0] = min(widths[0], 48)
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        for d in data:
            lines.append("  ".join(c.ljust(w) for c, w in zip(d, widths, strict=True)).rstrip())
        if mode == "problems" and len(rows) < len(result.images):
            lines.append(f"({len(result.images) - len(rows)} images without notes not shown; --table all shows them)")

    if result.findings:
        lines.append("")
        colors = {"error": "red", "warning": "yellow", "info": "cyan"}
        for f in result.findings:
            label = style(f"{f.severity.upper():<7}", fg=colors[f.severity], bold=f.severity == "error")
            lines.append(f"{label} [{f.check}] {f.message}")
            for path, detail in f.items[:max_items]:
                lines.append(f"          {path}" + (f": {detail}" if detail else ""))
            if len(f.items) > max_items:
                lines.append(f"          ... and {len(f.items) - max_items} more (--json lists all)")
            if f.fix:
                lines.append(f"          fix: {f.fix}")

    if result.tag_counts:
        lines.append("")
        n = sum(
            1
            for r in result.images
            if r.caption is not None and r.caption.text and r.subset.trained and not r.subset.is_reg
        )
        top = result.tag_counts[:20]
        lines.append(
            f"Tags ({n} captions): "
            + ", ".join(f"{t} {c}" for t, c in top)
            + (f", ... ({len(result.tag_counts)} tags)" if len(result.tag_counts) > 20 else "")
        )

    lines.append("")
    e, w, i = (result.count(x) for x in SEVERITIES)
    verdict = style("FAILED", fg="red", bold=True) if e else style("OK", fg="green", bold=True)
    lines.append(f"{_plural(e, 'error')}, {_plural(w, 'warning')}, {i} info: {verdict}")
    return "\n".join(lines)
