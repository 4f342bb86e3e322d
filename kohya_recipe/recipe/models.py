"""The recipe: every setting of a LoRA training run, as strict Pydantic models.

A recipe is a TOML file. A preset (``presets/*.toml``) is a partial recipe layered underneath it, and
``--set dotted.key=value`` overrides go on top. Unknown keys are errors, because sd-scripts itself accepts
misspelled config keys silently (``library/train_util.py read_config_from_file`` lifts every key
into the argparse namespace). The trainer's real semantics (Adafactor's
relative-step mode, color augmentation vs latent caching, the 1600-step default) are encoded as validation here,
so a mistake is caught before any GPU time is spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from kohya_recipe.layout import IMG_DIR, REG_DIR, SubsetFacts
from kohya_recipe.recipe.fields import (
    SCHEMA_VERSION,
    Strict,
    doc,
    file_safe_name,
)
from kohya_recipe.recipe.sections import (
    Accelerate,
    Augmentation,
    Dataset,
    Model,
    Network,
    Optimizer,
    Output,
    Samples,
    Subject,
    Training,
)
from kohya_recipe.sdscripts.buckets import BucketSettings
from kohya_recipe.sdscripts.folders import repeats_folder_name


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


class Recipe(Strict):
    schema_version: int = doc("Recipe file format version.", default=SCHEMA_VERSION)
    preset: str | None = doc("Preset layered under this recipe.", default=None)
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
    extra: dict[str, Any] = doc(
        "Any other sd-scripts option (dest name = value), checked against the spec.", default_factory=dict
    )
    gui: dict[str, Any] = doc("kohya_ss GUI-only settings kept for the GUI JSON.", default_factory=dict)

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
                TrainSubset(
                    f"{IMG_DIR}/{repeats_folder_name(s.repeats, s.class_tokens)}",
                    s.repeats,
                    s.class_tokens,
                    source=s.images,
                )
                for s in self.dataset.subsets
            ]
        else:
            tokens = " ".join(t for t in (self.subject.trigger, self.subject.class_token) if t)
            out = [
                TrainSubset(
                    f"{IMG_DIR}/{self.subset_folder_name}", self.dataset.repeats, tokens, source=self.dataset.images
                )
            ]
        if self.dataset.regularization:
            reg = repeats_folder_name(self.dataset.reg_repeats, self.subject.class_token)
            out.append(
                TrainSubset(
                    f"{REG_DIR}/{reg}",
                    self.dataset.reg_repeats,
                    self.subject.class_token,
                    True,
                    self.dataset.regularization,
                )
            )
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
