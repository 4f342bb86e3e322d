"""The kohya_ss GUI field list and the widget checks of gui_fields (validate_gui_values).

The GUI-saved configs come from ../shared/fixtures/kohya_ss-gui/saved-by-gui (copied to tests/data/gui):
``Standard-AdamW.resaved-by-current-gui.json`` is a complete 288-key save by the current GUI, so it must pass
every check; the older files show the problems the checks exist for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kohya_recipe.kohya_ss.fields import (
    BIG_DIM_MAXIMUM,
    check_value,
    gui_defaults,
    gui_field,
    gui_fields,
    gui_keys,
    gui_version,
    lora_types,
    unknown_gui_keys,
    validate_gui_values,
)

DATA = Path(__file__).parent / "data" / "gui" / "saved-by-gui"
RESAVED = DATA / "Standard-AdamW.resaved-by-current-gui.json"


def _resaved() -> dict:
    return json.loads(RESAVED.read_text(encoding="utf-8"))


def _problems(values: dict, **kw) -> dict[str, tuple[str, str]]:
    return {p.key: (p.kind, p.message) for p in validate_gui_values(values, "t.json", **kw)}


def test_the_field_list_has_the_guis_287_registry_keys() -> None:
    keys = gui_keys()
    assert len(keys) == 287 == len(set(keys))
    assert keys[0] == "pretrained_model_name_or_path"  # registry order, as the GUI wires it
    assert "save_as_bool" not in keys  # written by the save button, not a form field
    assert "45088f04" in gui_version()
    # The resaved file is the GUI's own complete save: its keys are exactly the registry plus save_as_bool.
    assert set(_resaved()) - set(keys) == {"save_as_bool"}
    assert set(keys) - set(_resaved()) == set()


def test_defaults_and_widgets_match_the_reference() -> None:
    d = gui_defaults()
    assert d["max_train_steps"] == 1600  # the default that caps an epoch-driven run
    assert d["LoRA_type"] == "Standard"
    assert d["xformers"] == "xformers"
    assert d["network_weights"] is None  # a text field whose fresh value is None
    assert gui_field("caption_extension").choices == ("", ".cap", ".caption", ".txt")
    assert gui_field("max_token_length").choices == (75, 150, 225)
    assert gui_field("epoch").precision == 0
    assert gui_field("train_batch_size").maximum == 64
    assert "LyCORIS/iA3" in lora_types() and "Standard" in lora_types()
    assert gui_fields() is not gui_fields()  # callers get a copy


def test_a_complete_current_gui_save_passes_every_check() -> None:
    assert validate_gui_values(_resaved(), "resaved.json", complete=True) == []


@pytest.mark.parametrize(
    ("key", "value", "kind", "words"),
    [
        ("cache_latents", "false", "type", "non-empty text as true"),
        ("cache_latents", 0, "type", "true or false"),
        ("max_resolution", 512, "type", "must be text"),
        ("caption_extension", ".txt2", "choice", '"", ".cap", ".caption", ".txt"'),
        ("max_token_length", 100, "choice", "75, 150, 225"),
        ("max_token_length", "75", "choice", "choices"),
        ("lr_scheduler", "cosine_annealing", "choice", "choices"),
        ("train_batch_size", 65, "range", "1..64"),
        ("learning_rate", 2, "range", "-1..1"),
        ("text_encoder_lr", -0.1, "range", "0..1"),
        ("clip_skip", 13, "range", "0..12"),
        ("epoch", 2.5, "type", "whole number"),
        ("epoch", "4", "type", "must be a number"),
        ("seed", True, "type", "must be a number"),
        ("network_alpha", 0, "range", "1e-05..1024"),
        ("optimizer", 3, "type", "must be text"),
    ],
)
def test_widget_checks(key: str, value: object, kind: str, words: str) -> None:
    values = _resaved()
    values[key] = value
    problems = _problems(values)
    assert key in problems, problems
    assert problems[key][0] == kind
    assert words in problems[key][1]
    assert f"t.json: {key}: " in str(validate_gui_values(values, "t.json")[0])


def test_network_dim_maximum_depends_on_the_lora_type() -> None:
    values = _resaved()
    values["network_dim"] = 1024
    kind, message = _problems(values)["network_dim"]
    assert kind == "range" and "1..512 for LoRA_type Standard" in message and "LyCORIS/LoKr" in message
    values["LoRA_type"] = "LyCORIS/LoKr"  # raises the slider maximum to 100000
    assert "network_dim" not in _problems(values)
    values["network_dim"] = BIG_DIM_MAXIMUM + 1
    assert _problems(values)["network_dim"][0] == "range"


def test_custom_dropdowns_take_any_text_and_host_cpu_count_is_opt_in() -> None:
    values = _resaved()
    values["optimizer"] = "pytorch_optimizer.CAME"  # allow_custom_value
    values["pretrained_model_name_or_path"] = r"C:\models\sd15.safetensors"
    values["num_cpu_threads_per_process"] = 16  # the fields file recorded a 2-core host
    assert _problems(values) == {}
    assert _problems(values, host_cpu_count=8)["num_cpu_threads_per_process"][0] == "range"


def test_null_and_missing_keys_only_matter_for_a_complete_file() -> None:
    values = _resaved()
    values["seed"] = None
    del values["epoch"]
    assert _problems(values) == {}
    problems = _problems(values, complete=True)
    assert problems["seed"] == ("missing", "is null: the GUI would keep whatever its form shows")
    assert problems["epoch"][0] == "missing"


def test_preflight_checks_of_train_model() -> None:
    values = _resaved()
    values["optimizer_args"] = "weight_decay=0.01  betas=(0.9,0.99)"
    values["lr_scheduler_args"] = "T_max = 10"
    values["learning_rate"] = values["text_encoder_lr"] = values["unet_lr"] = 0
    values["stop_text_encoder_training"] = 20
    problems = {p.key: p for p in validate_gui_values(values, "t.json")}
    assert "single spaces" in problems["optimizer_args"].message
    assert "key=value" in problems["lr_scheduler_args"].message
    assert "all 0" in problems["learning_rate"].message
    assert problems["stop_text_encoder_training"].severity == "warning"
    assert validate_gui_values(values, "t.json", preflight=False) == []


def test_kohya_loha_needs_sdxl_and_flux_needs_a_flux_type() -> None:
    values = _resaved()
    values["LoRA_type"] = "Kohya LoHa"
    assert "needs SDXL or Anima" in _problems(values)["LoRA_type"][1]
    values["sdxl"] = True
    assert "LoRA_type" not in _problems(values)
    values.update(sdxl=False, flux1_checkbox=True, LoRA_type="Standard")
    assert "cannot train Flux.1" in _problems(values)["LoRA_type"][1]


def test_unknown_keys_are_listed_not_checked() -> None:
    values = {"LoRA_type": "Standard", "lora_network_weights": "", "conv_dims": 4, "save_as_bool": False}
    assert unknown_gui_keys(values) == ["conv_dims", "lora_network_weights", "save_as_bool"]
    assert validate_gui_values(values, "t.json") == []


def test_check_value_ignores_none() -> None:
    assert check_value(gui_field("epoch"), None) is None
