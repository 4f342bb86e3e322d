"""Loading a recipe: preset underneath, file, ``--set`` on top, then strict validation with one-line errors.

Also the way back to TOML (``recipe_to_toml``) and :func:`resolve_recipe`, the one entry every command uses to
turn "a preset or a recipe file, a trigger, a class and some ``--set``" into a validated :class:`Recipe`.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from kohya_recipe.errors import RecipeError
from kohya_recipe.files import loads_toml, read_toml
from kohya_recipe.recipe.fields import reject_coercion
from kohya_recipe.recipe.mapping import ALIAS_OPTIONS, DERIVED_OPTIONS, SDSCRIPTS_FIELDS
from kohya_recipe.recipe.models import Recipe


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: tables merge key by key, everything else (lists included) is replaced."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_set_value(raw: str) -> Any:
    """A ``--set`` value is read as a TOML value when it parses as one, else taken as a plain string."""
    try:
        return loads_toml(f"v = {raw}", error=RecipeError)["v"]
    except RecipeError:
        return raw


def resolve_set_key(key: str) -> str:
    """Map an sd-scripts option name to its recipe path; dotted recipe paths pass through."""
    if "." in key:
        return key
    if key in SDSCRIPTS_FIELDS:
        return SDSCRIPTS_FIELDS[key]
    if key == "resolution":
        return "training.resolution"
    if key in ("output_name",):
        return "output.name"
    from kohya_recipe.sdscripts.options import option_specs

    if key not in DERIVED_OPTIONS and key in option_specs(sdxl=True):
        return f"extra.{key}"  # any other sd-scripts option goes to the validated pass-through
    return key


def apply_sets(data: dict[str, Any], sets: list[str] | tuple[str, ...], *, source: str = "--set") -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides to raw recipe data (before validation)."""
    out = copy.deepcopy(data)
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"{item!r} must be key=value", source=source)
        path = resolve_set_key(key.strip())
        value = _parse_set_value(raw.strip())
        if path == "training.resolution" and isinstance(value, (str, int)):
            value = _parse_resolution(str(value), source)
        parts = path.split(".")
        _check_path(parts, source, key.strip())
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"{'.'.join(parts[:-1])} is not a table", source=source, field=key)
        node[parts[-1]] = value
    return out


def _parse_resolution(raw: str, source: str) -> list[int]:
    pieces = [p.strip() for p in raw.replace("x", ",").split(",") if p.strip()]
    try:
        nums = [int(p) for p in pieces]
    except ValueError:
        raise RecipeError(f"{raw!r} is not a resolution like 768 or 768,768", source=source) from None
    if len(nums) == 1:
        nums *= 2
    if len(nums) != 2:
        raise RecipeError(f"{raw!r} is not a resolution like 768 or 768,768", source=source)
    return nums


def _check_path(parts: list[str], source: str, shown: str) -> None:
    """Refuse ``--set`` keys that name no recipe field, with a did-you-mean."""
    from kohya_recipe.sdscripts.options import did_you_mean

    model: type[BaseModel] = Recipe
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            known = [".".join([*parts[:i], f]) for f in fields] + list(SDSCRIPTS_FIELDS)
            raise RecipeError(f"unknown recipe key{did_you_mean(shown, known)}", source=source, field=shown)
        annotation = fields[part].annotation
        if i < len(parts) - 1:
            if part in ("extra", "gui"):
                return
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                raise RecipeError("is not a table", source=source, field=".".join(parts[: i + 1]))
            model = annotation


def _loc(parts: tuple[Any, ...]) -> str:
    """``("samples", "prompts", 0, "prompt")`` -> ``samples.prompts[0].prompt``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not re.fullmatch(r"[A-Za-z0-9_-]+", str(p)):
            out += f"[{str(p)!r}]"  # a key with spaces or control characters stays on one line
        else:
            out += f".{p}" if out else str(p)
    return out


_PYDANTIC_WORDING = (
    ("Input should be greater than or equal to ", "must be >= "),
    ("Input should be greater than ", "must be > "),
    ("Input should be less than or equal to ", "must be <= "),
    ("Input should be less than ", "must be < "),
    ("Input should be ", "must be "),
    ("String should have at most ", "must have at most "),
    ("String should have at least ", "must have at least "),
    ("Value error, ", ""),
)


def _model_at(loc: tuple[Any, ...]) -> Any:
    """The model class that holds the last key of ``loc`` (list indexes and unions stepped through)."""
    model: Any = Recipe
    for p in loc:
        if isinstance(p, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        if p not in model.model_fields:
            return None
        ann = model.model_fields[p].annotation
        args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = args[0] if args else ann
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _why(loc: tuple[Any, ...]) -> str | None:
    """The reason a field's bound exists (``_doc(why=...)``), for the error that crosses it."""
    names = [p for p in loc if isinstance(p, str)]
    model = _model_at(tuple(loc[:-1]))
    if model is None or not names or names[-1] not in model.model_fields:
        return None
    extra = model.model_fields[names[-1]].json_schema_extra
    return str(extra["why"]) if isinstance(extra, dict) and extra.get("why") else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"


def _format_validation_error(exc: ValidationError, source: str) -> RecipeError:
    """The first problem of a pydantic error as one line: ``recipe.toml: training.x: must be >= 1``."""
    from kohya_recipe.sdscripts.options import did_you_mean

    err = exc.errors()[0]
    loc = tuple(err["loc"])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        model = _model_at(loc[:-1])
        known = model.model_fields if model is not None else {}
        msg = f"unknown key{did_you_mean(str(loc[-1]), known)}"
    for old, new in _PYDANTIC_WORDING:
        msg = msg.replace(old, new)
    shows_input = err["type"] not in ("extra_forbidden", "value_error") and "input" in err
    if shows_input and not isinstance(err["input"], (dict, list)):
        msg += f", got {_shown(err['input'])}"
    if err["type"] in _BOUND_ERRORS and (why := _why(loc)):
        msg += f" ({why})"
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return RecipeError(msg, source=source, field=_loc(loc) or None)


_BOUND_ERRORS = frozenset({"less_than", "less_than_equal", "greater_than", "greater_than_equal", "string_too_long"})

# TOML integers are signed 64-bit (toml.io "Integer"): a larger one cannot be written back, and sd-scripts' own
# reader (the toml package) refuses it.
_INT64 = (-(2**63), 2**63 - 1)


def _reject_unrepresentable(value: Any, source: str, where: str = "") -> None:
    """Numbers TOML cannot hold (ints beyond 64 bits) and non-finite floats (inf, nan) are errors, anywhere."""
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_unrepresentable(item, source, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _reject_unrepresentable(item, source, f"{where}[{i}]")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise RecipeError(
            f"{_shown(value)} is beyond TOML's 64-bit integers (sd-scripts could not read it back)",
            source=source,
            field=where or None,
        )
    elif isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"must be a finite number, got {value}", source=source, field=where or None)


def _substitute(data: dict[str, Any]) -> dict[str, Any]:
    """Replace ``{trigger}``/``{class}`` in sample prompts with the subject's words."""
    subject = data.get("subject")
    subject = subject if isinstance(subject, dict) else {}
    samples = data.get("samples")
    words = {"{trigger}": str(subject.get("trigger", "")), "{class}": str(subject.get("class_token", "woman"))}
    prompts = samples.get("prompts") if isinstance(samples, dict) else None
    if isinstance(prompts, list):
        for p in prompts:
            if isinstance(p, dict):
                for key in ("prompt", "negative"):
                    if isinstance(p.get(key), str):
                        for k, v in words.items():
                            p[key] = p[key].replace(k, v)
    return data


def recipe_from_dict(data: dict[str, Any], *, source: str = "recipe") -> Recipe:
    """Validate raw recipe data (preset already layered) into a :class:`Recipe`, then check ``extra``."""
    data = _substitute(copy.deepcopy(data))
    _reject_unrepresentable(data, source)
    reject_coercion(data, Recipe, source=source)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise _format_validation_error(exc, source) from None
    check_extra(recipe, source=source)
    if recipe.gui:
        from kohya_recipe.errors import GuiConfigError
        from kohya_recipe.kohya_ss.fields import check_gui_passthrough

        try:
            check_gui_passthrough(recipe.gui, source=source)
        except GuiConfigError as exc:  # a bad [gui] table is a mistake in the recipe file
            raise RecipeError(exc.message, source=exc.source, field=exc.field) from None
    return recipe


def check_extra(recipe: Recipe, *, source: str = "recipe") -> None:
    """``extra`` keys must be real options of the script we launch, not ones the recipe models itself."""
    from kohya_recipe.sdscripts.options import check_option

    for key, value in recipe.extra.items():
        field = f"extra.{key}"
        if key in SDSCRIPTS_FIELDS:
            raise RecipeError(f"set it as {SDSCRIPTS_FIELDS[key]} instead", source=source, field=field)
        if key in ALIAS_OPTIONS:
            raise RecipeError(ALIAS_OPTIONS[key], source=source, field=field)
        if key in DERIVED_OPTIONS:
            raise RecipeError(
                "is derived from the recipe and the project layout; it cannot be set", source=source, field=field
            )
        try:
            check_option(key, value, sdxl=recipe.model.family == "sdxl", source=source)
        except RecipeError as exc:
            raise RecipeError(exc.message, source=source, field=field) from None
    tr, opt = recipe.training, recipe.optimizer
    if recipe.extra.get("random_crop") and (tr.cache_latents or tr.cache_latents_to_disk):
        # The same assertion as for color_aug: "when caching latents, either color_aug or random_crop cannot be used".
        raise RecipeError(
            "cannot be combined with training.cache_latents (sd-scripts stops); turn one of them off",
            source=source,
            field="extra.random_crop",
        )
    if recipe.extra.get("fused_backward_pass") and not opt.is_adafactor:
        # train_util.get_optimizer asserts "fused_backward_pass currently only works with optimizer_type Adafactor".
        raise RecipeError("needs optimizer.type = 'Adafactor'", source=source, field="extra.fused_backward_pass")
    if recipe.model.family == "sdxl":
        # sdxl_train_util.verify_sdxl_training_args: "weighted_captions cannot be enabled in SDXL training".
        if recipe.extra.get("weighted_captions"):
            raise RecipeError(
                "cannot be used with SDXL (sdxl_train_network.py stops)", source=source, field="extra.weighted_captions"
            )
        caching = recipe.extra.get("cache_text_encoder_outputs") or recipe.extra.get(
            "cache_text_encoder_outputs_to_disk"
        )
        # sdxl_train_network.py asserts the text encoders are not trained while their outputs are cached, and
        # that captions do not change between epochs (no shuffling) when they are.
        if caching and not recipe.network.train_unet_only:
            raise RecipeError(
                "needs network.train_unet_only = true (sdxl_train_network.py stops)",
                source=source,
                field="extra.cache_text_encoder_outputs",
            )
        if caching and recipe.augmentation.shuffle_caption:
            raise RecipeError(
                "cannot be combined with augmentation.shuffle_caption (sdxl_train_network.py stops)",
                source=source,
                field="extra.cache_text_encoder_outputs",
            )
    if recipe.extra.get("fused_backward_pass") and tr.gradient_accumulation_steps != 1:
        raise RecipeError(
            "does not work with training.gradient_accumulation_steps > 1",
            source=source,
            field="extra.fused_backward_pass",
        )


def load_recipe_data(
    path: Path, sets: list[str] | tuple[str, ...] = (), *, preset: str | None = None
) -> dict[str, Any]:
    """Raw, layered recipe data: preset (from the file's ``preset`` key or ``preset``) + file + ``--set``."""
    from kohya_recipe.recipe.presets import load_preset

    user = read_toml(path, error=RecipeError)
    name = preset or user.get("preset")
    base = load_preset(str(name)) if name else {}
    data = deep_merge(base, user)
    if name:
        data["preset"] = str(name)
    data = apply_sets(data, sets)
    absolute_paths(data, path.parent)
    return data


# Recipe paths that name local files or folders. A relative one is relative to the recipe file, so the recipe
# works from any folder; the trainer (cwd = project) and the GUI (cwd = kohya_ss) would read it differently.
_PATH_FIELDS = (
    ("dataset", "images"),
    ("dataset", "regularization"),
    ("model", "base"),
    ("model", "vae"),
    ("network", "weights"),
)


def absolute_paths(data: dict[str, Any], base: Path) -> None:
    """Make the recipe's local paths absolute, relative to ``base`` (in place)."""
    for section, key in _PATH_FIELDS:
        table = data.get(section)
        if isinstance(table, dict):
            _absolute(table, key, base, must_exist=section != "dataset")
    subsets = data.get("dataset", {}).get("subsets") if isinstance(data.get("dataset"), dict) else None
    for subset in subsets if isinstance(subsets, list) else ():
        if isinstance(subset, dict):
            _absolute(subset, "images", base, must_exist=False)


def _absolute(table: dict[str, Any], key: str, base: Path, *, must_exist: bool) -> None:
    value = table.get(key)
    if not isinstance(value, str) or not value or Path(value).is_absolute():
        return
    candidate = base / value
    # model.base may be a hub id ("org/name"): only a path that exists next to the recipe is a local one.
    if not must_exist or candidate.exists():
        table[key] = str(candidate.resolve())


def load_recipe(path: str | Path, sets: list[str] | tuple[str, ...] = (), *, preset: str | None = None) -> Recipe:
    """Load a recipe file, layer its preset underneath and apply ``--set`` overrides."""
    path = Path(path)
    return recipe_from_dict(load_recipe_data(path, sets, preset=preset), source=str(path))


def recipe_to_data(recipe: Recipe) -> dict[str, Any]:
    """Plain TOML-ready data: ``None`` values dropped (TOML has no null), tuples as lists."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean(recipe.model_dump(mode="python"))  # type: ignore[no-any-return]


def recipe_to_toml(recipe: Recipe) -> str:
    """The recipe as TOML text (serialised from data with tomli-w)."""
    import tomli_w

    return tomli_w.dumps(recipe_to_data(recipe))


DEFAULT_PRESET = "likeness-sd15"


def resolve_recipe(
    recipe_file: str | Path | None = None,
    *,
    preset: str | None = None,
    trigger: str | None = None,
    class_token: str | None = None,
    images: str | Path | None = None,
    sets: list[str] | tuple[str, ...] = (),
    base: Path | None = None,
) -> Recipe:
    """The one way from what a command is given to a validated :class:`Recipe`.

    Layers, bottom to top: the preset (``preset``, else the file's own ``preset`` key, else
    :data:`DEFAULT_PRESET` when there is no file), the recipe file, the subject (``trigger``, ``class_token``),
    the image folder, then ``--set`` overrides. Relative paths given on the command line (``images``, paths in
    ``sets``) are taken relative to ``base`` (default: the current folder), as a user typing them means.
    """
    if recipe_file is not None:
        path = Path(recipe_file)
        data = load_recipe_data(path, (), preset=preset)
        source = str(path)
    else:
        from kohya_recipe.recipe.presets import load_preset

        name = preset or DEFAULT_PRESET
        data = deep_merge(load_preset(name), {"preset": name})
        source = f"preset {name}"
    subject = data.setdefault("subject", {})
    if not isinstance(subject, dict):
        raise RecipeError("must be a table", source=source, field="subject")
    if trigger is not None:
        subject["trigger"] = trigger
    if class_token is not None:
        subject["class_token"] = class_token
    if images is not None:
        dataset = data.setdefault("dataset", {})
        if not isinstance(dataset, dict):
            raise RecipeError("must be a table", source=source, field="dataset")
        dataset["images"] = str(images)
    data = apply_sets(data, sets)
    absolute_paths(data, base or Path.cwd())
    try:
        return recipe_from_dict(data, source=source)
    except RecipeError as exc:
        # A bad --trigger or --class is the command line's mistake, not the preset's or the file's.
        # (A model-level rule names the field at the start of its message instead.)
        given = {"subject.trigger": ("--trigger", trigger), "subject.class_token": ("--class", class_token)}
        field = exc.field or exc.message.partition(": ")[0]
        option, value = given.get(field, ("", None))
        if value is None:
            raise
        raise RecipeError(exc.message.removeprefix(f"{field}: "), source=option) from None
