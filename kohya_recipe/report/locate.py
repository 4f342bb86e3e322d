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

from kohya_recipe.files import loads_json, loads_toml, read_text, read_toml
from kohya_recipe.layout import CONFIG_FILE, LOG_DIR, MODEL_DIR, RESOLVED_RECIPE, ProjectFacts, is_project, read_facts
from kohya_recipe.report.events import EVENT_FILE_MARK
from kohya_recipe.report.model import ReportError, RunSource
from kohya_recipe.report.samples import SampleSettings
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
    prompts = _prompts(prompt_lines("\n".join(facts.sample_prompts)), facts.sampler)
    warnings: list[str] = []
    return RunSource(
        root=root,
        kind="project",
        log_dir=root / facts.log_dir if facts.log_dir else None,
        model_dir=root / facts.model_dir,
        output_name=facts.output_name or None,
        sample=prompts[0] if prompts else None,
        prompts=prompts,
        sampling=SampleSettings.from_config(_read_config(root / CONFIG_FILE, warnings)),
        warnings=warnings,
    )


def _read_config(config: Path, warnings: list[str]) -> dict[str, Any]:
    """The trainer's ``--config_file``, flattened as sd-scripts reads it; {} (and a warning) when unreadable."""
    try:
        return flatten_config(read_toml(config, error=ReportError))
    except ReportError as exc:
        warnings.append(
            f"{exc.source}: cannot read: {exc.message}; using the default layout ({LOG_DIR}/, {MODEL_DIR}/)"
        )
        return {}


def _from_config(root: Path) -> RunSource:
    """The run as its ``--config_file`` describes it (sd-scripts flattens the file's sections:
    ``library/train_util.py`` ``read_config_from_file``); the default layout when there is none."""
    config = root / CONFIG_FILE
    warnings: list[str] = []
    flat = _read_config(config, warnings) if config.is_file() else {}
    prompts: list[PromptLine] = []
    if flat.get("sample_prompts"):
        prompts = _prompt_file(root / str(flat["sample_prompts"]), flat.get("sample_sampler"), warnings)
    name = flat.get("output_name")
    return RunSource(
        root=root,
        kind="sd-scripts run" if config.is_file() else "log folder",
        log_dir=root / str(flat.get("logging_dir") or LOG_DIR),
        model_dir=root / str(flat.get("output_dir") or MODEL_DIR),
        output_name=str(name) if name else None,
        sample=prompts[0] if prompts else None,
        prompts=prompts,
        sampling=SampleSettings.from_config(flat) if config.is_file() and flat else SampleSettings(),
        warnings=warnings,
    )


def _prompts(lines: list[str], sampler: Any) -> list[PromptLine]:
    """The run's sample prompts, sampled with the run's ``sample_sampler`` unless a line names its own."""
    return [_with_sampler(parse_prompt_line(line), sampler) for line in lines]


def _with_sampler(prompt: PromptLine, sampler: Any) -> PromptLine:
    if prompt.sampler is None and sampler:
        prompt.sampler = str(sampler)
    return prompt


# sd-scripts' keys for a prompt given as a table (library/train_util.py sample_image_inference) -> PromptLine's,
# with the type the A1111 snippet needs (a value of another type is left out, as sd-scripts' own parse would fail)
_TABLE_KEYS: dict[str, tuple[str, type]] = {
    "negative_prompt": ("negative", str),
    "width": ("width", int),
    "height": ("height", int),
    "sample_steps": ("steps", int),
    "scale": ("cfg_scale", float),
    "seed": ("seed", int),
    "sample_sampler": ("sampler", str),
}


def _prompt_file(path: Path, sampler: Any, warnings: list[str]) -> list[PromptLine]:
    """The prompts of a ``--sample_prompts`` file, read as sd-scripts reads it (``load_prompts``): a ``.txt`` file
    line by line, a ``.json`` list of lines or tables, a ``.toml`` ``[prompt]`` table merged into each
    ``[[prompt.subset]]``."""
    try:
        text = read_text(path, error=ReportError)
        if path.suffix == ".txt":
            return _prompts(prompt_lines(text), sampler)
        if path.suffix == ".json":
            items = loads_json(text, source=str(path), error=ReportError)
        elif path.suffix == ".toml":
            table = loads_toml(text, source=str(path), error=ReportError).get("prompt")
            table = table if isinstance(table, dict) else {}
            shared = {k: v for k, v in table.items() if k != "subset"}
            subsets = table.get("subset")
            items = [{**shared, **sub} for sub in subsets if isinstance(sub, dict)] if isinstance(subsets, list) else []
        else:
            return []
    except ReportError as exc:
        warnings.append(f"{exc}; the A1111 prompts go without the sample prompt")
        return []
    return [_with_sampler(p, sampler) for p in map(_table_prompt, items if isinstance(items, list) else []) if p]


def _table_prompt(item: Any) -> PromptLine | None:
    if isinstance(item, str):
        return parse_prompt_line(item)
    if not isinstance(item, dict):
        return None
    prompt = PromptLine(prompt=str(item.get("prompt", "")))
    for theirs, (ours, kind) in _TABLE_KEYS.items():
        value = item.get(theirs)
        if kind is float and isinstance(value, int):
            value = float(value)
        if isinstance(value, kind) and not isinstance(value, bool):
            setattr(prompt, ours, value)
    return prompt


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
