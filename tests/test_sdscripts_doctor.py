"""`doctor`: the installed sd-scripts' options (from its own --help) against the bundled spec.

The "installs" are copies of tests/fake_sd_scripts, whose argparse options come from library/train_options.json;
editing that file makes an older or newer sd-scripts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from _train_util import FAKE_SD_SCRIPTS, fake_env, make_project

from kohya_recipe.errors import ExitCode
from kohya_recipe.train.doctor import bundled_options, cache_dir, doctor, format_doctor, parse_help
from kohya_recipe.train.launch import TrainerSetupError
from tests._cli_util import run_cli


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake_env(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def _install(tmp_path: Path, edit=None) -> Path:
    """A copy of the fake sd-scripts; ``edit(options: list[dict])`` changes its argparse options."""
    sd = tmp_path / "sd-scripts"
    shutil.copytree(FAKE_SD_SCRIPTS, sd, ignore=shutil.ignore_patterns("site", "__pycache__"))
    if edit is not None:
        spec_file = sd / "library" / "train_options.json"
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        edit(spec["options"])
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
    return sd


def test_parse_help_reads_argparse_output() -> None:
    parser = argparse.ArgumentParser(prog="train_network.py")
    parser.add_argument("--v2", action="store_true", help="load Stable Diffusion v2.0 model")
    parser.add_argument("--console_log_level", choices=["DEBUG", "INFO", "WARNING"], help="Set the logging level")
    parser.add_argument("--save_precision", choices=[None, "float", "fp16"], help="precision in saving")
    parser.add_argument("--network_args", nargs="*", help="additional arguments for network (key=value)")
    parser.add_argument("--learning_rate", type=float, help="--not_an_option mentioned in the help text\n" * 3)
    parser.add_argument("-x", "--with-dashes", help="short and long")
    text = parser.format_help()
    assert parse_help(text) == {
        "v2": None,
        "console_log_level": ["DEBUG", "INFO", "WARNING"],
        "save_precision": ["None", "float", "fp16"],
        "network_args": None,
        "learning_rate": None,
        "with-dashes": None,
    }


def test_same_install_as_the_spec_and_the_cache(env: Path) -> None:
    first = doctor(sd_scripts=FAKE_SD_SCRIPTS, python=sys.executable)
    assert (first.missing, first.new, first.choices_changed) == ([], [], {})
    assert first.installed_options == first.bundled_options == 193 and not first.cached
    cached = list(cache_dir().glob("*.json"))
    assert len(cached) == 1 and cache_dir() == env / "cache" / "kohya-recipe" / "doctor"
    second = doctor(sd_scripts=FAKE_SD_SCRIPTS, python=sys.executable)
    assert second.cached and second.installed_options == 193
    assert "same options as the bundled spec" in format_doctor(second).splitlines()


def test_older_and_newer_install(env: Path) -> None:
    def edit(options: list[dict]) -> None:
        options[:] = [o for o in options if o["dest"] not in ("validation_split", "sdpa")]
        options.append(
            {
                "name": "--fancy_new_option",
                "dest": "fancy_new_option",
                "type": "bool_flag",
                "item_type": None,
                "default": False,
                "choices": None,
                "nargs": 0,
            }
        )
        for o in options:
            if o["dest"] == "sample_sampler":
                o["choices"] = [*o["choices"], "flow_euler"]

    sd = _install(env, edit)
    report = doctor(sd_scripts=sd, python=sys.executable)
    assert report.missing == ["sdpa", "validation_split"]
    assert report.new == ["fancy_new_option"]
    spec = bundled_options()["sample_sampler"]
    assert spec is not None
    assert report.choices_changed == {"sample_sampler": {"bundled": spec, "installed": [*spec, "flow_euler"]}}
    lines = format_doctor(report).splitlines()
    assert any(line.startswith("missing here (2;") and line.endswith("sdpa, validation_split") for line in lines)
    assert any(line.startswith("new here (1;") and line.endswith("fancy_new_option") for line in lines)


def test_project_options_missing_from_the_install_fail_the_cli(env: Path) -> None:
    sd = _install(env, lambda options: options.remove(next(o for o in options if o["dest"] == "sdpa")))
    root = make_project(env)
    code, out, err = run_cli("doctor", root, "--sd-scripts", sd, "--python", sys.executable)
    assert code == ExitCode.ERROR
    assert f"{root / 'config.toml'}: uses 1 option(s) this sd-scripts lacks: sdpa" in out
    assert err == (
        f"Error: this sd-scripts lacks 1 option(s) that {root / 'config.toml'} uses: sdpa; update sd-scripts "
        "(git pull) or remove them from the recipe\n"
    )
    code, out, err = run_cli("doctor", root, "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable, "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["used_missing"] == [] and data["config_file"] == str(root / "config.toml")


def test_cache_follows_file_times_and_refresh(env: Path) -> None:
    sd = _install(env)
    assert not doctor(sd_scripts=sd, python=sys.executable).cached
    assert doctor(sd_scripts=sd, python=sys.executable).cached
    assert not doctor(sd_scripts=sd, python=sys.executable, refresh=True).cached
    lib = sd / "library" / "fake_trainer.py"
    st = lib.stat()
    os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a `git pull` touched library/
    assert not doctor(sd_scripts=sd, python=sys.executable).cached


def test_unwritable_cache_is_not_an_error(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (env / "cachefile").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(env / "cachefile"))
    for _ in range(2):
        report = doctor(sd_scripts=FAKE_SD_SCRIPTS, python=sys.executable)
        assert report.installed_options == 193 and not report.cached


def test_help_that_fails_names_the_error(env: Path) -> None:
    sd = _install(env)
    (sd / "train_network.py").write_text("import torch_that_is_missing\n")
    with pytest.raises(TrainerSetupError) as exc:
        doctor(sd_scripts=sd, python=sys.executable)
    assert str(exc.value) == (
        f"{sys.executable}: `train_network.py --help` failed (exit 1): ModuleNotFoundError: No module named "
        "'torch_that_is_missing'"
    )


def test_sdxl_script_includes_its_extra_options(env: Path) -> None:
    report = doctor(sd_scripts=FAKE_SD_SCRIPTS, python=sys.executable, script="sdxl_train_network.py")
    assert report.installed_options == report.bundled_options == 196 and report.missing == [] and report.new == []
    code, out, _ = run_cli("doctor", "--sdxl", "--sd-scripts", FAKE_SD_SCRIPTS, "--python", sys.executable)
    assert code == 0 and "sdxl_train_network.py: 196 options (cached)" in out


def test_train_warns_from_a_cached_doctor_answer(env: Path) -> None:
    from kohya_recipe.train.display import EpochLines
    from kohya_recipe.train.doctor import cached_unknown_keys
    from kohya_recipe.train.run import train_project

    sd = _install(env, lambda options: options.remove(next(o for o in options if o["dest"] == "sdpa")))
    root = make_project(env)
    assert cached_unknown_keys(sd, "train_network.py", root / "config.toml") is None  # no doctor run yet
    doctor(sd_scripts=sd, python=sys.executable)
    assert cached_unknown_keys(sd, "train_network.py", root / "config.toml") == ["sdpa"]
    out = io.StringIO()
    record = train_project(root, sd_scripts=sd, python=sys.executable, display=EpochLines(out))
    assert record.ok  # sd-scripts ignores the key silently; train says so first
    assert out.getvalue().splitlines()[0] == (
        "this sd-scripts does not know sdpa (set in config.toml; found by `kohya-recipe doctor`): it will ignore them"
    )
