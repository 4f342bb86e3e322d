"""CLI: presets, init, plan, render, build — exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from kohya_recipe.cli import cli, main
from tests._project_util import make_images

SMALL = ["--set", "training.resolution=64", "--set", "training.min_bucket_reso=64"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, standalone_mode=False)


def run_main(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kohya_recipe", *args], capture_output=True, text=True, cwd=cwd)


def test_presets_lists_the_bundled_presets() -> None:
    out = run("presets").output
    assert "likeness-sd15" in out and "likeness-sdxl" in out and "style-sd15" in out
    data = json.loads(run("presets", "--json").output)
    assert [p["name"] for p in data] == ["likeness-sd15", "likeness-sdxl", "style-sd15"]


def test_build_prints_plan_and_command(tmp_path) -> None:
    images = make_images(tmp_path / "imgs", [(64, 64), (64, 64), (64, 80)])
    result = run(
        "build",
        str(images),
        "--preset",
        "likeness-sd15",
        "--trigger",
        "CharacterAI",
        "--class",
        "woman",
        "--out",
        str(tmp_path / "CharacterAI"),
        *SMALL,
    )
    assert "3 images × 10 repeats × 8 epochs / batch 1 = 240 steps" in result.output
    assert (
        "accelerate launch --num_processes 1 --num_machines 1 --mixed_precision fp16 --dynamo_backend no"
        in result.output
    )
    assert "--config_file config.toml --dataset_config dataset.toml" in result.output
    assert (tmp_path / "CharacterAI" / "img" / "10_CharacterAI woman" / "img02.png").exists()


def test_build_json(tmp_path) -> None:
    images = make_images(tmp_path / "imgs", [(64, 64)])
    result = run("build", str(images), "--trigger", "Zed", "--out", str(tmp_path / "p"), "--json", *SMALL)
    data = json.loads(result.output)
    assert data["output_name"] == "Zed-1-A" and data["plan"]["max_train_steps"] == 80
    assert data["command"][:2] == ["accelerate", "launch"]


def test_user_errors_are_one_line_exit_1(tmp_path) -> None:
    images = make_images(tmp_path / "imgs", [(64, 64)])
    cases = [
        (["build", str(images), "--preset", "nope", "--out", str(tmp_path / "p")], "Error: preset: unknown preset"),
        (
            ["build", str(tmp_path / "missing"), "--trigger", "x", "--out", str(tmp_path / "p")],
            "image folder not found",
        ),
        (
            ["build", str(images), "--trigger", "x", "--out", str(tmp_path / "p"), "--set", "output.name=../x"],
            "output.name",
        ),
        (
            ["build", str(images), "--trigger", "x", "--out", str(tmp_path / "p"), "--set", "trainig.x=1"],
            "unknown recipe key",
        ),
    ]
    for args, message in cases:
        proc = run_main(*args)
        assert proc.returncode == 1, proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("Error: ")
    assert not (tmp_path / "p").exists()


def test_init_render_plan_round(tmp_path) -> None:
    images = make_images(tmp_path / "imgs", [(64, 64), (64, 64)])
    recipe = tmp_path / "recipe.toml"
    out = run("init", "--trigger", "CharacterAI", "--images", str(images), "-o", str(recipe)).output
    assert "Wrote" in out and recipe.exists()
    assert "# Article:" in recipe.read_text()
    proc = run_main("init", "-o", str(recipe))
    assert proc.returncode == 1 and "already exists (use --force to overwrite)" in proc.stderr
    rendered = run("render", str(recipe), "--out", str(tmp_path / "p"), *SMALL).output
    assert "Wrote" in rendered
    plan = run("plan", str(tmp_path / "p"), "--json").output
    assert json.loads(plan)["max_train_steps"] == 160
    dry = run("render", str(recipe), "--out", str(tmp_path / "p2"), "--dry-run", *SMALL).output
    assert "write config.toml" in dry and not (tmp_path / "p2").exists()


def test_malformed_recipe_file(tmp_path) -> None:
    bad = tmp_path / "recipe.toml"
    bad.write_text("[training]\nmax_train_epochs = 'eight'\n")
    proc = run_main("render", str(bad), "--out", str(tmp_path / "p"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"Error: {bad}: training.max_train_epochs: must be a number, not the string 'eight'"


def test_main_usage_error_exit_2() -> None:
    proc = run_main("build")
    assert proc.returncode == 2 and "Missing argument" in proc.stderr


def test_main_function_exit_codes(tmp_path, capsys) -> None:
    try:
        main(["plan", str(tmp_path)])
    except SystemExit as exc:
        assert exc.code == 1
    assert "not a kohya-recipe project" in capsys.readouterr().err


def test_render_gui_json_of_an_imported_recipe_keeps_its_folders_and_name(tmp_path) -> None:
    src = Path(__file__).parent / "data" / "gui"
    config = next(src.rglob("Standard-AdamW.resaved-by-current-gui.json"))
    recipe = tmp_path / "recipe.toml"
    assert run_main("import", str(config), "-o", str(recipe)).returncode == 0
    out = tmp_path / "out.json"
    proc = run_main("render", str(recipe), "--gui-json", str(out))
    assert proc.returncode == 0, proc.stderr
    original, rendered = json.loads(config.read_text()), json.loads(out.read_text())
    for key in ("train_data_dir", "output_dir", "logging_dir", "output_name"):
        assert rendered[key] == original[key], key


def test_build_set_model_path_is_relative_to_the_current_folder(tmp_path) -> None:
    # The trainer runs with cwd = the project, so a relative base-model path typed here must be made absolute, or
    # sd-scripts would not find the file and take the string for a hub id (library/train_util.py _load_target_model).
    images = make_images(tmp_path / "imgs", [(64, 64)])
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "sd15.safetensors").write_bytes(b"x")
    proc = run_main(
        "build",
        "imgs",
        "--trigger",
        "Zed",
        "--out",
        "p",
        "--set",
        "model.base=models/sd15.safetensors",
        *SMALL,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    config = (tmp_path / "p" / "config.toml").read_text(encoding="utf-8")
    assert f'pretrained_model_name_or_path = "{(tmp_path / "models" / "sd15.safetensors").resolve()}"' in config
    assert images.is_dir()


def test_build_with_a_trigger_that_cannot_be_a_file_name_says_so(tmp_path) -> None:
    images = make_images(tmp_path / "imgs", [(64, 64)])
    proc = run_main("build", str(images), "--trigger", "😀", "--out", str(tmp_path / "p"), *SMALL)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: --trigger: '😀' has no letters or digits to make the output name")
    assert "Traceback" not in proc.stderr and not (tmp_path / "p").exists()


def test_build_with_a_two_word_trigger_derives_a_file_safe_output_name(tmp_path) -> None:
    images = make_images(tmp_path / "imgs", [(64, 64)])
    proc = run_main(
        "build", str(images), "--trigger", "darius kawasaki", "--class", "man", "--out", str(tmp_path / "p"), *SMALL
    )
    assert proc.returncode == 0, proc.stderr
    assert "output name: darius_kawasaki-1-A" in proc.stdout
    assert (tmp_path / "p" / "img" / "10_darius kawasaki man").is_dir()
    assert (tmp_path / "p" / "darius_kawasaki-1-A.json").is_file()


def test_plan_of_a_recipe_without_images_names_the_file_and_field(tmp_path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('preset = "likeness-sd15"\n[subject]\ntrigger = "Zed"\n', encoding="utf-8")
    proc = run_main("plan", str(recipe))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"Error: {recipe}: dataset.images: no image folder: set dataset.images or pass --images"
    )
