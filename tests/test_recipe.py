"""The recipe model: strict keys, presets, --set, the trainer rules (library/train_util.py
read_config_from_file, get_optimizer, get_scheduler_fix)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kohya_recipe.errors import RecipeError
from kohya_recipe.files import read_toml
from kohya_recipe.recipe.advice import recipe_warnings
from kohya_recipe.recipe.loading import apply_sets, load_recipe, recipe_from_dict, recipe_to_toml
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.recipe.presets import list_presets, load_preset
from tests._project_util import article_recipe


def test_article_preset_has_every_article_setting() -> None:
    r = article_recipe()
    assert r.model.family == "sd15"
    assert (r.training.batch_size, r.training.max_train_epochs, r.dataset.repeats) == (1, 8, 10)
    assert (r.optimizer.type, r.optimizer.scheduler) == ("Adafactor", "adafactor")
    assert r.training.resolution == (768, 768)
    assert (r.network.rank, r.network.alpha) == (96, 72.0)
    assert r.dataset.regularization is None
    assert (r.augmentation.shuffle_caption, r.augmentation.color, r.augmentation.flip) == (False, True, True)
    assert r.training.save_every_n_epochs == 1
    assert r.training.cache_latents is False
    p = r.samples.prompts[0]
    assert (p.width, p.height, p.steps) == (512, 512, 35)
    assert "CharacterAI" in p.prompt and "3D render" in p.negative
    assert r.output.output_name == "CharacterAI-1-A"
    assert r.dataset.caption_extension == ".txt"
    assert recipe_warnings(r) == []


def test_presets_listed_and_all_valid() -> None:
    names = [p.name for p in list_presets()]
    assert names == ["likeness-sd15", "likeness-sdxl", "style-sd15"]
    for name in names:
        r = recipe_from_dict(apply_sets(load_preset(name), ["subject.trigger=X"]), source=name)
        assert r.training.max_train_epochs >= 1
    assert article_recipe(preset="likeness-sdxl").script_name == "sdxl_train_network.py"
    assert article_recipe(preset="style-sd15").training.batch_size > 1


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(RecipeError, match="unknown preset \\(did you mean 'likeness-sd15'\\?\\); known presets"):
        load_preset("likeness-sd1")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"trainig": {}}, "recipe.toml: trainig: unknown key (did you mean 'training'?)"),
        (
            {"training": {"max_train_epoch": 3}},
            "training.max_train_epoch: unknown key (did you mean 'max_train_epochs'?)",
        ),
        ({"training": {"max_train_epochs": 0}}, "recipe.toml: training.max_train_epochs: must be >= 1, got 0"),
        ({"samples": {"prompts": [{"prompt": "a", "widht": 8}]}}, "samples.prompts[0].widht: unknown key"),
        ({"samples": {"prompts": [{"prompt": "a --w 3"}]}}, "splits prompt lines on ' --'"),
        ({"samples": {"prompts": [{"prompt": "a", "width": 500}]}}, "not a multiple of 8"),
        ({"optimizer": {"args": ["relative_step=false"]}}, "not a Python literal (write False)"),
        ({"optimizer": {"type": "AdamW", "scheduler": "adafactor"}}, "'adafactor' needs optimizer.type = 'Adafactor'"),
        ({"optimizer": {"type": "Adafactor", "scheduler": "adafactor", "warmup_steps": 10}}, "requires 0 warmup"),
        (
            {"optimizer": {"type": "Adafactor", "args": ["relative_step=False"], "scheduler": "adafactor"}},
            "needs relative-step mode",
        ),
        ({"optimizer": {"warmup_steps": 100.0, "scheduler": "cosine"}}, "must be below 1"),
        ({"optimizer": {"scheduler": "reduce_lr_on_plateau"}}, "not a scheduler train_network runs"),
        ({"optimizer": {"scheduler": "constant", "warmup_steps": 5}}, "constant scheduler requires 0 warmup"),
        (
            {"augmentation": {"color": True}, "training": {"cache_latents": True}},
            "cannot be combined with augmentation.color",
        ),
        ({"output": {"name": "../evil"}}, "output.name"),
        ({"output": {"name": "a;rm -rf"}}, "no '/', '..', spaces or shell characters"),
        ({"output": {"letter": "a"}}, "upper-case letters"),
        ({"subject": {"trigger": "a, b"}}, "must be a single tag"),
        ({"training": {"resolution": [768, 768], "min_bucket_reso": 1024, "max_bucket_reso": 2048}}, "min_bucket_reso"),
        ({"extra": {"networkdim": 3}}, "extra.networkdim: unknown sd-scripts option for train_network.py"),
        ({"extra": {"network_dim": 3}}, "extra.network_dim: set it as network.rank instead"),
        ({"extra": {"noise_offset_random_strength": "yes"}}, "must be a boolean"),
        ({"extra": {"output_dir": "x"}}, "is derived from the recipe"),
        ({"extra": {"loss_type": "l3"}}, "'l3' is not one of: l1, l2, huber, smooth_l1"),
        ({"schema_version": 99}, "schema_version 99 is not supported"),
        ({"network": {"rank": True}}, "network.rank: must be a number, not true"),
        ({"augmentation": {"flip": "yes"}}, "augmentation.flip: must be true or false, not the string 'yes'"),
        ({"training": {"max_token_length": "75"}}, "training.max_token_length: must be a number, not the string '75'"),
        ({"samples": {"prompts": [{"prompt": "a", "steps": "35"}]}}, "samples.prompts[0].steps: must be a number"),
    ],
)
def test_bad_recipes_give_one_line_errors(data: dict, message: str) -> None:
    with pytest.raises(RecipeError) as info:
        recipe_from_dict(data, source="recipe.toml")
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_extra_accepts_real_options_and_sdxl_only_options() -> None:
    r = recipe_from_dict({"extra": {"noise_offset_random_strength": True, "loss_type": "huber"}})
    assert r.extra["loss_type"] == "huber"
    with pytest.raises(RecipeError, match="unknown sd-scripts option for train_network.py"):
        recipe_from_dict({"extra": {"cache_text_encoder_outputs": True}})
    sdxl = recipe_from_dict(
        {
            "model": {"family": "sdxl"},
            "network": {"train_unet_only": True},
            "extra": {"cache_text_encoder_outputs": True},
        }
    )
    assert sdxl.extra == {"cache_text_encoder_outputs": True}


def test_adafactor_learning_rate_is_a_warning_not_an_error() -> None:
    r = article_recipe("optimizer.learning_rate=1e-4", "optimizer.scheduler='cosine'")
    warnings = recipe_warnings(r)
    assert any("ignores learning_rate" in w for w in warnings)
    assert any("replaced by 'adafactor'" in w for w in warnings)


def test_set_accepts_dotted_keys_and_sdscripts_names() -> None:
    data = apply_sets({}, ["network_alpha=48", "training.max_train_epochs=10", "resolution=640,768", "output.letter=B"])
    r = recipe_from_dict(data)
    assert (r.network.alpha, r.training.max_train_epochs, r.training.resolution) == (48, 10, (640, 768))
    assert r.output.letter == "B"
    with pytest.raises(RecipeError, match="unknown recipe key \\(did you mean 'network.alpha'\\?\\)"):
        apply_sets({}, ["network.alpah=3"])
    with pytest.raises(RecipeError, match="must be key=value"):
        apply_sets({}, ["network.alpha"])
    # an sd-scripts option the recipe does not model lands in the checked pass-through
    assert recipe_from_dict(apply_sets({}, ["min_snr_gamma=5"])).extra == {"min_snr_gamma": 5}


def test_recipe_file_round_trip(tmp_path) -> None:
    r = article_recipe()
    path = tmp_path / "recipe.toml"
    path.write_text(recipe_to_toml(r), encoding="utf-8")
    assert load_recipe(path) == r


def test_recipe_file_layers_preset_and_resolves_relative_images(tmp_path) -> None:
    (tmp_path / "imgs").mkdir()
    path = tmp_path / "recipe.toml"
    path.write_text(
        'preset = "likeness-sd15"\n[subject]\ntrigger = "Zed"\n[dataset]\nimages = "imgs"\n', encoding="utf-8"
    )
    r = load_recipe(path, ["network.rank=64"])
    assert (r.network.rank, r.network.alpha, r.preset) == (64, 72.0, "likeness-sd15")
    assert r.dataset.images == str((tmp_path / "imgs").resolve())
    assert r.output.output_name == "Zed-1-A"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[training\n", "invalid TOML"),
        (b"\xff\xfe[x]", "not UTF-8"),
    ],
)
def test_malformed_files(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "recipe.toml"
    path.write_bytes(content)
    with pytest.raises(RecipeError, match=message):
        read_toml(path, error=RecipeError)
    with pytest.raises(RecipeError, match="file not found"):
        read_toml(tmp_path / "missing.toml", error=RecipeError)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True), st.text(max_size=12))
_values = st.recursive(
    _scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3), max_leaves=8
)
_sections = st.sampled_from(list(Recipe.model_fields))


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.one_of(_sections, st.text(max_size=8)),
        st.one_of(_values, st.dictionaries(st.text(max_size=16), _values, max_size=4)),
        max_size=4,
    )
)
def test_fuzz_recipe_loader_only_raises_recipe_errors(data: dict) -> None:
    try:
        r = recipe_from_dict(data, source="fuzz.toml")
    except RecipeError as exc:
        assert str(exc).startswith("fuzz.toml")
        assert "\n" not in str(exc)
    else:
        assert isinstance(r, Recipe)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_toml_reader_only_raises_recipe_errors(tmp_path_factory, blob: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "r.toml"
    path.write_bytes(blob)
    try:
        data = read_toml(path, error=RecipeError)
        recipe_from_dict(data, source="r.toml")
    except RecipeError:
        pass


def test_every_optional_field_defaults_to_none_so_toml_round_trips() -> None:
    # TOML has no null: recipe_to_toml drops None, so an optional field must default to None or a saved
    # "unset" would reload as something else.
    import typing

    from pydantic import BaseModel

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            ann = info.annotation
            args = typing.get_args(ann)
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
            elif type(None) in args:
                assert info.default is None, f"{prefix}{name} is optional but defaults to {info.default!r}"

    walk(Recipe, "")


def test_relative_local_paths_are_relative_to_the_recipe_and_hub_ids_stay(tmp_path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "sd15.safetensors").write_bytes(b"x")
    path = tmp_path / "recipe.toml"
    path.write_text('[model]\nbase = "models/sd15.safetensors"\nvae = "stabilityai/sd-vae-ft-mse"\n', encoding="utf-8")
    r = load_recipe(path)
    assert r.model.base == str((tmp_path / "models" / "sd15.safetensors").resolve())
    assert r.model.vae == "stabilityai/sd-vae-ft-mse"  # no such local path: a hub id


def test_epoch_count_has_an_upper_bound() -> None:
    with pytest.raises(RecipeError, match="training.max_train_epochs: must be <= 100000, got 1000000 .far beyond"):
        recipe_from_dict({"training": {"max_train_epochs": 10**6}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"network": {"rank": 10**20}}, r"network.rank: 100000000000000000000 is beyond TOML's 64-bit integers"),
        ({"network": {"alpha": float("inf")}}, r"network.alpha: must be a finite number, got inf"),
        ({"optimizer": {"learning_rate": float("inf")}}, r"optimizer.learning_rate: must be a finite number"),
        ({"optimizer": {"learning_rate": 50.0}}, r"optimizer.learning_rate: must be <= 10, got 50.0 \(a learning rate"),
        ({"dataset": {"repeats": 2**63 - 1}}, r"dataset.repeats: must be <= 10000, got 9223372036854775807 \(each"),
        ({"network": {"rank": 200_000}}, r"network.rank: must be <= 100000, got 200000 \(the kohya_ss GUI"),
        ({"training": {"seed": 2**40}}, r"training.seed: must be <= 4294967295.*32 bits"),
        ({"training": {"resolution": [9000, 9000]}}, r"resolution: each side must be at most 8192"),
        ({"extra": {"max_grad_norm": float("nan")}}, r"extra.max_grad_norm: must be a finite number, got nan"),
        (
            {"output": {"name": "a" * 5_000_000}},
            r"output.name: must have at most 100 characters, got 'aaa.*\(5000002 characters\) \(file names",
        ),
    ],
)
def test_absurd_numbers_are_refused_with_the_reason(data: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message) as info:
        recipe_from_dict(data)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    ("trigger", "name"),
    [
        ("darius kawasaki", "darius_kawasaki"),
        ("x;rm", "x_rm"),
        ("-rf", "rf"),
        ("a$(id)", "a_id"),
        ("a..b", "a.b"),
        ("Café Noir", "Caf_Noir"),
    ],
)
def test_output_name_is_the_trigger_made_file_safe(trigger: str, name: str) -> None:
    # Without output.name the trigger gives the output name (a file name and a shell word).
    assert recipe_from_dict({"subject": {"trigger": trigger}}).output.output_name == f"{name}-1-A"
    r = recipe_from_dict({"subject": {"trigger": trigger}, "output": {"name": "Safe"}})
    assert r.output.output_name == "Safe-1-A"


@pytest.mark.parametrize("trigger", ["..", "😀", "---"])
def test_a_trigger_without_letters_needs_an_output_name(trigger: str) -> None:
    with pytest.raises(RecipeError, match="subject.trigger: .* has no letters or digits .*set output.name"):
        recipe_from_dict({"subject": {"trigger": trigger}}, source="recipe.toml")


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("", "must not be empty"), ("   ", "must not be empty"), ("# CharacterAI", "must not start with '#'")],
)
def test_sample_prompt_lines_sd_scripts_would_misread(prompt: str, message: str) -> None:
    with pytest.raises(RecipeError, match=f"samples.prompts\\[0\\].prompt: {message}"):
        recipe_from_dict({"samples": {"prompts": [{"prompt": prompt}]}}, source="recipe.toml")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["extra.use_8bit_adam=true"], "extra.use_8bit_adam: legacy alias .* set optimizer.type = 'AdamW8bit'"),
        (["use_lion_optimizer=true"], "extra.use_lion_optimizer: legacy alias .* set optimizer.type = 'Lion'"),
        (["extra.caption_extention='.caption'"], "extra.caption_extention: .* set dataset.caption_extension"),
        (
            ["augmentation.color=false", "training.cache_latents=true", "extra.random_crop=true"],
            "extra.random_crop: cannot be combined with training.cache_latents",
        ),
        (
            ["extra.fused_backward_pass=true", "optimizer.type='AdamW'", "optimizer.scheduler='constant'"],
            "extra.fused_backward_pass: needs optimizer.type = 'Adafactor'",
        ),
        (
            ["extra.fused_backward_pass=true", "training.gradient_accumulation_steps=2"],
            "extra.fused_backward_pass: does not work with training.gradient_accumulation_steps > 1",
        ),
    ],
)
def test_extra_options_sd_scripts_would_stop_on(sets: list[str], message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        article_recipe(*sets)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["extra.weighted_captions=true"], "extra.weighted_captions: cannot be used with SDXL"),
        (["extra.cache_text_encoder_outputs=true"], "needs network.train_unet_only = true"),
        (
            [
                "extra.cache_text_encoder_outputs_to_disk=true",
                "network.train_unet_only=true",
                "augmentation.shuffle_caption=true",
            ],
            "extra.cache_text_encoder_outputs: cannot be combined with augmentation.shuffle_caption",
        ),
    ],
)
def test_sdxl_extra_options_sdxl_train_network_stops_on(sets: list[str], message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        article_recipe(*sets, preset="likeness-sdxl")
    ok = article_recipe("extra.cache_text_encoder_outputs=true", "network.train_unet_only=true", preset="likeness-sdxl")
    assert ok.extra == {"cache_text_encoder_outputs": True}
    article_recipe("extra.weighted_captions=true")  # SD 1.5's train_network.py supports weighted captions


@pytest.mark.parametrize("trigger", ["\x00x", "a\tb", "x\x7f"])
def test_control_characters_in_subject_words_are_refused_not_a_traceback(trigger: str) -> None:
    # A NUL would reach os.mkdir as "embedded null byte" (a ValueError, not a RecipeError) when the image folder
    # `10_<trigger> <class>` is made.
    for data in ({"subject": {"trigger": trigger}, "output": {"name": "Z"}}, {"subject": {"class_token": trigger}}):
        with pytest.raises(RecipeError, match="must be a single tag: no comma, slash, newline or other control"):
            recipe_from_dict(data, source="recipe.toml")


def test_carriage_return_in_a_sample_prompt_is_a_line_break_for_sd_scripts() -> None:
    with pytest.raises(RecipeError, match="samples.prompts\\[0\\].prompt: must not contain ' --' or a newline"):
        recipe_from_dict({"samples": {"prompts": [{"prompt": "a\rb"}]}}, source="recipe.toml")


def test_alpha_above_rank_is_warned() -> None:
    from kohya_recipe.recipe.advice import recipe_warnings

    warnings = recipe_warnings(recipe_from_dict({"subject": {"trigger": "x"}, "network": {"rank": 1, "alpha": 72}}))
    assert any("network.alpha 72 is above network.rank 1" in w and "x72" in w for w in warnings)
    assert not any("network.alpha" in w for w in recipe_warnings(recipe_from_dict({"subject": {"trigger": "x"}})))


def test_dataset_is_one_folder_or_subsets() -> None:
    with pytest.raises(RecipeError, match="dataset: set either images .one folder. or subsets"):
        recipe_from_dict({"dataset": {"images": "/a", "subsets": [{"images": "/b", "class_tokens": "x"}]}})
    with pytest.raises(RecipeError, match="share the folder img/3_x"):
        recipe_from_dict({"dataset": {"subsets": [{"images": "/a", "repeats": 3, "class_tokens": "x"}] * 2}})
    with pytest.raises(RecipeError, match="class_tokens: must be usable in a folder name"):
        recipe_from_dict({"dataset": {"subsets": [{"images": "/a", "class_tokens": "x/y"}]}})
    r = recipe_from_dict(
        {"subject": {"trigger": "t"}, "dataset": {"subsets": [{"images": "/a", "repeats": 3, "class_tokens": "t x"}]}}
    )
    assert [(s.folder, s.repeats, s.source) for s in r.train_subsets()] == [("img/3_t x", 3, "/a")]
