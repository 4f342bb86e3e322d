"""Which checkpoint file holds which epoch.

sd-scripts names them in ``library/train_util.py`` (``get_epoch_ckpt_name``, ``get_step_ckpt_name``,
``get_last_ckpt_name``) and saves them in ``train_network.py`` ``NetworkTrainer.train``:

* ``<output_name>-<epoch:06d>.safetensors`` after epoch e when ``e % save_every_n_epochs == 0`` **and e is not the
  last epoch**;
* ``<output_name>.safetensors`` — the final weights, the last epoch, **without a number** (saved with
  ``epoch_no = num_train_epochs``, so ``ss_epoch`` = num_epochs);
* ``<output_name>-step<global_step:08d>.safetensors`` every ``save_every_n_steps`` (saved with the loop's 0-based
  ``epoch``, so ``ss_epoch`` there is not the epoch number and is not used for mapping);
* with no output_name: ``epoch-000001``, ``at-step00000004`` and ``last`` (``DEFAULT_EPOCH_NAME``,
  ``DEFAULT_STEP_NAME``, ``DEFAULT_LAST_OUTPUT_NAME``).

Each mapping is confirmed from the file's own metadata (``ss_epoch``, ``ss_steps``; header only, no tensors).
Files pruned by ``save_last_n_epochs``, skipped by ``save_every_n_epochs`` or never written by an interrupted
run are simply absent from the map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kohya_recipe.report.safetensors_meta import SafetensorsError, SafetensorsHeader, read_header

# --save_model_as choices that train_network.py writes for LoRA; only safetensors carries metadata.
EXTENSIONS = (".safetensors", ".ckpt", ".pt")

# train_util.DEFAULT_EPOCH_NAME / DEFAULT_LAST_OUTPUT_NAME / DEFAULT_STEP_NAME, used when output_name is unset.
DEFAULT_EPOCH_NAME = "epoch"
DEFAULT_LAST_NAME = "last"
DEFAULT_STEP_NAME = "at"

_EPOCH_RE = re.compile(r"^(?P<name>.+)-(?P<n>\d{6})$")
_STEP_RE = re.compile(r"^(?P<name>.+)-step(?P<n>\d{8})$")


@dataclass
class Checkpoint:
    """One checkpoint file. ``epoch`` is the epoch it holds (None for step files and unknown finals).

    Its JSON: path, kind, size and warnings, and the properties in ``__json_properties__``.
    """

    path: Path
    name: str = field(metadata={"json": False})
    kind: str  # "epoch" | "final" | "step"
    number: int | None = field(metadata={"json": False})  # epoch (epoch files) or global step (step files)
    size: int
    header: SafetensorsHeader | None = field(default=None, metadata={"json": False})
    warnings: list[str] = field(default_factory=list)

    __json_properties__ = ("file", "epoch", "ss_epoch", "ss_steps", "confirmed")

    @property
    def file(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        """The name A1111 uses in ``<lora:NAME:weight>``."""
        return self.path.stem

    @property
    def ss_epoch(self) -> int | None:
        return self.header.meta_int("ss_epoch") if self.header else None

    @property
    def ss_steps(self) -> int | None:
        return self.header.meta_int("ss_steps") if self.header else None

    @property
    def ss_num_epochs(self) -> int | None:
        return self.header.meta_int("ss_num_epochs") if self.header else None

    @property
    def saved_at(self) -> float | None:
        """``ss_training_finished_at``: when this file was saved (unix time)."""
        return self.header.meta_float("ss_training_finished_at") if self.header else None

    @property
    def epoch(self) -> int | None:
        if self.kind == "epoch":
            return self.number
        if self.kind == "final":
            # The unnumbered final file holds the last epoch: ss_epoch = num_epochs.
            return self.ss_epoch if self.ss_epoch is not None else self.ss_num_epochs
        return None

    @property
    def confirmed(self) -> bool:
        """True when the metadata's ``ss_epoch`` agrees with the epoch this file is mapped to."""
        if self.kind == "epoch":
            return self.ss_epoch is not None and self.ss_epoch == self.number
        if self.kind == "final":
            return self.ss_epoch is not None
        return False


@dataclass
class EpochFile:
    """A checkpoint as the report maps it to an epoch of the log. Its JSON is the checkpoint's, but
    ``confirmed`` asks more than :attr:`Checkpoint.confirmed`: the file's ``ss_steps`` and save time must also
    fit that epoch in the log (a file from another training does not)."""

    checkpoint: Checkpoint = field(metadata={"json": False})
    confirmed: bool

    __json_properties__ = ("path", "file", "kind", "epoch", "ss_epoch", "ss_steps", "size", "warnings")

    @property
    def path(self) -> Path:
        return self.checkpoint.path

    @property
    def file(self) -> str:
        return self.checkpoint.file

    @property
    def kind(self) -> str:
        return self.checkpoint.kind

    @property
    def epoch(self) -> int | None:
        return self.checkpoint.epoch

    @property
    def ss_epoch(self) -> int | None:
        return self.checkpoint.ss_epoch

    @property
    def ss_steps(self) -> int | None:
        return self.checkpoint.ss_steps

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def warnings(self) -> list[str]:
        return self.checkpoint.warnings


@dataclass
class CheckpointSet:
    """The checkpoints of one run in a folder. Its JSON: the final file, the step files, and the other runs'
    names found in the folder (the epoch files are listed with their epochs in the report)."""

    model_dir: Path = field(metadata={"json": False})
    output_name: str | None = field(metadata={"json": False})
    epoch_files: dict[int, Checkpoint] = field(default_factory=dict, metadata={"json": False})
    final: Checkpoint | None = None
    step_files: list[Checkpoint] = field(default_factory=list)
    other_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list, metadata={"json": False})

    def by_epoch(self) -> dict[int, Checkpoint]:
        """epoch -> file, the unnumbered final file included under its ``ss_epoch``."""
        out = dict(self.epoch_files)
        if self.final is not None and self.final.epoch is not None:
            # A numbered file for the final epoch should not exist (sd-scripts skips it); if one does, the final
            # file wins because it is what the run ended with.
            out[self.final.epoch] = self.final
        return dict(sorted(out.items()))

    @property
    def all(self) -> list[Checkpoint]:
        files = list(self.epoch_files.values())
        if self.final is not None:
            files.append(self.final)
        return files + self.step_files

    @property
    def num_epochs(self) -> int | None:
        """The planned number of epochs (``ss_num_epochs``), from any file that has it."""
        for cp in self.all:
            if cp.ss_num_epochs is not None:
                return cp.ss_num_epochs
        return None


def _classify(stem: str) -> tuple[str, str, int | None]:
    m = _STEP_RE.match(stem)
    if m:
        return m["name"], "step", int(m["n"])
    m = _EPOCH_RE.match(stem)
    if m:
        return m["name"], "epoch", int(m["n"])
    return stem, "final", None


def _load(cp: Checkpoint) -> Checkpoint:
    if cp.path.suffix != ".safetensors":
        cp.warnings.append(f"{cp.path.name}: saved as {cp.path.suffix}, which has no metadata; epoch not confirmed")
        return cp
    try:
        cp.header = read_header(cp.path)
    except SafetensorsError as exc:
        cp.warnings.append(str(exc))
        return cp
    cp.warnings.extend(f"{cp.path.name}: {w}" for w in cp.header.warnings)
    if "ss_epoch" not in cp.header.metadata:
        cp.warnings.append(
            f"{cp.path.name}: no ss_epoch in its metadata (saved with --no_metadata?); "
            "epoch taken from the file name only"
        )
    elif cp.kind == "epoch" and cp.ss_epoch != cp.number:
        cp.warnings.append(
            f"{cp.path.name}: the name says epoch {cp.number} but its metadata says ss_epoch="
            f"{cp.header.metadata.get('ss_epoch')}"
        )
    return cp


def scan_checkpoints(model_dir: str | Path, output_name: str | None = None) -> CheckpointSet:
    """Find and classify the checkpoints in ``model_dir`` (not recursive: state folders are not checkpoints).

    Without ``output_name`` the name is inferred from the numbered files; if several names share the folder, the
    one with the newest file is used and a warning says so.
    """
    model_dir = Path(model_dir)
    cset = CheckpointSet(model_dir=model_dir, output_name=output_name)
    if not model_dir.is_dir():
        cset.warnings.append(f"{model_dir}: no checkpoint folder")
        return cset
    groups = _group_by_name(model_dir)
    name = output_name if output_name is not None else _infer_name(groups, cset)
    if name is None:
        return cset
    cset.output_name = name
    cset.other_names = sorted(n for n in groups if n not in (name, _final_name(name), _step_name(name)))
    _collect(cset, groups, name)
    if cset.final is not None and cset.final.epoch is None:
        cset.warnings.append(
            f"{cset.final.path.name}: the final file has no ss_epoch/ss_num_epochs; "
            "its epoch is taken from the log if possible"
        )
    for cp in cset.all:
        cset.warnings.extend(cp.warnings)
    return cset


_Group = list[tuple[Path, str, int | None]]  # (file, kind, number) of the files of one name


def _group_by_name(model_dir: Path) -> dict[str, _Group]:
    groups: dict[str, _Group] = {}
    for p in sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in EXTENSIONS):
        name, kind, number = _classify(p.stem)
        groups.setdefault(name, []).append((p, kind, number))
    return groups


def _final_name(name: str) -> str:
    return DEFAULT_LAST_NAME if name == DEFAULT_EPOCH_NAME else name


def _step_name(name: str) -> str:
    return DEFAULT_STEP_NAME if name == DEFAULT_EPOCH_NAME else name


def _infer_name(groups: dict[str, _Group], cset: CheckpointSet) -> str | None:
    """The run's output name from its numbered files (the newest run's, with a warning, if several share the
    folder)."""
    numbered = {n: g for n, g in groups.items() if any(k != "final" for _, k, _ in g)}
    if DEFAULT_EPOCH_NAME in groups:  # "at-step…" and "last" belong to the unnamed run's "epoch-…" files
        numbered.pop(DEFAULT_STEP_NAME, None)
    candidates = numbered or groups
    if len(candidates) <= 1:
        return next(iter(candidates), None)
    newest = max(candidates, key=lambda n: max(p.stat().st_mtime for p, _, _ in candidates[n]))
    cset.warnings.append(
        f"{cset.model_dir}: checkpoints of several runs ({', '.join(sorted(candidates))}); showing "
        f"{newest!r}, the newest — pass the output name to choose"
    )
    return newest


def _collect(cset: CheckpointSet, groups: dict[str, _Group], name: str) -> None:
    """Fill ``cset`` with the epoch files, the final file and the step files of the run called ``name``."""
    final_name = _final_name(name)
    for p, kind, number in groups.get(name, []):
        if kind == "epoch" and number is not None:
            cset.epoch_files[number] = _checkpoint(p, name, kind, number)
        elif kind == "final" and final_name == name:
            cset.final = _checkpoint(p, name, kind, number)
    for p, kind, _number in groups.get(final_name, []) if final_name != name else []:
        if kind == "final":
            cset.final = _checkpoint(p, name, "final", None)
    for p, kind, number in groups.get(_step_name(name), []):
        if kind == "step":
            cset.step_files.append(_checkpoint(p, name, "step", number))


def _checkpoint(path: Path, name: str, kind: str, number: int | None) -> Checkpoint:
    return _load(Checkpoint(path=path, name=name, kind=kind, number=number, size=path.stat().st_size))
