"""The pure command builder, and the finders for sd-scripts, its version and a Python with accelerate."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from _train_util import FAKE_SD_SCRIPTS, FAKE_SITE, make_project

from kohya_recipe.cli.output import jsonable
from kohya_recipe.errors import ExitCode
from kohya_recipe.render.project import load_project
from kohya_recipe.train.launch import (
    ACCELERATE_MODULE,
    TrainerSetupError,
    build_launch,
    find_python,
    find_sd_scripts,
    has_accelerate,
    python_candidates,
    sd_scripts_version,
)

REAL_ACCELERATE = importlib.util.find_spec("accelerate") is not None


def test_build_launch_argv_env_cwd(tmp_path: Path) -> None:
    project = load_project(make_project(tmp_path))
    cmd = build_launch(project, "/opt/sd-scripts", "/venv/bin/python", base_env={"PATH": "/bin", "HF_TOKEN": "s"})
    assert cmd.argv == [
        "/venv/bin/python",
        "-m",
        ACCELERATE_MODULE,
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "fp16",
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        "2",
        "/opt/sd-scripts/train_network.py",
        "--config_file",
        "config.toml",
        "--dataset_config",
        "dataset.toml",
    ]
    assert cmd.cwd == project.root
    assert cmd.env_overrides == {
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "COLUMNS": "200",
        "PYTHONPATH": "/opt/sd-scripts",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    # the child gets the caller's environment plus the overrides; the record keeps only the overrides
    assert cmd.env["PATH"] == "/bin" and cmd.env["HF_TOKEN"] == "s" and cmd.env["COLUMNS"] == "200"
    assert "HF_TOKEN" not in json.dumps(jsonable(cmd))  # the full environment is never in JSON
    assert cmd.shell().startswith("/venv/bin/python -m accelerate.commands.launch --num_processes 1")


def test_build_launch_keeps_pythonpath_and_user_tf_level(tmp_path: Path) -> None:
    project = load_project(make_project(tmp_path))
    env = {"PYTHONPATH": "/extra", "TF_CPP_MIN_LOG_LEVEL": "0"}
    cmd = build_launch(project, "/sd", "python", base_env=env)
    assert cmd.env["PYTHONPATH"] == os.pathsep.join(["/sd", "/extra"])
    assert cmd.env["TF_CPP_MIN_LOG_LEVEL"] == "0" and "TF_CPP_MIN_LOG_LEVEL" not in cmd.env_overrides


def test_build_launch_sdxl_multi_gpu_and_resume(tmp_path: Path) -> None:
    root = make_project(
        tmp_path,
        preset="likeness-sdxl",
        model={"base": "models/sdxl", "family": "sdxl"},
        training={"mixed_precision": "bf16", "resolution": [1024, 1024], "max_bucket_reso": 2048},
        accelerate={"num_processes": 2, "gpu_ids": ["0", "1"], "main_process_port": 29501},
    )
    project = load_project(root)
    cmd = build_launch(project, "/sd", "py", resume_dir=root / "model" / "testchar-1-A-000002-state", base_env={})
    i = cmd.argv.index("/sd/sdxl_train_network.py")
    assert cmd.argv[3:i] == [
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "bf16",
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        "2",
        "--multi_gpu",
        "--gpu_ids",
        "0,1",
        "--main_process_port",
        "29501",
    ]
    # a state folder inside the project is passed relative to the cwd, like the real resume run did
    assert cmd.argv[i + 1 :] == [
        "--config_file",
        "config.toml",
        "--dataset_config",
        "dataset.toml",
        "--resume",
        "model/testchar-1-A-000002-state",
    ]


def test_build_launch_is_pure(tmp_path: Path) -> None:
    project = load_project(make_project(tmp_path))
    a = build_launch(project, "/sd", "py", base_env={"X": "1"})
    b = build_launch(project, "/sd", "py", base_env={"X": "1"})
    assert a == b and not (tmp_path / "sd").exists()


# ---------------------------------------------------------------------------------------------------------------
# finding sd-scripts


def _sd(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "train_network.py").write_text("# sd-scripts\n")
    return path


def test_find_sd_scripts_explicit_env_and_kohya_ss(tmp_path: Path) -> None:
    a, b, c = _sd(tmp_path / "a"), _sd(tmp_path / "b"), _sd(tmp_path / "kohya_ss" / "sd-scripts")
    env = {"KOHYA_RECIPE_SD_SCRIPTS": str(a), "SD_SCRIPTS": str(b), "KOHYA_SS_DIR": str(c.parent)}
    assert find_sd_scripts(b, environ=env) == b.resolve()
    assert find_sd_scripts(environ=env) == a.resolve()
    assert find_sd_scripts(environ={"SD_SCRIPTS": str(b)}) == b.resolve()
    assert find_sd_scripts(environ={"KOHYA_SS_DIR": str(c.parent)}) == c.resolve()
    assert find_sd_scripts(environ={}, cwd=tmp_path) == c.resolve()  # ./kohya_ss/sd-scripts


def test_find_sd_scripts_configured_but_wrong_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "kohya_ss" / "sd-scripts"
    empty.mkdir(parents=True)
    with pytest.raises(TrainerSetupError) as exc:
        find_sd_scripts(environ={"KOHYA_SS_DIR": str(empty.parent)})
    assert str(exc.value) == (
        f"$KOHYA_SS_DIR/sd-scripts {empty}: folder is empty (in a kohya_ss install run "
        "`git submodule update --init --recursive`)"
    )
    assert exc.value.exit_code == ExitCode.ERROR
    with pytest.raises(TrainerSetupError, match=r"^--sd-scripts .*nope: folder does not exist$"):
        find_sd_scripts(tmp_path / "nope", environ={})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "README.md").write_text("x")
    with pytest.raises(TrainerSetupError, match=r"^\$SD_SCRIPTS .*other: no train_network.py in it"):
        find_sd_scripts(environ={"SD_SCRIPTS": str(tmp_path / "other")})


def test_find_sd_scripts_nothing_found_names_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(TrainerSetupError) as exc:
        find_sd_scripts(environ={}, cwd=tmp_path)
    assert str(exc.value) == (
        "sd-scripts not found; looked at $KOHYA_RECIPE_SD_SCRIPTS (unset), $SD_SCRIPTS (unset), "
        "$KOHYA_SS_DIR/sd-scripts (unset), ./kohya_ss/sd-scripts (not found), ./sd-scripts (not found). "
        "Pass --sd-scripts DIR or set KOHYA_RECIPE_SD_SCRIPTS to the folder holding train_network.py"
    )


# ---------------------------------------------------------------------------------------------------------------
# sd-scripts version from .git


COMMIT = "48d368fa557731ad0488c07304dfeba8c07910eb"


def test_version_from_branch_ref_and_packed_annotated_tag(tmp_path: Path) -> None:
    sd = _sd(tmp_path / "sd-scripts")
    git = sd / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(COMMIT + "\n")
    (git / "packed-refs").write_text(
        "# pack-refs with: peeled fully-peeled sorted\n"
        f"{'1' * 40} refs/tags/v0.10.1\n^{COMMIT}\n{'2' * 40} refs/tags/v0.9.1\n"
    )
    assert sd_scripts_version(sd) == {"commit": COMMIT, "ref": "refs/heads/main", "tag": "v0.10.1"}


def test_version_of_a_kohya_ss_submodule_detached_head(tmp_path: Path) -> None:
    # kohya_ss keeps sd-scripts as a git submodule: .git is a file pointing into the parent's .git/modules
    sd = _sd(tmp_path / "kohya_ss" / "sd-scripts")
    modules = tmp_path / "kohya_ss" / ".git" / "modules" / "sd-scripts"
    (modules / "refs" / "tags").mkdir(parents=True)
    (modules / "HEAD").write_text(COMMIT + "\n")
    (modules / "refs" / "tags" / "v0.10.1").write_text(COMMIT + "\n")
    (sd / ".git").write_text("gitdir: ../.git/modules/sd-scripts\n")
    assert sd_scripts_version(sd) == {"commit": COMMIT, "ref": None, "tag": "v0.10.1"}


def test_version_without_git_and_with_a_packed_branch(tmp_path: Path) -> None:
    sd = _sd(tmp_path / "plain")
    assert sd_scripts_version(sd) == {"commit": None, "ref": None, "tag": None}
    git = sd / ".git"
    git.mkdir()
    (git / "HEAD").write_text("ref: refs/heads/dev\n")
    (git / "packed-refs").write_text(f"{COMMIT} refs/heads/dev\n")
    assert sd_scripts_version(sd) == {"commit": COMMIT, "ref": "refs/heads/dev", "tag": None}


# ---------------------------------------------------------------------------------------------------------------
# the Python


def _python_link(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / name
    link.symlink_to(sys.executable)
    return link


@pytest.mark.skipif(REAL_ACCELERATE, reason="the real accelerate is installed in this Python")
def test_find_python_explicit_without_accelerate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with pytest.raises(TrainerSetupError) as exc:
        find_python(sys.executable, sd_scripts=FAKE_SD_SCRIPTS)
    assert str(exc.value).startswith(f"--python {sys.executable}: accelerate is not installed for this Python")
    with pytest.raises(TrainerSetupError, match=r"^--python /no/such/python: not found or not executable$"):
        find_python("/no/such/python")


@pytest.mark.skipif(os.name == "nt", reason="POSIX mode bits")
def test_find_python_explicit_file_that_is_not_executable(tmp_path: Path) -> None:
    not_python = tmp_path / "python"
    not_python.write_text("#!/bin/sh\n", encoding="utf-8")
    not_python.chmod(0o644)
    with pytest.raises(TrainerSetupError) as exc:
        find_python(str(not_python), sd_scripts=FAKE_SD_SCRIPTS)
    assert str(exc.value) == f"--python {not_python}: not executable (is it a Python interpreter?)"


@pytest.mark.skipif(REAL_ACCELERATE, reason="the real accelerate is installed in this Python")
def test_find_python_none_has_accelerate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    bindir = tmp_path / "bin"
    py = _python_link(bindir, "python3")
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(TrainerSetupError) as exc:
        find_python(sd_scripts=FAKE_SD_SCRIPTS)
    assert str(exc.value) == (
        f"no Python with accelerate found (tried {py}, {sys.executable}); install sd-scripts' requirements "
        "(pip install -r requirements.txt in sd-scripts) or pass --python /path/to/venv/bin/python"
    )


def test_find_python_with_accelerate_on_pythonpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(FAKE_SITE))
    bindir = tmp_path / "bin"
    py = _python_link(bindir, "python")
    monkeypatch.setenv("PATH", str(bindir))
    assert find_python(sd_scripts=FAKE_SD_SCRIPTS) == str(py)
    assert find_python(sys.executable, sd_scripts=FAKE_SD_SCRIPTS) == sys.executable
    assert has_accelerate(sys.executable, str(FAKE_SITE))


def test_python_candidates_include_the_kohya_ss_venv(tmp_path: Path) -> None:
    sd = _sd(tmp_path / "kohya_ss" / "sd-scripts")
    venv_py = tmp_path / "kohya_ss" / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    venv_py.parent.mkdir(parents=True)
    venv_py.write_text("")
    bindir = tmp_path / "bin"
    py = _python_link(bindir, "python")
    found = python_candidates(sd, environ={"PATH": str(bindir)})
    assert found[:2] == [str(py), str(venv_py)]
    assert found[-1] == sys.executable
