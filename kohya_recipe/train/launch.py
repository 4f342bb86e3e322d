"""Find sd-scripts and a Python that has accelerate, and build the training command (argv + env + cwd).

:func:`build_launch` is pure, like accelerate's ``prepare_simple_launcher_cmd_env``: it only assembles the
command; :mod:`kohya_recipe.train.runner` executes it. The finders look at the file system and, for the Python, run a
tiny check in a subprocess.

**Why ``<python> -m accelerate.commands.launch`` and not the ``accelerate`` script.** ``accelerate launch`` runs
the training script with *its own* interpreter (``simple_launcher`` uses ``sys.executable``), so the launcher
must come from the environment that has torch and sd-scripts' requirements. Asking that Python for the module
guarantees it: no dependence on PATH order or an activated venv, no ``accelerate`` console script whose shebang
still points into a venv that was moved or copied (common with rented-GPU images), and no ``accelerate.exe``
wrapper quirks on Windows. ``accelerate/commands/launch.py`` ends with ``if __name__ == "__main__": main()`` and
accepts exactly the flags of ``accelerate launch``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kohya_recipe.errors import ExitCode, KohyaRecipeError, TrainerError
from kohya_recipe.files import read_text

ACCELERATE_MODULE = "accelerate.commands.launch"
#: Environment variables naming an sd-scripts checkout, in order of preference.
SD_SCRIPTS_ENV_VARS = ("KOHYA_RECIPE_SD_SCRIPTS", "SD_SCRIPTS")
#: Environment variable naming a kohya_ss install; its ``sd-scripts/`` folder (a git submodule) is used.
KOHYA_SS_ENV_VAR = "KOHYA_SS_DIR"
#: Folders tried relative to the current directory when nothing is configured.
LOCAL_CANDIDATES = ("kohya_ss/sd-scripts", "sd-scripts")

# rich wraps log records at the console width, 80 columns when not a TTY (sd-scripts' library/utils.py
# setup_logging logs through a RichHandler on stderr): a long ERROR such as "No data found ..." would be cut
# across lines. tqdm's bar is not affected.
LOG_COLUMNS = "200"


class TrainerSetupError(TrainerError):
    """Nothing was launched (exit 1, not 4): the trainer is missing, or this project cannot be trained as it is
    (locked by another ``train``, nothing to resume, log folder not writable)."""

    exit_code = ExitCode.ERROR


class TrainerNotFound(TrainerSetupError):
    """sd-scripts, the Python or accelerate could not be found or started: every project would fail the same way
    (a queue stops instead of failing each entry)."""


class ProjectLike(Protocol):
    """What the builder reads from :class:`kohya_recipe.render.project.Project`."""

    @property
    def root(self) -> Path: ...

    @property
    def recipe(self) -> Any: ...

    @property
    def script_name(self) -> str: ...


@dataclass(frozen=True)
class LaunchCommand:
    """A ready-to-run training command."""

    argv: list[str]
    # The complete environment for the child. Never in JSON: it may hold tokens (HF_TOKEN, WANDB_API_KEY) that
    # must not end up in run records; ``env_overrides`` is what we set on top of the caller's environment.
    env: dict[str, str] = field(metadata={"json": False})
    cwd: Path
    env_overrides: dict[str, str] = field(default_factory=dict)

    def shell(self) -> str:
        """The command, shell-quoted (``--dry-run``)."""
        return shlex.join(self.argv)


# ---------------------------------------------------------------------------------------------------------------
# sd-scripts


def _is_sd_scripts(path: Path) -> bool:
    return (path / "train_network.py").is_file()


def _not_sd_scripts(path: Path, origin: str) -> TrainerNotFound:
    if not path.exists():
        why = "folder does not exist"
    elif not path.is_dir():
        why = "not a folder"
    elif not any(path.iterdir()):
        # kohya_ss checks sd-scripts out as a git submodule; a clone without --recursive leaves it empty
        why = "folder is empty (in a kohya_ss install run `git submodule update --init --recursive`)"
    else:
        why = "no train_network.py in it (is it a kohya-ss/sd-scripts checkout?)"
    return TrainerNotFound(f"{why}", source=f"{origin} {path}")


def find_sd_scripts(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Path:
    """The sd-scripts folder: ``explicit`` (``--sd-scripts``), ``$KOHYA_RECIPE_SD_SCRIPTS``, ``$SD_SCRIPTS``,
    ``$KOHYA_SS_DIR/sd-scripts``, then ``./kohya_ss/sd-scripts`` and ``./sd-scripts``.

    A location the user configured but that holds no ``train_network.py`` is an error (not skipped), so a typo
    is not silently replaced by another checkout.
    """
    env = os.environ if environ is None else environ
    base = Path(cwd) if cwd is not None else Path.cwd()
    if explicit:
        path = Path(explicit).expanduser()
        if not _is_sd_scripts(path):
            raise _not_sd_scripts(path, "--sd-scripts")
        return path.resolve()
    tried: list[str] = []
    for var in SD_SCRIPTS_ENV_VARS:
        value = env.get(var)
        if value:
            path = Path(value).expanduser()
            if not _is_sd_scripts(path):
                raise _not_sd_scripts(path, f"${var}")
            return path.resolve()
        tried.append(f"${var} (unset)")
    kohya = env.get(KOHYA_SS_ENV_VAR)
    if kohya:
        path = Path(kohya).expanduser() / "sd-scripts"
        if not _is_sd_scripts(path):
            raise _not_sd_scripts(path, f"${KOHYA_SS_ENV_VAR}/sd-scripts")
        return path.resolve()
    tried.append(f"${KOHYA_SS_ENV_VAR}/sd-scripts (unset)")
    for rel in LOCAL_CANDIDATES:
        path = base / rel
        if _is_sd_scripts(path):
            return path.resolve()
        tried.append(f"./{rel} (not found)")
    raise TrainerNotFound(
        f"sd-scripts not found; looked at {', '.join(tried)}. "
        "Pass --sd-scripts DIR or set KOHYA_RECIPE_SD_SCRIPTS to the folder holding train_network.py"
    )


def _git_text(path: Path) -> str:
    """A small file of ``.git`` as stripped text; ``OSError`` unless it is a readable regular file (a FIFO named
    ``HEAD`` must not block ``train``)."""
    try:
        return read_text(path).strip()
    except KohyaRecipeError as exc:
        raise OSError(str(exc)) from None


def sd_scripts_version(sd_scripts: Path) -> dict[str, str | None]:
    """The checkout's commit, branch ref and exact tag, read from ``.git`` without running git.

    Handles a ``.git`` *file* (``gitdir: ...``): kohya_ss keeps sd-scripts as a submodule, whose HEAD is usually
    detached at the pinned commit. Any missing piece is ``None``; this never raises.
    """
    info: dict[str, str | None] = {"commit": None, "ref": None, "tag": None}
    try:
        git = sd_scripts / ".git"
        if git.is_file():
            text = _git_text(git)
            if not text.startswith("gitdir:"):
                return info
            git = (sd_scripts / text[len("gitdir:") :].strip()).resolve()
        if not git.is_dir():
            return info
        common = git
        if (git / "commondir").is_file():  # a linked worktree keeps refs in the main repository
            common = (git / _git_text(git / "commondir")).resolve()
        head = _git_text(git / "HEAD")
        packed = _packed_refs(common)
        if head.startswith("ref:"):
            ref = head[4:].strip()
            info["ref"] = ref
            loose = common / ref
            info["commit"] = _git_text(loose) if loose.is_file() else packed.get(ref)
        elif len(head) >= 40:
            info["commit"] = head[:40]
        commit = info["commit"]
        if commit:
            info["tag"] = _tag_for(common, packed, commit)
    except (OSError, UnicodeDecodeError):
        pass
    return info


def _packed_refs(git: Path) -> dict[str, str]:
    """ref -> commit; for an annotated tag the peeled commit (``^<sha>`` line) wins."""
    refs: dict[str, str] = {}
    path = git / "packed-refs"
    if not path.is_file():
        return refs
    last = None
    for line in _git_text(path).splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("^") and last:
            refs[last] = line[1:].strip()
            continue
        sha, _, ref = line.partition(" ")
        refs[ref.strip()] = sha
        last = ref.strip()
    return refs


def _tag_for(git: Path, packed: dict[str, str], commit: str) -> str | None:
    prefix = "refs/tags/"
    tags = sorted(ref[len(prefix) :] for ref, sha in packed.items() if ref.startswith(prefix) and sha == commit)
    tag_dir = git / "refs" / "tags"
    if tag_dir.is_dir():
        for p in sorted(tag_dir.rglob("*")):
            if p.is_file() and _git_text(p) == commit:
                tags.append(p.relative_to(tag_dir).as_posix())
    return tags[-1] if tags else None


# ---------------------------------------------------------------------------------------------------------------
# Python with accelerate

# find_spec does not import the package: `import accelerate` would pull in torch, seconds per check.
_CHECK = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('accelerate') else 3)"
_accelerate_cache: dict[tuple[str, str], bool] = {}


def launch_pythonpath(sd_scripts: Path, environ: Mapping[str, str] | None = None) -> str:
    """``<sd-scripts>[:$PYTHONPATH]`` — what the kohya_ss GUI's ``setup_environment`` sets, so sd-scripts'
    ``library`` package imports even when sd-scripts was not ``pip install -e .``-ed."""
    env = os.environ if environ is None else environ
    existing = env.get("PYTHONPATH", "")
    return os.pathsep.join([str(sd_scripts), *([existing] if existing else [])])


def has_accelerate(python: str, pythonpath: str = "") -> bool:
    """Whether ``python`` can import accelerate (with ``pythonpath``); cached per process."""
    key = (python, pythonpath)
    if key not in _accelerate_cache:
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        else:
            env.pop("PYTHONPATH", None)
        try:
            proc = subprocess.run(
                [python, "-c", _CHECK],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                check=False,
            )
            _accelerate_cache[key] = proc.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _accelerate_cache[key] = False
    return _accelerate_cache[key]


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def python_candidates(sd_scripts: Path | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Pythons to try, in order: ``python`` and ``python3`` on PATH (an activated venv comes first there), the
    venv of a kohya_ss install (``kohya_ss/venv``, next to ``sd-scripts/``) or of sd-scripts itself, then the
    Python running kohya-recipe."""
    env = os.environ if environ is None else environ
    path = env.get("PATH", os.defpath)
    found: list[str] = []
    for name in ("python", "python3"):
        hit = shutil.which(name, path=path)
        if hit:
            found.append(hit)
    if sd_scripts is not None:
        for venv in (sd_scripts.parent / "venv", sd_scripts / "venv", sd_scripts / ".venv"):
            py = _venv_python(venv)
            if py.is_file():
                found.append(str(py))
    if sys.executable:
        found.append(sys.executable)
    unique: list[str] = []
    for item in found:
        if item not in unique:
            unique.append(item)
    return unique


def find_python(
    explicit: str | None = None,
    *,
    sd_scripts: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The Python to train with: ``explicit`` (``--python``) if it has accelerate, else the first candidate of
    :func:`python_candidates` that has it."""
    pythonpath = launch_pythonpath(sd_scripts, environ) if sd_scripts is not None else ""
    if explicit:
        hit = shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
        if hit is None:
            raise TrainerNotFound("not found or not executable", source=f"--python {explicit}")
        if not Path(hit).is_file():
            raise TrainerNotFound("not a file (is it a Python interpreter?)", source=f"--python {hit}")
        if not os.access(hit, os.X_OK):
            # a file that is not executable (a copied venv without its mode bits, a typo pointing at a script):
            # saying "accelerate is not installed" would send the user in the wrong direction
            raise TrainerNotFound("not executable (is it a Python interpreter?)", source=f"--python {hit}")
        if not has_accelerate(hit, pythonpath):
            raise TrainerNotFound(
                "accelerate is not installed for this Python; install sd-scripts' requirements into it "
                "(pip install -r requirements.txt in sd-scripts) or pass the venv's python",
                source=f"--python {hit}",
            )
        return hit
    candidates = python_candidates(sd_scripts, environ)
    for python in candidates:
        if has_accelerate(python, pythonpath):
            return python
    tried = ", ".join(candidates) or "none on PATH"
    raise TrainerNotFound(
        f"no Python with accelerate found (tried {tried}); install sd-scripts' requirements "
        "(pip install -r requirements.txt in sd-scripts) or pass --python /path/to/venv/bin/python"
    )


# ---------------------------------------------------------------------------------------------------------------
# the command


def build_launch(
    project: ProjectLike,
    sd_scripts: str | os.PathLike[str],
    python: str,
    resume_dir: str | os.PathLike[str] | None = None,
    *,
    base_env: Mapping[str, str] | None = None,
    scheduled: bool = False,
) -> LaunchCommand:
    """The training command for ``project`` (pure: reads nothing from disk).

    ``python -m accelerate.commands.launch --num_processes N --num_machines 1 --mixed_precision X
    --dynamo_backend no --num_cpu_threads_per_process T [--multi_gpu --gpu_ids …] <sd-scripts>/<script>
    --config_file config.toml --dataset_config dataset.toml [--resume <state>]``, run in the project folder
    (the rendered configs use paths relative to it).

    ``scheduled``: a scheduler (Ray) chose the GPUs and set ``CUDA_VISIBLE_DEVICES``; accelerate's ``--gpu_ids``
    would replace that choice (two runs on one GPU), so it is left out, and a multi-GPU run gets a free
    rendezvous port (two runs on one node would both take the default 29500).
    """
    from kohya_recipe.render.command import accelerate_args, script_args

    root = Path(project.root)
    sd = Path(sd_scripts)
    flags = accelerate_args(project.recipe)
    if flags[:2] == ["accelerate", "launch"]:
        flags = flags[2:]
    if scheduled:
        flags = _scheduled_flags(flags, multi_gpu=project.recipe.accelerate.num_processes > 1)
    resume: str | None = None
    if resume_dir is not None:
        resume_path = Path(resume_dir)
        if resume_path.is_absolute():
            try:
                resume = resume_path.relative_to(root).as_posix()
            except ValueError:
                resume = str(resume_path)
        else:
            resume = resume_path.as_posix()
    argv = [python, "-m", ACCELERATE_MODULE, *flags, str(sd / project.script_name), *script_args(resume_dir=resume)]
    source = dict(os.environ if base_env is None else base_env)
    overrides = {
        # stdout is block-buffered when piped: without this, "epoch e/E" and "saving checkpoint:" arrive in
        # one lump at exit instead of live (NetworkTrainer.train prints them with accelerator.print)
        "PYTHONUNBUFFERED": "1",
        # the trainer prints Japanese text; a non-UTF-8 pipe encoding (Windows code pages) would crash it
        "PYTHONIOENCODING": "utf-8",
        "COLUMNS": LOG_COLUMNS,
        "PYTHONPATH": launch_pythonpath(sd, source),
    }
    if "TF_CPP_MIN_LOG_LEVEL" not in source:
        overrides["TF_CPP_MIN_LOG_LEVEL"] = "2"  # as the kohya_ss GUI does: silence TensorFlow's start-up noise
    env = {**source, **overrides}
    return LaunchCommand(argv=argv, env=env, cwd=root, env_overrides=overrides)


def _scheduled_flags(flags: list[str], *, multi_gpu: bool) -> list[str]:
    """``flags`` without ``--gpu_ids``/``--main_process_port`` (and their values), plus a free port when
    ``multi_gpu``."""
    out: list[str] = []
    skip = False
    for flag in flags:
        if skip:
            skip = False
        elif flag in ("--gpu_ids", "--main_process_port"):
            skip = True
        else:
            out.append(flag)
    if multi_gpu:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            out += ["--main_process_port", str(probe.getsockname()[1])]
    return out
