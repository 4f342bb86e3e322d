"""The recipe: every setting of a LoRA training run, as strict Pydantic models.

A recipe is a TOML file. A preset (``presets/*.toml``) is a partial recipe layered underneath it, and
``--set dotted.key=value`` overrides go on top. Unknown keys are errors, because sd-scripts itself accepts
misspelled config keys silently (reference/sd_scripts.md §3). The trainer's real semantics (Adafactor's
relative-step mode, color augmentation vs latent caching, the 1600-step default) are encoded as validation here,
so a mistake is caught before any GPU time is spent.
"""

from __future__ import annotations

import ast
import copy
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kohya_recipe.errors import RecipeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMA_VERSION = 1

Family = Literal["sd15", "sd2", "sdxl"]
MixedPrecision = Literal["no", "fp16", "bf16"]
SavePrecision = Literal["float", "fp16", "bf16"]
Attention = Literal["sdpa", "xformers", "none"]
CaptionExtension = Literal[".txt", ".caption", ".cap"]
LogWith = Literal["tensorboard", "wandb", "all"]
# sd-scripts --sample_sampler choices (reference/sd_scripts.md §2).
Sampler = Literal[
    "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
    "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
]  # fmt: skip

# Schedulers sd-scripts' train_network accepts by name; reduce_lr_on_plateau and cosine_warmup_with_min_lr fail
# with a TypeError at start-up (reference/sd_scripts.md §10), so they are not offered.
SCHEDULERS = (
    "adafactor", "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
    "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay", "piecewise_constant",
)  # fmt: skip

# A name that becomes a file name and a shell word: no path separators, no "..", no shell metacharacters.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _doc(description: str, article: str | None = None, **kw: Any) -> Any:
    """A Field with a description and, where the article says something, its words (for docs/recipe.md)."""
    extra: dict[str, Any] | None = {"article": article} if article else None
    return Field(description=description, json_schema_extra=extra, **kw)


def _kinds(annotation: Any) -> set[type]:
    """The Python types a field annotation admits (Literal values by their type); ``object`` when unknown."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {type(a) for a in typing.get_args(annotation)}
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_kinds(a) for a in typing.get_args(annotation)))
    if isinstance(annotation, type) and origin is None:
        return {annotation}
    return {object}


def reject_coercion(data: Any, model: type[BaseModel], *, source: str = "recipe", loc: str = "") -> None:
    """Refuse values pydantic's lax mode would silently convert: ``rank = true`` (read as 1), ``flip = "yes"``
    (read as True), ``max_train_epochs = "8"``. A recipe says what it means, in native TOML types."""
    if not isinstance(data, dict):
        return
    for name, info in model.model_fields.items():
        if name not in data:
            continue
        value, where = data[name], f"{loc}.{name}" if loc else name
        ann = info.annotation
        sub = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if sub is None and typing.get_origin(ann) is list:
            (item,) = typing.get_args(ann) or (object,)
            if isinstance(item, type) and issubclass(item, BaseModel) and isinstance(value, list):
                for i, element in enumerate(value):
                    reject_coercion(element, item, source=source, loc=f"{where}[{i}]")
            continue
        if sub is not None:
            reject_coercion(value, sub, source=source, loc=where)
            continue
        kinds = _kinds(ann)
        if object in kinds:
            continue
        if isinstance(value, bool) and bool not in kinds and kinds & {int, float}:
            raise RecipeError(f"must be a number, not {str(value).lower()}", source=source, field=where)
        if isinstance(value, str) and str not in kinds and kinds & {int, float, bool}:
            want = "true or false" if bool in kinds else "a number"
            raise RecipeError(f"must be {want}, not the string {value!r}", source=source, field=where)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Subject(_Strict):
    trigger: str = _doc(
        "Trigger word that calls the LoRA up at generation time; also the caption tag and folder name.",
        "Use the character's name; a rare token like 2c077 only helps if a name fights the base model.",
        default="",
    )
    class_token: str = _doc(
        "Class word after the trigger in the image folder name (`10_<trigger> <class>`).",
        "The class being trained, e.g. woman.",
        default="woman",
    )

    @field_validator("trigger", "class_token")
    @classmethod
    def _one_tag(cls, v: str) -> str:
        # The folder name and the Danbooru caption both break on these characters (a NUL cannot even be in a
        # file name: the OS refuses it).
        if any(c in v for c in ",/\\") or any(ord(c) < 32 or ord(c) == 127 for c in v) or v != v.strip():
            raise ValueError(
                "must be a single tag: no comma, slash, newline or other control character, or surrounding spaces"
            )
        return v


class Dataset(_Strict):
    images: str | None = _doc("Folder of source images and captions (relative to the recipe file).", default=None)
    repeats: int = _doc(
        "How often each image is shown per epoch (the `N_` prefix of the image folder).",
        "10 repeats: 42 images make 420 steps per epoch.",
        default=10,
        ge=1,
    )
    caption_extension: CaptionExtension = _doc(
        "Caption file extension. Always written explicitly: sd-scripts' own default is `.caption`.",
        "One .txt caption per image, named like the image.",
        default=".txt",
    )
    regularization: str | None = _doc(
        "Folder of regularization images, or none.",
        "Don't: regularization slows training and dilutes a single-subject LoRA.",
        default=None,
    )
    reg_repeats: int = _doc("Repeats of the regularization images.", default=1, ge=1)
    validation_split: float = _doc(
        "Share of images held out for validation loss (sd-scripts >= 0.10); 0 turns validation off.",
        default=0.0,
        ge=0.0,
        lt=1.0,
    )
    validation_seed: int | None = _doc("Seed for the validation split and noise.", default=None)


class Model(_Strict):
    base: str = _doc(
        "Base checkpoint: a local .safetensors/.ckpt file, a diffusers folder, or a hub id.",
        "Train against the base Stable Diffusion 1.5 model: every fine-tune is based on it.",
        default="stable-diffusion-v1-5/stable-diffusion-v1-5",
    )
    family: Family = _doc("Model family: sd15, sd2 (written as --v2) or sdxl (sdxl_train_network.py).", default="sd15")
    v_parameterization: bool = _doc("v-prediction model (SD 2.x 768-v).", default=False)
    vae: str | None = _doc("Replacement VAE file or folder.", default=None)


class Network(_Strict):
    module: str = _doc("sd-scripts network module.", default="networks.lora")
    rank: int = _doc(
        "Network rank (dimension): the LoRA's size and capacity.",
        "96: storage is cheap, a larger LoRA captures the subject better.",
        default=32,
        ge=1,
    )
    alpha: float = _doc(
        "Network alpha: scales the LoRA's weights by alpha/rank during training.",
        "72 (75% of the rank) gives a gentler, more flexible LoRA; 0 or equal to the rank has no effect.",
        default=16.0,
        ge=0,
    )
    args: list[str] = _doc("Extra `--network_args` (`key=value`).", default_factory=list)
    dropout: float | None = _doc("Network dropout.", default=None, ge=0, le=1)
    train_unet_only: bool = _doc("Train the U-Net LoRA only.", default=False)
    train_text_encoder_only: bool = _doc("Train the text-encoder LoRA only.", default=False)
    weights: str | None = _doc("Initial LoRA weights to continue from.", default=None)

    @field_validator("args")
    @classmethod
    def _key_value(cls, v: list[str]) -> list[str]:
        for item in v:
            if "=" not in item:
                raise ValueError(f"{item!r} must be key=value")
        return v


class Optimizer(_Strict):
    type: str = _doc(
        "Optimizer (`--optimizer_type`): AdamW, AdamW8bit, Adafactor, Prodigy, Lion, ...",
        "Adafactor: after months of trial and error it works best, together with the adafactor scheduler.",
        default="AdamW",
    )
    args: list[str] = _doc(
        "Optimizer arguments, `key=value` with Python literal values (`False`, not `false`).", default_factory=list
    )
    learning_rate: float | None = _doc(
        "Learning rate. Ignored by Adafactor in relative-step mode.",
        "None of the learning rates matter with Adafactor.",
        default=None,
        gt=0,
    )
    unet_lr: float | None = _doc("U-Net learning rate.", default=None, ge=0)
    text_encoder_lr: float | None = _doc("Text-encoder learning rate.", default=None, ge=0)
    scheduler: str = _doc("Learning-rate scheduler.", "adafactor, matching the optimizer.", default="constant")
    scheduler_args: list[str] = _doc("Scheduler arguments, `key=value`.", default_factory=list)
    warmup_steps: int | float = _doc(
        "Warmup: an integer number of steps, or a float below 1 as a share of all steps.", default=0, ge=0
    )
    scheduler_num_cycles: int = _doc("Cycles for cosine_with_restarts.", default=1, ge=1)
    scheduler_power: float = _doc("Power for the polynomial scheduler.", default=1.0)
    max_grad_norm: float = _doc("Gradient clipping norm (0 = off).", default=1.0, ge=0)

    @field_validator("args", "scheduler_args")
    @classmethod
    def _python_literals(cls, v: list[str]) -> list[str]:
        # sd-scripts splits on "=" and parses the value with ast.literal_eval: `false` raises ValueError (§10).
        for item in v:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{item!r} must be key=value")
            try:
                ast.literal_eval(value)
            except (ValueError, SyntaxError):
                hint = {"true": " (write True)", "false": " (write False)", "none": " (write None)"}.get(
                    value.strip().lower(), ""
                )
                raise ValueError(f"{item!r}: value is not a Python literal{hint}") from None
        return v

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v not in SCHEDULERS:
            raise ValueError(f"{v!r} is not a scheduler train_network runs; use one of: {', '.join(SCHEDULERS)}")
        return v

    @field_validator("warmup_steps")
    @classmethod
    def _warmup(cls, v: int | float) -> int | float:
        # A TOML float means a ratio of all steps: 100.0 would mean x100 (reference/sd_scripts.md §3).
        if isinstance(v, float) and v >= 1:
            raise ValueError("a float is a share of all steps and must be below 1; write whole steps as an integer")
        return v

    def arg_map(self) -> dict[str, Any]:
        return {k.strip(): ast.literal_eval(v) for k, _, v in (a.partition("=") for a in self.args)}

    @property
    def is_adafactor(self) -> bool:
        return self.type.lower() == "adafactor"

    @property
    def relative_step(self) -> bool:
        """Adafactor's relative-step mode: on unless ``relative_step=False``; ``warmup_init=True`` forces it."""
        if not self.is_adafactor:
            return False
        args = self.arg_map()
        return bool(args.get("relative_step", True)) or bool(args.get("warmup_init", False))


class Training(_Strict):
    max_train_epochs: int = _doc(
        "Epochs to train. Always written: without it sd-scripts stops at its 1600-step default.",
        "8 is a good place to start; you may need more or less.",
        default=8,
        ge=1,
        le=100_000,
    )
    batch_size: int = _doc(
        "Images per step.",
        "1 for a likeness; for a style, as large as VRAM allows.",
        default=1,
        ge=1,
    )
    gradient_accumulation_steps: int = _doc("Steps to accumulate before an optimizer step.", default=1, ge=1)
    resolution: tuple[int, int] = _doc(
        "Training resolution [width, height]; written as the string sd-scripts expects.",
        "768,768: SD 1.5's sweet spot; 512 isn't enough, 1024 doesn't work as well.",
        default=(512, 512),
    )
    enable_bucket: bool = _doc("Aspect-ratio bucketing.", default=True)
    min_bucket_reso: int = _doc("Smallest bucket side.", default=256, ge=64)
    max_bucket_reso: int = _doc("Largest bucket side.", default=1024, ge=64)
    bucket_reso_steps: int = _doc("Bucket side granularity in pixels.", default=64, ge=8)
    bucket_no_upscale: bool = _doc("Never upscale an image into a larger bucket.", default=False)
    mixed_precision: MixedPrecision = _doc("Mixed precision for training.", default="fp16")
    # Not optional: sd-scripts' unset value keeps the parameters' dtype, which for a LoRA is fp32 = "float", and
    # the kohya_ss GUI always writes one (a TOML file cannot say "unset" once a preset has set it).
    save_precision: SavePrecision = _doc("Precision of saved LoRA files (float = fp32).", default="fp16")
    seed: int | None = _doc("Random seed.", default=None)
    clip_skip: int | None = _doc("CLIP skip (SD 1.5 anime models often use 2).", default=None, ge=1, le=12)
    attention: Attention = _doc("Memory-efficient attention: sdpa, xformers or none.", default="sdpa")
    gradient_checkpointing: bool = _doc("Trade speed for memory.", default=False)
    cache_latents: bool = _doc(
        "Cache VAE latents in memory (faster). sd-scripts refuses it together with color augmentation.",
        default=False,
    )
    cache_latents_to_disk: bool = _doc("Cache VAE latents on disk.", default=False)
    save_every_n_epochs: int | None = _doc(
        "Save a checkpoint every N epochs; 1 makes every epoch rankable.",
        "Keep every epoch so the lowest-loss one (epoch 6 in the article) can be picked.",
        default=None,
        ge=1,
    )
    save_state: bool = _doc("Also save optimizer state with each checkpoint (enables --resume).", default=False)
    save_last_n_epochs: int | None = _doc("Keep only the last N epoch checkpoints.", default=None, ge=1)
    max_data_loader_n_workers: int | None = _doc("Data loader workers.", default=None, ge=0)
    max_token_length: Literal[75, 150, 225] | None = _doc("Caption token limit.", default=None)
    noise_offset: float | None = _doc("Noise offset.", default=None, ge=0)
    log_with: LogWith | None = _doc(
        "Logger. TensorBoard logs feed `kohya-recipe report`.",
        "TensorBoard's loss graphs are how the article picks an epoch.",
        default=None,
    )
    log_prefix: str | None = _doc("Prefix of the timestamped log folder.", default=None)

    @model_validator(mode="after")
    def _buckets(self) -> Training:
        w, h = self.resolution
        if w < 64 or h < 64:
            raise ValueError("resolution: each side must be at least 64")
        if self.enable_bucket:
            # sd-scripts asserts these at dataset construction (train_util.py).
            if min(w, h) < self.min_bucket_reso:
                raise ValueError(
                    f"min_bucket_reso {self.min_bucket_reso} is larger than the resolution's short side {min(w, h)}"
                )
            if max(w, h) > self.max_bucket_reso:
                raise ValueError(
                    f"max_bucket_reso {self.max_bucket_reso} is smaller than the resolution's long side {max(w, h)}"
                )
        return self


class Augmentation(_Strict):
    flip: bool = _doc(
        "Random horizontal flips.", "On, unless an asymmetry matters (hair always parted on the left).", default=False
    )
    color: bool = _doc(
        "Random hue shifts. Cannot be combined with latent caching.",
        "On, unless the exact colours of the subject matter.",
        default=False,
    )
    shuffle_caption: bool = _doc(
        "Shuffle caption tags.", "Off: captions were written intentionally, don't mess with them.", default=False
    )
    keep_tokens: int = _doc("Leading tags kept in place when shuffling.", default=0, ge=0)


class SamplePrompt(_Strict):
    prompt: str = _doc("Prompt text; `{trigger}` and `{class}` are replaced.")
    negative: str = _doc("Negative prompt.", default="")
    width: int = _doc("Width (multiple of 8, at least 64).", default=512, ge=64)
    height: int = _doc("Height (multiple of 8, at least 64).", default=512, ge=64)
    steps: int = _doc("Sampling steps (1-1000).", default=30, ge=1, le=1000)
    cfg_scale: float | None = _doc("CFG scale (sd-scripts default 7.5).", default=None, gt=0)
    seed: int | None = _doc("Seed (none = random).", default=None)

    @field_validator("prompt", "negative")
    @classmethod
    def _no_option_marker(cls, v: str) -> str:
        # sd-scripts splits each prompt line on " --"; one inside the text would start a bogus option (§6).
        # Python reads the prompt file with universal newlines, so a "\r" ends the line just as "\n" does.
        if " --" in v or "\n" in v or "\r" in v:
            raise ValueError("must not contain ' --' or a newline (sd-scripts splits prompt lines on ' --')")
        return v

    @field_validator("prompt")
    @classmethod
    def _a_line_sd_scripts_keeps(cls, v: str) -> str:
        # sd-scripts strips each line, skips lines starting with "#", and takes the text before the first " --"
        # as the prompt (§6): an empty prompt would make "--w 512" the prompt, a "#" one would never be sampled.
        if not v.strip():
            raise ValueError("must not be empty (sd-scripts would take '--w ...' as the prompt)")
        if v.lstrip().startswith("#"):
            raise ValueError("must not start with '#' (sd-scripts skips such lines as comments)")
        return v

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, v: int) -> int:
        if v % 8:
            raise ValueError(f"{v} is not a multiple of 8 (sd-scripts would round it down to {v - v % 8})")
        return v


class Samples(_Strict):
    every_n_epochs: int | None = _doc("Sample after every N epochs.", default=None, ge=1)
    every_n_steps: int | None = _doc("Sample every N steps (ignored when every_n_epochs is set).", default=None, ge=1)
    at_first: bool = _doc("Sample once before training.", default=False)
    sampler: Sampler = _doc("Sampler for the sample images.", default="euler_a")
    prompts: list[SamplePrompt] = _doc(
        "Sample prompts.",
        "Samples look terrible and are not representative; the article keeps one at 512x512, 35 steps.",
        default_factory=list,
    )


class Output(_Strict):
    name: str = _doc("Base output name (defaults to the trigger).", default="")
    major: int = _doc("Major version: a new dataset or recipe.", "Name outputs to plan for versions.", default=1, ge=0)
    letter: str = _doc(
        "Variant letter: another try with different settings (A, B, ...).", "CharacterAI-1-A.", default="A"
    )

    @field_validator("name")
    @classmethod
    def _safe(cls, v: str) -> str:
        if v and (not _SAFE_NAME.match(v) or ".." in v):
            raise ValueError(
                f"{v!r} must be letters, digits, '.', '_' or '-' (no '/', '..', spaces or shell characters)"
            )
        return v

    @field_validator("letter")
    @classmethod
    def _letter(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Z]{1,3}", v):
            raise ValueError("must be upper-case letters, A to ZZZ")
        return v

    @property
    def output_name(self) -> str:
        """The article's versioned name, ``<Name>-<major>-<letter>`` (sd-scripts' ``output_name``)."""
        return f"{self.name}-{self.major}-{self.letter}"


class Accelerate(_Strict):
    num_processes: int = _doc("Processes (GPUs) for accelerate launch.", default=1, ge=1)
    num_machines: int = _doc("Machines.", default=1, ge=1)
    gpu_ids: list[str] = _doc('GPU ids for a multi-GPU run (e.g. ["0", "1"]).', default_factory=list)
    mixed_precision: MixedPrecision | None = _doc(
        "accelerate's mixed precision (none = training.mixed_precision).", default=None
    )
    num_cpu_threads_per_process: int = _doc("CPU threads per process.", default=2, ge=1)
    main_process_port: int | None = _doc("Port for multi-GPU rendezvous.", default=None, ge=1, le=65535)
    dynamo_backend: str = _doc("torch dynamo backend for accelerate (no = off).", default="no")


class Recipe(_Strict):
    schema_version: int = _doc("Recipe file format version.", default=SCHEMA_VERSION)
    preset: str | None = _doc("Preset layered under this recipe.", default=None)
    subject: Subject = Field(default_factory=Subject)
    dataset: Dataset = Field(default_factory=Dataset)
    model: Model = Field(default_factory=Model)
    network: Network = Field(default_factory=Network)
    optimizer: Optimizer = Field(default_factory=Optimizer)
    training: Training = Field(default_factory=Training)
    augmentation: Augmentation = Field(default_factory=Augmentation)
    samples: Samples = Field(default_factory=Samples)
    output: Output = Field(default_factory=Output)
    accelerate: Accelerate = Field(default_factory=Accelerate)
    extra: dict[str, Any] = _doc(
        "Any other sd-scripts option (dest name = value), checked against the spec.", default_factory=dict
    )
    gui: dict[str, Any] = _doc("kohya_ss GUI-only settings kept for the GUI JSON.", default_factory=dict)

    @model_validator(mode="after")
    def _trainer_rules(self) -> Recipe:
        opt, tr = self.optimizer, self.training
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is not supported (this is {SCHEMA_VERSION})")
        if opt.scheduler == "adafactor" and not opt.is_adafactor:
            # train_util asserts the adafactor scheduler is only used with the Adafactor optimizer.
            raise ValueError("optimizer.scheduler: 'adafactor' needs optimizer.type = 'Adafactor'")
        if opt.is_adafactor and opt.relative_step and opt.warmup_steps != 0:
            # In relative-step mode the scheduler is forced to adafactor:<lr> and warmup must be 0 (ValueError).
            raise ValueError("optimizer.warmup_steps: Adafactor in relative-step mode requires 0 warmup steps")
        if opt.is_adafactor and not opt.relative_step and opt.scheduler == "adafactor":
            # sd-scripts crashes (IndexError) building 'adafactor' without the relative-step ':lr' suffix.
            raise ValueError(
                "optimizer.scheduler: 'adafactor' needs relative-step mode; with relative_step=False use "
                "e.g. constant_with_warmup"
            )
        if opt.scheduler == "constant" and opt.warmup_steps != 0:
            raise ValueError(
                "optimizer.warmup_steps: the constant scheduler requires 0 warmup (use constant_with_warmup)"
            )
        if self.augmentation.color and (tr.cache_latents or tr.cache_latents_to_disk):
            # sd-scripts stops: "when caching latents, either color_aug or random_crop cannot be used".
            raise ValueError(
                "training.cache_latents: cannot be combined with augmentation.color (sd-scripts stops); the "
                "article keeps color augmentation on, so leave latent caching off or turn color off"
            )
        if self.network.train_unet_only and self.network.train_text_encoder_only:
            raise ValueError("network: train_unet_only and train_text_encoder_only exclude each other")
        if self.model.family == "sdxl" and self.model.v_parameterization:
            raise ValueError("model.v_parameterization: SDXL base models are not v-prediction")
        if self.accelerate.gpu_ids and len(self.accelerate.gpu_ids) != self.accelerate.num_processes:
            raise ValueError("accelerate.gpu_ids: give one id per process (num_processes)")
        return self

    @model_validator(mode="after")
    def _defaults(self) -> Recipe:
        if not self.output.name and self.subject.trigger:
            # The trigger becomes the output name, a file name and a shell word: it must pass output.name's rule
            # too (validate_assignment is off, so the assignment below would not check it).
            if not _SAFE_NAME.match(self.subject.trigger) or ".." in self.subject.trigger:
                raise ValueError(
                    f"subject.trigger: {self.subject.trigger!r} is also the output name (output.name is unset), "
                    "which must be letters, digits, '.', '_' or '-' (no '/', '..', spaces or shell characters); "
                    "set output.name"
                )
            self.output.name = self.subject.trigger
        return self

    @property
    def script_name(self) -> str:
        return "sdxl_train_network.py" if self.model.family == "sdxl" else "train_network.py"

    @property
    def subset_folder_name(self) -> str:
        """``<repeats>_<trigger> <class>``: sd-scripts' folder mode reads repeats and class tokens from it."""
        tokens = " ".join(t for t in (self.subject.trigger, self.subject.class_token) if t)
        return f"{self.dataset.repeats}_{tokens}"


# sd-scripts option (dest) -> recipe field path, for options that map one to one. Used by the config renderer
# and to accept sd-scripts names in --set (`network_alpha=48` means `network.alpha=48`).
SDSCRIPTS_FIELDS: dict[str, str] = {
    "pretrained_model_name_or_path": "model.base",
    "v_parameterization": "model.v_parameterization",
    "vae": "model.vae",
    "network_module": "network.module",
    "network_dim": "network.rank",
    "network_alpha": "network.alpha",
    "network_args": "network.args",
    "network_dropout": "network.dropout",
    "network_train_unet_only": "network.train_unet_only",
    "network_train_text_encoder_only": "network.train_text_encoder_only",
    "network_weights": "network.weights",
    "optimizer_type": "optimizer.type",
    "optimizer_args": "optimizer.args",
    "learning_rate": "optimizer.learning_rate",
    "unet_lr": "optimizer.unet_lr",
    "text_encoder_lr": "optimizer.text_encoder_lr",
    "lr_scheduler": "optimizer.scheduler",
    "lr_scheduler_args": "optimizer.scheduler_args",
    "lr_warmup_steps": "optimizer.warmup_steps",
    "lr_scheduler_num_cycles": "optimizer.scheduler_num_cycles",
    "lr_scheduler_power": "optimizer.scheduler_power",
    "max_grad_norm": "optimizer.max_grad_norm",
    "max_train_epochs": "training.max_train_epochs",
    "train_batch_size": "training.batch_size",
    "gradient_accumulation_steps": "training.gradient_accumulation_steps",
    "enable_bucket": "training.enable_bucket",
    "min_bucket_reso": "training.min_bucket_reso",
    "max_bucket_reso": "training.max_bucket_reso",
    "bucket_reso_steps": "training.bucket_reso_steps",
    "bucket_no_upscale": "training.bucket_no_upscale",
    "mixed_precision": "training.mixed_precision",
    "save_precision": "training.save_precision",
    "seed": "training.seed",
    "clip_skip": "training.clip_skip",
    "gradient_checkpointing": "training.gradient_checkpointing",
    "cache_latents": "training.cache_latents",
    "cache_latents_to_disk": "training.cache_latents_to_disk",
    "save_every_n_epochs": "training.save_every_n_epochs",
    "save_state": "training.save_state",
    "save_last_n_epochs": "training.save_last_n_epochs",
    "max_data_loader_n_workers": "training.max_data_loader_n_workers",
    "max_token_length": "training.max_token_length",
    "noise_offset": "training.noise_offset",
    "log_with": "training.log_with",
    "log_prefix": "training.log_prefix",
    "caption_extension": "dataset.caption_extension",
    "validation_split": "dataset.validation_split",
    "validation_seed": "dataset.validation_seed",
    "flip_aug": "augmentation.flip",
    "color_aug": "augmentation.color",
    "shuffle_caption": "augmentation.shuffle_caption",
    "keep_tokens": "augmentation.keep_tokens",
    "sample_every_n_epochs": "samples.every_n_epochs",
    "sample_every_n_steps": "samples.every_n_steps",
    "sample_at_first": "samples.at_first",
    "sample_sampler": "samples.sampler",
}

# Options whose value the recipe derives itself (layout, model family, attention, naming): `extra` may not set
# them, so the two cannot disagree.
DERIVED_OPTIONS = frozenset(
    {
        "resolution", "v2", "xformers", "sdpa", "mem_eff_attn", "output_name", "output_dir", "logging_dir",
        "sample_prompts", "dataset_config", "train_data_dir", "reg_data_dir", "config_file", "save_model_as",
        "dataset_repeats", "in_json", "max_train_steps", "resume", "output_config",
    }
)  # fmt: skip


# Legacy or misspelled options that stand for a recipe field. We always write optimizer_type and caption_extension,
# so these would conflict: sd-scripts asserts "both option use_8bit_adam and optimizer_type are specified" (likewise
# use_lion_optimizer), and copies the misspelled --caption_extention over caption_extension (§2 notes).
_ALIAS_OPTIONS = {
    "use_8bit_adam": "legacy alias that sd-scripts refuses next to optimizer_type; set optimizer.type = 'AdamW8bit'",
    "use_lion_optimizer": "legacy alias that sd-scripts refuses next to optimizer_type; set optimizer.type = 'Lion'",
    "caption_extention": "misspelled alias of caption_extension; set dataset.caption_extension",
}


# --------------------------------------------------------------------------------------------------------------
# Loading, layering, --set


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; any problem is one line naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise RecipeError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise RecipeError("is a folder, not a TOML file", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"not UTF-8 text (byte {exc.start})", source=str(path)) from None
    except OSError as exc:
        raise RecipeError(exc.strerror or str(exc), source=str(path)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"invalid TOML: {exc}", source=str(path)) from None


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
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
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
    ("Value error, ", ""),
)


def _format_validation_error(exc: ValidationError, source: str) -> RecipeError:
    """The first problem of a pydantic error as one line: ``recipe.toml: training.x: must be >= 1``."""
    from kohya_recipe.sdscripts.options import did_you_mean

    err = exc.errors()[0]
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        model: Any = Recipe
        for p in err["loc"][:-1]:
            if isinstance(p, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
                continue
            ann = model.model_fields[p].annotation
            args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
            model = args[0] if args else ann
        known = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
        msg = f"unknown key{did_you_mean(str(err['loc'][-1]), known)}".replace("\n", "\\n")
    for old, new in _PYDANTIC_WORDING:
        msg = msg.replace(old, new)
    if (
        err["type"] not in ("extra_forbidden", "value_error")
        and "input" in err
        and not isinstance(err["input"], (dict, list))
    ):
        msg += f", got {err['input']!r}"
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return RecipeError(msg, source=source, field=_loc(tuple(err["loc"])) or None)


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
        if key in _ALIAS_OPTIONS:
            raise RecipeError(_ALIAS_OPTIONS[key], source=source, field=field)
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
            raise RecipeError("cannot be used with SDXL (sdxl_train_network.py stops)", source=source,
                              field="extra.weighted_captions")  # fmt: skip
        caching = recipe.extra.get("cache_text_encoder_outputs") or recipe.extra.get(
            "cache_text_encoder_outputs_to_disk"
        )
        # sdxl_train_network.py asserts the text encoders are not trained while their outputs are cached, and
        # that captions do not change between epochs (no shuffling) when they are.
        if caching and not recipe.network.train_unet_only:
            raise RecipeError("needs network.train_unet_only = true (sdxl_train_network.py stops)", source=source,
                              field="extra.cache_text_encoder_outputs")  # fmt: skip
        if caching and recipe.augmentation.shuffle_caption:
            raise RecipeError("cannot be combined with augmentation.shuffle_caption (sdxl_train_network.py stops)",
                              source=source, field="extra.cache_text_encoder_outputs")  # fmt: skip
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

    user = read_toml(path)
    name = preset or user.get("preset")
    base = load_preset(str(name)) if name else {}
    data = deep_merge(base, user)
    if name:
        data["preset"] = str(name)
    data = apply_sets(data, sets)
    _absolute_paths(data, path.parent)
    return data


# Recipe paths that name local files or folders. A relative one is relative to the recipe file, so the recipe
# works from any folder; the trainer (cwd = project) and the GUI (cwd = kohya_ss) would read it differently.
_PATH_FIELDS = (("dataset", "images"), ("dataset", "regularization"), ("model", "base"), ("model", "vae"),
                ("network", "weights"))  # fmt: skip


def _absolute_paths(data: dict[str, Any], base: Path) -> None:
    for section, key in _PATH_FIELDS:
        table = data.get(section)
        if not isinstance(table, dict):
            continue
        value = table.get(key)
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue
        candidate = base / value
        # model.base may be a hub id ("org/name"): only a path that exists next to the recipe is a local one.
        if section == "dataset" or candidate.exists():
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


def recipe_warnings(recipe: Recipe) -> list[str]:
    """Things the trainer will do differently from what the recipe seems to say."""
    out: list[str] = []
    opt = recipe.optimizer
    if opt.is_adafactor and opt.relative_step:
        set_lrs = [n for n in ("learning_rate", "unet_lr", "text_encoder_lr") if getattr(opt, n) is not None]
        if set_lrs:
            out.append(
                f"optimizer: Adafactor in relative-step mode ignores {', '.join(set_lrs)} (sd-scripts sets them "
                "to None); pass relative_step=False in optimizer.args for a fixed learning rate"
            )
        if opt.scheduler != "adafactor":
            out.append(
                f"optimizer.scheduler: {opt.scheduler!r} is replaced by 'adafactor' in Adafactor's relative-step mode"
            )
    if not recipe.subject.trigger:
        out.append("subject.trigger: no trigger word; the LoRA will have nothing to call it up by")
    if recipe.dataset.regularization:
        out.append("dataset.regularization: the article advises against regularization images for a single subject")
    if recipe.training.save_every_n_epochs is None:
        out.append(
            "training.save_every_n_epochs is unset: only the final epoch gets a checkpoint, so no earlier epoch "
            "can be kept (the article keeps the lowest-loss epoch and the last)"
        )
    elif recipe.training.save_every_n_epochs != 1:
        out.append(
            f"training.save_every_n_epochs = {recipe.training.save_every_n_epochs}: only every "
            f"{recipe.training.save_every_n_epochs}th epoch gets a checkpoint to compare"
        )
    for i, p in enumerate(recipe.samples.prompts):
        if recipe.subject.trigger and recipe.subject.trigger not in p.prompt:
            out.append(f"samples.prompts[{i}]: the prompt does not contain the trigger {recipe.subject.trigger!r}")
    return out
