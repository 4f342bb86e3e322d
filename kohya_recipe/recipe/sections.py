"""The sections of a recipe (``[subject]``, ``[dataset]``, ``[network]``, ...), each a strict Pydantic model whose
field descriptions, bounds and validators encode what sd-scripts accepts."""

from __future__ import annotations

import ast
import re
from typing import Any, Literal

from pydantic import field_validator, model_validator

from kohya_recipe.recipe.fields import (
    CAPTION_EXTENSION,
    SAFE_NAME,
    SCHEDULERS,
    SEED_MAX,
    WHY_COUNT,
    WHY_DIM,
    WHY_HARDWARE,
    WHY_LR,
    WHY_PIXELS,
    WHY_REPEATS,
    WHY_SEED,
    Attention,
    CaptionExtension,
    Family,
    LogWith,
    MixedPrecision,
    Purpose,
    Sampler,
    SavePrecision,
    Strict,
    doc,
)
from kohya_recipe.sdscripts.folders import repeats_folder_name
from kohya_recipe.sdscripts.prompts import PromptLine


class Subject(Strict):
    trigger: str = doc(
        "Trigger word that calls the LoRA up at generation time; also the caption tag and folder name.",
        "Use the character's name; a rare token like 2c077 only helps if a name fights the base model.",
        default="",
    )
    class_token: str = doc(
        "Class word after the trigger in the image folder name (`10_<trigger> <class>`).",
        "The class being trained, e.g. woman.",
        default="woman",
    )
    purpose: Purpose = doc(
        "What the LoRA learns: `likeness` (one person or character), `style` (a look), or `concept` (an object, "
        "pose or idea). Picks the dataset checks' defaults and the sample prompts.",
        "The article trains a likeness; for a style it only changes the batch size.",
        default="likeness",
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


class Subset(Strict):
    images: str = doc("Folder of this subset's images and captions (relative to the recipe file).")
    repeats: int = doc(
        "How often each image of this subset is shown per epoch.", default=10, ge=1, le=10_000, why=WHY_REPEATS
    )
    class_tokens: str = doc(
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


class Dataset(Strict):
    images: str | None = doc("Folder of source images and captions (relative to the recipe file).", default=None)
    repeats: int = doc(
        "How often each image is shown per epoch (the `N_` prefix of the image folder).",
        "10 repeats: 42 images make 420 steps per epoch.",
        default=10,
        ge=1,
        le=10_000,
        why=WHY_REPEATS,
    )
    caption_extension: CaptionExtension = doc(
        "Caption file extension (`.txt`, `.caption`, `.cap`, or any other). Always written explicitly: "
        "sd-scripts' own default is `.caption`.",
        "One .txt caption per image, named like the image.",
        default=".txt",
    )
    regularization: str | None = doc(
        "Folder of regularization images, or none.",
        "Don't: regularization slows training and dilutes a single-subject LoRA.",
        default=None,
    )
    reg_repeats: int = doc("Repeats of the regularization images.", default=1, ge=1, le=10_000, why=WHY_REPEATS)
    validation_split: float = doc(
        "Share of images held out for validation loss (sd-scripts >= 0.10); 0 turns validation off.",
        default=0.0,
        ge=0.0,
        lt=1.0,
    )
    validation_seed: int | None = doc(
        "Seed for the validation split and noise.", default=None, ge=0, le=SEED_MAX, why=WHY_SEED
    )
    subsets: list[Subset] = doc(
        "Several image folders, each with its own repeats and class tokens (a kohya `train_data_dir` of "
        "`<repeats>_<name class>` folders). Replaces `images`/`repeats` when set.",
        default_factory=list,
    )

    @field_validator("caption_extension")
    @classmethod
    def _extension(cls, v: str) -> str:
        if not CAPTION_EXTENSION.fullmatch(v):
            raise ValueError(f"{v!r} is not a file extension like '.txt' (a dot, then letters, digits, '_', '-', '.')")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> Dataset:
        if self.subsets and self.images:
            raise ValueError("dataset: set either images (one folder) or subsets (several), not both")
        names = [repeats_folder_name(s.repeats, s.class_tokens) for s in self.subsets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"dataset.subsets: two subsets would share the folder img/{twice[0]}")
        return self


class Model(Strict):
    base: str = doc(
        "Base checkpoint: a local .safetensors/.ckpt file, a diffusers folder, or a hub id.",
        "Train against the base Stable Diffusion 1.5 model: every fine-tune is based on it.",
        default="stable-diffusion-v1-5/stable-diffusion-v1-5",
    )
    family: Family = doc("Model family: sd15, sd2 (written as --v2) or sdxl (sdxl_train_network.py).", default="sd15")
    v_parameterization: bool = doc("v-prediction model (SD 2.x 768-v).", default=False)
    vae: str | None = doc("Replacement VAE file or folder.", default=None)


class Network(Strict):
    module: str = doc("sd-scripts network module.", default="networks.lora")
    rank: int = doc(
        "Network rank (dimension): the LoRA's size and capacity.",
        "96: storage is cheap, a larger LoRA captures the subject better.",
        default=32,
        ge=1,
        le=100_000,
        why=WHY_DIM,
    )
    alpha: float = doc(
        "Network alpha: scales the LoRA's weights by alpha/rank during training.",
        "72 (75% of the rank) gives a gentler, more flexible LoRA; 0 or equal to the rank has no effect.",
        default=16.0,
        ge=0,
        le=100_000,
        why=WHY_DIM,
    )
    args: list[str] = doc("Extra `--network_args` (`key=value`).", default_factory=list)
    dropout: float | None = doc("Network dropout.", default=None, ge=0, le=1)
    train_unet_only: bool = doc("Train the U-Net LoRA only.", default=False)
    train_text_encoder_only: bool = doc("Train the text-encoder LoRA only.", default=False)
    weights: str | None = doc("Initial LoRA weights to continue from.", default=None)

    @field_validator("args")
    @classmethod
    def _key_value(cls, v: list[str]) -> list[str]:
        for item in v:
            if "=" not in item:
                raise ValueError(f"{item!r} must be key=value")
        return v


class Optimizer(Strict):
    type: str = doc(
        "Optimizer (`--optimizer_type`): AdamW, AdamW8bit, Adafactor, Prodigy, Lion, ...",
        "Adafactor: after months of trial and error it works best, together with the adafactor scheduler.",
        default="AdamW",
    )
    args: list[str] = doc(
        "Optimizer arguments, `key=value` with Python literal values (`False`, not `false`).", default_factory=list
    )
    learning_rate: float | None = doc(
        "Learning rate. Ignored by Adafactor in relative-step mode.",
        "None of the learning rates matter with Adafactor.",
        default=None,
        gt=0,
        le=10,
        why=WHY_LR,
    )
    unet_lr: float | None = doc("U-Net learning rate.", default=None, ge=0, le=10, why=WHY_LR)
    text_encoder_lr: float | None = doc("Text-encoder learning rate.", default=None, ge=0, le=10, why=WHY_LR)
    scheduler: str = doc("Learning-rate scheduler.", "adafactor, matching the optimizer.", default="constant")
    scheduler_args: list[str] = doc("Scheduler arguments, `key=value`.", default_factory=list)
    warmup_steps: int | float = doc(
        "Warmup: an integer number of steps, or a float below 1 as a share of all steps.", default=0, ge=0
    )
    scheduler_num_cycles: int = doc("Cycles for cosine_with_restarts.", default=1, ge=1, le=100_000, why=WHY_COUNT)
    scheduler_power: float = doc("Power for the polynomial scheduler.", default=1.0)
    max_grad_norm: float = doc("Gradient clipping norm (0 = off).", default=1.0, ge=0)

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


class Training(Strict):
    max_train_epochs: int = doc(
        "Epochs to train. Always written (unless max_train_steps is set): without it sd-scripts stops at its "
        "1600-step default.",
        "8 is a good place to start; you may need more or less.",
        default=8,
        ge=1,
        le=100_000,
        why=WHY_COUNT,
    )
    max_train_steps: int | None = doc(
        "Train exactly this many steps instead of max_train_epochs epochs, which is then not written (sd-scripts "
        "lets max_train_epochs override max_train_steps). For a kohya_ss GUI config that trained by steps.",
        default=None,
        ge=1,
        le=100_000_000,
        why=WHY_COUNT,
    )
    batch_size: int = doc(
        "Images per step.",
        "1 for a likeness; for a style, as large as VRAM allows.",
        default=1,
        ge=1,
        le=4096,
        why=WHY_HARDWARE,
    )
    gradient_accumulation_steps: int = doc(
        "Steps to accumulate before an optimizer step.", default=1, ge=1, le=4096, why=WHY_COUNT
    )
    resolution: tuple[int, int] = doc(
        "Training resolution [width, height]; written as the string sd-scripts expects.",
        "768,768: SD 1.5's sweet spot; 512 isn't enough, 1024 doesn't work as well.",
        default=(512, 512),
    )
    enable_bucket: bool = doc("Aspect-ratio bucketing.", default=True)
    min_bucket_reso: int = doc("Smallest bucket side.", default=256, ge=64, le=8192, why=WHY_PIXELS)
    max_bucket_reso: int = doc("Largest bucket side.", default=1024, ge=64, le=8192, why=WHY_PIXELS)
    bucket_reso_steps: int = doc("Bucket side granularity in pixels.", default=64, ge=8, le=8192, why=WHY_PIXELS)
    bucket_no_upscale: bool = doc("Never upscale an image into a larger bucket.", default=False)
    mixed_precision: MixedPrecision = doc("Mixed precision for training.", default="fp16")
    # Not optional: sd-scripts' unset value keeps the parameters' dtype, which for a LoRA is fp32 = "float", and
    # the kohya_ss GUI always writes one (a TOML file cannot say "unset" once a preset has set it).
    save_precision: SavePrecision = doc("Precision of saved LoRA files (float = fp32).", default="fp16")
    seed: int | None = doc("Random seed.", default=None, ge=0, le=SEED_MAX, why=WHY_SEED)
    clip_skip: int | None = doc("CLIP skip (SD 1.5 anime models often use 2).", default=None, ge=1, le=12)
    attention: Attention = doc("Memory-efficient attention: sdpa, xformers or none.", default="sdpa")
    gradient_checkpointing: bool = doc("Trade speed for memory.", default=False)
    cache_latents: bool = doc(
        "Cache VAE latents in memory (faster). sd-scripts refuses it together with color augmentation.",
        default=False,
    )
    cache_latents_to_disk: bool = doc("Cache VAE latents on disk.", default=False)
    save_every_n_epochs: int | None = doc(
        "Save a checkpoint every N epochs; 1 makes every epoch rankable.",
        "Keep every epoch so the lowest-loss one (epoch 6 in the article) can be picked.",
        default=None,
        ge=1,
        le=100_000,
        why=WHY_COUNT,
    )
    save_state: bool = doc("Also save optimizer state with each checkpoint (enables --resume).", default=False)
    save_last_n_epochs: int | None = doc(
        "Keep only the last N epoch checkpoints.", default=None, ge=1, le=100_000, why=WHY_COUNT
    )
    max_data_loader_n_workers: int | None = doc("Data loader workers.", default=None, ge=0, le=1024, why=WHY_HARDWARE)
    max_token_length: Literal[75, 150, 225] | None = doc("Caption token limit.", default=None)
    noise_offset: float | None = doc(
        "Noise offset.", default=None, ge=0, le=1, why="an offset above 1 drowns the image in noise"
    )
    log_with: LogWith | None = doc(
        "Logger. TensorBoard logs feed `kohya-recipe report`.",
        "TensorBoard's loss graphs are how the article picks an epoch.",
        default=None,
    )
    log_prefix: str | None = doc("Prefix of the timestamped log folder.", default=None)

    @property
    def epoch_limit(self) -> int | None:
        """The max_train_epochs sd-scripts is given: none when max_train_steps sets the length (sd-scripts lets
        max_train_epochs override max_train_steps, so it is then not written)."""
        return self.max_train_epochs if self.max_train_steps is None else None

    @model_validator(mode="after")
    def _buckets(self) -> Training:
        w, h = self.resolution
        if w < 64 or h < 64:
            raise ValueError("resolution: each side must be at least 64")
        if w > 8192 or h > 8192:
            raise ValueError(f"resolution: each side must be at most 8192 ({WHY_PIXELS})")
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


class Augmentation(Strict):
    flip: bool = doc(
        "Random horizontal flips.", "On, unless an asymmetry matters (hair always parted on the left).", default=False
    )
    color: bool = doc(
        "Random hue shifts. Cannot be combined with latent caching.",
        "On, unless the exact colours of the subject matter.",
        default=False,
    )
    shuffle_caption: bool = doc(
        "Shuffle caption tags.", "Off: captions were written intentionally, don't mess with them.", default=False
    )
    keep_tokens: int = doc(
        "Leading tags kept in place when shuffling.",
        default=0,
        ge=0,
        le=225,
        why="a caption holds at most 225 tokens (max_token_length)",
    )


class SamplePrompt(Strict):
    prompt: str = doc("Prompt text; `{trigger}` and `{class}` are replaced.")
    negative: str = doc("Negative prompt.", default="")
    width: int = doc("Width (multiple of 8, at least 64).", default=512, ge=64, le=8192, why=WHY_PIXELS)
    height: int = doc("Height (multiple of 8, at least 64).", default=512, ge=64, le=8192, why=WHY_PIXELS)
    steps: int = doc("Sampling steps (1-1000).", default=30, ge=1, le=1000)
    cfg_scale: float | None = doc(
        "CFG scale (sd-scripts default 7.5).", default=None, gt=0, le=100, why="a CFG scale above 100 burns the image"
    )
    # sd-scripts reads "--d (\\d+)": a negative seed would be dropped silently (train_util.py line_to_prompt_dict).
    seed: int | None = doc("Seed (none = random).", default=None, ge=0, le=SEED_MAX, why=WHY_SEED)

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


class Samples(Strict):
    every_n_epochs: int | None = doc("Sample after every N epochs.", default=None, ge=1, le=100_000, why=WHY_COUNT)
    every_n_steps: int | None = doc(
        "Sample every N steps (ignored when every_n_epochs is set).", default=None, ge=1, le=10**9, why=WHY_COUNT
    )
    at_first: bool = doc("Sample once before training.", default=False)
    sampler: Sampler = doc("Sampler for the sample images.", default="euler_a")
    prompts: list[SamplePrompt] = doc(
        "Sample prompts.",
        "Samples look terrible and are not representative; the article keeps one at 512x512, 35 steps.",
        default_factory=list,
    )


class Output(Strict):
    name: str = doc(
        "Base output name (defaults to the trigger).",
        default="",
        max_length=100,
        why="file names are limited to 255 bytes and sd-scripts appends -000001-state, .safetensors and more",
    )
    major: int = doc(
        "Major version: a new dataset or recipe.",
        "Name outputs to plan for versions.",
        default=1,
        ge=0,
        le=100_000,
        why=WHY_COUNT,
    )
    letter: str = doc(
        "Variant letter: another try with different settings (A, B, ...).", "CharacterAI-1-A.", default="A"
    )

    @field_validator("name")
    @classmethod
    def _safe(cls, v: str) -> str:
        if v and (not SAFE_NAME.match(v) or ".." in v):
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


class Accelerate(Strict):
    num_processes: int = doc("Processes (GPUs) for accelerate launch.", default=1, ge=1, le=4096, why=WHY_HARDWARE)
    num_machines: int = doc("Machines.", default=1, ge=1, le=4096, why=WHY_HARDWARE)
    gpu_ids: list[str] = doc('GPU ids for a multi-GPU run (e.g. ["0", "1"]).', default_factory=list)
    mixed_precision: MixedPrecision | None = doc(
        "accelerate's mixed precision (none = training.mixed_precision).", default=None
    )
    num_cpu_threads_per_process: int = doc("CPU threads per process.", default=2, ge=1, le=4096, why=WHY_HARDWARE)
    main_process_port: int | None = doc("Port for multi-GPU rendezvous.", default=None, ge=1, le=65535)
    dynamo_backend: str = doc("torch dynamo backend for accelerate (no = off).", default="no")
