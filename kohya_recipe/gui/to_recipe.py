"""The GUI form -> recipe mapping: a repaired GUI config becomes recipe data, its GUI-only values and spellings
``recipe.gui``, and every value that does not carry over exactly a warning."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kohya_recipe.errors import GuiConfigError, RecipeError
from kohya_recipe.gui.form import (
    effective_lrs,
    gui_split,
    inert_extra_value,
    parse_resolution,
    split_additional,
    textbox_prompts,
    whole,
)
from kohya_recipe.gui.mapping import (
    EXTRA_KEYS,
    LAYOUT_KEYS,
    LORA_TYPES,
    NETWORK_FIELDS,
    RECIPE_CLI_OPTIONS,
    RECIPE_FIELDS,
    SDSCRIPTS_UNSET_EQUIVALENT,
    SDXL_EXTRA_KEYS,
    SECRET_KEYS,
    active_network_keys,
    is_recipe_owned,
)
from kohya_recipe.gui.migrate import load_gui_values
from kohya_recipe.gui.network import network_args_from_form
from kohya_recipe.gui.readings import (
    base_note,
    dropped_zeros,
    family_base,
    gui_length,
    trainer_bucket_reso_steps,
    zero_note,
)
from kohya_recipe.gui.render import render_gui_form
from kohya_recipe.kohya_ss.fields import (
    describe,
    gui_defaults,
    gui_fields,
)
from kohya_recipe.recipe.loading import recipe_from_dict
from kohya_recipe.recipe.mapping import SDSCRIPTS_FIELDS
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.sdscripts.folders import RepeatsFolder, is_trainer_image, parse_repeats_folder
from kohya_recipe.sdscripts.options import option_specs


def _unless_unset(key: str, value: Any) -> Any:
    """``None`` where sd-scripts treats ``value`` exactly like the option being unset."""
    return None if value == SDSCRIPTS_UNSET_EQUIVALENT.get(key) else value


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    section, name = path.split(".")
    data.setdefault(section, {})[name] = value


def _find_subset(train_data_dir: str, base: Path | None) -> tuple[Path, RepeatsFolder] | None:
    """The one ``<repeats>_<class tokens>`` folder sd-scripts would train under ``train_data_dir``, if that folder
    exists here."""
    if not train_data_dir:
        return None
    p = Path(train_data_dir)
    candidates = [p] if p.is_absolute() else ([base / p] if base else []) + [p]
    for c in candidates:
        try:
            if not c.is_dir():
                continue
            subs = [(s, parse_repeats_folder(s.name)) for s in sorted(c.iterdir()) if s.is_dir()]
        except OSError:
            continue
        trained = [(s, folder) for s, folder in subs if folder.trained]
        if len(trained) == 1 and trained[0][1].class_tokens:
            return trained[0]
        return None
    return None


class FormImporter:
    """Maps one GUI config to a recipe, collecting repairs and warnings on the way (:meth:`build`)."""

    def __init__(self, data: dict[str, Any], source: str, base_dir: Path | None) -> None:
        self.source = source
        self.base_dir = base_dir
        loaded = load_gui_values(data, source)
        self.repairs = loaded.repairs
        self.warnings = loaded.warnings
        self.notes = loaded.notes  # how values were read where the file's words are not what the GUI trained
        self.lost: set[str] = set()  # keys already explained in a warning
        # The keys the file sets, in the GUI's registry order.
        self.present = dict.fromkeys(k for k in gui_fields() if loaded.values.get(k) is not None)
        self.form = self._full_form(loaded.values)
        self.specs = option_specs(self.form["sdxl"] is True)
        self.data: dict[str, Any] = {}
        self.gui: dict[str, Any] = {}  # recipe.gui
        self.extra: dict[str, Any] = {}  # recipe.extra
        # additional_parameters options that replace what a field said: option -> (recipe field, the field's value)
        self.overridden: dict[str, tuple[str, Any]] = {}
        self._zeros()

    def _zeros(self) -> None:
        """A 0 the GUI's TOML drops trained as sd-scripts' default: the form holds that default from here on."""
        known, _ = split_additional(self.form["additional_parameters"], sdxl=bool(self.form["sdxl"]))
        for z in dropped_zeros(self.form, self.present, {name for name, _ in known}):
            self.form[z.key] = z.default
            self.repairs.append(zero_note(z))
            self.lost.add(z.key)

    def error(self, key: str, message: str) -> GuiConfigError:
        return GuiConfigError(message, source=self.source, field=key)

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{key}: {message}")
        self.lost.add(key)

    def _full_form(self, values: dict[str, Any]) -> dict[str, Any]:
        """Every field: the file's value, or what a freshly started GUI's form shows (what applying a preset
        there gives; a key the file does not set keeps whatever the form shows). Except the base model: the form's
        runwayml repository is no longer on the Hugging Face hub, and is SD 1.5 whatever the family (see
        ``_model``). The form's max_train_steps (1600) stays: it is what the GUI trains (``readings.gui_length``)."""
        base = {k: ("" if v is None else v) for k, v in gui_defaults().items()}
        base["pretrained_model_name_or_path"] = ""
        missing = [k for k in gui_fields() if k not in self.present]
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            self.warnings.append(
                f"{len(missing)} of the GUI's {len(gui_fields())} fields are not in the file ({shown}): they take "
                "a fresh GUI form's values (the length and base model: see the notes)"
            )
        return {k: (values[k] if k in self.present else base[k]) for k in gui_fields()}

    def build(self) -> Recipe:
        """The recipe: each recipe section from its fields, then what only the GUI holds, then the spellings."""
        for step in (
            self._model,
            self._network,
            self._optimizer,
            self._training,
            self._dataset,
            self._samples,
            self._subject_and_output,
            self._accelerate,
            self._extra_fields,
            self._additional,
            self._gui_only,
        ):
            step()
        self.data["extra"] = self.extra
        self.data["gui"] = self.gui
        recipe = self._validate(self.data)
        opt = recipe.optimizer
        if opt.is_adafactor and opt.relative_step and opt.scheduler != "adafactor":
            # sd-scripts replaces the scheduler itself (library/train_util.py get_scheduler_fix logs "use
            # adafactor_scheduler"); the GUI JSON kohya-recipe writes says "constant" for it (gui.carry).
            self.repairs.append(
                f"lr_scheduler: {opt.scheduler!r} read as 'adafactor': relative-step Adafactor trains with "
                "sd-scripts' adafactor schedule whatever is asked"
            )
            self.data["optimizer"]["scheduler"] = "adafactor"
            recipe = self._validate(self.data)
        return self._spellings(recipe, self.data)

    def _model(self) -> None:
        form = self.form
        family = "sdxl" if form["sdxl"] else ("sd2" if form["v2"] else "sd15")
        base = form["pretrained_model_name_or_path"]
        if not base:
            base = family_base(family, bool(form["v_parameterization"]), Recipe().model.base)
            self.notes.append(base_note(family, base, in_file="pretrained_model_name_or_path" in self.present))
            self.lost.add("pretrained_model_name_or_path")
        self.data["model"] = {
            "base": base,
            "family": family,
            "v_parameterization": bool(form["v_parameterization"]),
            "vae": form["vae"] or None,
        }

    def _network(self) -> None:
        form = self.form
        lora_type = form["LoRA_type"]
        args: list[str] = []
        for item in network_args_from_form(form, lora_type):
            if item not in args:  # the GUI lists use_tucker twice for LyCORIS LoCon/LoHa
                args.append(item)
        self.data["network"] = {
            "module": LORA_TYPES[lora_type].module,
            "rank": int(form["network_dim"]),
            "alpha": float(form["network_alpha"]),
            "args": args,
            "dropout": form["network_dropout"] or None,
            "weights": form["network_weights"] or None,
        }
        if isinstance(form["network_dim"], float) and not form["network_dim"].is_integer():
            raise self.error("network_dim", f"{form['network_dim']} is not a whole number")

    def _dataset(self) -> None:
        form = self.form
        ext = form["caption_extension"]
        self.data["dataset"] = {"caption_extension": ".caption" if ext == "" else ext}
        self.data["augmentation"] = {
            "flip": bool(form["flip_aug"]),
            "color": bool(form["color_aug"]),
            "shuffle_caption": bool(form["shuffle_caption"]),
            "keep_tokens": int(form["keep_tokens"]),
        }
        if form["color_aug"] and form["cache_latents"]:
            # kohya_gui/common_gui.py color_aug_changed: ticking color_aug turns cache_latents off (sd-scripts
            # refuses both).
            self.data["training"]["cache_latents"] = False
            self.repairs.append("cache_latents: turned off because color_aug is on, as the GUI does on load")

    def _extra_fields(self) -> None:
        """sd-scripts options that have GUI fields (recipe.extra)."""
        form = self.form
        for key, option in EXTRA_KEYS.items():
            value = form[key]
            if key in self.present and not inert_extra_value(key, value, form):
                self.extra[option] = self._option_value(option, value, key)
                if key in SECRET_KEYS and value:
                    self.warnings.append(
                        f"{key}: a secret; it is kept in the recipe's extra.{option} — do not share the recipe"
                    )
        if form["sdxl"]:
            for key, option in SDXL_EXTRA_KEYS.items():
                if form[key] is True:
                    self.extra[option] = True

    def _gui_only(self) -> None:
        """GUI-only values that differ from what a default render would show, and the config's own folders."""
        form = self.form
        active = active_network_keys(form["LoRA_type"])
        canonical = render_gui_form(Recipe(), None, check=False).values
        for key in self.present:
            if is_recipe_owned(key) or (key in NETWORK_FIELDS and key in active):
                continue
            if not _same(form[key], canonical[key]):
                self.gui[key] = form[key]
        for key in LAYOUT_KEYS:
            if key != "output_name" and key in self.present and form[key]:
                self.gui[key] = form[key]

    def _option_value(self, option: str, value: Any, key: str) -> Any:
        """The value sd-scripts' ``--option`` takes for a GUI field's value."""
        spec = self.specs.get(option)
        if spec is None:
            return value
        if spec.type == "int" and isinstance(value, float):
            if not value.is_integer():
                raise self.error(key, f"{value} is not a whole number (sd-scripts --{option} takes an integer)")
            return int(value)
        if spec.type == "float" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if spec.type == "bool_flag":
            return bool(value)
        return value

    def _optimizer(self) -> None:
        form, data = self.form, self.data
        default_lr = float(self.specs["learning_rate"].default)
        lr, te, unet = form["learning_rate"], form["text_encoder_lr"], form["unet_lr"]
        if lr == 0 and te == 0 and unet == 0:
            raise self.error(
                "learning_rate", "learning_rate, text_encoder_lr and unet_lr are all 0: the GUI refuses to train"
            )
        if lr < 0:
            raise self.error("learning_rate", f"{lr} is negative: sd-scripts would train away from the data")
        rates = effective_lrs(lr, te, unet, default_lr)
        opt: dict[str, Any] = {
            "type": form["optimizer"],
            "args": gui_split(form["optimizer_args"]),
            "learning_rate": None if (lr == 0 or lr == default_lr) else float(lr),
            "scheduler": form["lr_scheduler"],
            "scheduler_args": gui_split(form["lr_scheduler_args"]),
            "scheduler_num_cycles": int(form["lr_scheduler_num_cycles"]),
            "scheduler_power": float(form["lr_scheduler_power"]),
            "max_grad_norm": float(form["max_grad_norm"]),
        }
        opt["text_encoder_lr"] = None if (te == 0 or te == rates.base) else float(te)
        opt["unet_lr"] = None if (unet == 0 or unet == rates.base) else float(unet)
        data["network"]["train_unet_only"] = rates.unet_only
        data["network"]["train_text_encoder_only"] = rates.te_only
        if form["t5xxl_lr"]:
            self.warn("t5xxl_lr", "is for Flux.1/SD3 text encoders; it does nothing for this model and is dropped")
        # Warmup: absolute steps win over the percentage (kohya_gui/common_gui.py resolve_lr_warmup_steps); the
        # constant scheduler zeroes both on load (kohya_gui/class_basic_training.py lr_scheduler_changed).
        steps, pct = form["lr_warmup_steps"], form["lr_warmup"]
        if form["lr_scheduler"] == "constant" and (steps or pct):
            self.repairs.append("lr_warmup: set to 0 because lr_scheduler is 'constant', as the GUI does on load")
            steps = pct = 0
        if steps:
            if isinstance(steps, float) and not steps.is_integer():
                raise self.error("lr_warmup_steps", f"{steps} is not a whole number of steps")
            opt["warmup_steps"] = int(steps)
        elif pct:
            if pct >= 100:
                raise self.error("lr_warmup", f"{pct}% warmup leaves no steps to train")
            opt["warmup_steps"] = pct / 100
        else:
            opt["warmup_steps"] = 0
        data["optimizer"] = opt

    def _training(self) -> None:
        form, data, specs = self.form, self.data, self.specs
        res = parse_resolution(form["max_resolution"])
        if res is None:
            raise self.error("max_resolution", f"{describe(form['max_resolution'])} is not 'W,H' or 'N'")
        try:
            epochs, steps, length = gui_length(form, self.present)
        except ValueError as exc:
            raise self.error("epoch", str(exc)) from None
        self.notes.append(length)
        family = "sdxl" if form["sdxl"] else ("sd2" if form["v2"] else "sd15")
        bucket_steps = int(form["bucket_reso_steps"])
        repaired = trainer_bucket_reso_steps(bucket_steps, family, enable_bucket=bool(form["enable_bucket"]))
        if repaired is not None:
            bucket_steps, why = repaired
            self.repairs.append(why)
            self.lost.add("bucket_reso_steps")
        if form["mixed_precision"] not in ("no", "fp16", "bf16"):
            raise self.error(
                "mixed_precision", f"{form['mixed_precision']!r} is not supported by the recipe (no, fp16, bf16)"
            )
        if form["mem_eff_attn"]:
            self.warn(
                "mem_eff_attn",
                f"sd-scripts' slow memory-efficient attention is not offered by kohya-recipe; "
                f"attention = {form['xformers']!r} is used instead",
            )
        # sd-scripts logs to TensorBoard when a logging_dir is set and log_with is not; a file without a
        # logging_dir key (a preset) does not say, so it keeps the recipe's TensorBoard logging.
        log_with = form["log_with"] or (
            "tensorboard" if form["logging_dir"] or "logging_dir" not in self.present else None
        )
        n_workers = int(form["max_data_loader_n_workers"])
        data["training"] = {
            "max_train_epochs": epochs,
            "max_train_steps": steps,
            "batch_size": int(form["train_batch_size"]),
            "gradient_accumulation_steps": int(form["gradient_accumulation_steps"]),
            "resolution": list(res),
            "enable_bucket": bool(form["enable_bucket"]),
            "min_bucket_reso": int(form["min_bucket_reso"]),
            "max_bucket_reso": int(form["max_bucket_reso"]),
            "bucket_reso_steps": bucket_steps,
            "bucket_no_upscale": bool(form["bucket_no_upscale"]),
            "mixed_precision": form["mixed_precision"],
            "save_precision": form["save_precision"],
            "seed": int(form["seed"]) or None,  # 0 = random: the GUI omits it
            "clip_skip": int(form["clip_skip"]) or None,
            "attention": form["xformers"],
            "gradient_checkpointing": bool(form["gradient_checkpointing"]),
            "cache_latents": bool(form["cache_latents"]),
            "cache_latents_to_disk": bool(form["cache_latents_to_disk"]),
            "save_every_n_epochs": int(form["save_every_n_epochs"]) or None,
            "save_state": bool(form["save_state"]),
            "save_last_n_epochs": int(form["save_last_n_epochs"]) or None,
            "max_data_loader_n_workers": None if n_workers == specs["max_data_loader_n_workers"].default else n_workers,
            "max_token_length": _unless_unset("max_token_length", int(form["max_token_length"])),
            "noise_offset": (
                whole(form["noise_offset"])
                if form["noise_offset"] and form["noise_offset_type"] == "Original"
                else None
            ),
            "log_with": log_with,
        }
        if form["save_model_as"] != "safetensors":
            self.warn(
                "save_model_as",
                f"{form['save_model_as']!r}: kohya-recipe saves .safetensors (the only format with epoch metadata)",
            )
        if form["stop_text_encoder_training"]:
            self.lost.add("stop_text_encoder_training")  # already a preflight warning: the GUI ignores it
        if form["dataset_config"]:
            self.warnings.append(
                f"dataset_config: {form['dataset_config']!r} is kept for the GUI; a kohya-recipe project writes "
                "its own dataset.toml from the recipe"
            )
        if form["multi_gpu"] and int(form["num_processes"]) <= 1:
            self.warn(
                "multi_gpu",
                "is on with num_processes = 1; kohya-recipe launches multi-GPU from accelerate.num_processes",
            )

    def _samples(self) -> None:
        form, data = self.form, self.data
        prompts, dropped = textbox_prompts(form["sample_prompts"])
        for p in prompts:
            for side in ("width", "height"):
                v = p.get(side)
                if isinstance(v, int) and (v % 8 or v < 64):
                    new = max(64, v - v % 8)
                    self.repairs.append(
                        f"sample_prompts: --{side[0]} {v} becomes {new} (sd-scripts rounds down to a "
                        "multiple of 8, at least 64)"
                    )
                    p[side] = new
        if dropped:
            self.warn("sample_prompts", f"inline options the recipe cannot hold are dropped: {', '.join(dropped)}")
        data["samples"] = {
            "every_n_epochs": int(form["sample_every_n_epochs"]) or None,
            "every_n_steps": int(form["sample_every_n_steps"]) or None,
            "sampler": form["sample_sampler"],
            "prompts": prompts,
        }

    def _subject_and_output(self) -> None:
        form, data, gui = self.form, self.data, self.gui
        # A file without output_name (a preset) leaves the recipe's default: the trigger word.
        name = form["output_name"] if "output_name" in self.present else ""
        m = re.fullmatch(r"(.+)-(\d+)-([A-Z]{1,3})", name or "")
        output: dict[str, Any] = {}
        if m and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", m.group(1)):
            output = {"name": m.group(1), "major": int(m.group(2)), "letter": m.group(3)}
        else:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").strip("._-")
            if safe and not safe[0].isalnum():
                safe = ""
            if safe:
                output = {"name": safe}
            if "output_name" in self.present and name:
                gui["output_name"] = name  # kept as the config's own name when rendered without a project
        data["output"] = output
        subject: dict[str, Any] = {}
        found = _find_subset(form["train_data_dir"], self.base_dir)
        if found is not None:
            folder, name = found
            repeats = name.repeats
            trigger, _, cls = name.class_tokens.partition(" ")
            subject = {"trigger": trigger, "class_token": cls or trigger}
            if subject["class_token"].split()[-1].lower() == "style":
                # The GUI has no field for what a LoRA learns; a folder named "<N>_<name> style" trains a style.
                subject["purpose"] = "style"
            data["dataset"] = {**data.get("dataset", {}), "repeats": repeats}
            if any(f.is_file() and is_trainer_image(f) for f in folder.iterdir()):
                data["dataset"]["images"] = str(folder)
            self.warnings.append(f"train_data_dir: found {folder.name!r}: repeats {repeats}, trigger {trigger!r}")
        elif "train_data_dir" in self.present:
            self.warnings.append(
                "train_data_dir: the trigger word, class and repeats live in the image folder names "
                f"({form['train_data_dir'] or 'not set'} is not a readable folder with one <repeats>_<name> "
                "folder here); set subject.trigger, subject.class_token and dataset.repeats"
            )
        data["subject"] = subject

    def _accelerate(self) -> None:
        form, data = self.form, self.data
        ids = [g.strip() for g in str(form["gpu_ids"]).split(",") if g.strip()]
        data["accelerate"] = {
            "num_processes": int(form["num_processes"]),
            "num_machines": int(form["num_machines"]),
            "gpu_ids": ids,
            "mixed_precision": None,
            "num_cpu_threads_per_process": int(form["num_cpu_threads_per_process"]),
            "main_process_port": int(form["main_process_port"]) or None,
            "dynamo_backend": form["dynamo_backend"],
        }

    def _additional(self) -> None:
        """additional_parameters: raw command-line flags after --config_file (they override the TOML). The text
        itself is kept for the GUI; rendering uses it while its options still match the recipe."""
        text, data, extra = self.form["additional_parameters"], self.data, self.extra
        if text.strip():
            self.gui["additional_parameters"] = text
        known, rest = split_additional(text, sdxl=bool(self.form["sdxl"]))
        for name, value in known:
            if name in RECIPE_CLI_OPTIONS:
                _set_path(data, RECIPE_CLI_OPTIONS[name], value)
            elif name in SDSCRIPTS_FIELDS:
                path = SDSCRIPTS_FIELDS[name]
                section, field_name = path.split(".")
                before = data.get(section, {}).get(field_name)
                _set_path(data, path, value)
                if before != value:
                    self.overridden[name] = (path, before)
            else:
                extra[name] = value
        if rest:
            self.warnings.append(
                f"additional_parameters: {' '.join(rest)!r} is not an sd-scripts option kohya-recipe can check; "
                "kept for the GUI only"
            )

    def _validate(self, data: dict[str, Any]) -> Recipe:
        try:
            return recipe_from_dict(data, source=self.source)
        except RecipeError as exc:
            gui_key = _gui_key_for(exc.field or "")
            raise GuiConfigError(
                f"{exc.message} (recipe {exc.field})" if exc.field else exc.message,
                source=self.source,
                field=gui_key or exc.field,
            ) from None

    def _overrides(self, carried: dict[str, list[str]], rendered: dict[str, Any]) -> None:
        """Say which additional_parameters options replaced what a field said, unless the file is what kohya-recipe
        writes itself: the field holding what the GUI can show, the command line the value (``gui.carry``)."""
        for name, (path, before) in self.overridden.items():
            if name == "network_args":
                keys = sorted(active_network_keys(self.form["LoRA_type"]))
            else:
                keys = [k for k in (name, "lr_warmup" if name == "lr_warmup_steps" else "") if k in self.form]
            if name in carried and all(_same(rendered[k], self.form[k]) for k in keys):
                continue
            self.warnings.append(
                f"additional_parameters: --{name} overrides the GUI's own field ({describe(before)}); kept as {path}"
            )

    def _spellings(self, recipe: Recipe, data: dict[str, Any]) -> Recipe:
        """Keep the file's own spelling of values the recipe holds canonically, where it means the same."""
        text = recipe.gui.get("additional_parameters")
        if text is not None:
            # The text kohya-recipe itself writes for this recipe needs no spelling.
            bare = {k: v for k, v in recipe.gui.items() if k != "additional_parameters"}
            plain = recipe.model_copy(update={"gui": bare})
            if render_gui_form(plain, None, check=False).values["additional_parameters"] == text:
                recipe, data["gui"] = plain, bare
        first = render_gui_form(recipe, None, check=False)
        self._overrides(first.carried, first.values)
        rendered = first.values
        candidates = {
            k: self.form[k]
            for k in self.present
            if k not in LAYOUT_KEYS and k not in recipe.gui and not _same(rendered[k], self.form[k])
        }
        if not candidates:
            return recipe
        trial = recipe.model_copy(update={"gui": {**recipe.gui, **candidates}})
        result = render_gui_form(trial, None, check=False)
        used = {k: candidates[k] for k in result.used_spellings if k in candidates}
        for key in sorted(set(candidates) - set(used)):
            if key not in self.lost:
                self.warnings.append(
                    f"{key}: {describe(candidates[key])} does not carry over; the recipe gives "
                    f"{describe(rendered[key])}"
                )
        if not used:
            return recipe
        data["gui"] = {**data["gui"], **used}
        return self._validate(data)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _gui_key_for(recipe_field: str) -> str | None:
    """The GUI key a recipe field comes from (first match), to name it in an error."""
    top = recipe_field.split(".")
    for key, path in RECIPE_FIELDS.items():
        if path == recipe_field or (len(top) > 2 and path == ".".join(top[:2])):
            return key
    if recipe_field.startswith("extra."):
        option = recipe_field[len("extra.") :]
        for key, opt in {**EXTRA_KEYS, **SDXL_EXTRA_KEYS}.items():
            if opt == option:
                return key
    return None
