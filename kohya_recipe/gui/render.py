"""The kohya_ss GUI's LoRA-tab JSON, rendered from a recipe.

What the GUI needs (``kohya_gui/lora_gui.py`` ``open_configuration`` loads a file, ``train_model`` trains from the
form):

* **All 287 fields.** A key missing from the file (or ``null``) keeps whatever the form happens to show, so a
  partial file does not say what will be trained.
* **Native types.** A Checkbox turns the string ``"false"`` into true; a precision-0 Number crashes on a string;
  ``max_resolution``, the args fields and the block-weight fields are strings; text fields are ``""``, not null.
* **Inside every widget's choices and range** (``gui_fields``): the GUI loads anything but refuses to Save,
  Train or Print a value outside them. A recipe value the GUI cannot hold is a :class:`GuiConfigError` naming
  the recipe field and the GUI's limit.
* **GUI semantics.** The length explicitly: ``epoch`` and ``max_train_epochs`` = the recipe's epochs with
  ``max_train_steps = 0`` (the GUI's default 1600 would cap the run), or the recipe's ``max_train_steps`` with
  ``max_train_epochs = 0``; SD1.5 = every family checkbox false, ``model_list = "custom"``, ``sample_prompts``
  holds the prompt *text*, the folders are the project's (:mod:`kohya_recipe.layout`).
* **What the GUI would not train as loaded** (stale form values, dropped zeros, narrow widgets) is carried on the
  command line, in ``additional_parameters`` (:mod:`kohya_recipe.gui.carry`); each such change is a note.

``recipe.gui`` holds what the recipe does not model: values of GUI-only fields (``model_list``, the Flux/SD3
pages, accelerate's dynamo options, ...), the folders and output name of a config that was imported without a
project, and *spellings*: the exact form an imported file used for a value the recipe holds in a canonical way
(``max_train_epochs = 0`` with ``epoch = 4`` instead of 4 and 4, the prompt text without ``--w 512``). A spelling
is only used while it still means the same as the recipe, so editing the recipe can never be undone by it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from kohya_recipe.errors import GuiConfigError, RenderError
from kohya_recipe.files import atomic_write_bytes
from kohya_recipe.gui.carry import Workarounds, gui_workarounds
from kohya_recipe.gui.form import (
    cli_options,
    cli_tokens,
    recipe_error,
    sample_prompts_text,
    split_additional,
    whole,
)
from kohya_recipe.gui.mapping import (
    EXTRA_KEYS,
    FAMILY_FLAGS,
    LAYOUT_KEYS,
    NETWORK_FIELDS,
    PRESET_EXTRA_SECRETS,
    PRESET_STRIP_KEYWORDS,
    RECIPE_CLI_OPTIONS,
    RECIPE_FIELDS,
    SDSCRIPTS_UNSET_EQUIVALENT,
    SDXL_EXTRA_KEYS,
    is_recipe_owned,
)
from kohya_recipe.gui.network import network_fields
from kohya_recipe.gui.spellings import apply_spellings
from kohya_recipe.kohya_ss.fields import (
    GuiProblem,
    gui_defaults,
    gui_field,
    gui_fields,
    validate_gui_values,
)
from kohya_recipe.layout import IMG_DIR, LOG_DIR, MODEL_DIR, REG_DIR
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.sdscripts.options import option_specs


@dataclass
class GuiRender:
    """A rendered form, which ``recipe.gui`` spellings were used or ignored (for the importer), the options carried
    in ``additional_parameters`` (option -> its words) and the notes saying why."""

    values: dict[str, Any]
    used_spellings: list[str] = field(default_factory=list)
    stale_spellings: list[str] = field(default_factory=list)
    carried: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _fresh_form() -> dict[str, Any]:
    # Text fields whose fresh value is None (network_weights, the block-weight fields) are written as "": a null
    # would mean "keep what the form shows".
    return {k: ("" if v is None else v) for k, v in gui_defaults().items()}


def _join(root: str, name: str) -> str:
    """``root/name`` in the style of ``root`` (a Windows project path keeps backslashes)."""
    if "\\" in root and "/" not in root.replace("\\", ""):
        return str(PureWindowsPath(root) / name)
    return root.rstrip("/") + "/" + name if root not in ("/", "") else "/" + name


def _learning_rates(recipe: Recipe, form: dict[str, Any]) -> None:
    """learning_rate / text_encoder_lr / unet_lr as the GUI turns them into sd-scripts' (``kohya_gui/lora_gui.py``
    ``resolve_network_train_flags``): te = 0 means UNet-only, unet = 0 means TE-only, all three 0 is refused
    (``train_model``), 0 is "unset"."""
    opt, net = recipe.optimizer, recipe.network
    default_lr = float(option_specs()["learning_rate"].default)
    # An unset learning rate is sd-scripts' default; the GUI cannot leave it unset, so write that default.
    lr = opt.learning_rate if opt.learning_rate is not None else default_lr
    te = opt.text_encoder_lr if opt.text_encoder_lr is not None else lr
    unet = opt.unet_lr if opt.unet_lr is not None else lr
    if net.train_unet_only:
        te = 0.0
        if unet == 0:
            raise recipe_error("optimizer.unet_lr", "is 0 while network.train_unet_only is set: nothing would train")
    elif net.train_text_encoder_only:
        unet = 0.0
        if te == 0:
            raise recipe_error("optimizer.text_encoder_lr", "is 0 while network.train_text_encoder_only is set")
    else:
        if te == 0:
            raise recipe_error(
                "optimizer.text_encoder_lr",
                "0 means UNet-only training in the GUI; set network.train_unet_only = true instead",
            )
        if unet == 0:
            raise recipe_error(
                "optimizer.unet_lr",
                "0 means text-encoder-only training in the GUI; set network.train_text_encoder_only = true instead",
            )
    form["learning_rate"] = lr
    form["text_encoder_lr"] = te
    form["unet_lr"] = unet
    form["t5xxl_lr"] = 0


def _warmup(recipe: Recipe, form: dict[str, Any]) -> None:
    w = recipe.optimizer.warmup_steps
    if isinstance(w, float) and not float(w).is_integer():
        # A ratio of all steps: the GUI's "LR warmup (% of total steps)" slider, written as lr_warmup/100.
        form["lr_warmup"] = whole(round(w * 100, 10))
        form["lr_warmup_steps"] = 0
    else:
        form["lr_warmup"] = 0
        form["lr_warmup_steps"] = int(w)


def _additional_parameters(recipe: Recipe) -> list[str]:
    """Tokens for recipe values and ``extra`` options that have no GUI field."""
    specs = option_specs(recipe.model.family == "sdxl")
    tokens: list[str] = []
    for option, path in RECIPE_CLI_OPTIONS.items():
        section, name = path.split(".")
        value = getattr(getattr(recipe, section), name)
        if value in (None, False) or (option == "validation_split" and not value):
            continue
        tokens += cli_tokens(option, value, specs[option].type, where=path)
    handled = set(EXTRA_KEYS.values()) | set(SDXL_EXTRA_KEYS.values())
    for option, value in recipe.extra.items():
        if option in handled:
            continue
        if value is None or value is False:
            continue
        tokens += cli_tokens(option, value, specs[option].type, where=f"extra.{option}")
    return tokens


def _extra_fields(recipe: Recipe, form: dict[str, Any]) -> None:
    extra = recipe.extra
    sdxl = recipe.model.family == "sdxl"
    for key, option in EXTRA_KEYS.items():
        if option in extra:
            value = extra[option]
            form[key] = whole(value) if isinstance(value, float) and gui_field(key).numeric else value
    for key, option in SDXL_EXTRA_KEYS.items():
        if option in extra:
            if not sdxl:
                raise recipe_error(f"extra.{option}", "the GUI passes it only for SDXL (its SDXL page)")
            form[key] = bool(extra[option])
    if "cache_text_encoder_outputs_to_disk" in extra:
        raise recipe_error("extra.cache_text_encoder_outputs_to_disk", "the GUI offers it for Flux.1 and SD3 only")
    multires = "multires_noise_iterations" in extra
    original = [k for k in ("adaptive_noise_scale", "noise_offset_random_strength") if extra.get(k)]
    if recipe.training.noise_offset:
        original.insert(0, "training.noise_offset")
    if multires and original:
        raise recipe_error(
            "extra.multires_noise_iterations",
            f"the GUI applies either multires noise or {', '.join(original)} (noise_offset_type), not both",
        )
    form["noise_offset_type"] = "Multires" if multires else "Original"


def _model(recipe: Recipe, form: dict[str, Any]) -> None:
    model = recipe.model
    form["pretrained_model_name_or_path"] = model.base
    form["v2"] = model.family == "sd2"
    form["v_parameterization"] = model.v_parameterization
    form["sdxl"] = model.family == "sdxl"
    for flag in FAMILY_FLAGS:
        form[flag] = False
    form["vae"] = model.vae or ""
    form["save_model_as"] = "safetensors"  # what config.toml writes: the only format with ss_* metadata


def _layout(recipe: Recipe, form: dict[str, Any], project_dir: str | Path | None) -> None:
    """The folders and output name: the project's (its layout names), else the config's own from ``recipe.gui``."""
    if project_dir is not None:
        root = str(project_dir)
        form["train_data_dir"] = _join(root, IMG_DIR)
        form["reg_data_dir"] = _join(root, REG_DIR) if recipe.dataset.regularization else ""
        form["output_dir"] = _join(root, MODEL_DIR)
        form["logging_dir"] = _join(root, LOG_DIR) if recipe.training.log_with else ""
        form["output_name"] = recipe.output.output_name
        form["dataset_config"] = ""
        form["resume"] = ""
        return
    for key in LAYOUT_KEYS:
        form[key] = recipe.gui.get(key, "")
    form["output_name"] = recipe.gui.get("output_name", recipe.output.output_name)
    if recipe.dataset.regularization and not form["reg_data_dir"]:
        raise recipe_error(
            "dataset.regularization",
            "the GUI needs reg_data_dir, a folder of <repeats>_<class> folders: render with a project",
        )


def _network(recipe: Recipe, form: dict[str, Any]) -> None:
    network_fields(recipe, form)
    form["network_dim"] = recipe.network.rank
    form["network_alpha"] = whole(float(recipe.network.alpha))  # 0: the rank (gui.carry)
    form["network_dropout"] = recipe.network.dropout or 0
    form["network_weights"] = recipe.network.weights or ""


def _optimizer(recipe: Recipe, form: dict[str, Any]) -> None:
    opt = recipe.optimizer
    form["optimizer"] = opt.type
    for key, values, path in (
        ("optimizer_args", opt.args, "optimizer.args"),
        ("lr_scheduler_args", opt.scheduler_args, "optimizer.scheduler_args"),
    ):
        for item in values:
            if any(c.isspace() for c in item) or '"' in item:
                raise recipe_error(
                    path,
                    f"{item!r}: the GUI splits {key} on spaces and drops '\"', so an argument must have neither",
                )
        form[key] = " ".join(values)
    _learning_rates(recipe, form)
    form["lr_scheduler"] = opt.scheduler
    _warmup(recipe, form)
    form["lr_scheduler_num_cycles"] = opt.scheduler_num_cycles
    form["lr_scheduler_power"] = opt.scheduler_power
    form["max_grad_norm"] = opt.max_grad_norm


def _length(recipe: Recipe, form: dict[str, Any]) -> None:
    """The length, explicitly. By epochs: max_train_steps = 0 makes the GUI compute steps from ``epoch`` (its
    default 1600 would cap the run: ``kohya_gui/lora_gui.py`` ``train_model``), and max_train_epochs is written too
    because sd-scripts lets it override those steps with its own bucket-aware count (the GUI's formula ignores
    partly filled buckets). By steps: max_train_steps, and max_train_epochs = 0 (it would override them); ``epoch``
    then feeds nothing the GUI passes on."""
    tr = recipe.training
    form["epoch"] = tr.max_train_epochs
    form["max_train_epochs"] = tr.epoch_limit or 0
    form["max_train_steps"] = tr.max_train_steps or 0
    form["stop_text_encoder_training"] = 0


def _precision_and_seed(recipe: Recipe, form: dict[str, Any]) -> None:
    tr = recipe.training
    mixed = recipe.accelerate.mixed_precision or tr.mixed_precision
    if mixed != tr.mixed_precision:
        raise recipe_error(
            "accelerate.mixed_precision",
            "the GUI has one mixed_precision field for both accelerate and the trainer; make them equal",
        )
    form["mixed_precision"] = tr.mixed_precision
    form["save_precision"] = tr.save_precision
    if tr.seed == 0:
        raise recipe_error("training.seed", "0 means 'random' in the GUI (it omits the seed); choose another seed")
    form["seed"] = tr.seed if tr.seed is not None else 0


def _training(recipe: Recipe, form: dict[str, Any]) -> None:
    tr = recipe.training
    form["train_batch_size"] = tr.batch_size
    form["gradient_accumulation_steps"] = tr.gradient_accumulation_steps
    w, h = tr.resolution
    form["max_resolution"] = f"{w},{h}"
    form["enable_bucket"] = tr.enable_bucket
    form["min_bucket_reso"] = tr.min_bucket_reso
    form["max_bucket_reso"] = tr.max_bucket_reso
    form["bucket_reso_steps"] = tr.bucket_reso_steps
    form["bucket_no_upscale"] = tr.bucket_no_upscale
    _precision_and_seed(recipe, form)
    form["clip_skip"] = tr.clip_skip if tr.clip_skip is not None else 0  # 0 = not written = sd-scripts' default
    form["xformers"] = tr.attention
    form["mem_eff_attn"] = False
    form["gradient_checkpointing"] = tr.gradient_checkpointing
    form["cache_latents"] = tr.cache_latents
    form["cache_latents_to_disk"] = tr.cache_latents_to_disk
    form["save_every_n_epochs"] = tr.save_every_n_epochs or 0
    form["save_state"] = tr.save_state
    form["save_last_n_epochs"] = tr.save_last_n_epochs or 0
    # The GUI always writes this key; an unset recipe value means sd-scripts' default.
    workers = tr.max_data_loader_n_workers
    form["max_data_loader_n_workers"] = (
        option_specs()["max_data_loader_n_workers"].default if workers is None else workers
    )
    form["max_token_length"] = tr.max_token_length or SDSCRIPTS_UNSET_EQUIVALENT["max_token_length"]
    form["noise_offset"] = whole(tr.noise_offset) if tr.noise_offset else 0
    form["log_with"] = tr.log_with or ""


def _dataset_and_samples(recipe: Recipe, form: dict[str, Any]) -> None:
    form["caption_extension"] = recipe.dataset.caption_extension
    aug = recipe.augmentation
    form["flip_aug"] = aug.flip
    form["color_aug"] = aug.color
    form["shuffle_caption"] = aug.shuffle_caption
    form["keep_tokens"] = aug.keep_tokens
    s = recipe.samples
    form["sample_every_n_epochs"] = s.every_n_epochs or 0
    form["sample_every_n_steps"] = s.every_n_steps or 0
    form["sample_sampler"] = s.sampler
    form["sample_prompts"] = sample_prompts_text(s.prompts)


def _accelerate(recipe: Recipe, form: dict[str, Any]) -> None:
    acc = recipe.accelerate
    form["num_processes"] = acc.num_processes
    form["multi_gpu"] = acc.num_processes > 1  # as render/command.py launches it
    form["num_machines"] = acc.num_machines
    form["gpu_ids"] = ",".join(acc.gpu_ids)
    form["num_cpu_threads_per_process"] = acc.num_cpu_threads_per_process
    form["main_process_port"] = acc.main_process_port or 0
    form["dynamo_backend"] = acc.dynamo_backend


def _additional(recipe: Recipe, form: dict[str, Any], carried: Workarounds) -> None:
    """additional_parameters: the recipe's options without a GUI field and the options carried past the GUI
    (:mod:`kohya_recipe.gui.carry`). A config's own text is kept while every option kohya-recipe can check in it
    still says what the recipe says; the options it lacks are appended (never an option twice)."""
    tokens = _additional_parameters(recipe)
    for option, words in carried.options.items():
        tokens += [f"--{option}", *words]
    form["additional_parameters"] = " ".join(tokens)
    spelled = str(recipe.gui.get("additional_parameters", "")).strip()
    if not spelled:
        return
    sdxl = recipe.model.family == "sdxl"
    known, rest = split_additional(spelled, sdxl=sdxl)
    mine, _ = split_additional(form["additional_parameters"], sdxl=sdxl)
    if all(option in mine for option in known):
        said = {name for name, _ in known}
        parts = cli_options(form["additional_parameters"])
        missing = [" ".join([f"--{name}", *words]) for name, words in parts if name not in said]
        form["additional_parameters"] = " ".join([spelled, *missing])  # the config's own text, meaning the same
    else:
        # The recipe changed what the checked options say; keep only the options kohya-recipe cannot check.
        form["additional_parameters"] = " ".join([*tokens, *rest])


def _base_form(recipe: Recipe, project_dir: str | Path | None) -> tuple[dict[str, Any], Workarounds]:
    """The canonical form for ``recipe`` (no spellings applied yet) and what it carries past the GUI."""
    form = _fresh_form()
    form["model_list"] = "custom"  # a hidden legacy field; the GUI's update_my_data forces "custom" anyway
    # GUI-only values first; everything the recipe decides is written over them below.
    for key, value in recipe.gui.items():
        if key in form and not is_recipe_owned(key):
            form[key] = value
    _model(recipe, form)
    _layout(recipe, form, project_dir)
    for section in (_network, _optimizer, _length, _training, _dataset_and_samples, _accelerate):
        section(recipe, form)
    # sd-scripts options the recipe keeps in `extra` (the form holds their fresh values otherwise).
    _extra_fields(recipe, form)
    carried = gui_workarounds(recipe, form)
    _additional(recipe, form, carried)
    return form, carried


def _problem_field(p: GuiProblem) -> str:
    if p.key in NETWORK_FIELDS:
        return "network.args"
    if p.key in EXTRA_KEYS:
        return f"extra.{EXTRA_KEYS[p.key]}"
    if p.key in SDXL_EXTRA_KEYS:
        return f"extra.{SDXL_EXTRA_KEYS[p.key]}"
    return RECIPE_FIELDS.get(p.key, f"gui.{p.key}")


def render_gui_form(recipe: Recipe, project_dir: str | Path | None = None, *, check: bool = True) -> GuiRender:
    """The full 287-field form for ``recipe`` and what happened to ``recipe.gui`` spellings.

    With ``check`` (the default) any value the GUI would refuse raises :class:`GuiConfigError` naming the recipe
    field, the GUI key and its limit.
    """
    form, carried = _base_form(recipe, project_dir)
    spellings = apply_spellings(recipe, form, project=project_dir is not None)
    result = GuiRender(form, spellings.used, spellings.stale, carried.options, carried.notes)
    if check:
        problems = [p for p in validate_gui_values(form, "gui", complete=True) if p.severity == "error"]
        if problems:
            p = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise GuiConfigError(f"GUI field {p.key}: {p.message}{more}", source="recipe", field=_problem_field(p))
    return result


def recipe_to_gui_json(recipe: Recipe, project_dir: str | Path | None = None) -> dict[str, Any]:
    """The kohya_ss GUI LoRA JSON for ``recipe``: all 287 fields, native types, sorted keys.

    ``project_dir`` is the project folder *as the GUI host sees it* (used verbatim, never resolved here): the
    folders become ``<project>/img``, ``<project>/model``, ``<project>/log`` (and ``<project>/reg`` with
    regularization). Without it the folders and output name come from ``recipe.gui`` (an imported config's own
    paths) or stay empty.
    """
    values = render_gui_form(recipe, project_dir).values
    return dict(sorted(values.items()))


def gui_json_notes(recipe: Recipe) -> list[str]:
    """What the GUI JSON for ``recipe`` does differently from the recipe's own words so that the GUI trains them,
    one line each (:mod:`kohya_recipe.gui.carry`)."""
    return render_gui_form(recipe, None).notes


def preset_keys() -> list[str]:
    """The GUI keys a shareable preset keeps."""
    return [
        k
        for k in sorted(gui_fields())
        if not any(w in k for w in PRESET_STRIP_KEYWORDS) and k not in PRESET_EXTRA_SECRETS
    ]


def recipe_to_gui_preset(recipe: Recipe) -> dict[str, Any]:
    """A shareable GUI preset (for ``presets/lora/user_presets/``), made the way the GUI's own presets are:
    the full form minus folder, model, naming, sample and secret keys (tools/prepare_presets.py).

    Applying a preset changes only the keys it has, so ``max_train_steps = 0`` is kept on purpose: without it
    the preset would inherit the form's 1600-step cap (``kohya_gui/class_basic_training.py``).
    """
    values = render_gui_form(recipe, None).values
    return {k: values[k] for k in preset_keys()}


def gui_json_text(data: dict[str, Any]) -> str:
    """JSON text the way the GUI saves it: keys sorted, 2-space indent, UTF-8 characters kept, newline at end."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_gui_json(
    recipe: Recipe,
    project_dir: str | Path | None,
    path: str | Path,
    *,
    preset_only: bool = False,
    force: bool = False,
) -> Path:
    """Write the GUI JSON (or, with ``preset_only``, the shareable preset) for ``recipe`` to ``path``.

    ``project_dir`` is made absolute (the GUI does not run in the project folder); an existing ``path`` is
    only replaced with ``force``. The write is atomic.
    """
    if preset_only:
        data = recipe_to_gui_preset(recipe)
    else:
        root = Path(project_dir).absolute() if project_dir is not None else None
        data = recipe_to_gui_json(recipe, root)
    target = Path(path)
    if target.is_dir():
        raise RenderError("is a folder, not a JSON file", source=str(target))
    if target.exists() and not force:
        raise RenderError("already exists (use --force to overwrite)", source=str(target))
    try:
        atomic_write_bytes(target, gui_json_text(data).encode("utf-8"))
    except OSError as exc:
        raise RenderError(f"cannot write: {exc.strerror or exc}", source=str(target)) from None
    return target


__all__ = [
    "LAYOUT_KEYS",
    "GuiRender",
    "gui_json_notes",
    "gui_json_text",
    "recipe_to_gui_json",
    "recipe_to_gui_preset",
    "render_gui_form",
    "write_gui_json",
]
