"""``kohya-recipe train``: re-render if the recipe changed, launch sd-scripts, judge the outcome, keep a record.

Every run leaves ``PROJECT/runs/<timestamp>.json`` (what was run, on what, and what came out) next to the raw
output in ``PROJECT/log/train-<timestamp>.log``. ``resume=True`` continues from the newest
``<output_name>-…-state`` folder sd-scripts wrote (``save_state``; ``library/train_util.py``
``save_and_remove_state_on_epoch_end``, ``save_and_remove_state_stepwise``, ``save_state_on_train_end``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kohya_recipe.errors import KohyaRecipeError, RenderError, TrainerError, TrainingInterrupted
from kohya_recipe.files import atomic_write_bytes, open_regular_file, read_json, sha256_bytes, sha256_file
from kohya_recipe.layout import (
    CONFIG_FILE,
    DATASET_FILE,
    MANIFEST,
    PROMPTS_FILE,
    RECORDED_FILES,
    RESOLVED_RECIPE,
    STATE_DIR,
)
from kohya_recipe.sdscripts.folders import has_trainer_images
from kohya_recipe.train.display import Display, choose_display
from kohya_recipe.train.doctor import cached_unknown_keys
from kohya_recipe.train.eta import SampleSchedule
from kohya_recipe.train.finals import keep_previous_final
from kohya_recipe.train.launch import (
    LaunchCommand,
    TrainerSetupError,
    build_launch,
    find_python,
    find_sd_scripts,
    sd_scripts_version,
)
from kohya_recipe.train.locks import open_lock_file
from kohya_recipe.train.outcome import INTERRUPTED, SUCCESS, decide_outcome, describe_exit
from kohya_recipe.train.runner import INTERRUPT_GRACE, TERMINATE_GRACE, open_log, run_launch

if TYPE_CHECKING:
    from kohya_recipe.render.project import Project

RECORD_VERSION = 1
DRY_RUN = "dry-run"
_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt")


# ---------------------------------------------------------------------------------------------------------------
# resume


@dataclass(frozen=True)
class ResumeState:
    """A ``-state`` folder sd-scripts can ``--resume`` from."""

    path: Path
    epoch: int  # train_state.json current_epoch: epochs finished
    step: int  # train_state.json current_step

    def describe(self, root: Path, epochs: int | None) -> str:
        total = f"/{epochs}" if epochs else ""
        return (
            f"resuming from {_rel(self.path, root)}: epoch {self.epoch}{total} done (step {self.step}); "
            f"training continues with epoch {self.epoch + 1}{total}"
        )


def _read_state(folder: Path) -> ResumeState | None:
    try:
        data = read_json(folder / "train_state.json")
        return ResumeState(folder, int(data["current_epoch"]), int(data["current_step"]))
    except (KohyaRecipeError, ValueError, KeyError, TypeError):
        return None  # a half-written or foreign folder is not a state to resume from


def find_resume_state(project: Project | str | os.PathLike[str]) -> ResumeState | None:
    """The newest ``<output_name>-…-state`` (or final ``<output_name>-state``) folder with a readable
    ``train_state.json``, or ``None``.

    Newest by the time ``train_state.json`` was written, not by epoch number: after a recipe change and a fresh
    start, an old run's higher-epoch states must not win over the current run's.
    """
    proj = _load(project)
    model = proj.model_dir
    if not model.is_dir():
        return None
    name = proj.output_name
    found: list[tuple[int, int, ResumeState]] = []
    for folder in model.iterdir():
        if not folder.is_dir() or not folder.name.endswith("-state"):
            continue
        if folder.name != f"{name}-state" and not folder.name.startswith(f"{name}-"):
            continue
        middle = folder.name[len(name) + 1 : -len("-state")]
        if folder.name != f"{name}-state" and not (middle.isdigit() or middle.startswith("step")):
            continue  # "<name>-B-000001-state" belongs to another output name
        state = _read_state(folder)
        if state is not None:
            found.append(((folder / "train_state.json").stat().st_mtime_ns, state.epoch, state))
    if not found:
        return None
    return max(found, key=lambda item: (item[0], item[1]))[2]


# ---------------------------------------------------------------------------------------------------------------
# the record


@dataclass
class RunRecord:
    """One training run; saved as ``runs/<timestamp>.json`` (``path``)."""

    project: Path
    outcome: str  # success | failed | interrupted | dry-run
    message: str
    command: LaunchCommand
    exit_code: int | None = None
    path: Path | None = None
    log_file: Path | None = None
    # The record as written to runs/<timestamp>.json plus "record" (that file, relative to the project), or the
    # plan of a dry run: what `train --json` prints.
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == SUCCESS

    @property
    def error(self) -> str | None:
        """The failure message (``None`` on success) — what a queue records."""
        return None if self.outcome in (SUCCESS, DRY_RUN) else self.message

    def raise_for_outcome(self) -> None:
        """Raise :class:`TrainingInterrupted` (exit 130) or :class:`TrainerError` (exit 4) unless the run trained
        (or was a dry run)."""
        if self.outcome == INTERRUPTED:
            raise TrainingInterrupted(self.message)
        if self.outcome not in (SUCCESS, DRY_RUN):
            raise TrainerError(self.message)


def format_run(record: RunRecord) -> str:
    """For people: a dry run's command (with what it would re-render and resume from), or what a successful run
    wrote. A failed or interrupted run says it in its error message instead (empty here)."""
    data = record.data
    if record.outcome == DRY_RUN:
        lines = [f"# would re-render: {', '.join(data['would_render'])}"] if data.get("would_render") else []
        if data.get("resume"):
            lines.append(f"# {record.message}")
        lines.append(f"# cwd: {data['cwd']}")
        lines.append("# env: " + " ".join(f"{k}={v}" for k, v in data["env"].items()))
        lines.append(data["command_line"])
        return "\n".join(lines)
    if record.outcome != SUCCESS:
        return ""
    progress = data.get("progress") or {}
    steps = f", {progress['step']} steps" if progress.get("step") is not None else ""
    return (
        f"trained {data['output_name']}: {data['final_checkpoint']} "
        f"({len(data['checkpoints'])} checkpoint(s){steps}, {data['duration_seconds']:.0f} s)\n"
        f"record: {data['record']}  log: {data['log_file']}"
    )


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """name -> (size, mtime_ns) of the entries directly in ``folder``."""
    out: dict[str, tuple[int, int]] = {}
    try:
        for entry in os.scandir(folder):
            try:
                st = entry.stat()
            except OSError:
                continue
            out[entry.name] = (st.st_size, st.st_mtime_ns)
    except OSError:
        pass
    return out


def _changed(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    return sorted(name for name, sig in after.items() if before.get(name) != sig)


def _timestamp_paths(project: Project) -> tuple[Path, Path]:
    """The log and record paths for a local ``YYYYmmdd-HHMMSS`` stamp (with ``-2``… if taken)."""
    base = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    stamp, n = base, 1
    while (project.log_dir / f"train-{stamp}.log").exists() or (project.runs_dir / f"{stamp}.json").exists():
        n += 1
        stamp = f"{base}-{n}"
    return project.log_dir / f"train-{stamp}.log", project.runs_dir / f"{stamp}.json"


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Write a run record (``PROJECT/runs/<stamp>.json``) atomically; an OS error is one :class:`TrainerSetupError`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
    except OSError as exc:
        raise TrainerSetupError(f"cannot write the run record: {exc.strerror or exc}", source=str(path)) from None


# ---------------------------------------------------------------------------------------------------------------
# project loading and re-rendering


def _load(project: Project | str | os.PathLike[str]) -> Project:
    from kohya_recipe.render.project import Project, load_project

    return project if isinstance(project, Project) else load_project(Path(project))


def _recipe_changed(project: Project) -> bool:
    """Whether ``resolved-recipe.toml`` differs from what kohya-recipe last rendered (its manifest hash).

    No manifest means nothing to compare: the rendered files are used as they are.
    """
    try:
        recorded = read_json(project.root / MANIFEST)["files"][RESOLVED_RECIPE]
    except (KohyaRecipeError, KeyError, TypeError):
        return False
    return recorded != _sha256(project.resolved_recipe_file)


def refuse_special_files(project: Project) -> None:
    """The files the trainer reads must be regular files: a FIFO named ``config.toml`` would block it (and our
    hashing of it) forever, waiting for a writer. Missing files are for the re-render to write."""
    for name in (CONFIG_FILE, DATASET_FILE, PROMPTS_FILE, MANIFEST):
        path = project.root / name
        try:
            os.close(open_regular_file(path))
        except ValueError as exc:
            raise TrainerSetupError(
                f"{exc}; replace it with the rendered file (kohya-recipe render)", source=str(path)
            ) from None
        except OSError:
            continue  # missing (rendered next) or unreadable (the step that reads it says so)


def ensure_rendered(project: Project, *, dry_run: bool = False, notes: list[str] | None = None) -> list[str]:
    """Bring the rendered files up to date with the recipe; return what was (or, with ``dry_run``, would be)
    written.

    The project's own no-clobber rules decide (:func:`kohya_recipe.render.project.render_project`): a file kohya-recipe
    wrote and nobody touched since is rewritten when the recipe renders differently (the recipe changed) or
    when it is missing. A file edited by hand is never overwritten: if the recipe is unchanged the edit is
    used as it is (with a note); if the recipe changed too, that is an error naming both ways out.
    """
    from kohya_recipe.render.project import render_project

    # Link the images again only when the subset folder is new or empty (e.g. dataset.repeats changed the
    # "<repeats>_<trigger> <class>" name); otherwise caption edits made inside the project stay untouched.
    sync = bool(project.recipe.dataset.images) and not has_trainer_images(project.subset_dir)
    try:
        planned = render_project(project.recipe, project.root, dry_run=True, sync_images=sync)
    except RenderError as exc:
        if not _recipe_changed(project) and project.config_file.is_file() and project.dataset_file.is_file():
            if notes is not None:
                notes.append(f"using hand-edited files as they are ({exc.message})")
            return []
        recipe = project.root / RESOLVED_RECIPE
        raise RenderError(
            f"{exc}; the recipe changed, so `train` re-renders: run `kohya-recipe render {recipe} --out "
            f"{project.root}` (with --force to replace the edited files) first"
        ) from None
    if not planned.written or dry_run:
        return list(planned.written)
    result = render_project(project.recipe, project.root, sync_images=sync)
    return list(result.written)


@contextlib.contextmanager
def project_lock(project: Project) -> Iterator[None]:
    """One ``train`` at a time per project: two trainers would write the same checkpoint names.

    An exclusive ``flock`` on ``.kohya-recipe/train.lock``; the kernel drops it when the process dies, even by
    SIGKILL, so a stale lock never blocks. (No lock on Windows.)
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path = project.root / STATE_DIR / "train.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open_lock_file(path)
    except OSError as exc:
        raise TrainerSetupError(f"cannot create the lock file: {exc.strerror or exc}", source=str(path)) from None
    except ValueError as exc:
        raise TrainerSetupError(f"{exc}; remove it (it is only a lock file)", source=str(path)) from None
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise TrainerSetupError(
                f"another `kohya-recipe train` is training this project (pid {holder}); wait for it or stop it",
                source=str(project.root),
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()  # closing releases the lock


# ---------------------------------------------------------------------------------------------------------------
# the verb


def train_project(
    project_dir: str | os.PathLike[str],
    *,
    sd_scripts: str | os.PathLike[str] | None = None,
    python: str | None = None,
    resume: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    display: Display | None = None,
    interrupt_grace: float | None = None,
    terminate_grace: float | None = None,
    scheduled_gpus: bool = False,
) -> RunRecord:
    """Train the project in ``project_dir`` with sd-scripts and return the run's record.

    ``scheduled_gpus``: a scheduler (Ray) assigned the GPUs through ``CUDA_VISIBLE_DEVICES``
    (:func:`~kohya_recipe.train.launch.build_launch` ``scheduled``).

    Raises :class:`~kohya_recipe.errors.KohyaRecipeError` subclasses only when nothing could be launched (no
    project, no sd-scripts, no Python with accelerate, nothing to resume, log folder not writable). A run that
    fails or is interrupted returns a record with ``outcome`` ``failed`` or ``interrupted``.
    """
    project = _load(project_dir)
    disp = display if display is not None else choose_display(quiet=quiet, verbose=verbose)
    # One train per project, taken before re-rendering so a running trainer's files are not rewritten under it.
    with contextlib.nullcontext() if dry_run else project_lock(project):
        return _prepare_and_run(
            project, sd_scripts, python, resume, dry_run, disp, interrupt_grace, terminate_grace, scheduled_gpus
        )


def _prepare_and_run(
    project: Project,
    sd_scripts: str | os.PathLike[str] | None,
    python: str | None,
    resume: bool,
    dry_run: bool,
    disp: Display,
    interrupt_grace: float | None,
    terminate_grace: float | None,
    scheduled_gpus: bool = False,
) -> RunRecord:
    notes: list[str] = []
    refuse_special_files(project)
    rerendered = ensure_rendered(project, dry_run=dry_run, notes=notes)
    if rerendered and not dry_run:
        project = _load(project.root)
    sd = find_sd_scripts(sd_scripts)
    script = sd / project.script_name
    if not script.is_file():
        raise TrainerSetupError(
            f"no {project.script_name} in this sd-scripts (too old for model.family = "
            f"{project.recipe.model.family!r}?)",
            source=str(sd),
        )
    py = find_python(python, sd_scripts=sd)
    unknown = cached_unknown_keys(sd, project.script_name, project.config_file)
    if unknown:
        # sd-scripts ignores unknown config keys silently (library/train_util.py read_config_from_file): say so
        # before hours of GPU time are spent on a run that lacks them
        notes.append(
            f"this sd-scripts does not know {', '.join(unknown)} (set in config.toml; found by `kohya-recipe "
            "doctor`): it will ignore them"
        )
    state: ResumeState | None = None
    training = project.recipe.training
    epochs = training.epoch_limit
    if resume:
        state = find_resume_state(project)
        if state is None:
            hint = "" if project.recipe.training.save_state else " (training.save_state is off in the recipe)"
            raise TrainerSetupError(
                f"nothing to resume: no {project.output_name}-…-state folder with train_state.json{hint}; "
                "run without --resume to start over",
                source=str(project.model_dir),
            )
        if epochs and state.epoch >= epochs:
            raise TrainerSetupError(
                f"training already finished there (epoch {state.epoch} of {epochs}); nothing to resume — raise "
                "training.max_train_epochs to train further",
                source=str(state.path),
            )
    cmd = build_launch(project, sd, py, resume_dir=state.path if state else None, scheduled=scheduled_gpus)
    if dry_run:
        plan: dict[str, Any] = {
            "project": str(project.root),
            "outcome": DRY_RUN,
            "would_render": rerendered,
            "command": cmd.argv,
            "command_line": cmd.shell(),
            "cwd": str(cmd.cwd),
            "env": cmd.env_overrides,
            "resume": _resume_dict(state, project.root),
        }
        msg = state.describe(project.root, epochs) if state else "dry run"
        return RunRecord(project.root, DRY_RUN, msg, cmd, data=plan)
    return _run(project, cmd, sd, py, script, state, epochs, rerendered, notes, disp, interrupt_grace, terminate_grace)


def _run(
    project: Project,
    cmd: LaunchCommand,
    sd: Path,
    py: str,
    script: Path,
    state: ResumeState | None,
    epochs: int | None,
    rerendered: list[str],
    notes: list[str],
    disp: Display,
    interrupt_grace: float | None,
    terminate_grace: float | None,
) -> RunRecord:
    # sd-scripts writes the last epoch under the unnumbered final name: a resumed (extended) run would overwrite
    # the previous run's last epoch there, so it is copied to its epoch name first
    kept = keep_previous_final(project.model_dir, project.output_name, project.runs_dir) if state else None
    log_file, record_file = _timestamp_paths(project)
    log_stream = open_log(log_file)  # before anything is announced: an unwritable log/ fails first
    version = sd_scripts_version(sd)
    model_before = _snapshot(project.model_dir)
    logs_before = _snapshot(project.log_dir)
    final = project.model_dir / f"{project.output_name}.safetensors"
    commit = (version.get("tag") or (version.get("commit") or "")[:8]) or "no git"
    for note in notes:
        disp.note(note)
    if rerendered:
        disp.note(f"re-rendered {', '.join(rerendered)} from the recipe")
    if state is not None:
        disp.note(state.describe(project.root, epochs))
    if kept is not None:
        disp.note(kept.describe(project.root))
    disp.note(f"training {project.output_name} with {script} ({commit}); log: {_rel(log_file, project.root)}")
    samples = project.recipe.samples
    disp.plan(SampleSchedule(len(samples.prompts), samples.every_n_epochs, samples.every_n_steps, samples.at_first))
    result = run_launch(
        cmd,
        log_file,
        display=disp,
        log_stream=log_stream,
        interrupt_grace=INTERRUPT_GRACE if interrupt_grace is None else interrupt_grace,
        terminate_grace=TERMINATE_GRACE if terminate_grace is None else terminate_grace,
    )

    model_after = _snapshot(project.model_dir)
    changed = _changed(model_before, model_after)
    outcome = decide_outcome(
        result.exit_code,
        final,
        result.state,
        interrupted=result.interrupted,
        final_written=final.name in changed and final.is_file(),
    )
    root = project.root
    checkpoints = [f"{_rel(project.model_dir, root)}/{n}" for n in changed if n.endswith(_CHECKPOINT_SUFFIXES)]
    states = [
        f"{_rel(project.model_dir, root)}/{n}"
        for n in changed
        if n.endswith("-state") and (project.model_dir / n).is_dir()
    ]
    tb_runs = [
        f"{_rel(project.log_dir, root)}/{n}"
        for n in _changed(logs_before, _snapshot(project.log_dir))
        if (project.log_dir / n).is_dir()
    ]
    message = outcome.message
    if outcome.outcome == INTERRUPTED:
        message = _interrupted_message(message, checkpoints, project)
    elif outcome.outcome != SUCCESS:
        message = f"{message}; full output: {_rel(log_file, root)}"
    st = result.state
    data: dict[str, Any] = {
        "version": RECORD_VERSION,
        "project": str(root),
        "output_name": project.output_name,
        "outcome": outcome.outcome,
        "message": message,
        "exit_code": result.exit_code,
        "exit": describe_exit(result.exit_code),
        "started_at": _iso(result.started_at),
        "ended_at": _iso(result.ended_at),
        "duration_seconds": round(result.ended_at - result.started_at, 3),
        "recipe_sha256": _recipe_hash(project),
        "files": {name: _sha256(root / name) for name in RECORDED_FILES if (root / name).is_file()},
        "rerendered": rerendered,
        "notes": notes,
        "command": cmd.argv,
        "command_line": cmd.shell(),
        "cwd": str(cmd.cwd),
        "env": cmd.env_overrides,
        "python": py,
        "sd_scripts": {"path": str(sd), "script": project.script_name, **version},
        "resume": _resume_dict(state, root),
        "kept_final": {"file": _rel(kept.kept_as, root), "epoch": kept.epoch, "copied": kept.copied} if kept else None,
        "progress": {
            "epoch": st.epoch,
            "epochs": st.epochs,
            "step": st.step,
            "total_steps": st.total_steps,
            "avr_loss": st.avr_loss,
        },
        "checkpoints": checkpoints,
        "final_checkpoint": _rel(final, root) if outcome.ok else None,
        "states": states,
        "log_file": _rel(log_file, root),
        "log_dir": _rel(project.log_dir, root),
        "tensorboard_runs": tb_runs,
        "signals_sent": result.signals_sent,
        "log_truncated": result.log_truncated,
    }
    write_record(record_file, data)
    data["record"] = _rel(record_file, root)
    return RunRecord(root, outcome.outcome, message, cmd, result.exit_code, record_file, log_file, data)


def _recipe_hash(project: Project) -> str:
    """sha256 of the recipe in canonical TOML: comments and key order in the file do not change it."""
    from kohya_recipe.recipe.loading import recipe_to_toml

    return sha256_bytes(recipe_to_toml(project.recipe).encode())


def _resume_dict(state: ResumeState | None, root: Path) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"state": _rel(state.path, root), "epoch": state.epoch, "step": state.step}


def _interrupted_message(message: str, checkpoints: list[str], project: Project) -> str:
    kept = f"kept {len(checkpoints)} checkpoint(s) written by this run" if checkpoints else "no checkpoint written"
    state = find_resume_state(project)
    if state is not None:
        how = f"resume with `kohya-recipe train {project.root} --resume` (from {_rel(state.path, project.root)})"
    elif project.recipe.training.save_state:
        how = "no state folder was written yet, so run it again to start over"
    else:
        how = "no state folder to resume from (set training.save_state = true to make runs resumable); run again"
    return f"{message}; {kept}; {how}"
