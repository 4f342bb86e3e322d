"""dataset.toml obeys sd-scripts' strict voluptuous schema (library/config_util.py ConfigSanitizer)."""

from __future__ import annotations

import pytest
import toml

from kohya_recipe.errors import RenderError
from kohya_recipe.files import tomllib
from kohya_recipe.render.dataset import check_dataset_config, dataset_toml, render_dataset
from tests._project_util import article_recipe


def test_article_dataset_config() -> None:
    text = dataset_toml(article_recipe())
    data = tomllib.loads(text)
    assert data == toml.loads(text)
    check_dataset_config(data)
    assert data["general"]["caption_extension"] == ".txt"
    ds = data["datasets"][0]
    assert ds["resolution"] == [768, 768] and ds["batch_size"] == 1
    sub = ds["subsets"][0]
    assert sub == {"image_dir": "img/10_CharacterAI woman", "num_repeats": 10, "class_tokens": "CharacterAI woman"}
    assert "validation_split" not in ds


def test_validation_split_is_a_float_at_dataset_level() -> None:
    data = render_dataset(article_recipe("dataset.validation_split=0.25", "dataset.validation_seed=7"))
    ds = data["datasets"][0]
    assert isinstance(ds["validation_split"], float) and ds["validation_seed"] == 7
    assert all("validation_split" not in s for s in ds["subsets"])


def test_regularization_subset() -> None:
    data = render_dataset(article_recipe("dataset.regularization='/reg'", "dataset.reg_repeats=2"))
    reg = data["datasets"][0]["subsets"][1]
    assert reg == {"image_dir": "reg/2_woman", "num_repeats": 2, "class_tokens": "woman", "is_reg": True}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"general": {"batch_sise": 1}}, "extra keys not allowed @ data['general']['batch_sise']"),
        ({"general": {"image_dir": "x"}}, "extra keys not allowed @ data['general']['image_dir']"),
        ({"datasets": [{"subsets": [{"image_dir": "a", "num_repeats": 1.0}]}]}, "expected int"),
        ({"datasets": [{"validation_split": 0}]}, "expected float"),
        ({"datasets": [{"subsets": [{"num_repeats": 1}]}]}, "required key not provided"),
        ({"datasets": [{"subsets": [{"image_dir": "a", "validation_split": 0.1}]}]}, "extra keys not allowed"),
        ({"other": {}}, "extra keys not allowed @ data['other']"),
    ],
)
def test_schema_rejects_what_sd_scripts_rejects(data: dict, message: str) -> None:
    with pytest.raises(RenderError) as info:
        check_dataset_config(data)
    assert message in str(info.value)
