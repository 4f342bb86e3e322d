"""``kohya-recipe doctor``: how does the installed sd-scripts differ from the option spec we render against?

sd-scripts accepts unknown ``--config_file`` keys silently (``library/train_util.py`` ``read_config_from_file``
lifts every key into the argparse namespace), so a recipe written for v0.10.1 that sets ``validation_split``
trains on an older checkout as if the key were not there. The only reliable list of what an install accepts is
its own parser: we run ``<python> train_network.py --help`` once (≈4 s: ``train_network.py`` imports torch and
diffusers before it parses), parse the option lines, and compare them with the bundled spec
(kohya_recipe/data/sd-scripts-train_network-options.json). The answer is cached per sd-scripts folder and the
modification times of the files that define the options, under ``$XDG_CACHE_HOME/kohya-recipe/doctor``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kohya_recipe.errors import KohyaRecipeError
from kohya_recipe.files import atomic_write_bytes, read_json, read_toml
from kohya_recipe.train.launch import (
    TrainerSetupError,
    find_python,
    find_sd_scripts,
    launch_pythonpath,
    sd_scripts_version,
)
from kohya_recipe.train.progress import parse_output

CACHE_VERSION = 1
HELP_TIMEOUT = 600.0  # CUDA builds of torch import slowly; a cold disk cache on a rented GPU even more so

# argparse prints each option's invocation indented by exactly two spaces ("  -h, --help", "  --v2",
# "  --console_log_level {DEBUG,INFO,...}"); help text and its continuation lines are indented further.
_INVOCATION = re.compile(r"^  (-\S.*?)(?:\s{2,}|$)")
_OPTION = re.compile(r"(?:^|,\s)--([A-Za-z0-9][\w-]*)(?:[ =](\{[^}]*\}))?")


def parse_help(text: str) -> dict[str, list[str] | None]:
    """Option name (without ``--``) -> its ``{choices}`` (as strings) or ``None``, from argparse ``--help``."""
    options: dict[str, list[str] | None] = {}
    for line in text.splitlines():
        m = _INVOCATION.match(line)
        if not m:
            continue
        for name, choices in _OPTION.findall(m.group(1)):
            if name == "help":
                continue
            options[name] = choices[1:-1].split(",") if choices else None
    return options


def bundled_options(script: str = "train_network.py") -> dict[str, list[str] | None]:
    """The spec's options for ``script`` in the same shape as :func:`parse_help` (dest = option name: every
    sd-scripts option is spelled like its dest: ``train_network.py`` ``setup_parser`` and the
    ``library/train_util.py`` ``add_*_arguments`` it calls)."""
    from kohya_recipe.sdscripts.options import option_specs

    specs = option_specs(sdxl=script == "sdxl_train_network.py")
    return {dest: [str(c) for c in spec.choices] if spec.choices else None for dest, spec in specs.items()}


def bundled_version() -> str:
    from kohya_recipe.sdscripts.options import spec_version

    return spec_version()


# ---------------------------------------------------------------------------------------------------------------
# cache


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/kohya-recipe/doctor`` (``~/.cache`` when unset; ``%LOCALAPPDATA%`` on Windows)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        base = Path(xdg)
    elif os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path.home() / ".cache"
    return base / "kohya-recipe" / "doctor"


def _cache_key(sd_scripts: Path, script: str) -> str:
    """sd-scripts folder + the mtimes of the script and of library/*.py, where the options are defined: a
    ``git pull`` that touches them gives a new key."""
    stamps = []
    for path in [sd_scripts / script, *sorted((sd_scripts / "library").glob("*.py"))]:
        try:
            stamps.append((path.name, path.stat().st_mtime_ns))
        except OSError:
            continue
    raw = json.dumps([CACHE_VERSION, str(sd_scripts.resolve()), script, stamps])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _read_cache(path: Path) -> dict[str, list[str] | None] | None:
    try:
        data = read_json(path)
        options = data["options"]
        if data.get("version") == CACHE_VERSION and isinstance(options, dict):
            return {str(k): (list(v) if isinstance(v, list) else None) for k, v in options.items()}
    except (KohyaRecipeError, KeyError, TypeError):
        pass
    return None


def _write_cache(path: Path, sd_scripts: Path, script: str, options: dict[str, list[str] | None]) -> None:
    data = {"version": CACHE_VERSION, "sd_scripts": str(sd_scripts), "script": script, "options": options}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # the cache only saves time; an unwritable cache folder must not fail the check


# ---------------------------------------------------------------------------------------------------------------
# running --help


def run_help(python: str, sd_scripts: Path, script: str = "train_network.py") -> str:
    """``<python> <sd-scripts>/<script> --help``'s stdout; a one-line error if it fails."""
    env = dict(os.environ)
    # wide columns: argparse wraps at $COLUMNS; a narrow terminal could fold long choice lists
    env.update({"COLUMNS": "200", "PYTHONIOENCODING": "utf-8", "PYTHONPATH": launch_pythonpath(sd_scripts)})
    argv = [python, str(sd_scripts / script), "--help"]
    try:
        proc = subprocess.run(
            argv,
            cwd=str(sd_scripts),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=HELP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TrainerSetupError(
            f"`{script} --help` did not finish in {HELP_TIMEOUT:.0f} s", source=str(sd_scripts)
        ) from None
    except OSError as exc:
        raise TrainerSetupError(f"cannot run {python}: {exc.strerror or exc}", source=str(sd_scripts)) from None
    if proc.returncode != 0:
        detail = parse_output(proc.stdout, proc.stderr).last_error() or "no error message"
        raise TrainerSetupError(f"`{script} --help` failed (exit {proc.returncode}): {detail}", source=python)
    return proc.stdout.decode("utf-8", "replace")


def installed_options(
    sd_scripts: Path, python: str, script: str = "train_network.py", *, refresh: bool = False
) -> tuple[dict[str, list[str] | None], bool]:
    """The install's options and whether they came from the cache."""
    cache = cache_dir() / f"{_cache_key(sd_scripts, script)}.json"
    if not refresh:
        cached = _read_cache(cache)
        if cached is not None:
            return cached, True
    options = parse_help(run_help(python, sd_scripts, script))
    if not options:
        raise TrainerSetupError(f"`{script} --help` listed no options; is this sd-scripts?", source=str(sd_scripts))
    _write_cache(cache, sd_scripts, script, options)
    return options, False


def cached_unknown_keys(sd_scripts: Path, script: str, config_file: Path) -> list[str] | None:
    """Keys of ``config_file`` that a cached ``doctor`` answer says this sd-scripts lacks; ``None`` when no
    answer is cached (nothing is run: ``train`` uses this as a free pre-flight check)."""
    options = _read_cache(cache_dir() / f"{_cache_key(sd_scripts, script)}.json")
    if options is None:
        return None
    try:
        return sorted(set(config_keys(config_file)) - set(options))
    except KohyaRecipeError:
        return None


# ---------------------------------------------------------------------------------------------------------------
# report


def config_keys(config_file: Path) -> list[str]:
    """The option names a rendered config.toml sets (sections flattened, as read_config_from_file does)."""
    keys: list[str] = []
    for key, value in read_toml(config_file).items():
        keys.extend(value) if isinstance(value, dict) else keys.append(key)
    return keys


@dataclass
class DoctorReport:
    """How the installed sd-scripts' options differ from the bundled spec; its JSON form is ``doctor --json``."""

    sd_scripts: Path
    script: str
    python: str
    version: dict[str, str | None]
    cached: bool
    installed_options: int
    bundled_options: int
    bundled_version: str
    missing: list[str] = field(default_factory=list)  # in the spec, not in this install
    new: list[str] = field(default_factory=list)  # in this install, not in the spec
    choices_changed: dict[str, dict[str, list[str] | None]] = field(default_factory=dict)
    config_file: Path | None = None
    used_missing: list[str] = field(default_factory=list)  # set by the project's config, unknown to this install


def format_doctor(report: DoctorReport) -> str:
    """The report for people: where sd-scripts is, the option counts, and what differs."""
    v = report.version
    where = v.get("tag") or (v.get("commit") or "")[:12] or "no git metadata"
    out = [
        f"sd-scripts: {report.sd_scripts} ({where})",
        f"python:     {report.python}",
        f"{report.script}: {report.installed_options} options"
        + (" (cached)" if report.cached else "")
        + f"; bundled spec: {report.bundled_options} ({report.bundled_version})",
    ]
    if not (report.missing or report.new or report.choices_changed):
        out.append("same options as the bundled spec")
    if report.missing:
        out.append(
            f"missing here ({len(report.missing)}; a recipe using them is silently ignored by this "
            f"sd-scripts): {', '.join(report.missing)}"
        )
    if report.new:
        out.append(
            f"new here ({len(report.new)}; usable through the recipe's [extra] only after kohya-recipe "
            f"knows them): {', '.join(report.new)}"
        )
    for name, change in sorted(report.choices_changed.items()):
        out.append(f"choices of --{name}: spec {change['bundled']}, here {change['installed']}")
    if report.config_file is not None:
        if report.used_missing:
            out.append(
                f"{report.config_file}: uses {len(report.used_missing)} option(s) this sd-scripts lacks: "
                f"{', '.join(report.used_missing)}"
            )
        else:
            out.append(f"{report.config_file}: every option it sets is known to this sd-scripts")
    return "\n".join(out)


def require_used_options(report: DoctorReport) -> None:
    """Raise when the project's config.toml sets options this sd-scripts lacks (it would ignore them silently)."""
    if report.used_missing:
        raise TrainerSetupError(
            f"this sd-scripts lacks {len(report.used_missing)} option(s) that {report.config_file} uses: "
            f"{', '.join(report.used_missing)}; update sd-scripts (git pull) or remove them from the recipe"
        )


def doctor(
    sd_scripts: str | os.PathLike[str] | None = None,
    python: str | None = None,
    project: str | os.PathLike[str] | None = None,
    *,
    script: str | None = None,
    refresh: bool = False,
) -> DoctorReport:
    """Compare the installed sd-scripts' options with the bundled spec (and with ``project``'s config.toml)."""
    proj = None
    if project is not None:
        from kohya_recipe.render.project import load_project

        proj = load_project(Path(project))
    script = script or (proj.script_name if proj is not None else "train_network.py")
    sd = find_sd_scripts(sd_scripts)
    if not (sd / script).is_file():
        raise TrainerSetupError(f"no {script} in this sd-scripts", source=str(sd))
    py = find_python(python, sd_scripts=sd)
    installed, cached = installed_options(sd, py, script, refresh=refresh)
    bundled = bundled_options(script)
    report = DoctorReport(
        sd_scripts=sd,
        script=script,
        python=py,
        version=sd_scripts_version(sd),
        cached=cached,
        installed_options=len(installed),
        bundled_options=len(bundled),
        bundled_version=bundled_version(),
        missing=sorted(set(bundled) - set(installed)),
        new=sorted(set(installed) - set(bundled)),
    )
    for name in sorted(set(bundled) & set(installed)):
        if installed[name] is not None and bundled[name] is not None and installed[name] != bundled[name]:
            report.choices_changed[name] = {"bundled": bundled[name], "installed": installed[name]}
    if proj is not None:
        report.config_file = proj.config_file
        used = set(config_keys(proj.config_file)) | {"config_file", "dataset_config"}
        report.used_missing = sorted(used - set(installed))
    return report
