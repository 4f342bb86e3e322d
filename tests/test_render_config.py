"""config.toml: every key a real option of the launched script, native types, parsed alike by tomllib and
the `toml` package sd-scripts itself reads with (library/train_util.py read_config_from_file)."""

from __future__ import annotations

import pytest
import toml

from kohya_recipe.errors import RecipeError
from kohya_recipe.files import tomllib
from kohya_recipe.render.config import config_toml, config_values, render_config
from kohya_recipe.sdscripts.options import check_config, check_option, flatten_config, option_specs
from tests._project_util import article_recipe


@pytest.mark.parametrize("preset", ["likeness-sd15", "style-sd15", "likeness-sdxl"])
def test_both_toml_readers_agree_and_every_key_is_an_option(preset: str) -> None:
    recipe = article_recipe(preset=preset)
    text = config_toml(recipe)
    assert tomllib.loads(text) == toml.loads(text)
    flat = flatten_config(toml.loads(text))
    sdxl = recipe.model.family == "sdxl"
    specs = option_specs(sdxl)
    assert set(flat) <= set(specs)
    check_config(flat, sdxl=sdxl)
    assert flat == config_values(recipe)


def test_article_semantics() -> None:
    flat = config_values(article_recipe())
    # resolution is a string: sd-scripts calls .split(",") on it
    assert flat["resolution"] == "768,768"
    # always written, or sd-scripts stops at its 1600-step default
    assert flat["max_train_epochs"] == 8
    assert flat["save_every_n_epochs"] == 1
    assert flat["optimizer_type"] == "Adafactor"
    assert flat["optimizer_args"] == ["scale_parameter=True", "relative_step=True", "warmup_init=True"]
    assert flat["lr_scheduler"] == "adafactor"
    assert "learning_rate" not in flat and "lr_warmup_steps" not in flat
    assert (flat["network_dim"], flat["network_alpha"]) == (96, 72.0)
    assert flat["caption_extension"] == ".txt"
    assert flat["color_aug"] is True and flat["flip_aug"] is True
    assert "shuffle_caption" not in flat and "cache_latents" not in flat
    assert flat["sdpa"] is True and "xformers" not in flat
    assert flat["output_name"] == "CharacterAI-1-A"
    assert (flat["output_dir"], flat["logging_dir"], flat["log_with"]) == ("model", "log", "tensorboard")
    assert flat["sample_prompts"] == "sample-prompts.txt"
    assert flat["save_model_as"] == "safetensors"
    assert flat["mixed_precision"] == "fp16"


def test_adafactor_fixed_lr_mode_keeps_learning_rates() -> None:
    r = article_recipe(
        "optimizer.args=['relative_step=False', 'scale_parameter=False', 'warmup_init=False']",
        "optimizer.scheduler='constant_with_warmup'",
        "optimizer.learning_rate=1e-4",
        "optimizer.warmup_steps=0.05",
    )
    flat = config_values(r)
    assert flat["learning_rate"] == 1e-4
    assert flat["lr_warmup_steps"] == 0.05


def test_family_flags_and_attention() -> None:
    assert config_values(article_recipe("model.family='sd2'", "model.v_parameterization=true"))["v2"] is True
    flat = config_values(article_recipe("training.attention='xformers'"))
    assert flat["xformers"] is True and "sdpa" not in flat
    sdxl = render_config(article_recipe(preset="likeness-sdxl"))
    assert flatten_config(sdxl)["resolution"] == "1024,1024"


def test_extra_options_pass_through_into_config() -> None:
    flat = config_values(article_recipe("extra.noise_offset_random_strength=true", "extra.loss_type='huber'"))
    assert flat["loss_type"] == "huber" and flat["noise_offset_random_strength"] is True


def test_option_check_errors() -> None:
    with pytest.raises(RecipeError, match="did you mean 'network_dim'"):
        check_option("network_dimm", 3)
    with pytest.raises(RecipeError, match="must be a int"):
        check_option("network_dim", "96")
    with pytest.raises(RecipeError, match="must be an integer \\(steps\\) or a float below 1"):
        check_option("lr_warmup_steps", 100.0)
    check_option(
        "text_encoder_lr", 5e-5
    )  # a plain float works for this list option (nargs="*" in train_network.py setup_parser)


def test_max_token_length_75_is_the_unset_default_not_a_refused_choice() -> None:
    # sd-scripts' --max_token_length choices are None/150/225; 75 is what it uses when the option is unset.
    assert "max_token_length" not in config_values(article_recipe("training.max_token_length=75"))
    assert config_values(article_recipe("training.max_token_length=225"))["max_token_length"] == 225
    render_config(article_recipe("training.max_token_length=75"))  # every key still passes the spec check
