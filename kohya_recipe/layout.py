"""The project folder: its names, the test for "is this a project?", and the facts file written at render.

A project is the folder ``kohya-recipe build``/``render`` writes and the trainer runs in (its cwd)::

    PROJECT/resolved-recipe.toml  config.toml  dataset.toml  sample-prompts.txt  train.sh  <output_name>.json
    PROJECT/img/<repeats>_<trigger> <class>/   images (hard-linked or copied, never moved) + captions
    PROJECT/log/  PROJECT/model/  PROJECT/runs/  [PROJECT/reg/<repeats>_<class>/]
    PROJECT/.kohya-recipe/manifest.json  (hash of every file we wrote)   project.json  (the facts below)

The layout mirrors the kohya_ss GUI's folder preparation (``kohya_gui/common_gui.py`` ``create_folders``:
``img``, ``log``, ``model``, ``reg``). Every stage that looks into a project takes these names from here.

The facts file holds what later stages need to know about a project without loading (and validating) its
recipe: the output name, trigger and class, the subsets and their repeats, the folders, the resolved sample-prompt
lines. It is data derived from ``resolved-recipe.toml`` and rewritten with it; a project rendered before the facts
file existed simply has none, and readers fall back to the trainer's own files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.files import atomic_write_text, read_json

RESOLVED_RECIPE = "resolved-recipe.toml"
CONFIG_FILE = "config.toml"  # --config_file
DATASET_FILE = "dataset.toml"  # --dataset_config
PROMPTS_FILE = "sample-prompts.txt"  # --sample_prompts
TRAIN_SCRIPT = "train.sh"
IMG_DIR = "img"  # train_data_dir: one <repeats>_<tokens> sub-folder per subset
REG_DIR = "reg"  # reg_data_dir
LOG_DIR = "log"  # logging_dir (TensorBoard event files)
MODEL_DIR = "model"  # output_dir (checkpoints, state folders, samples)
SAMPLE_DIR = "model/sample"  # sd-scripts writes sample images to <output_dir>/sample
RUNS_DIR = "runs"  # our run records and trainer logs
STATE_DIR = ".kohya-recipe"
MANIFEST = f"{STATE_DIR}/manifest.json"
FACTS = f"{STATE_DIR}/project.json"

# Files a run record keeps a hash of: what decides what the trainer does.
RECORDED_FILES = (RESOLVED_RECIPE, CONFIG_FILE, DATASET_FILE, PROMPTS_FILE)

FACTS_VERSION = 1


def is_project(path: Path) -> bool:
    """Whether ``path`` is a kohya-recipe project folder (it holds ``resolved-recipe.toml``)."""
    return (path / RESOLVED_RECIPE).is_file()


@dataclass(frozen=True)
class SubsetFacts:
    """One image subset of a project: its folder (relative to the project), repeats and class tokens."""

    folder: str
    repeats: int
    class_tokens: str
    is_reg: bool = False


@dataclass(frozen=True)
class ProjectFacts:
    """What a rendered project is, as plain data (see the module docstring)."""

    output_name: str
    trigger: str
    class_token: str
    family: str
    script: str
    caption_extension: str
    max_train_epochs: int | None
    save_every_n_epochs: int | None
    subsets: tuple[SubsetFacts, ...] = ()
    sample_prompts: tuple[str, ...] = ()  # resolved lines, exactly as written to sample-prompts.txt
    sampler: str | None = None
    purpose: str = "likeness"  # likeness | style | concept
    log_dir: str | None = LOG_DIR  # None when the recipe logs nothing
    model_dir: str = MODEL_DIR
    version: int = field(default=FACTS_VERSION)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_facts(root: Path, facts: ProjectFacts) -> Path:
    """Write ``PROJECT/.kohya-recipe/project.json`` atomically."""
    path = root / FACTS
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, facts.to_json())


def read_facts(root: Path) -> ProjectFacts | None:
    """The facts of the project at ``root``; ``None`` when it has none or they cannot be read (a damaged or
    foreign file only means the reader falls back to the trainer's files)."""
    path = root / FACTS
    if not path.is_file():
        return None
    try:
        data = read_json(path)
        if not isinstance(data, dict) or data.get("version") != FACTS_VERSION:
            return None
        subsets = tuple(SubsetFacts(**s) for s in data.pop("subsets", ()))
        prompts = tuple(str(p) for p in data.pop("sample_prompts", ()))
        return ProjectFacts(subsets=subsets, sample_prompts=prompts, **data)
    except (KohyaRecipeError, TypeError, ValueError):
        return None
