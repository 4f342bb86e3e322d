"""The GUI's own JSON -> TOML translation (gui.translate), and what it makes of the JSON we render.

1. The translator is checked against the real GUI: ``gui-output/`` holds what kohya_ss 45088f04 printed for
   ``Standard-AdamW.resaved-by-current-gui.json`` ("Print training command"): the config_lora TOML, the
   accelerate command and the sample prompt file (from ../shared/fixtures/kohya_ss-gui, copied to
   tests/data/gui). The GUI counted the steps from its repository's ``test/img/10_darius kawasaki person``
   folder: max_train_steps 80 = 10 repeats x 8 images / batch 4 x 4 epochs, so the test rebuilds a folder with
   that name and 8 images.
2. For recipes, the TOML the GUI would write from our JSON must train the same as our own config.toml and
   dataset.toml: same keys and values in effect. Where they legitimately differ, ``LEGITIMATE_DIFFERENCES`` says
   why, and the test checks that each listed difference really occurs for the article preset.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kohya_recipe.files import tomllib
from kohya_recipe.gui.form import split_additional, textbox_prompts
from kohya_recipe.gui.importer import import_gui_json
from kohya_recipe.gui.render import recipe_to_gui_json
from kohya_recipe.gui.translate import (
    count_dataset_steps,
    gui_command,
    gui_max_train_steps,
    gui_prompt_file_text,
    gui_script,
    gui_to_toml,
)
from kohya_recipe.recipe.loading import recipe_from_dict
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.recipe.presets import load_preset
from kohya_recipe.recipe.sections import SamplePrompt
from kohya_recipe.render.config import render_config
from kohya_recipe.render.dataset import render_dataset
from kohya_recipe.render.project import render_project
from kohya_recipe.sdscripts.options import flatten_config, option_specs

DATA = Path(__file__).parent / "data" / "gui"
RESAVED = DATA / "saved-by-gui" / "Standard-AdamW.resaved-by-current-gui.json"
OUTPUT = DATA / "gui-output"


def _resaved() -> dict[str, Any]:
    return json.loads(RESAVED.read_text(encoding="utf-8"))


def _gui_test_folder(root: Path) -> Path:
    sub = root / "test" / "img" / "10_darius kawasaki person"
    sub.mkdir(parents=True)
    for i in range(8):
        (sub / f"Dariusz_Zawadzki_{i}.jpg").write_bytes(b"")
        (sub / f"Dariusz_Zawadzki_{i}.cap").write_text("a painting", encoding="utf-8")
    return sub


# ---- 1. the translator against the real GUI ------------------------------------------------------------------


def test_translation_matches_the_real_guis_toml(tmp_path: Path) -> None:
    _gui_test_folder(tmp_path)
    ours = gui_to_toml(_resaved(), cwd=tmp_path)  # the GUI runs from its repository root
    theirs = tomllib.loads((OUTPUT / "Standard-AdamW.resaved.config_lora.toml").read_text(encoding="utf-8"))
    assert ours == theirs
    # Types too: TOML tells 1 from 1.0 (the GUI's values come back from the browser as JS numbers).
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}


def test_command_and_prompt_file_match_the_real_gui() -> None:
    data = _resaved()
    command = (OUTPUT / "Standard-AdamW.resaved.command.txt").read_text(encoding="utf-8").split()
    config = command[command.index("--config_file") + 1]
    assert gui_command(data, config_file=config) == command
    assert gui_prompt_file_text(data) == (OUTPUT / "Standard-AdamW.resaved.sample-prompt.txt").read_text(
        encoding="utf-8"
    )
    assert gui_script(data) == "train_network.py" and gui_script({**data, "sdxl": True}) == "sdxl_train_network.py"


def test_step_count_rules(tmp_path: Path) -> None:
    _gui_test_folder(tmp_path)
    (tmp_path / "test" / "img" / "no_prefix").mkdir()  # skipped: no repeats prefix
    (tmp_path / "test" / "img" / "3_x" / "sub").mkdir(parents=True)
    (tmp_path / "test" / "img" / "3_x" / "a.PNG").write_bytes(b"")
    (tmp_path / "test" / "img" / "3_x" / "b.gif").write_bytes(b"")  # not an image the GUI counts
    assert count_dataset_steps("test/img", cwd=tmp_path) == 80 + 3
    assert count_dataset_steps(tmp_path / "missing") is None
    form = {"reg_data_dir": "reg", "train_batch_size": 2, "gradient_accumulation_steps": 1, "epoch": 3}
    assert gui_max_train_steps(form, 83) == 249  # ceil(83 / 2 * 3 * 2)
    data = _resaved()
    data["max_train_steps"] = 500  # non-zero: used as given
    assert gui_to_toml(data, dataset_steps=80)["max_train_steps"] == 500
    data.update(max_train_steps=0, dataset_config="ds.toml", lr_warmup=10)
    toml = gui_to_toml(data, dataset_steps=80)
    assert "max_train_steps" not in toml and toml["lr_warmup_steps"] == 0.1


def test_gates_and_filters() -> None:
    data = _resaved()
    data.update(
        noise_offset_type="Original",
        text_encoder_lr=0,
        persistent_data_loader_workers=True,
        LoRA_type="LyCORIS/LoCon",
        seed=0,
        wandb_run_name="run",
    )
    toml = gui_to_toml(data, dataset_steps=80)
    assert toml["noise_offset"] == 0.05 and "multires_noise_iterations" not in toml
    assert toml["network_train_unet_only"] is True and "text_encoder_lr" not in toml
    assert toml["persistent_data_loader_workers"] == 1
    assert "seed" not in toml and toml["wandb_run_name"] == "run"
    assert toml["network_module"] == "lycoris.kohya" and "algo=locon" in toml["network_args"]
    assert toml["network_args"].count("use_tucker=False") == 2  # the GUI lists it twice
    assert toml["max_data_loader_n_workers"] == 0  # added back even when 0


# ---- 2. our JSON through the GUI vs our own config -------------------------------------------------------------

# Why the GUI's TOML (from our JSON) and our config.toml + dataset.toml may differ without training differently.
LEGITIMATE_DIFFERENCES = {
    "epoch": "the GUI writes an `epoch` key; sd-scripts has no such option (inert); the GUI uses it for its step count",
    "noise_offset_type": "GUI-only key the GUI also writes; sd-scripts has no such option (inert)",
    "max_train_steps": "the GUI's own count from the folders (kohya_gui/lora_gui.py train_model); sd-scripts replaces it, since max_train_epochs "
    "is set, with epochs x its bucket-aware steps per epoch",
    "wandb_run_name": "the GUI fills it with output_name; only read with log_with = wandb",
    "dynamo_backend": "the GUI also writes accelerate's dynamo_backend to the TOML; sd-scripts reads it only "
    "with --torch_compile",
    "paths": "the GUI writes absolute folders; our config's are relative to the project, the trainer's cwd",
    "sample_prompts": "the GUI writes the prompt text to <output_dir>/sample/prompt.txt; ours is "
    "sample-prompts.txt with the same prompts (an imported file's text may leave out sd-scripts' defaults)",
    "log_with": "an imported file's log_with '' with a logging_dir: sd-scripts then logs to TensorBoard, which "
    "our config says explicitly",
    "dataset": "the GUI uses folder mode (train_data_dir = img/, repeats and class tokens from the folder "
    "name); we pass --dataset_config dataset.toml with the same folder, repeats and class tokens",
    "explicit defaults": "the GUI writes sd-scripts' defaults explicitly (huber_c, loss_type, prior_loss_weight, "
    "max_timestep = 1000, max_token_length = 75, max_data_loader_n_workers, empty arg lists, ...)",
    "text_encoder_lr list": "the GUI writes text_encoder_lr = [te, te] and every learning rate explicitly; we "
    "leave out the ones equal to learning_rate (sd-scripts falls back to it)",
    "relative-step Adafactor": "the GUI writes learning rates and the constant scheduler (the only one it loads "
    "without a stale warmup); sd-scripts sets the rates to None for Adafactor in relative-step mode and replaces "
    "any scheduler with its adafactor one; we leave the rates out and write that scheduler",
    "command line": "the GUI JSON carries options in additional_parameters (the rank, a warmup, zeros the GUI "
    "drops; gui.carry); the GUI appends them after --config_file and sd-scripts lets them win over the TOML",
    "persistent_data_loader_workers": "the GUI writes the flag as int 1; we write true",
}


def _prompts(text: str) -> list[SamplePrompt]:
    """The prompts sd-scripts reads from a prompt file's text (same lines in effect, whatever the spelling)."""
    prompts, dropped = textbox_prompts(text)
    assert dropped == []
    return [SamplePrompt(**p) for p in prompts]


def _our_training(recipe: Recipe, project: Path) -> tuple[dict[str, Any], set[str]]:
    """What sd-scripts gets from our config.toml + dataset.toml (launched with cwd = project)."""
    flat = flatten_config(render_config(recipe))
    applied: set[str] = set()
    for key in ("output_dir", "logging_dir"):
        if key in flat:
            flat[key] = str(project / flat[key])
    flat["sample_prompts"] = _prompts((project / flat["sample_prompts"]).read_text(encoding="utf-8"))
    data = render_dataset(recipe)
    general = data["general"]
    dataset = {k: v for k, v in data["datasets"][0].items() if k != "subsets"}
    dataset["train_batch_size"] = dataset.pop("batch_size")
    dataset["resolution"] = ",".join(str(x) for x in dataset["resolution"])
    for key, value in {**general, **dataset}.items():
        if key in flat and flat[key] != value:
            raise AssertionError(f"config.toml and dataset.toml disagree on {key}")
        flat[key] = value
    flat["subsets"] = sorted(
        (str(project / s["image_dir"]), s["num_repeats"], s["class_tokens"], s.get("is_reg", False))
        for s in data["datasets"][0]["subsets"]
    )
    return flat, applied


def _gui_training(gui: dict[str, Any], toml: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    flat = dict(toml)
    applied = {"paths", "dataset", "sample_prompts"}
    known, rest = split_additional(gui["additional_parameters"], sdxl=bool(gui["sdxl"]))
    assert rest == []
    for name, value in known:  # the command line after --config_file wins (sd-scripts read_config_from_file)
        if flat.get(name) != value:
            applied.add("command line")
        flat[name] = value
    assert flat["sample_prompts"] == f"{gui['output_dir']}/sample/prompt.txt"
    flat["sample_prompts"] = _prompts(gui["sample_prompts"])
    if flat.get("logging_dir") and "log_with" not in flat:
        flat["log_with"] = "tensorboard"  # sd-scripts' choice when only a logging_dir is given
        applied.add("log_with")
    subsets = []
    for key, is_reg in (("train_data_dir", False), ("reg_data_dir", True)):
        folder = flat.pop(key, None)
        if folder:
            for sub in sorted(Path(folder).iterdir()):
                repeats, _, tokens = sub.name.partition("_")
                subsets.append((str(sub), int(repeats), tokens, is_reg))
    flat["subsets"] = sorted(subsets)
    for key in ("epoch", "noise_offset_type", "wandb_run_name", "dynamo_backend"):
        if key in flat:
            flat.pop(key)
            applied.add(key)
    if "max_train_steps" in flat:
        assert "max_train_epochs" in flat  # so sd-scripts overrides the GUI's count
        flat.pop("max_train_steps")
        applied.add("max_train_steps")
    if flat.get("persistent_data_loader_workers") == 1:
        flat["persistent_data_loader_workers"] = True
        applied.add("persistent_data_loader_workers")
    return flat, applied


def _effective(flat: dict[str, Any], sdxl: bool, applied: set[str]) -> dict[str, Any]:
    """Drop what sd-scripts treats as unset, and resolve the learning rates as train_network does."""
    specs = option_specs(sdxl)
    out = dict(flat)
    relative_adafactor = str(out.get("optimizer_type", "")).lower() == "adafactor" and not any(
        a.replace(" ", "") in ("relative_step=False",) for a in out.get("optimizer_args", [])
    )
    lr = out.pop("learning_rate", specs["learning_rate"].default)
    te = out.pop("text_encoder_lr", None)
    if isinstance(te, list) and len(set(te)) == 1:
        te = te[0]
        applied.add("text_encoder_lr list")
    unet = out.pop("unet_lr", None)
    if relative_adafactor:
        if (lr, te, unet) != (specs["learning_rate"].default, None, None):
            applied.add("relative-step Adafactor")
        out["lr_scheduler"] = "adafactor"  # library/train_util.py get_scheduler_fix: "use adafactor_scheduler"
    else:
        out["lr_text_encoder"] = lr if te is None else te
        out["lr_unet"] = lr if unet is None else unet
    for key, value in list(out.items()):
        spec = specs.get(key)
        default = spec.default if spec is not None else None
        unset = {"max_timestep": 1000, "max_token_length": 75}.get(key, default)
        same = value is unset if isinstance(value, bool) or isinstance(unset, bool) else value == unset
        if value == [] or value is False or (spec is not None and same):
            del out[key]
            applied.add("explicit defaults")
    return out


def _compare(recipe: Recipe, tmp_path: Path) -> set[str]:
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i, size in enumerate([(640, 768), (768, 768), (512, 640)]):
        Image.new("RGB", size).save(images / f"{i}.png")
        (images / f"{i}.txt").write_text("CharacterAI, woman", encoding="utf-8")
    recipe = recipe.model_copy(update={"dataset": recipe.dataset.model_copy(update={"images": str(images)})})
    project = tmp_path / "project"
    render_project(recipe, project)
    gui = recipe_to_gui_json(recipe, project)
    assert json.loads((project / f"{recipe.output.output_name}.json").read_text(encoding="utf-8")) == gui
    ours, applied_ours = _our_training(recipe, project)
    theirs, applied_gui = _gui_training(gui, gui_to_toml(gui))
    sdxl = recipe.model.family == "sdxl"
    applied = applied_ours | applied_gui
    a, b = _effective(ours, sdxl, applied), _effective(theirs, sdxl, applied)
    diff = {k: (a.get(k, "<absent>"), b.get(k, "<absent>")) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert diff == {}, f"ours vs the GUI's: {diff}"
    return applied


def _preset(name: str) -> Recipe:
    data = copy.deepcopy(load_preset(name))
    data.setdefault("subject", {})["trigger"] = "CharacterAI"
    return recipe_from_dict(data, source=name)


def test_article_preset_trains_the_same_through_the_gui(tmp_path: Path) -> None:
    applied = _compare(_preset("likeness-sd15"), tmp_path)
    # Every difference we list happens for the article's recipe, except the ones that need another recipe.
    assert applied == set(LEGITIMATE_DIFFERENCES) - {"persistent_data_loader_workers", "log_with", "command line"}


@pytest.mark.parametrize("name", ["likeness-sdxl", "style-sd15"])
def test_other_presets_train_the_same_through_the_gui(tmp_path: Path, name: str) -> None:
    assert _compare(_preset(name), tmp_path) <= set(LEGITIMATE_DIFFERENCES)


def test_imported_gui_config_trains_the_same_through_the_gui(tmp_path: Path) -> None:
    # The real GUI file (AdamW, cosine, multires noise, min_snr_gamma, caption dropout, clip skip, seed).
    recipe = import_gui_json(RESAVED).recipe
    recipe = recipe.model_copy(update={"subject": recipe.subject.model_copy(update={"trigger": "darius"})})
    applied = _compare(recipe, tmp_path)
    assert "text_encoder_lr list" in applied and applied <= set(LEGITIMATE_DIFFERENCES)


def test_a_recipe_with_more_options_trains_the_same_through_the_gui(tmp_path: Path) -> None:
    data = copy.deepcopy(load_preset("likeness-sd15"))
    data["subject"] = {"trigger": "CharacterAI", "class_token": "woman"}
    data["optimizer"] = {
        "type": "AdamW8bit",
        "args": ["weight_decay=0.01"],
        "scheduler": "cosine_with_restarts",
        "learning_rate": 1e-4,
        "unet_lr": 2e-4,
        "warmup_steps": 0.1,
        "scheduler_num_cycles": 3,
        "max_grad_norm": 0.0,  # no clipping: the GUI drops the 0, the command line carries it
    }
    data["network"].update(args=["conv_dim=8", "conv_alpha=4"], dropout=0.1, train_unet_only=True)
    data["training"].update(seed=42, clip_skip=2, noise_offset=0.05, max_token_length=225, gradient_checkpointing=True)
    data["augmentation"].update(color=False, shuffle_caption=True, keep_tokens=1)
    data["extra"] = {
        "min_snr_gamma": 5.0,
        "caption_dropout_rate": 0.1,
        "persistent_data_loader_workers": True,
        "scale_weight_norms": 1.0,
        "huber_c": 0.2,
        "loss_type": "huber",
    }
    applied = _compare(recipe_from_dict(data, source="more"), tmp_path)
    assert "persistent_data_loader_workers" in applied and "command line" in applied
