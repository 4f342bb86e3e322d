"""Where a run's log, checkpoints, name and sample prompt are (:func:`locate_run`).

A kohya-recipe project says so in its facts file (:func:`kohya_recipe.layout.read_facts`). A project rendered
before that file existed, and any sd-scripts run folder, say so in the trainer's own ``--config_file``:
``output_name``, ``logging_dir``, ``output_dir``, ``sample_prompts`` and ``sample_sampler``, with relative paths
starting at the folder, which was the trainer's cwd. The recipe itself is read only for the settings the report
shows (its subject and preset), never to work out what the run is.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from kohya_recipe.files import read_text, read_toml
from kohya_recipe.layout import CONFIG_FILE, LOG_DIR, MODEL_DIR, RESOLVED_RECIPE, ProjectFacts, is_project, read_facts
from kohya_recipe.report.events import EVENT_FILE_MARK
from kohya_recipe.report.model import ReportError, RunSource
from kohya_recipe.sdscripts.options import flatten_config
from kohya_recipe.sdscripts.prompts import PromptLine, parse_prompt_line, prompt_lines


def is_run_root(path: Path) -> bool:
    """A folder that holds one run: a project, an sd-scripts run folder with its config, or a ``log/`` folder."""
    return is_project(path) or (path / CONFIG_FILE).is_file() or (path / LOG_DIR).is_dir()


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
    if not path.is_file() and not path.is_dir():
        raise ReportError(
            f"not a folder or a regular file ({_special_kind(path)}): give a run folder, a log folder or an event file",
            source=str(path),
        )
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


def _special_kind(path: Path) -> str:
    """What a path that is neither a file nor a folder is (reading a FIFO would block forever)."""
    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _locate_root(root: Path) -> RunSource:
    facts = read_facts(root) if is_project(root) else None
    src = _from_facts(root, facts) if facts is not None else _from_config(root)
    if is_project(root):
        src.kind = "project"
        src.recipe_settings = _recipe_settings(root, src.warnings)
    return src


def _from_facts(root: Path, facts: ProjectFacts) -> RunSource:
    return RunSource(
        root=root,
        kind="project",
        log_dir=root / facts.log_dir if facts.log_dir else None,
        model_dir=root / facts.model_dir,
        output_name=facts.output_name or None,
        sample=_first_prompt(prompt_lines("\n".join(facts.sample_prompts)), facts.sampler),
    )


def _from_config(root: Path) -> RunSource:
    """The run as its ``--config_file`` describes it (sd-scripts flattens the file's sections:
    ``library/train_util.py`` ``read_config_from_file``); the default layout when there is none."""
    config = root / CONFIG_FILE
    flat: dict[str, Any] = {}
    warnings: list[str] = []
    if config.is_file():
        try:
            flat = flatten_config(read_toml(config, error=ReportError))
        except ReportError as exc:
            warnings.append(
                f"{exc.source}: cannot read: {exc.message}; using the default layout ({LOG_DIR}/, {MODEL_DIR}/)"
            )
    sample = None
    if flat.get("sample_prompts"):
        sample = _prompt_file(root / str(flat["sample_prompts"]), flat.get("sample_sampler"), warnings)
    name = flat.get("output_name")
    return RunSource(
        root=root,
        kind="sd-scripts run" if config.is_file() else "log folder",
        log_dir=root / str(flat.get("logging_dir") or LOG_DIR),
        model_dir=root / str(flat.get("output_dir") or MODEL_DIR),
        output_name=str(name) if name else None,
        sample=sample,
        warnings=warnings,
    )


def _first_prompt(lines: list[str], sampler: Any) -> PromptLine | None:
    """The run's first sample prompt, sampled with the run's ``sample_sampler`` unless the line names its own."""
    if not lines:
        return None
    prompt = parse_prompt_line(lines[0])
    if prompt.sampler is None and sampler:
        prompt.sampler = str(sampler)
    return prompt


def _prompt_file(path: Path, sampler: Any, warnings: list[str]) -> PromptLine | None:
    # sd-scripts reads a .toml or .json prompt file as tables, not lines (library/train_util.py load_prompts).
    if path.suffix != ".txt":
        return None
    try:
        text = read_text(path, error=ReportError)
    except ReportError as exc:
        warnings.append(f"{exc}; the A1111 prompts go without the sample prompt")
        return None
    return _first_prompt(prompt_lines(text), sampler)


def _recipe_settings(root: Path, warnings: list[str]) -> dict[str, Any]:
    """The recipe's trigger, class token and preset, shown among the run's settings."""
    try:
        recipe = read_toml(root / RESOLVED_RECIPE, error=ReportError)
    except ReportError as exc:
        warnings.append(f"{exc}; the report goes on without the recipe")
        return {}
    subject = recipe.get("subject")
    subject = subject if isinstance(subject, dict) else {}
    shown = {
        "trigger": subject.get("trigger"),
        "class_token": subject.get("class_token"),
        "preset": recipe.get("preset"),
    }
    return {k: v for k, v in shown.items() if v}
