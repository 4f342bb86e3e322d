"""Generate the reference docs from the code: ``docs/recipe.md`` and ``docs/cli.md``.

    python tools/docgen.py           # rewrite both files
    python tools/docgen.py --check   # exit 1 when the files on disk differ from the code

The recipe reference is read from the Pydantic models in :mod:`kohya_recipe.recipe.models` (each field's description
and, where the article says something, ``json_schema_extra["article"]``) and from the bundled presets; the CLI
reference is every command's own ``--help``, rendered at a fixed width so the output does not depend on the
terminal. Only the list of trainer rules is prose, kept here next to the generator; tests/test_docs.py checks
that it names every validator of the models, so a new rule cannot go undocumented.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Documentation is generated from a checkout: docs/ sits next to the package.
REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPE_MD = Path("docs/recipe.md")
CLI_MD = Path("docs/cli.md")
HELP_WIDTH = 100  # the width the CLI group itself caps help at (max_content_width)
_MISSING = object()


# ----------------------------------------------------------------------------------------------------------------
# The trainer rules: prose for what the validators in recipe.py enforce, each tagged with the validator or
# function that enforces it. tests/test_docs.py counts the `raise ValueError` branches of every validator and
# fails when this list has fewer entries for it, so the list cannot silently fall behind the code.


@dataclass(frozen=True)
class Rule:
    where: str  # "Model.validator" (a pydantic validator in recipe.py) or "module:function" in kohya_recipe
    fields: str  # the recipe keys it concerns
    text: str  # what is enforced, and the trainer behaviour behind it


RULES: tuple[Rule, ...] = (
    Rule(
        "Recipe._trainer_rules",
        "schema_version",
        "Must be the version this kohya-recipe reads (1); a file from a newer version is refused rather than "
        "half-understood.",
    ),
    Rule(
        "Recipe._trainer_rules",
        "optimizer.scheduler, optimizer.type",
        'The `adafactor` scheduler needs `optimizer.type = "Adafactor"`: with any other optimizer sd-scripts '
        "stops with an AssertionError.",
    ),
    Rule(
        "Recipe._trainer_rules",
        "optimizer.warmup_steps",
        "Adafactor in relative-step mode (the default, and forced by `warmup_init=True`) requires 0 warmup "
        "steps: sd-scripts replaces the scheduler with `adafactor:<lr>` and raises a ValueError on warmup.",
    ),
    Rule(
        "Recipe._trainer_rules",
        "optimizer.scheduler, optimizer.args",
        "With `relative_step=False` the `adafactor` scheduler is refused: sd-scripts only adds the `:<lr>` "
        "suffix it parses in relative-step mode and otherwise crashes with an IndexError. Use e.g. "
        "`constant_with_warmup`.",
    ),
    Rule(
        "Recipe._trainer_rules",
        "optimizer.scheduler, optimizer.warmup_steps",
        "The `constant` scheduler takes no warmup (sd-scripts raises a ValueError); use `constant_with_warmup` "
        "for a warmup.",
    ),
    Rule(
        "Recipe._trainer_rules",
        "augmentation.color, training.cache_latents, training.cache_latents_to_disk",
        'Color augmentation cannot be combined with latent caching: sd-scripts stops with "when caching '
        'latents, either color_aug or random_crop cannot be used". The article keeps color augmentation on, '
        "so its presets leave latent caching off (slower, but the recipe as written).",
    ),
    Rule(
        "Recipe._trainer_rules",
        "network.train_unet_only, network.train_text_encoder_only",
        "Training only the U-Net and only the text encoder exclude each other.",
    ),
    Rule(
        "Recipe._trainer_rules",
        "model.family, model.v_parameterization",
        'SDXL base models are not v-prediction models, so `v_parameterization` is refused with `family = "sdxl"`.',
    ),
    Rule(
        "Recipe._trainer_rules",
        "accelerate.gpu_ids, accelerate.num_processes",
        "When GPU ids are given there must be one per process.",
    ),
    Rule(
        "Recipe._defaults",
        "output.name",
        "An empty output name defaults to the trigger word, so the trainer's `output_name` is "
        "`<trigger>-<major>-<letter>` (the article's `CharacterAI-1-A`). The trigger then has to pass "
        "`output.name`'s rule too; a trigger such as `Character AI` needs an explicit `output.name`.",
    ),
    Rule(
        "Subject._one_tag",
        "subject.trigger, subject.class_token",
        "A single tag: no comma, slash, backslash, newline or other control character, or surrounding spaces, "
        "because both words become part "
        "of the image folder name (`10_<trigger> <class>`) and of comma-separated Danbooru captions.",
    ),
    Rule("Network._key_value", "network.args", "Each entry is `key=value`, as `--network_args` expects."),
    Rule(
        "Optimizer._python_literals",
        "optimizer.args, optimizer.scheduler_args",
        "Each entry is `key=value` with a non-empty key: sd-scripts splits every entry on `=`.",
    ),
    Rule(
        "Optimizer._python_literals",
        "optimizer.args, optimizer.scheduler_args",
        "The value is a Python literal: sd-scripts parses it with `ast.literal_eval`, so `false` fails where "
        "`False` works (the error suggests the spelling).",
    ),
    Rule(
        "Optimizer._known_scheduler",
        "optimizer.scheduler",
        "One of the schedulers train_network runs by name: {schedulers}. `reduce_lr_on_plateau` and "
        "`cosine_warmup_with_min_lr` are left out because train_network fails on them at start-up.",
    ),
    Rule(
        "Optimizer._warmup",
        "optimizer.warmup_steps",
        "A float is a share of all steps and must be below 1 (sd-scripts multiplies a float by the total "
        "steps, so `100.0` would mean 100 times the run); write a whole number of steps as an integer.",
    ),
    Rule("Training._buckets", "training.resolution", "Each side of the resolution must be at least 64 pixels."),
    Rule("Training._buckets", "training.resolution", "Each side of the resolution must be at most 8192 pixels."),
    Rule(
        "Training._buckets",
        "training.min_bucket_reso, training.resolution",
        "With bucketing on, `min_bucket_reso` may not exceed the resolution's short side (sd-scripts asserts it "
        "when building the dataset).",
    ),
    Rule(
        "Training._buckets",
        "training.max_bucket_reso, training.resolution",
        "With bucketing on, `max_bucket_reso` may not be below the resolution's long side (same assertion).",
    ),
    Rule(
        "SamplePrompt._no_option_marker",
        "samples.prompts[].prompt, samples.prompts[].negative",
        "No ` --` and no newline in a prompt: sd-scripts splits each prompt line on ` --` to find its options, "
        "so text containing it would start a bogus option. (The article's own `--w 512--h 512--s 35` shows the "
        "trap from the other side: without spaces sd-scripts reads one malformed width `512--h 512--s 35`, "
        "logs it and samples at its defaults, 512x512 and 30 steps.)",
    ),
    Rule(
        "SamplePrompt._a_line_sd_scripts_keeps",
        "samples.prompts[].prompt",
        "Not empty: sd-scripts strips the line and takes the text before the first ` --` as the prompt, so an "
        "empty prompt would make `--w 512 ...` the prompt.",
    ),
    Rule(
        "SamplePrompt._a_line_sd_scripts_keeps",
        "samples.prompts[].prompt",
        "Not starting with `#`: sd-scripts skips such lines of the prompt file as comments, so it would never "
        "be sampled.",
    ),
    Rule(
        "SamplePrompt._multiple_of_8",
        "samples.prompts[].width, samples.prompts[].height",
        "Width and height are multiples of 8: sd-scripts silently rounds them down otherwise.",
    ),
    Rule(
        "Output._safe",
        "output.name",
        "Letters, digits, `.`, `_` and `-` only, no `..`: the name becomes file names and a shell word.",
    ),
    Rule(
        "Subset._folder_name",
        "dataset.subsets[].class_tokens",
        "Class tokens become a folder name: no slash, control character or surrounding spaces.",
    ),
    Rule(
        "Dataset._extension",
        "dataset.caption_extension",
        "A file extension: a dot, then letters, digits, `_`, `-` or `.` (`.txt`, `.caption`, `.txt2`).",
    ),
    Rule("Dataset._one_way", "dataset.images, dataset.subsets", "Set either `images` (one folder) or `subsets`."),
    Rule(
        "Dataset._one_way",
        "dataset.subsets",
        "Two subsets may not share a folder (the same repeats and class tokens).",
    ),
    Rule("Output._letter", "output.letter", "Upper-case letters, `A` to `ZZZ` (the article's variant letter)."),
    Rule(
        "recipe.fields:reject_coercion",
        "every field",
        'Values are native TOML types: `rank = true` or `flip = "yes"` or `max_train_epochs = "8"` are errors, '
        "not silently read as 1, true or 8 (sd-scripts itself would take a TOML string where it wants a number "
        "and fail later: library/train_util.py read_config_from_file).",
    ),
    Rule(
        "recipe.loading:check_extra",
        "extra",
        "Every key of `[extra]` must be an option of the script that will run (train_network.py, or "
        "sdxl_train_network.py for SDXL), checked against the bundled option spec with a did-you-mean, and "
        "its value must have the option's type. A key the recipe models itself is refused with the recipe key "
        "to use instead, and options derived from the recipe or the project layout cannot be set: "
        "{derived}.",
    ),
    Rule(
        "recipe.loading:check_extra",
        "extra",
        "Options sd-scripts would stop on are refused before launch: the legacy `use_8bit_adam` and "
        "`use_lion_optimizer` (sd-scripts asserts they are not given with `optimizer_type`, which is always "
        "written: set `optimizer.type`), the misspelled `caption_extention` (set `dataset.caption_extension`), "
        "`random_crop` with latent caching (the same assertion as color augmentation), and "
        "`fused_backward_pass` unless the optimizer is Adafactor with no gradient accumulation; for SDXL also "
        "`weighted_captions`, and `cache_text_encoder_outputs` unless `network.train_unet_only` is on and "
        "captions are not shuffled (sdxl_train_network.py asserts all three).",
    ),
    Rule(
        "kohya_ss.fields:check_gui_passthrough",
        "gui",
        "Every key of `[gui]` must be a field of the kohya_ss GUI's LoRA tab (with a did-you-mean), not null "
        "(the GUI would keep whatever its form shows), and a value of the type that field's widget accepts.",
    ),
)

WARNINGS: tuple[Rule, ...] = (
    Rule(
        "recipe.advice:recipe_warnings",
        "optimizer.learning_rate, optimizer.unet_lr, optimizer.text_encoder_lr",
        "Adafactor in relative-step mode ignores the learning rates (sd-scripts sets them to None): the article's "
        '"none of these matter with adafactor". Pass `relative_step=False` for a fixed rate.',
    ),
    Rule(
        "recipe.advice:recipe_warnings",
        "optimizer.scheduler",
        "Adafactor in relative-step mode replaces any scheduler with `adafactor`.",
    ),
    Rule(
        "recipe.advice:recipe_warnings",
        "network.alpha, network.rank",
        "An alpha above the rank scales the LoRA's update up (alpha/rank > 1), which usually overshoots.",
    ),
    Rule("recipe.advice:recipe_warnings", "subject.trigger", "No trigger word: nothing will call the LoRA up."),
    Rule(
        "recipe.advice:recipe_warnings",
        "dataset.regularization",
        "The article advises against regularization images for a single subject.",
    ),
    Rule(
        "recipe.advice:recipe_warnings",
        "training.save_every_n_epochs",
        "Unset: only the final epoch gets a checkpoint, so no earlier epoch can be kept (the article keeps the "
        "lowest-loss epoch and the last).",
    ),
    Rule(
        "recipe.advice:recipe_warnings",
        "training.save_every_n_epochs",
        "Anything but 1 leaves epochs without a checkpoint to compare.",
    ),
    Rule("recipe.advice:recipe_warnings", "samples.prompts", "A sample prompt without the trigger word."),
)

# How a field reaches the trainer when it is not a one-to-one sd-scripts option (render_config.py and
# render_dataset.py). The one-to-one options come from recipe.SDSCRIPTS_FIELDS.
_WRITTEN_AS = {
    "subject.trigger": "`class_tokens` of the dataset subset and the image folder name `<repeats>_<trigger> <class>`",
    "subject.class_token": "`class_tokens` of the dataset subset and the image folder name",
    "dataset.images": "linked or copied into `img/<repeats>_<trigger> <class>/` of the project",
    "dataset.repeats": "`num_repeats` of the dataset subset and the folder prefix `<repeats>_`",
    "dataset.regularization": "a regularization subset (`is_reg = true`) in `reg/`",
    "dataset.reg_repeats": "`num_repeats` of the regularization subset",
    "model.family": "the script: `sdxl_train_network.py` for sdxl, else `train_network.py`; `v2 = true` for sd2",
    "training.resolution": '`resolution = "<w>,<h>"` (a string: sd-scripts splits it on the comma)',
    "training.attention": "`sdpa = true` or `xformers = true`",
    "samples.prompts": "the `sample-prompts.txt` file (`--sample_prompts`), one `--w --h --s --l --d --n` line each",
    "output.name": '`output_name = "<name>-<major>-<letter>"`',
    "output.major": "`output_name`",
    "output.letter": "`output_name`",
    "accelerate.num_processes": "`accelerate launch --num_processes`",
    "accelerate.num_machines": "`accelerate launch --num_machines`",
    "accelerate.gpu_ids": "`accelerate launch --gpu_ids`",
    "accelerate.mixed_precision": "`accelerate launch --mixed_precision`",
    "accelerate.num_cpu_threads_per_process": "`accelerate launch --num_cpu_threads_per_process`",
    "accelerate.main_process_port": "`accelerate launch --main_process_port`",
    "accelerate.dynamo_backend": "`accelerate launch --dynamo_backend`",
    "extra": "each key as its own option in `config.toml`",
    "gui": "the kohya_ss GUI JSON only",
}


# ----------------------------------------------------------------------------------------------------------------
# Formatting helpers


def _toml_value(value: Any) -> str:
    """A value as it is written in a recipe file, on one line."""
    import tomli_w

    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}" if value else "{}"
    return tomli_w.dumps({"v": value})[4:].rstrip("\n")


def _type_name(annotation: Any) -> str:
    """A field's type in TOML words: ``int``, ``"a" | "b"``, ``[int, int]``, ``list[str]``, ``table``."""
    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(_toml_value(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " | ".join(names)
    if origin is tuple:
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if origin is list:
        (item,) = args
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "array of tables"
        return f"list[{_type_name(item)}]"
    if origin is dict:
        return "table"
    if annotation is bool:
        return "bool"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(field: Any) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    out = []
    for meta in field.metadata:
        for attr, sign in words.items():
            bound = getattr(meta, attr, None)
            if bound is not None:
                out.append(f"{sign} {bound}")
    return ", ".join(out)


def _default(field: Any) -> Any:
    if field.default_factory is not None:
        return field.default_factory()
    return field.default


def _show_default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    value = _default(field)
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "not set"
    return f"`{_toml_value(value)}`"


def _cell(text: str, limit: int | None = None) -> str:
    """Text for a Markdown table cell: pipes escaped, optionally shortened."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text.replace("|", "\\|")


def _anchor(path: str) -> str:
    return "field-" + path.replace(".", "-").replace("[]", "")


# ----------------------------------------------------------------------------------------------------------------
# The recipe reference


@dataclass(frozen=True)
class _Section:
    title: str  # "[training]", "[[samples.prompts]]" or "Top level"
    prefix: str  # "training.", "samples.prompts[].", ""
    model: Any  # the pydantic model class
    fields: list[str]
    preset_path: tuple[str, ...]  # where the section's table sits in preset data
    is_array: bool = False


def _sections() -> list[_Section]:
    from pydantic import BaseModel

    from kohya_recipe.recipe.models import Recipe

    top: list[str] = []
    tables: list[str] = []
    sections: list[_Section] = []
    for name, field in Recipe.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            tables.append(name)
        else:
            top.append(name)
    sections.append(_Section("Top level", "", Recipe, top, ()))  # schema_version, preset, [extra], [gui]
    for name in tables:
        model: Any = Recipe.model_fields[name].annotation
        sections.append(_Section(f"[{name}]", f"{name}.", model, list(model.model_fields), (name,)))
        for sub, field in model.model_fields.items():
            args = typing.get_args(field.annotation)
            if (
                typing.get_origin(field.annotation) is list
                and args
                and isinstance(args[0], type)
                and issubclass(args[0], BaseModel)
            ):
                sections.append(
                    _Section(
                        f"[[{name}.{sub}]]",
                        f"{name}.{sub}[].",
                        args[0],
                        list(args[0].model_fields),
                        (name, sub),
                        is_array=True,
                    )
                )
    return sections


def _load_presets() -> list[tuple[str, str, dict[str, Any]]]:
    from kohya_recipe.files import read_toml
    from kohya_recipe.recipe.presets import list_presets

    return [(p.name, p.description, read_toml(p.path)) for p in list_presets()]


def _preset_value(data: dict[str, Any], section: _Section, key: str) -> Any:
    node: Any = data
    for part in section.preset_path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    if section.is_array:
        values = [item[key] for item in node if isinstance(item, dict) and key in item]
        if not values:
            return _MISSING
        return values[0] if len(values) == 1 else values
    if not isinstance(node, dict) or key not in node:
        return _MISSING
    return node[key]


def _written_as(path: str) -> str | None:
    from kohya_recipe.recipe.mapping import SDSCRIPTS_FIELDS

    options = [opt for opt, field in SDSCRIPTS_FIELDS.items() if field == path]
    if options:
        return ", ".join(f"`{o}`" for o in options)
    return _WRITTEN_AS.get(path.replace("[]", ""))


def render_recipe_md() -> str:
    """The text of docs/recipe.md."""
    from kohya_recipe.recipe.fields import SCHEDULERS
    from kohya_recipe.recipe.mapping import DERIVED_OPTIONS, SDSCRIPTS_FIELDS

    presets = _load_presets()
    sections = _sections()
    out = [
        "# Recipe reference",
        "",
        "<!-- Generated by `python tools/docgen.py` from kohya_recipe/recipe/models.py and presets/*.toml. "
        "Do not edit by hand. -->",
        "",
        "A recipe is a TOML file describing one LoRA training run. `kohya-recipe init` writes a commented one from "
        'a preset. When a recipe is loaded, the preset it names (`preset = "likeness-sd15"`) is layered '
        "underneath it, the file's own values go on top, and `--set key=value` overrides go on top of that; the "
        "result is validated strictly: an unknown or misspelled key is an error (sd-scripts would silently "
        "ignore it), and the trainer rules below are checked before any GPU time is spent. `--set` accepts a "
        "dotted recipe key (`network.alpha=48`) or an sd-scripts option name (`network_alpha=48`).",
        "",
        "For every field: its TOML key and type, the default when neither the preset nor the file sets it, what "
        "it means, what the article says about it, how it reaches sd-scripts, and the value each bundled preset "
        "gives it (`—`: the preset leaves it at the default).",
        "",
        "## Presets",
        "",
        "| preset | what it is |",
        "|---|---|",
        *[f"| `{name}` | {_cell(desc)} |" for name, desc, _ in presets],
        "",
        "## Contents",
        "",
        *[f"- [{_title(s)}](#{_section_anchor(s)})" for s in sections],
        "- [Trainer rules](#trainer-rules)",
        "- [sd-scripts option names](#sd-scripts-option-names)",
        "",
    ]
    for section in sections:
        out += _render_section(section, presets)

    out += [
        '<a id="trainer-rules"></a>',
        "",
        "## Trainer rules",
        "",
        "Loading a recipe refuses these with a one-line error naming the file and the key "
        "(`recipe.toml: optimizer.warmup_steps: ...`). Each rule encodes what sd-scripts itself would do later: "
        "stop, crash, or silently train something else.",
        "",
    ]
    fill = {
        "schedulers": ", ".join(f"`{s}`" for s in SCHEDULERS),
        "derived": ", ".join(f"`{o}`" for o in sorted(DERIVED_OPTIONS)),
    }
    out += [f"- **{r.fields}**: {r.text.format(**fill)}" for r in RULES]
    out += [
        "",
        "### Warnings",
        "",
        "These are printed as `Warning: ...` but do not stop a build: the trainer will run, just not the way the "
        "recipe seems to say.",
        "",
        *[f"- **{r.fields}**: {r.text}" for r in WARNINGS],
        "",
        '<a id="sd-scripts-option-names"></a>',
        "",
        "## sd-scripts option names",
        "",
        "sd-scripts options that map one to one onto a recipe key; `--set` accepts either name, and `[extra]` "
        "refuses these (set the recipe key instead).",
        "",
        "| sd-scripts option | recipe key |",
        "|---|---|",
        *[f"| `{opt}` | [`{path}`](#{_anchor(path)}) |" for opt, path in sorted(SDSCRIPTS_FIELDS.items())],
        "",
        "Options derived from the recipe and the project layout (never set directly): "
        + ", ".join(f"`{o}`" for o in sorted(DERIVED_OPTIONS))
        + ".",
        "",
    ]
    return "\n".join(out)


def _title(section: _Section) -> str:
    return f"`{section.title}`" if section.prefix else section.title


def _section_anchor(section: _Section) -> str:
    return "section-" + (section.prefix.rstrip(".").replace(".", "-").replace("[]", "") or "top-level")


def _render_section(section: _Section, presets: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    from pydantic import BaseModel

    names = [name for name, _, _ in presets]
    out = [f'<a id="{_section_anchor(section)}"></a>', "", f"## {_title(section)}", ""]
    model_doc = (section.model.__doc__ or "").strip()
    if section.is_array:
        out += ["An array of tables: repeat the `[[...]]` header for each entry.", ""]
    elif model_doc and section.prefix and not model_doc.startswith(("Usage docs", "!!!")):
        out += [model_doc.splitlines()[0], ""]
    header = ["key", "type", "default", *[f"`{n}`" for n in names]]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    shown = []
    for key in section.fields:
        field = section.model.model_fields[key]
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            continue
        shown.append(key)
        path = section.prefix + key
        cells = [f"[`{key}`](#{_anchor(path)})", f"`{_cell(_type_name(ann))}`", _cell(_show_default(field), 40)]
        for _, _, data in presets:
            value = _preset_value(data, section, key)
            cells.append("—" if value is _MISSING else f"`{_cell(_toml_value(value), 36)}`")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    for key in shown:
        field = section.model.model_fields[key]
        path = section.prefix + key
        out += [f'<a id="{_anchor(path)}"></a>', "", f"### `{path}`", ""]
        constraints = _constraints(field)
        out.append(f"- **Type:** `{_type_name(field.annotation)}`" + (f" ({constraints})" if constraints else ""))
        out.append(f"- **Default:** {_show_default(field)}")
        if field.description:
            out.append(f"- **Meaning:** {field.description}")
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("article"):
            out.append(f"- **The article:** {extra['article']}")
        written = _written_as(path)
        if written:
            out.append(f"- **sd-scripts:** {written}")
        values = []
        for name, _, data in presets:
            value = _preset_value(data, section, key)
            values.append(f"`{name}` " + ("—" if value is _MISSING else f"`{_toml_value(value)}`"))
        out.append("- **Presets:** " + " · ".join(values))
        out.append("")
    return out


# ----------------------------------------------------------------------------------------------------------------
# The CLI reference


@dataclass(frozen=True)
class HelpPage:
    path: tuple[str, ...]  # ("caption", "add") for `kohya-recipe caption add`; () for the group itself
    text: str | None  # the --help output, or None when the command's module does not exist yet
    note: str = ""


def _context(command: Any, name: str, parent: Any | None) -> Any:
    import click

    settings = dict(getattr(command, "context_settings", None) or {})
    settings["terminal_width"] = HELP_WIDTH
    settings["max_content_width"] = HELP_WIDTH
    return click.Context(command, info_name=name, parent=parent, **settings)


def _walk(command: Any, ctx: Any, path: tuple[str, ...]) -> list[HelpPage]:
    import click

    pages = [HelpPage(path, command.get_help(ctx))]
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            pages += _walk(sub, _context(sub, sub_name, ctx), (*path, sub_name))
    return pages


def help_pages() -> list[HelpPage]:
    """Every command's ``--help``, group first, then each command and its sub-commands in table order."""
    from kohya_recipe.cli import COMMANDS, cli

    root = _context(cli, "kohya-recipe", None)
    pages = [HelpPage((), cli.get_help(root))]
    for name, (module_name, attr, _) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
            command = getattr(module, attr)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # a missing dependency of an existing module is a real error
                raise
            note = f"module {module_name} does not exist yet"
            print(f"docgen: skipping {name}: {note}", file=sys.stderr)
            pages.append(HelpPage((name,), None, note))
            continue
        except AttributeError:
            note = f"{module_name} has no {attr} yet"
            print(f"docgen: skipping {name}: {note}", file=sys.stderr)
            pages.append(HelpPage((name,), None, note))
            continue
        pages += _walk(command, _context(command, name, root), (name,))
    return pages


def render_cli_md(pages: list[HelpPage] | None = None) -> str:
    """The text of docs/cli.md."""
    from kohya_recipe.cli import COMMANDS

    pages = help_pages() if pages is None else pages
    out = [
        "# CLI reference",
        "",
        "<!-- Generated by `python tools/docgen.py` from each command's --help. Do not edit by hand. -->",
        "",
        "Every command also answers `-h`/`--help` with the same text. Errors are one line, `Error: <file>: <field>: "
        "<what is wrong>`; exit codes are listed in [exit-codes.md](exit-codes.md).",
        "",
        "## Commands",
        "",
    ]
    for name, (_, _, help_text) in COMMANDS.items():
        out.append(f"- [`kohya-recipe {name}`](#{_cmd_anchor((name,))}) — {help_text}")
        for page in pages:
            if len(page.path) > 1 and page.path[0] == name:
                out.append(f"  - [`{' '.join(page.path[1:])}`](#{_cmd_anchor(page.path)})")
    out.append("")
    for page in pages:
        title = " ".join(("kohya-recipe", *page.path))
        level = "##" if len(page.path) <= 1 else "###"
        out += [f'<a id="{_cmd_anchor(page.path)}"></a>', "", f"{level} `{title}`", ""]
        if page.text is None:
            out += [f"*Not documented: {page.note}. Run `python tools/docgen.py` again once it exists.*", ""]
            continue
        out += ["```text", page.text.rstrip("\n"), "```", ""]
    return "\n".join(out)


def _cmd_anchor(path: tuple[str, ...]) -> str:
    return "-".join(("kohya-recipe", *path))


# ----------------------------------------------------------------------------------------------------------------
# Files


def render_all() -> dict[Path, str]:
    """Relative path -> generated text, for every generated doc."""
    return {RECIPE_MD: render_recipe_md(), CLI_MD: render_cli_md()}


def stale_files(root: Path = REPO_ROOT) -> list[Path]:
    """The generated docs whose content on disk differs from what the code generates now."""
    stale = []
    for rel, text in render_all().items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(rel)
    return stale


def write_all(root: Path = REPO_ROOT) -> list[Path]:
    from kohya_recipe.files import atomic_write_text

    """Write the generated docs under ``root``; return the ones that changed."""
    changed = []
    for rel, text in render_all().items():
        path = root / rel
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        changed.append(rel)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/docgen.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the docs on disk are out of date")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.root)
        for rel in stale:
            print(f"{rel} is out of date: run python tools/docgen.py", file=sys.stderr)
        return 1 if stale else 0
    for rel in write_all(args.root):
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
