"""The recipe: every setting of a LoRA training run, as strict Pydantic models.

A recipe is a TOML file. A preset (``presets/*.toml``) is a partial recipe layered underneath it, and
``--set dotted.key=value`` overrides go on top. Unknown keys are errors, because sd-scripts itself accepts
misspelled config keys silently (``library/train_util.py read_config_from_file`` lifts every key
into the argparse namespace). The trainer's real semantics (Adafactor's
relative-step mode, color augmentation vs latent caching, the 1600-step default) are encoded as validation here,
so a mistake is caught before any GPU time is spent.
"""

from __future__ import annotations

import ast
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kohya_recipe.errors import RecipeError
from kohya_recipe.layout import IMG_DIR, REG_DIR, SubsetFacts
from kohya_recipe.sdscripts.buckets import BucketSettings
from kohya_recipe.sdscripts.folders import repeats_folder_name
from kohya_recipe.sdscripts.prompts import PromptLine

SCHEMA_VERSION = 1

Family = Literal["sd15", "sd2", "sdxl"]
MixedPrecision = Literal["no", "fp16", "bf16"]
SavePrecision = Literal["float", "fp16", "bf16"]
Attention = Literal["sdpa", "xformers", "none"]
CaptionExtension = Literal[".txt", ".caption", ".cap"]
LogWith = Literal["tensorboard", "wandb", "all"]
# sd-scripts --sample_sampler choices (library/train_util.py add_training_arguments).
Sampler = Literal[
    "ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
    "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a",
]  # fmt: skip

# Schedulers sd-scripts' train_network accepts by name; reduce_lr_on_plateau and cosine_warmup_with_min_lr fail
# with a TypeError at start-up (library/train_util.py get_scheduler_fix), so they are not offered.
SCHEDULERS = (
    "adafactor", "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
    "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay", "piecewise_constant",
)  # fmt: skip

# A name that becomes a file name and a shell word: no path separators, no "..", no shell metacharacters.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def file_safe_name(text: str, limit: int = 100) -> str:
    """``text`` as a name for files and shell words: every run of other characters becomes ``_``, and the name
    starts with a letter or digit (``"darius kawasaki"`` -> ``"darius_kawasaki"``); empty when nothing is left."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"^[^A-Za-z0-9]+", "", name)[:limit]
    return name.rstrip("_.-")


def _doc(description: str, article: str | None = None, *, why: str | None = None, **kw: Any) -> Any:
    """A Field with a description and, where the article says something, its words (for docs/recipe.md).

    ``why`` explains a bound (``le``/``ge``/...): it is added to the error when a value crosses it.
    """
    extra: dict[str, Any] = {}
    if article:
        extra["article"] = article
    if why:
        extra["why"] = why
    return Field(description=description, json_schema_extra=extra or None, **kw)


# Reasons for upper bounds, said once.
_WHY_REPEATS = "each image is shown this often per epoch; beyond 10,000 an epoch of even one image is absurd"
_WHY_DIM = "the kohya_ss GUI's own limit, on its LyCORIS network_dim slider: a LoRA this size outgrows its model"
_WHY_LR = "a learning rate above 10 diverges with every optimizer sd-scripts offers (Prodigy and D-Adaptation use 1)"
_WHY_SEED = "sd-scripts seeds numpy (accelerate set_seed), whose seed must fit in 32 bits"
_WHY_PIXELS = "no GPU trains or samples an image side beyond 8,192 pixels"
_WHY_COUNT = "far beyond any real training run"
_WHY_HARDWARE = "beyond any machine sd-scripts runs on"
SEED_MAX = 2**32 - 1


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


@dataclass(frozen=True)
class TrainSubset:
    """One folder the trainer reads: ``folder`` relative to the project, and the user's ``source`` folder it is
    filled from (``None`` when the images are put into the project by hand)."""

    folder: str
    repeats: int
    class_tokens: str
    is_reg: bool = False
    source: str | None = None

    def facts(self) -> SubsetFacts:
        return SubsetFacts(self.folder, self.repeats, self.class_tokens, self.is_reg)


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


class Subset(_Strict):
    images: str = _doc("Folder of this subset's images and captions (relative to the recipe file).")
    repeats: int = _doc(
        "How often each image of this subset is shown per epoch.", default=10, ge=1, le=10_000, why=_WHY_REPEATS
    )
    class_tokens: str = _doc(
        "The folder's words after the repeats (`<repeats>_<class tokens>`): sd-scripts' caption for an image "
        "without a caption file.",
        default="",
    )

    @field_validator("class_tokens")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        # They become a folder name inside img/.
        if any(c in v for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in v) or v != v.strip():
            raise ValueError("must be usable in a folder name: no slash, control character or surrounding spaces")
        return v


class Dataset(_Strict):
    images: str | None = _doc("Folder of source images and captions (relative to the recipe file).", default=None)
    repeats: int = _doc(
        "How often each image is shown per epoch (the `N_` prefix of the image folder).",
        "10 repeats: 42 images make 420 steps per epoch.",
        default=10,
        ge=1,
        le=10_000,
        why=_WHY_REPEATS,
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
    reg_repeats: int = _doc("Repeats of the regularization images.", default=1, ge=1, le=10_000, why=_WHY_REPEATS)
    validation_split: float = _doc(
        "Share of images held out for validation loss (sd-scripts >= 0.10); 0 turns validation off.",
        default=0.0,
        ge=0.0,
        lt=1.0,
    )
    validation_seed: int | None = _doc(
        "Seed for the validation split and noise.", default=None, ge=0, le=SEED_MAX, why=_WHY_SEED
    )
    subsets: list[Subset] = _doc(
        "Several image folders, each with its own repeats and class tokens (a kohya `train_data_dir` of "
        "`<repeats>_<name class>` folders). Replaces `images`/`repeats` when set.",
        default_factory=list,
    )

    @model_validator(mode="after")
    def _one_way(self) -> Dataset:
        if self.subsets and self.images:
            raise ValueError("dataset: set either images (one folder) or subsets (several), not both")
        names = [repeats_folder_name(s.repeats, s.class_tokens) for s in self.subsets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"dataset.subsets: two subsets would share the folder img/{twice[0]}")
        return self


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
        le=100_000,
        why=_WHY_DIM,
    )
    alpha: float = _doc(
        "Network alpha: scales the LoRA's weights by alpha/rank during training.",
        "72 (75% of the rank) gives a gentler, more flexible LoRA; 0 or equal to the rank has no effect.",
        default=16.0,
        ge=0,
        le=100_000,
        why=_WHY_DIM,
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
        le=10,
        why=_WHY_LR,
    )
    unet_lr: float | None = _doc("U-Net learning rate.", default=None, ge=0, le=10, why=_WHY_LR)
    text_encoder_lr: float | None = _doc("Text-encoder learning rate.", default=None, ge=0, le=10, why=_WHY_LR)
    scheduler: str = _doc("Learning-rate scheduler.", "adafactor, matching the optimizer.", default="constant")
    scheduler_args: list[str] = _doc("Scheduler arguments, `key=value`.", default_factory=list)
    warmup_steps: int | float = _doc(
        "Warmup: an integer number of steps, or a float below 1 as a share of all steps.", default=0, ge=0
    )
    scheduler_num_cycles: int = _doc("Cycles for cosine_with_restarts.", default=1, ge=1, le=100_000, why=_WHY_COUNT)
    scheduler_power: float = _doc("Power for the polynomial scheduler.", default=1.0)
    max_grad_norm: float = _doc("Gradient clipping norm (0 = off).", default=1.0, ge=0)

    @field_validator("args", "scheduler_args")
    @classmethod
    def _python_literals(cls, v: list[str]) -> list[str]:
        # sd-scripts splits on "=" and parses the value with ast.literal_eval: `false` raises ValueError
        # (library/train_util.py get_optimizer).
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
        # A TOML float means a ratio of all steps: 100.0 would mean x100 (library/train_util.py get_scheduler_fix
        # multiplies a float lr_warmup_steps by the number of training steps).
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
        why=_WHY_COUNT,
    )
    batch_size: int = _doc(
        "Images per step.",
        "1 for a likeness; for a style, as large as VRAM allows.",
        default=1,
        ge=1,
        le=4096,
        why=_WHY_HARDWARE,
    )
    gradient_accumulation_steps: int = _doc(
        "Steps to accumulate before an optimizer step.", default=1, ge=1, le=4096, why=_WHY_COUNT
    )
    resolution: tuple[int, int] = _doc(
        "Training resolution [width, height]; written as the string sd-scripts expects.",
        "768,768: SD 1.5's sweet spot; 512 isn't enough, 1024 doesn't work as well.",
        default=(512, 512),
    )
    enable_bucket: bool = _doc("Aspect-ratio bucketing.", default=True)
    min_bucket_reso: int = _doc("Smallest bucket side.", default=256, ge=64, le=8192, why=_WHY_PIXELS)
    max_bucket_reso: int = _doc("Largest bucket side.", default=1024, ge=64, le=8192, why=_WHY_PIXELS)
    bucket_reso_steps: int = _doc("Bucket side granularity in pixels.", default=64, ge=8, le=8192, why=_WHY_PIXELS)
    bucket_no_upscale: bool = _doc("Never upscale an image into a larger bucket.", default=False)
    mixed_precision: MixedPrecision = _doc("Mixed precision for training.", default="fp16")
    # Not optional: sd-scripts' unset value keeps the parameters' dtype, which for a LoRA is fp32 = "float", and
    # the kohya_ss GUI always writes one (a TOML file cannot say "unset" once a preset has set it).
    save_precision: SavePrecision = _doc("Precision of saved LoRA files (float = fp32).", default="fp16")
    seed: int | None = _doc("Random seed.", default=None, ge=0, le=SEED_MAX, why=_WHY_SEED)
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
        le=100_000,
        why=_WHY_COUNT,
    )
    save_state: bool = _doc("Also save optimizer state with each checkpoint (enables --resume).", default=False)
    save_last_n_epochs: int | None = _doc(
        "Keep only the last N epoch checkpoints.", default=None, ge=1, le=100_000, why=_WHY_COUNT
    )
    max_data_loader_n_workers: int | None = _doc("Data loader workers.", default=None, ge=0, le=1024, why=_WHY_HARDWARE)
    max_token_length: Literal[75, 150, 225] | None = _doc("Caption token limit.", default=None)
    noise_offset: float | None = _doc(
        "Noise offset.", default=None, ge=0, le=1, why="an offset above 1 drowns the image in noise"
    )
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
        if w > 8192 or h > 8192:
            raise ValueError(f"resolution: each side must be at most 8192 ({_WHY_PIXELS})")
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
    keep_tokens: int = _doc(
        "Leading tags kept in place when shuffling.",
        default=0,
        ge=0,
        le=225,
        why="a caption holds at most 225 tokens (max_token_length)",
    )


class SamplePrompt(_Strict):
    prompt: str = _doc("Prompt text; `{trigger}` and `{class}` are replaced.")
    negative: str = _doc("Negative prompt.", default="")
    width: int = _doc("Width (multiple of 8, at least 64).", default=512, ge=64, le=8192, why=_WHY_PIXELS)
    height: int = _doc("Height (multiple of 8, at least 64).", default=512, ge=64, le=8192, why=_WHY_PIXELS)
    steps: int = _doc("Sampling steps (1-1000).", default=30, ge=1, le=1000)
    cfg_scale: float | None = _doc(
        "CFG scale (sd-scripts default 7.5).", default=None, gt=0, le=100, why="a CFG scale above 100 burns the image"
    )
    # sd-scripts reads "--d (\\d+)": a negative seed would be dropped silently (train_util.py line_to_prompt_dict).
    seed: int | None = _doc("Seed (none = random).", default=None, ge=0, le=SEED_MAX, why=_WHY_SEED)

    @field_validator("prompt", "negative")
    @classmethod
    def _no_option_marker(cls, v: str) -> str:
        # sd-scripts splits each prompt line on " --"; one inside the text would start a bogus option
        # (library/train_util.py line_to_prompt_dict).
        # Python reads the prompt file with universal newlines, so a "\r" ends the line just as "\n" does.
        if " --" in v or "\n" in v or "\r" in v:
            raise ValueError("must not contain ' --' or a newline (sd-scripts splits prompt lines on ' --')")
        return v

    @field_validator("prompt")
    @classmethod
    def _a_line_sd_scripts_keeps(cls, v: str) -> str:
        # sd-scripts strips each line, skips lines starting with "#", and takes the text before the first " --" as the
        # prompt (library/train_util.py load_prompts): an empty prompt would make "--w 512" the prompt, a "#" one would
        # never be sampled.
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

    def line(self) -> PromptLine:
        """This prompt as sd-scripts' sample-prompt line (:mod:`kohya_recipe.sdscripts.prompts` writes it)."""
        return PromptLine(
            self.prompt,
            negative=self.negative,
            width=self.width,
            height=self.height,
            steps=self.steps,
            cfg_scale=self.cfg_scale,
            seed=self.seed,
        )


class Samples(_Strict):
    every_n_epochs: int | None = _doc("Sample after every N epochs.", default=None, ge=1, le=100_000, why=_WHY_COUNT)
    every_n_steps: int | None = _doc(
        "Sample every N steps (ignored when every_n_epochs is set).", default=None, ge=1, le=10**9, why=_WHY_COUNT
    )
    at_first: bool = _doc("Sample once before training.", default=False)
    sampler: Sampler = _doc("Sampler for the sample images.", default="euler_a")
    prompts: list[SamplePrompt] = _doc(
        "Sample prompts.",
        "Samples look terrible and are not representative; the article keeps one at 512x512, 35 steps.",
        default_factory=list,
    )


class Output(_Strict):
    name: str = _doc(
        "Base output name (defaults to the trigger).",
        default="",
        max_length=100,
        why="file names are limited to 255 bytes and sd-scripts appends -000001-state, .safetensors and more",
    )
    major: int = _doc(
        "Major version: a new dataset or recipe.", "Name outputs to plan for versions.", default=1, ge=0,
        le=100_000, why=_WHY_COUNT,
    )  # fmt: skip
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
    num_processes: int = _doc("Processes (GPUs) for accelerate launch.", default=1, ge=1, le=4096, why=_WHY_HARDWARE)
    num_machines: int = _doc("Machines.", default=1, ge=1, le=4096, why=_WHY_HARDWARE)
    gpu_ids: list[str] = _doc('GPU ids for a multi-GPU run (e.g. ["0", "1"]).', default_factory=list)
    mixed_precision: MixedPrecision | None = _doc(
        "accelerate's mixed precision (none = training.mixed_precision).", default=None
    )
    num_cpu_threads_per_process: int = _doc("CPU threads per process.", default=2, ge=1, le=4096, why=_WHY_HARDWARE)
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
            # The output name is a file name and a shell word: a two-word trigger ("darius kawasaki") gives
            # "darius_kawasaki". validate_assignment is off, so the derived name is checked here.
            name = file_safe_name(self.subject.trigger)
            if not name:
                raise ValueError(
                    f"subject.trigger: {self.subject.trigger!r} has no letters or digits to make the output name "
                    "(a file name) from; set output.name, e.g. --set output.name=MyLoRA"
                )
            self.output.name = name
        return self

    @property
    def script_name(self) -> str:
        return "sdxl_train_network.py" if self.model.family == "sdxl" else "train_network.py"

    def train_subsets(self) -> list[TrainSubset]:
        """Every image folder the trainer reads, as the project lays them out: ``img/<repeats>_<tokens>`` for the
        training images (one folder, or one per ``dataset.subsets`` entry) and ``reg/<repeats>_<class>``."""
        if self.dataset.subsets:
            out = [
                TrainSubset(f"{IMG_DIR}/{repeats_folder_name(s.repeats, s.class_tokens)}", s.repeats, s.class_tokens,
                            source=s.images)
                for s in self.dataset.subsets
            ]  # fmt: skip
        else:
            tokens = " ".join(t for t in (self.subject.trigger, self.subject.class_token) if t)
            out = [TrainSubset(f"{IMG_DIR}/{self.subset_folder_name}", self.dataset.repeats, tokens,
                               source=self.dataset.images)]  # fmt: skip
        if self.dataset.regularization:
            reg = repeats_folder_name(self.dataset.reg_repeats, self.subject.class_token)
            out.append(
                TrainSubset(f"{REG_DIR}/{reg}", self.dataset.reg_repeats, self.subject.class_token, True,
                            self.dataset.regularization)
            )  # fmt: skip
        return out

    @property
    def subset_folder_name(self) -> str:
        """``<repeats>_<trigger> <class>``: sd-scripts' folder mode reads repeats and class tokens from it."""
        tokens = " ".join(t for t in (self.subject.trigger, self.subject.class_token) if t)
        return repeats_folder_name(self.dataset.repeats, tokens)

    def bucket_settings(self) -> BucketSettings:
        """The bucketing options this recipe gives sd-scripts (the one copy plan and check read)."""
        tr = self.training
        return BucketSettings(
            resolution=(int(tr.resolution[0]), int(tr.resolution[1])),
            enable_bucket=tr.enable_bucket,
            min_bucket_reso=tr.min_bucket_reso,
            max_bucket_reso=tr.max_bucket_reso,
            bucket_reso_steps=tr.bucket_reso_steps,
            bucket_no_upscale=tr.bucket_no_upscale,
            family=self.model.family,
        )
