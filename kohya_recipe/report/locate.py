"""Where a run's log, checkpoints, name and sample prompt are (:func:`locate_run`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kohya_recipe.report.events import EVENT_FILE_MARK
from kohya_recipe.report.model import ReportError, RunSource, SamplePrompt

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


RESOLVED_RECIPE = "resolved-recipe.toml"  # kohya_recipe.render.project.RESOLVED_RECIPE (not imported: pydantic)
CONFIG_FILE = "config.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ReportError(f"cannot read: {exc}", source=str(path)) from None


def parse_prompt_line(line: str) -> SamplePrompt:
    """One sd-scripts sample-prompt line: ``prompt --n negative --w 512 --h 512 --s 30 --l 7 --d 42``.

    sd-scripts splits the line on " --" and reads each piece's first letters as the option (sd_scripts.md §6).
    """
    parts = line.strip().split(" --")
    sample = SamplePrompt(prompt=parts[0].strip())
    for part in parts[1:]:
        key, _, value = part.partition(" ")
        value = value.strip()
        try:
            if key == "n":
                sample.negative = value
            elif key == "w":
                sample.width = int(value)
            elif key == "h":
                sample.height = int(value)
            elif key == "s":
                sample.steps = int(value)
            elif key == "l":
                sample.cfg_scale = float(value)
            elif key == "d":
                sample.seed = int(value)
        except ValueError:
            continue
    return sample


def _first_prompt(path: Path) -> SamplePrompt | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return parse_prompt_line(line)
    return None


def _recipe_sample(recipe: dict[str, Any]) -> SamplePrompt | None:
    samples = recipe.get("samples") or {}
    prompts = samples.get("prompts") or []
    if not prompts or not isinstance(prompts[0], dict):
        return None
    p = prompts[0]
    subject = recipe.get("subject") or {}
    words = {"{trigger}": str(subject.get("trigger", "")), "{class}": str(subject.get("class_token", ""))}

    def fill(text: Any) -> str:
        text = str(text or "")
        for k, v in words.items():  # the recipe's placeholders (recipe.py SamplePrompt.prompt)
            text = text.replace(k, v)
        return text

    return SamplePrompt(
        prompt=fill(p.get("prompt")),
        negative=fill(p.get("negative")),
        width=p.get("width"),
        height=p.get("height"),
        steps=p.get("steps"),
        cfg_scale=p.get("cfg_scale"),
        seed=p.get("seed"),
        sampler=samples.get("sampler"),
    )


def _recipe_output_name(recipe: dict[str, Any]) -> str | None:
    out = recipe.get("output") or {}
    name = out.get("name") or (recipe.get("subject") or {}).get("trigger")
    if not name:
        return None
    return f"{name}-{out.get('major', 1)}-{out.get('letter', 'A')}"


def is_run_root(path: Path) -> bool:
    """A folder that holds one run: a project, an sd-scripts run folder with its config, or ``log/``."""
    return (path / RESOLVED_RECIPE).is_file() or (path / CONFIG_FILE).is_file() or (path / "log").is_dir()


def locate_run(
    path: str | Path,
    *,
    model_dir: str | Path | None = None,
    output_name: str | None = None,
) -> RunSource:
    """Find the log folder, checkpoint folder, output name and sample prompt of the run at ``path``."""
    path = Path(path)
    if not path.exists():
        raise ReportError("no such file or folder", source=str(path))
    if path.is_file():
        if path.suffix == ".safetensors":
            raise ReportError("is a checkpoint; use `kohya-recipe inspect` to read its metadata", source=str(path))
        if not path.name.startswith(EVENT_FILE_MARK):
            raise ReportError("not a TensorBoard event file, log folder or project", source=str(path))
        src = RunSource(root=path.parent, kind="log folder", log_dir=path, model_dir=None, output_name=None)
    elif is_run_root(path):
        src = _locate_root(path)
    else:
        src = RunSource(root=path, kind="log folder", log_dir=path, model_dir=None, output_name=None)
        if is_run_root(path.parent):
            # PROJECT/log or PROJECT/model given: report the whole project (its log, checkpoints and recipe).
            parent = _locate_root(path.parent)
            if any(d is not None and d.resolve() == path.resolve() for d in (parent.log_dir, parent.model_dir)):
                src = parent
    if model_dir is not None:
        src.model_dir = Path(model_dir)
    if output_name is not None:
        src.output_name = output_name
    return src


def _locate_root(root: Path) -> RunSource:
    recipe: dict[str, Any] | None = None
    warnings: list[str] = []
    kind = "sd-scripts run"
    if (root / RESOLVED_RECIPE).is_file():
        kind = "project"
        try:
            recipe = _read_toml(root / RESOLVED_RECIPE)
        except ReportError as exc:
            warnings.append(f"{exc}; the report goes on without the recipe")
    flat: dict[str, Any] = {}
    if (root / CONFIG_FILE).is_file():
        try:
            from kohya_recipe.sdscripts.options import flatten_config

            flat = flatten_config(_read_toml(root / CONFIG_FILE))
        except ReportError as exc:
            warnings.append(f"{exc}; using the default layout (log/, model/)")
    # The trainer runs with cwd = the project (kohya-recipe) or the run folder, so relative paths start there.
    log_dir = root / str(flat.get("logging_dir") or "log")
    model_dir = root / str(flat.get("output_dir") or "model")
    name = flat.get("output_name") or (_recipe_output_name(recipe) if recipe else None)
    sample = _recipe_sample(recipe) if recipe else None
    if sample is None and flat.get("sample_prompts"):
        sample = _first_prompt(root / str(flat["sample_prompts"]))
        if sample is not None and flat.get("sample_sampler"):
            sample.sampler = str(flat["sample_sampler"])
    if recipe is None and kind == "sd-scripts run" and not (root / CONFIG_FILE).is_file():
        kind = "log folder"
    return RunSource(
        root=root,
        kind=kind,
        log_dir=log_dir,
        model_dir=model_dir,
        output_name=str(name) if name else None,
        sample=sample,
        recipe=recipe,
        warnings=warnings,
    )
