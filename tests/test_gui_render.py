"""Rendering a recipe as the kohya_ss GUI's LoRA JSON (gui.render).

The golden file tests/golden/gui/likeness-sd15.json is the article preset rendered for the project
/home/user/CharacterAI; it is compared byte for byte. Regenerate it only on purpose:
``KOHYA_RECIPE_REGEN_GOLDEN=1 python -m pytest tests/test_gui_render.py``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from kohya_recipe.errors import GuiConfigError, RecipeError, RenderError
from kohya_recipe.gui.carry import ZEROS_DECIDED_ELSEWHERE
from kohya_recipe.gui.mapping import EXTRA_KEYS, RECIPE_FIELDS
from kohya_recipe.gui.render import (
    gui_json_notes,
    gui_json_text,
    preset_keys,
    recipe_to_gui_json,
    recipe_to_gui_preset,
    render_gui_form,
    write_gui_json,
)
from kohya_recipe.kohya_ss.fields import check_gui_passthrough, gui_keys, validate_gui_values
from kohya_recipe.kohya_ss.zeros import VERDICTS, FieldZero, field_zeros, zero_changes_training, zero_refused
from kohya_recipe.recipe.loading import recipe_from_dict
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.recipe.presets import load_preset

GOLDEN = Path(__file__).parent / "golden" / "gui"
PROJECT = "/home/user/CharacterAI"


def _recipe(preset: str = "likeness-sd15", /, **sections: dict[str, Any]) -> Recipe:
    data = copy.deepcopy(load_preset(preset))
    data.setdefault("subject", {})["trigger"] = "CharacterAI"
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(name), dict):
            data[name].update(values)
        else:
            data[name] = values
    return recipe_from_dict(data, source="test")


def _gui_error(**sections: dict[str, Any]) -> str:
    with pytest.raises(GuiConfigError) as info:
        recipe_to_gui_json(_recipe(**sections), PROJECT)
    return str(info.value)


def test_article_preset_matches_the_golden_file() -> None:
    text = gui_json_text(recipe_to_gui_json(_recipe(), PROJECT))
    golden = GOLDEN / "likeness-sd15.json"
    if os.environ.get("KOHYA_RECIPE_REGEN_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(text.encode("utf-8"))
    assert text.encode("utf-8") == golden.read_bytes()


@pytest.mark.parametrize("preset", ["likeness-sd15", "likeness-sdxl", "style-sd15"])
def test_every_field_native_types_inside_the_widgets(preset: str) -> None:
    data = recipe_to_gui_json(_recipe(preset), PROJECT)
    assert list(data) == sorted(gui_keys())  # all 287, sorted, nothing else
    assert None not in data.values()
    assert validate_gui_values(data, "rendered", complete=True) == []
    for key in (
        "max_resolution",
        "optimizer_args",
        "lr_scheduler_args",
        "additional_parameters",
        "network_weights",
        "down_lr_weight",
        "block_dims",
        "conv_block_alphas",
    ):
        assert isinstance(data[key], str), key
    assert data["network_weights"] == "" and data["block_dims"] == ""
    assert isinstance(data["max_token_length"], int)


def test_article_semantics() -> None:
    data = recipe_to_gui_json(_recipe(), PROJECT)
    assert data["max_train_steps"] == 0  # the GUI's 1600 would cap the run
    assert data["epoch"] == data["max_train_epochs"] == 8
    assert data["model_list"] == "custom"
    assert data["LoRA_type"] == "Standard"
    family = (
        "v2",
        "v_parameterization",
        "sdxl",
        "sd3_checkbox",
        "flux1_checkbox",
        "hunyuan_image_checkbox",
        "anima_checkbox",
        "lumina_checkbox",
    )
    assert not any(data[k] for k in family)  # SD 1.5
    assert data["train_data_dir"] == f"{PROJECT}/img"
    assert data["output_dir"] == f"{PROJECT}/model"
    assert data["logging_dir"] == f"{PROJECT}/log"
    assert data["reg_data_dir"] == ""
    assert data["output_name"] == "CharacterAI-1-A"
    assert data["sample_prompts"].startswith("1girl, CharacterAI, braided hair")  # the text, not a path
    assert "--w 512 --h 512 --s 35 --n Anime" in data["sample_prompts"]
    assert data["xformers"] == "sdpa"
    assert (data["network_dim"], data["network_alpha"]) == (96, 72)
    # Relative-step Adafactor trains sd-scripts' adafactor schedule whatever is asked; "constant" is the only
    # scheduler the GUI loads without a stale warmup (gui.carry).
    assert (data["optimizer"], data["lr_scheduler"]) == ("Adafactor", "constant")
    assert data["additional_parameters"] == "--network_dim 96"
    assert data["optimizer_args"] == "scale_parameter=True relative_step=True warmup_init=True"
    assert data["max_resolution"] == "768,768"
    assert data["flip_aug"] is True and data["color_aug"] is True and data["cache_latents"] is False
    assert data["lr_warmup"] == 0 and data["lr_warmup_steps"] == 0
    assert (data["mixed_precision"], data["save_precision"]) == ("fp16", "fp16")
    assert (data["num_processes"], data["num_machines"], data["num_cpu_threads_per_process"]) == (1, 1, 2)
    assert data["seed"] == 0 and data["clip_skip"] == 0  # 0: not written, sd-scripts' default


def test_sdxl_family_and_windows_project_paths() -> None:
    data = recipe_to_gui_json(_recipe("likeness-sdxl"), r"C:\Users\me\CharacterAI")
    assert data["sdxl"] is True and data["v2"] is False
    assert data["train_data_dir"] == r"C:\Users\me\CharacterAI\img"
    assert data["output_dir"] == r"C:\Users\me\CharacterAI\model"


def test_sd2_v_prediction() -> None:
    data = recipe_to_gui_json(_recipe(model={"family": "sd2", "v_parameterization": True}), PROJECT)
    assert data["v2"] is True and data["v_parameterization"] is True and data["sdxl"] is False


def test_text_is_sorted_two_space_utf8_with_newline() -> None:
    recipe = _recipe(samples={"prompts": [{"prompt": "CharacterAI, café au lait, 東京"}]})
    text = gui_json_text(recipe_to_gui_json(recipe, PROJECT))
    assert text.endswith("}\n")
    assert '\n  "LoRA_type": "Standard",\n' in text
    assert "café au lait, 東京" in text  # UTF-8, not \\u escapes
    assert list(json.loads(text)) == sorted(json.loads(text))


@pytest.mark.parametrize(
    ("sections", "words"),
    [
        ({"training": {"batch_size": 65}}, "training.batch_size: GUI field train_batch_size: 65 is outside"),
        ({"training": {"seed": 0}}, "training.seed: 0 means 'random' in the GUI"),
        ({"network": {"module": "networks.oft"}}, "network.module: 'networks.oft' has no LoRA type in the GUI"),
        ({"network": {"args": ["foo=1"]}}, "network.args: 'foo' has no field in the GUI for LoRA_type 'Standard'"),
        ({"optimizer": {"args": ["betas=(0.9, 0.99)"]}}, "optimizer.args: 'betas=(0.9, 0.99)': the GUI splits"),
        ({"accelerate": {"mixed_precision": "bf16"}}, "accelerate.mixed_precision: the GUI has one mixed_precision"),
        ({"extra": {"no_half_vae": True}}, "extra.no_half_vae: the GUI passes it only for SDXL"),
        ({"training": {"clip_skip": 12, "max_bucket_reso": 8192}}, "GUI field max_bucket_reso: 8192"),
    ],
)
def test_values_the_gui_cannot_hold_are_errors(sections: dict[str, Any], words: str) -> None:
    assert words in _gui_error(**sections)


def test_learning_rate_zero_needs_the_only_flags() -> None:
    sections: dict[str, Any] = {
        "optimizer": {
            "type": "AdamW",
            "args": [],
            "scheduler": "constant",
            "learning_rate": 1e-4,
            "text_encoder_lr": 0.0,
        },
    }
    assert "set network.train_unet_only = true instead" in _gui_error(**sections)
    recipe = _recipe(network={"train_unet_only": True}, **sections)
    data = recipe_to_gui_json(recipe, PROJECT)
    assert (data["learning_rate"], data["text_encoder_lr"], data["unet_lr"]) == (1e-4, 0.0, 1e-4)


def test_unset_learning_rates_are_sd_scripts_default() -> None:
    data = recipe_to_gui_json(_recipe(optimizer={"type": "AdamW", "args": [], "scheduler": "cosine"}), PROJECT)
    # sd-scripts' --learning_rate default (2e-6) stands for "unset": the GUI refuses three zeros.
    assert data["learning_rate"] == data["text_encoder_lr"] == data["unet_lr"] == 2e-06


def test_warmup_ratio_becomes_the_percentage_slider() -> None:
    opt = {"type": "AdamW", "args": [], "scheduler": "cosine", "warmup_steps": 0.05}
    data = recipe_to_gui_json(_recipe(optimizer=opt), PROJECT)
    assert (data["lr_warmup"], data["lr_warmup_steps"]) == (5, 0)
    data = recipe_to_gui_json(_recipe(optimizer={**opt, "warmup_steps": 100}), PROJECT)
    assert (data["lr_warmup"], data["lr_warmup_steps"]) == (0, 100)


def test_network_types() -> None:
    data = recipe_to_gui_json(_recipe(network={"args": ["conv_dim=8"]}), PROJECT)
    assert data["LoRA_type"] == "Kohya LoCon" and (data["conv_dim"], data["conv_alpha"]) == (8, 1)
    data = recipe_to_gui_json(
        _recipe(network={"module": "lycoris.kohya", "args": ["algo=locon", "conv_dim=8", "rank_dropout=0.1"]}),
        PROJECT,
    )
    assert data["LoRA_type"] == "LyCORIS/LoCon"
    assert (data["conv_dim"], data["rank_dropout"], data["conv_alpha"]) == (8, 0.1, 72)  # alpha: LyCORIS default
    assert data["LyCORIS_preset"] == "full" and data["use_tucker"] is False
    message = _gui_error(network={"module": "lycoris.kohya", "args": ["algo=ia3"]})
    assert "always passes train_on_input=" in message
    data = recipe_to_gui_json(_recipe(network={"args": ["loraplus_lr_ratio=16", "down_lr_weight=0,1,1"]}), PROJECT)
    assert (data["loraplus_lr_ratio"], data["down_lr_weight"], data["LoRA_type"]) == (16, "0,1,1", "Standard")


def test_extra_options_land_in_their_fields_or_additional_parameters() -> None:
    recipe = _recipe(
        extra={"min_snr_gamma": 5, "multires_noise_iterations": 6, "multires_noise_discount": 0.3, "lowram": True},
        training={"log_prefix": "run1"},
        dataset={"validation_split": 0.1},
    )
    data = recipe_to_gui_json(recipe, PROJECT)
    assert data["min_snr_gamma"] == 5
    assert data["noise_offset_type"] == "Multires" and data["multires_noise_iterations"] == 6
    assert data["additional_parameters"] == "--log_prefix run1 --validation_split 0.1 --lowram --network_dim 96"
    assert "either multires noise or training.noise_offset" in _gui_error(
        extra={"multires_noise_iterations": 6}, training={"noise_offset": 0.05}
    )


def test_gui_only_values_pass_through_and_stale_spellings_do_not() -> None:
    recipe = _recipe(
        gui={
            "dynamo_mode": "max-autotune",
            "model_list": "runwayml/stable-diffusion-v1-5",
            "max_resolution": "512",
            "max_train_epochs": 0,
            "output_dir": "/elsewhere",
        }
    )
    data = recipe_to_gui_json(recipe, PROJECT)
    assert data["dynamo_mode"] == "max-autotune" and data["model_list"] == "runwayml/stable-diffusion-v1-5"
    assert data["max_resolution"] == "768,768"  # "512" no longer means the recipe's 768x768
    assert data["max_train_epochs"] == 0  # epoch 8, max_train_steps 0: the same run
    assert data["output_dir"] == f"{PROJECT}/model"  # a project decides the folders
    assert recipe_to_gui_json(recipe)["output_dir"] == "/elsewhere"  # without one, the config's own


def test_passthrough_check() -> None:
    check_gui_passthrough({"dynamo_mode": "default", "conv_dim": 4})
    with pytest.raises(GuiConfigError, match=r"gui.dynamo_mod: not a field of the GUI's LoRA tab \(did you mean"):
        check_gui_passthrough({"dynamo_mod": "default"})
    with pytest.raises(GuiConfigError, match="gui.cache_latents: must be true or false"):
        check_gui_passthrough({"cache_latents": "yes"})


def test_preset_only_strips_like_prepare_presets() -> None:
    preset = recipe_to_gui_preset(_recipe())
    assert list(preset) == sorted(preset) == preset_keys()
    for key in preset:
        assert not any(
            w in key
            for w in (
                "dir",
                "output_name",
                "pretrained_model_name_or_path",
                "model_list",
                "sample_",
                "save_state",
                "resume",
                "save_model_as",
                "wandb_api_key",
            )
        )
    assert "huggingface_token" not in preset
    assert preset["max_train_steps"] == 0  # else the preset inherits the form's 1600-step cap
    assert preset["network_dim"] == 96 and preset["sdxl"] is False


def test_write_gui_json_never_clobbers(tmp_path: Path) -> None:
    recipe = _recipe()
    target = tmp_path / "CharacterAI.json"
    write_gui_json(recipe, tmp_path / "proj", target)
    first = json.loads(target.read_text(encoding="utf-8"))
    assert first["train_data_dir"] == str((tmp_path / "proj").absolute() / "img")
    with pytest.raises(RenderError, match="already exists"):
        write_gui_json(recipe, tmp_path / "proj", target, preset_only=True)
    write_gui_json(recipe, None, target, preset_only=True, force=True)
    assert "train_data_dir" not in json.loads(target.read_text(encoding="utf-8"))


# ---- What the JSON carries past the GUI (gui.carry) -------------------------------------------------------------


def _render(recipe: Recipe) -> tuple[dict[str, Any], list[str]]:
    result = render_gui_form(recipe, PROJECT)
    return result.values, result.notes


def test_relative_step_adafactor_is_written_constant_and_says_why() -> None:
    data, notes = _render(_recipe())
    assert (data["lr_scheduler"], data["lr_warmup"], data["lr_warmup_steps"]) == ("constant", 0, 0)
    assert "--lr_warmup_steps" not in data["additional_parameters"]  # constant loads 0 in every form state
    assert any(n.startswith('GUI JSON: lr_scheduler "constant", not "adafactor"') for n in notes)
    assert gui_json_notes(_recipe()) == notes
    # Adafactor with relative_step=False keeps its scheduler and carries its warmup like any other.
    opt = {"args": ["relative_step=False", "scale_parameter=False"], "scheduler": "cosine", "warmup_steps": 10}
    data, _ = _render(_recipe(optimizer=opt))
    assert data["lr_scheduler"] == "cosine" and "--lr_warmup_steps 10" in data["additional_parameters"]


@pytest.mark.parametrize(("warmup", "words"), [(0, "--lr_warmup_steps 0"), (0.05, "--lr_warmup_steps 0.05"), (7, "7")])
def test_any_other_scheduler_carries_its_warmup_even_zero(warmup: float, words: str) -> None:
    opt = {"type": "AdamW", "args": [], "scheduler": "linear", "warmup_steps": warmup}
    data, notes = _render(_recipe(optimizer=opt))
    assert data["additional_parameters"] == f"--lr_warmup_steps {warmup} --network_dim 96"
    assert words in data["additional_parameters"]
    assert any("the GUI can load stale values into these fields" in n for n in notes)
    # A constant scheduler without warmup needs nothing: the GUI's constant branch zeroes the warmup itself.
    data, _ = _render(_recipe(optimizer={**opt, "scheduler": "constant", "warmup_steps": 0}))
    assert data["additional_parameters"] == "--network_dim 96"


def test_non_standard_lora_types_carry_the_rank_and_the_full_network_args() -> None:
    data, _ = _render(_recipe(network={"args": ["conv_dim=8", "conv_alpha=4"]}))
    assert data["LoRA_type"] == "Kohya LoCon"
    assert data["additional_parameters"] == "--network_dim 96 --network_args conv_dim=8 conv_alpha=4"
    lycoris = {"module": "lycoris.kohya", "args": ["algo=loha", "conv_dim=8"]}
    data, _ = _render(_recipe(network=lycoris))
    args = data["additional_parameters"].split(" --network_args ")[1].split()
    assert args[:3] == ["preset=full", "conv_dim=8", "conv_alpha=72"] and "algo=loha" in args
    assert len(args) == len(set(args))  # the GUI's duplicate use_tucker once


def test_a_rank_above_the_slider_is_carried() -> None:
    data, notes = _render(_recipe(network={"rank": 1024, "alpha": 512}))
    assert data["network_dim"] == 512 and "--network_dim 1024" in data["additional_parameters"]
    assert any("network_dim 1024 is above 512, the most the GUI's slider takes in every form state" in n for n in notes)
    # LoKr's slider goes to 100000, but only once the form has switched to LoKr: the field still says 512.
    lokr = {"module": "lycoris.kohya", "args": ["algo=lokr", "factor=8", "conv_dim=100000"], "rank": 100000}
    data, _ = _render(_recipe(network=lokr))
    assert (data["network_dim"], data["conv_dim"]) == (512, 512)
    assert "--network_dim 100000 --network_args preset=full conv_dim=100000" in data["additional_parameters"]


def _recipe_path(key: str) -> str:
    return f"extra.{EXTRA_KEYS[key]}" if key in EXTRA_KEYS else RECIPE_FIELDS[key]


@pytest.mark.parametrize("zero", [z for z in zero_changes_training() if z.key not in ZEROS_DECIDED_ELSEWHERE])
def test_every_zero_the_gui_drops_is_carried(zero: FieldZero) -> None:
    section, name = _recipe_path(zero.key).split(".")
    recipe = _recipe(**{section: {name: 0.0}})
    data, notes = _render(recipe)
    assert f"--{zero.option} 0" in data["additional_parameters"].split(" --network_dim")[0]
    assert data[zero.key] == 0  # the form shows it too
    assert any(f"sd-scripts would use {zero.option} {zero.default}" in n for n in notes)


def test_the_zeros_table_covers_every_field_once() -> None:
    zeros = field_zeros()
    assert list(zeros) == list(gui_keys())
    assert {z.verdict for z in zeros.values()} <= set(VERDICTS)
    changes = {z.key for z in zero_changes_training()}
    assert changes == {
        "learning_rate",
        "seed",
        "lr_scheduler_power",
        "max_grad_norm",
        "prior_loss_weight",
        "multires_noise_discount",
        "huber_c",
        "huber_scale",
    }
    assert all(z.default is not None for z in zero_changes_training() if z.key != "seed")


@pytest.mark.parametrize("key", zero_refused())
def test_a_zero_the_gui_refuses_never_reaches_the_json(key: str) -> None:
    """Widgets whose minimum is above 0: the recipe refuses 0 there, or the render names the field."""
    if key == "unit":  # DyLoRA's unit is a network argument
        sections: dict[str, Any] = {"network": {"module": "networks.dylora", "args": ["unit=0"]}}
    else:
        section, name = _recipe_path(key).split(".")
        sections = {section: {name: 0}}
    try:
        recipe = _recipe(**sections)
    except RecipeError:
        return
    if key == "network_alpha":  # sd-scripts reads 0 as alpha = rank: written as the rank, with a note
        data, notes = _render(recipe)
        assert data["network_alpha"] == 96 and any("network_alpha 96 (the rank)" in n for n in notes)
        return
    with pytest.raises(GuiConfigError, match=key):
        recipe_to_gui_json(recipe, PROJECT)


def test_an_old_caption_extension_and_a_big_bucket_step_are_carried() -> None:
    data, notes = _render(_recipe(dataset={"caption_extension": ".txt2"}, training={"bucket_reso_steps": 256}))
    assert (data["caption_extension"], data["bucket_reso_steps"]) == ("", 128)
    assert data["additional_parameters"] == "--network_dim 96 --caption_extension .txt2 --bucket_reso_steps 256"
    assert any('caption_extension ".txt2" is not one of the GUI\'s choices' in n for n in notes)
    assert any("bucket_reso_steps 256 is above the GUI's maximum 128" in n for n in notes)
    assert validate_gui_values(data, "rendered", complete=True) == []


def test_a_configs_own_additional_parameters_are_kept_and_nothing_is_written_twice() -> None:
    opt = {"type": "AdamW", "args": [], "scheduler": "cosine", "warmup_steps": 0}
    own = "--network_dim=96 --some_fork_option x"
    data, _ = _render(_recipe(optimizer=opt, gui={"additional_parameters": own}))
    assert data["additional_parameters"] == f"{own} --lr_warmup_steps 0"
    # Once the recipe says otherwise, the checked options are the recipe's; the rest stays.
    data, _ = _render(_recipe(optimizer=opt, network={"rank": 64}, gui={"additional_parameters": own}))
    assert data["additional_parameters"] == "--lr_warmup_steps 0 --network_dim 64 --some_fork_option x"


def test_a_step_count_is_written_as_steps() -> None:
    data, _ = _render(_recipe(training={"max_train_steps": 160}))
    assert (data["max_train_steps"], data["max_train_epochs"], data["epoch"]) == (160, 0, 8)
    data, _ = _render(_recipe())
    assert (data["max_train_steps"], data["max_train_epochs"], data["epoch"]) == (0, 8, 8)
