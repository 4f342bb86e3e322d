"""Importing kohya_ss GUI JSON configs (gui.importer, gui.migrate, gui.to_recipe) and ``kohya-recipe import``.

The configs in tests/data/gui/saved-by-gui are ../shared/fixtures/kohya_ss-gui/saved-by-gui: LoRA-tab configs
and presets written by several GUI versions (numbers stored as text, legacy keys, 28 to 288 keys).
``Standard-AdamW.resaved-by-current-gui.json`` is ``Standard-AdamW.json`` loaded and saved by the current GUI.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kohya_recipe.cli import cli, main
from kohya_recipe.errors import GuiConfigError
from kohya_recipe.files import tomllib
from kohya_recipe.gui.importer import import_gui_json, import_gui_values, recipe_toml_text
from kohya_recipe.gui.migrate import migrate_gui_values
from kohya_recipe.gui.render import recipe_to_gui_json, render_gui_form
from kohya_recipe.kohya_ss.fields import gui_keys
from kohya_recipe.recipe.loading import recipe_from_dict
from kohya_recipe.recipe.models import Recipe
from kohya_recipe.recipe.presets import load_preset

DATA = Path(__file__).parent / "data" / "gui" / "saved-by-gui"
FIXTURES = sorted(DATA.glob("*.json"))
RESAVED = DATA / "Standard-AdamW.resaved-by-current-gui.json"

# Per fixture: the fields that do not come back as the file had them, and why (each is also reported, by the import
# or by the render's notes). Every rendered JSON carries --network_dim in additional_parameters, and a warmup unless
# the scheduler is constant (gui.carry: the GUI can load stale values into those fields).
LOSSY = {
    # ".txt2" is not a choice of the current GUI: the field is empty and the command line carries it; relative-step
    # Adafactor is written with the constant scheduler; log_with "" without a logging_dir in a preset: the recipe
    # keeps TensorBoard logging; a 0 multires discount trained as sd-scripts' 0.3.
    "SDXL - LoRA adafactor v1.0.json": {
        "additional_parameters",
        "caption_extension",
        "log_with",
        "lr_scheduler",
        "multires_noise_discount",
    },
    # ".none-use-foldername" is not a choice: carried on the command line.
    "SDXL-Standard-Adafactor.json": {"additional_parameters", "caption_extension"},
    "Standard-AdamW.json": {"additional_parameters"},
    "Standard-AdamW.resaved-by-current-gui.json": {"additional_parameters"},
    # iA3 rank 1024 is above the GUI's slider: the field says 512, the command line 1024.
    "iA3-Prodigy-sd15.json": {"network_dim"},
    # A 0 max_grad_norm and multires discount trained as sd-scripts' defaults (the GUI drops every 0).
    "locon-Adafactor.json": {"additional_parameters", "max_grad_norm", "multires_noise_discount"},
    # sd-scripts' mem_eff_attn is not offered by the recipe (attention is sdpa/xformers/none).
    "sd15 - EDG_LoraOptiSettings.json": {"additional_parameters", "mem_eff_attn"},
}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b) and type(a) in (int, float, str) and type(b) in (int, float, str)


def _write(tmp_path: Path, data: Any, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_saved_config_imports_and_reproduces_its_fields(path: Path) -> None:
    result = import_gui_json(path)
    assert isinstance(result.recipe, Recipe)
    migrated, _ = migrate_gui_values(_load(path), path.name)
    render = render_gui_form(result.recipe, None, check=False)
    rendered = render.values
    changed = {k for k in migrated if k in rendered and not _same(migrated[k], rendered[k])}
    assert changed == LOSSY.get(path.name, set())
    reported = " ".join(result.repairs + result.warnings + result.notes + render.notes)
    for key in changed:
        assert key in reported, key
    # The recipe file written by `import` reads back as the same recipe.
    text, toml_warnings = recipe_toml_text(result)
    assert recipe_from_dict(tomllib.loads(text), source="again") == result.recipe
    assert toml_warnings == []


def test_current_gui_file_round_trips_every_field() -> None:
    data = _load(RESAVED)
    result = import_gui_json(RESAVED)
    assert result.repairs == [] and result.unknown_keys == []
    assert result.notes == [
        "length: 4 epochs, the file's epoch with max_train_steps 0 (the GUI trains ceil(images x repeats / batch / "
        "gradient accumulation x 4) steps, the same when the batches fill evenly; sd-scripts' own count also rounds "
        "up each epoch's partly filled buckets)"
    ]
    out = recipe_to_gui_json(result.recipe)
    assert set(out) == set(gui_keys()) == set(data) - {"save_as_bool"}
    # Every field comes back; additional_parameters also carries what the GUI could load stale (gui.carry).
    assert {k for k in out if not _same(out[k], data[k])} == {"additional_parameters"}
    assert out["additional_parameters"] == "--lr_warmup_steps 0 --network_dim 8"
    r = result.recipe
    assert (r.training.batch_size, r.training.max_train_epochs, r.training.clip_skip) == (4, 4, 2)
    assert (r.network.rank, r.network.alpha, r.optimizer.type) == (8, 1.0, "AdamW")
    assert r.extra == {
        "caption_dropout_rate": 0.05,
        "min_snr_gamma": 10,
        "multires_noise_discount": 0.2,
        "multires_noise_iterations": 8,
    }
    assert r.training.noise_offset is None  # noise_offset_type Multires: the GUI does not pass it
    assert r.samples.every_n_steps == 20 and r.samples.prompts[0].prompt.startswith("a painting of man")
    assert (r.output.name, r.gui["output_name"]) == ("Standard-Adamw", "Standard-Adamw")
    assert r.gui["train_data_dir"] == "./test/img" and r.gui["model_list"] == "runwayml/stable-diffusion-v1-5"


def test_legacy_preset_repairs_and_unknown_keys() -> None:
    result = import_gui_json(DATA / "sd15 - EDG_LoraOptiSettings.json")
    assert 'seed: "1234" read as 1234' in result.repairs
    assert 'lr_scheduler_num_cycles: "" is not a whole number: the GUI uses 1' in result.repairs
    assert "xformers: true is now 'xformers'" in result.repairs
    # The GUI renames lora_network_weights even when it is "" (update_my_data): a repair, not an unknown key.
    assert result.unknown_keys == ["conv_alphas", "conv_dims", "no_token_padding"]
    assert "lora_network_weights: renamed to network_weights" in result.repairs
    r = result.recipe
    assert (r.optimizer.learning_rate, r.optimizer.text_encoder_lr, r.optimizer.unet_lr) == (1e-4, 5e-5, None)
    assert r.training.resolution == (512, 650) and r.training.enable_bucket is False
    assert (r.training.noise_offset, r.training.attention, r.training.batch_size) == (0.05, "xformers", 3)
    assert any(w.startswith("mem_eff_attn:") for w in result.warnings)


def test_28_key_preset_with_a_rankless_lycoris_type() -> None:
    result = import_gui_json(DATA / "iA3-Prodigy-sd15.json")
    r = result.recipe
    assert r.network.module == "lycoris.kohya"
    assert "algo=ia3" in r.network.args and "train_on_input=True" in r.network.args
    assert r.network.rank == 1024 and any("ignores it" in n for n in result.notes)
    assert r.optimizer.args == [
        "d_coef=1.0",
        "weight_decay=0.01",
        "safeguard_warmup=False",
        "use_bias_correction=False",
    ]
    assert r.training.max_train_epochs == 300 and r.training.seed == 31337
    assert r.model.base == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert any(n.startswith("pretrained_model_name_or_path is not in the file") for n in result.notes)
    # The GUI itself refuses network_dim 1024 for iA3: the field says 512, the command line carries 1024.
    out = recipe_to_gui_json(r)
    assert out["network_dim"] == 512 and "--network_dim 1024" in out["additional_parameters"]


def test_sdxl_preset_with_additional_parameters() -> None:
    result = import_gui_json(DATA / "SDXL - LoRA adafactor v1.0.json")
    r = result.recipe
    assert r.model.family == "sdxl" and r.extra["no_half_vae"] is True
    assert r.training.log_prefix == "xl-loha"  # from --log_prefix=xl-loha
    # The old caption extension is kept (sd-scripts reads any), not rewritten.
    assert r.training.max_train_epochs == 30 and r.dataset.caption_extension == ".txt2"
    # A preset without a model: the SDXL base, not the fresh form's SD 1.5 model, and the notes say so.
    assert r.model.base == "stabilityai/stable-diffusion-xl-base-1.0"
    assert any("using the SDXL base 'stabilityai/stable-diffusion-xl-base-1.0'" in n for n in result.notes)
    out = recipe_to_gui_json(r)
    assert out["additional_parameters"] == "--log_prefix=xl-loha --network_dim 128 --caption_extension .txt2"
    assert (out["caption_extension"], out["lr_scheduler"], out["lr_warmup"]) == ("", "constant", 0)


def test_kohya_locon_and_unet_only() -> None:
    r = import_gui_json(DATA / "locon-Adafactor.json").recipe
    assert r.network.module == "networks.lora"
    assert r.network.args == ["conv_dim=16", "conv_alpha=8", "rank_dropout=0.1", "module_dropout=0.1"]
    assert r.dataset.caption_extension == ".caption"  # the GUI's "" writes none: sd-scripts' default
    r = import_gui_json(DATA / "SDXL-Standard-Adafactor.json").recipe
    assert r.network.train_unet_only is True and r.optimizer.unet_lr is None and r.optimizer.learning_rate == 0.001


@pytest.mark.parametrize("preset", ["likeness-sd15", "likeness-sdxl", "style-sd15"])
def test_recipe_json_recipe_is_identical(tmp_path: Path, preset: str) -> None:
    from kohya_recipe.render.project import render_project

    data = copy.deepcopy(load_preset(preset))
    data.setdefault("subject", {})["trigger"] = "CharacterAI"
    recipe = recipe_from_dict(data, source=preset)
    project = tmp_path / "CharacterAI"
    render_project(recipe, project)
    result = import_gui_json(project / "CharacterAI-1-A.json")
    # The trigger, class and repeats come back from img/<repeats>_<trigger> <class>, as in the GUI; the
    # project's folders are kept as the config's own (a project render replaces them with its own).
    assert set(result.recipe.gui) == {"train_data_dir", "output_dir", "logging_dir"}
    assert result.recipe.model_copy(update={"gui": {}}) == recipe
    assert recipe_to_gui_json(result.recipe, project) == recipe_to_gui_json(recipe, project)
    # Without a project the JSON has no folder to hold the subject; everything else comes back.
    again = import_gui_values(recipe_to_gui_json(recipe), "no-project.json").recipe
    assert again.model_copy(update={"subject": recipe.subject}) == recipe


def test_repairs_the_gui_makes_on_load(tmp_path: Path) -> None:
    data = {
        "LoRA_type": "LoCon",
        "use_8bit_adam": True,
        "use_wandb": "True",
        "lora_network_weights": "old.safetensors",
        "save_model_as": "diffusers",
        "cache_latents": 1,
        "max_resolution": 640,
        "epoch": 2.7,
        "lr_scheduler": "constant",
        "lr_warmup": 10,
        "color_aug": True,
        "save_every_n_epochs": 1.0,
        "logging_dir": "log",
    }
    result = import_gui_json(_write(tmp_path, data))
    text = "\n".join(result.repairs)
    for words in (
        "LoRA_type: 'LoCon' is now 'LyCORIS/LoCon'",
        "optimizer: missing, set to 'AdamW8bit' (use_8bit_adam is set)",
        "use_wandb: \"True\" is now log_with = 'wandb'",
        "lora_network_weights: renamed to network_weights",
        'save_model_as: "diffusers" is not a LoRA format',
        "cache_latents: 1 read as true",
        'max_resolution: 640 read as the text "640"',
        "epoch: 2.7 truncated to 2",
        "lr_warmup: set to 0 because lr_scheduler is 'constant'",
        "cache_latents: turned off because color_aug is on",
    ):
        assert words in text
    r = result.recipe
    assert r.optimizer.type == "AdamW8bit" and r.network.weights == "old.safetensors"
    assert r.training.log_with == "wandb" and r.training.max_train_epochs == 2
    assert r.training.resolution == (640, 640) and r.training.cache_latents is False
    assert r.network.module == "lycoris.kohya" and "algo=locon" in r.network.args
    assert result.unknown_keys == []


def test_legacy_network_weights_key_is_renamed_even_when_empty(tmp_path: Path) -> None:
    # kohya_gui/common_gui.py update_my_data: `if value is not None: my_data["network_weights"] = value`, so an
    # empty legacy key clears network_weights too, and a legacy value wins over a network_weights beside it.
    result = import_gui_json(_write(tmp_path, {"lora_network_weights": "", "network_weights": "x.safetensors"}))
    assert result.recipe.network.weights is None and result.unknown_keys == []
    assert 'lora_network_weights: renamed to network_weights, replacing its "x.safetensors"' in "\n".join(
        result.repairs
    )
    result = import_gui_json(_write(tmp_path, {"lora_network_weights": None, "network_weights": "x.safetensors"}))
    assert result.recipe.network.weights == "x.safetensors" and result.unknown_keys == ["lora_network_weights"]


def test_windows_paths_are_kept_as_given(tmp_path: Path) -> None:
    data = _load(RESAVED)
    data.update(
        train_data_dir=r"C:\lora\img",
        output_dir=r"D:\out\model",
        logging_dir=r"D:\out\log",
        pretrained_model_name_or_path=r"C:\models\v1-5-pruned.safetensors",
        vae=r"C:\vae\ft.safetensors",
    )
    r = import_gui_json(_write(tmp_path, data)).recipe
    assert r.model.base == r"C:\models\v1-5-pruned.safetensors" and r.model.vae == r"C:\vae\ft.safetensors"
    out = recipe_to_gui_json(r)
    assert (out["train_data_dir"], out["output_dir"], out["logging_dir"]) == (
        r"C:\lora\img",
        r"D:\out\model",
        r"D:\out\log",
    )


def test_subject_and_repeats_come_from_the_image_folder(tmp_path: Path) -> None:
    sub = tmp_path / "img" / "12_Zelda woman"
    sub.mkdir(parents=True)
    (sub / "a.png").write_bytes(b"")
    data = _load(RESAVED)
    data["train_data_dir"] = "img"  # relative: looked up next to the JSON file
    r = import_gui_json(_write(tmp_path, data)).recipe
    assert (r.subject.trigger, r.subject.class_token, r.dataset.repeats) == ("Zelda", "woman", 12)
    assert r.dataset.images == str(sub)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "config.json: invalid JSON: Expecting property name enclosed in double quotes: line 1"),
        ("[1, 2]", "config.json: is a list, not a JSON object of GUI settings"),
        ('"text"', "config.json: is a string, not a JSON object"),
        ('{"learning_rate": NaN}', "config.json: invalid JSON: NaN is not a JSON number"),
        ('{"cache_latents": "false"}', 'config.json: cache_latents: must be true or false, not "false"'),
        ('{"save_every_n_steps": "100"}', 'config.json: save_every_n_steps: must be a whole number, not "100"'),
        ('{"epoch": [4]}', "config.json: epoch: must be a number, not [4] (the GUI crashes on it)"),
        ('{"LoRA_type": "LoRA-XL"}', 'config.json: LoRA_type: "LoRA-XL" is not a LoRA type of the GUI'),
        ('{"LoRA_type": "Flux1"}', "config.json: LoRA_type: 'Flux1' trains a model family kohya-recipe does not"),
        ('{"flux1_checkbox": true}', "config.json: flux1_checkbox: Flux.1 training is not supported"),
        (
            '{"train_batch_size": 100}',
            "config.json: train_batch_size: 100 is outside the GUI's range 1..64; the GUI says "
            '"train_batch_size: Value 100 is greater than maximum value 64."',
        ),
        ('{"network_dim": 0}', 'the GUI says "network_dim: Value 0 is less than minimum value 1."'),
        (
            '{"optimizer_args": "--optimizer_args decouple = True"}',
            "optimizer_args: '--optimizer_args' is not key=value (no spaces around '='); the GUI says "
            "\"'--optimizer_args decouple = True' is not a valid settings string.\"",
        ),
        ('{"lr_scheduler": "cosine_annealing"}', 'config.json: lr_scheduler: "cosine_annealing" is not one of'),
        ('{"max_resolution": "big"}', "config.json: max_resolution: \"big\" is not 'W,H' or 'N'"),
        (
            '{"train_batch_size": 4, "optimizer_args": "relative_step=false", "optimizer": "Adafactor"}',
            "config.json: optimizer_args: 'relative_step=false': value is not a Python literal (write False)",
        ),
    ],
)
def test_bad_input_is_one_line_naming_file_and_key(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GuiConfigError) as info:
        import_gui_json(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)) and words.split(": ", 1)[-1] in message


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(GuiConfigError, match="file not found"):
        import_gui_json(tmp_path / "nope.json")
    with pytest.raises(GuiConfigError, match="is a folder"):
        import_gui_json(tmp_path)


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    with pytest.raises(GuiConfigError, match="not a regular file"):
        import_gui_json(fifo)  # reading would block until a writer came


def test_sample_prompts_are_read_as_sd_scripts_reads_them(tmp_path: Path) -> None:
    # sd-scripts matches prompt options case-insensitively (library/train_util.py line_to_prompt_dict): --W 640
    # sets the width. A per-prompt sampler is read too, but a recipe prompt cannot hold one: it is reported.
    data = {**_load(RESAVED), "sample_prompts": "a cat --W 640 --H 512 --S 20 --ss k_euler --N ugly --zz 1"}
    result = import_gui_json(_write(tmp_path, data))
    prompt = result.recipe.samples.prompts[0]
    assert (prompt.prompt, prompt.width, prompt.height, prompt.steps, prompt.negative) == (
        "a cat",
        640,
        512,
        20,
        "ugly",
    )
    (lost,) = [w for w in result.warnings if w.startswith("sample_prompts:")]
    assert "--zz 1" in lost and "--ss k_euler" in lost


# ---- the command ----------------------------------------------------------------------------------------------


def test_cli_import_writes_the_recipe_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "recipe.toml"
    src = DATA / "sd15 - EDG_LoraOptiSettings.json"
    res = CliRunner().invoke(cli, ["import", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert f"Wrote {out} from {src}" in res.stdout
    assert 'seed: "1234" read as 1234' in res.stderr
    assert "Unknown keys (the GUI ignores them): conv_alphas, conv_dims, no_token_padding" in res.stderr
    assert "Warning: mem_eff_attn:" in res.stderr
    recipe = recipe_from_dict(tomllib.loads(out.read_text(encoding="utf-8")), source=str(out))
    assert recipe.training.batch_size == 3


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the real entry point (which turns errors into `Error: ...` and an exit code)."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_cli_import_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "recipe.toml"
    out.write_text("mine", encoding="utf-8")
    code, _, err = _main(capsys, "import", str(RESAVED), "-o", str(out))
    assert code == 1
    assert err == f"Error: {out}: already exists (use --force to overwrite)\n"
    assert out.read_text(encoding="utf-8") == "mine"
    res = CliRunner().invoke(cli, ["import", str(RESAVED), "-o", str(out), "--force"])
    assert res.exit_code == 0 and "[gui]" in out.read_text(encoding="utf-8")


def test_cli_import_json_and_stdout(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["import", str(DATA / "locon-Adafactor.json"), "--json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["unknown_keys"] == [] and data["written"] is None
    assert "lora_network_weights: renamed to network_weights" in data["repairs"]
    assert data["recipe"]["network"]["args"][:2] == ["conv_dim=16", "conv_alpha=8"]
    res = CliRunner().invoke(cli, ["import", str(RESAVED)])
    assert res.exit_code == 0 and res.stdout.startswith("# Imported by kohya-recipe")
    assert tomllib.loads(res.stdout)["training"]["batch_size"] == 4


def test_cli_import_bad_input_exits_1_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, {"LoRA_type": "Nope"})
    code, out, err = _main(capsys, "import", str(path))
    assert code == 1 and out == ""
    assert err.startswith(f'Error: {path}: LoRA_type: "Nope" is not a LoRA type of the GUI')
    assert err.count("\n") == 1 and "Traceback" not in err
    code, _, err = _main(capsys, "import", str(tmp_path / "missing.json"))
    assert (code, err) == (1, f"Error: {tmp_path / 'missing.json'}: file not found\n")
