"""The sample images sd-scripts makes while it trains: which epoch, which prompt, and which are missing.

A LoRA trainer picks the epoch by looking at the samples; the loss is a hint. Their names say which epoch or step
and which prompt (:mod:`kohya_recipe.report.samplenames`); the prompt index is the line's position in the prompt
file (blank and ``#`` lines skipped: sd-scripts ``library/train_util.py`` ``load_prompts``).

When it samples (``sample_images_common``): ``--sample_every_n_epochs N`` after each epoch e with e % N == 0 (it
wins over ``--sample_every_n_steps``, which then samples nothing); else ``--sample_every_n_steps N`` mid-epoch at
global steps divisible by N; neither means no samples. An epoch that should have samples but has none was
interrupted while sampling, failed to sample (sd-scripts logs ``No prompt file`` and trains on), or was deleted:
the report says so instead of leaving a blank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kohya_recipe.report.ranking import EpochRow, Ranking
from kohya_recipe.report.samplenames import SAMPLE_SUFFIX, SampleImage, parse_sample_name


@dataclass(frozen=True)
class SampleSettings:
    """When the run was told to sample (from its ``--config_file``); ``known`` is False without one."""

    every_n_epochs: int | None = None
    every_n_steps: int | None = None
    at_first: bool = False
    known: bool = False

    @classmethod
    def from_config(cls, flat: dict[str, Any]) -> SampleSettings:
        def positive(key: str) -> int | None:
            v = flat.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None

        return cls(
            every_n_epochs=positive("sample_every_n_epochs"),
            every_n_steps=positive("sample_every_n_steps"),
            at_first=flat.get("sample_at_first") is True,
            known=True,
        )

    @property
    def samples_epochs(self) -> bool:
        return self.every_n_epochs is not None

    @property
    def off(self) -> bool:
        return self.known and self.every_n_epochs is None and self.every_n_steps is None and not self.at_first


@dataclass
class MissingSamples:
    """An epoch without sample images, and why (expected, or not)."""

    epoch: int
    reason: str
    expected: bool  # True when the run was told to sample this epoch: something went wrong


@dataclass
class SampleSet:
    """A run's sample images. Epoch samples are also on their epoch's row (``EpochRow.samples``); the rest are
    here: ``before_training`` (``--sample_at_first``), ``steps`` (``--sample_every_n_steps``) and ``other``
    (epochs the report has no row for). ``prompts`` are the prompt texts by index, from the run's prompt file."""

    folder: Path
    prompts: list[str]
    settings: SampleSettings = field(metadata={"json": False})
    images: list[SampleImage] = field(metadata={"json": False})
    before_training: list[SampleImage] = field(default_factory=list)
    steps: list[SampleImage] = field(default_factory=list)
    other: list[SampleImage] = field(default_factory=list)
    missing: list[MissingSamples] = field(default_factory=list)
    status: str = ""
    warnings: list[str] = field(default_factory=list)

    __json_properties__ = ("count", "every_n_epochs", "every_n_steps", "at_first", "prompt_indexes")

    @property
    def count(self) -> int:
        return len(self.images)

    @property
    def every_n_epochs(self) -> int | None:
        return self.settings.every_n_epochs

    @property
    def every_n_steps(self) -> int | None:
        return self.settings.every_n_steps

    @property
    def at_first(self) -> bool:
        return self.settings.at_first

    @property
    def prompt_indexes(self) -> list[int]:
        """Every prompt index seen in a file name or the prompt file: the grid's columns."""
        return sorted({i.prompt_index for i in self.images} | set(range(len(self.prompts))) if self.images else [])

    def prompt_text(self, index: int) -> str | None:
        return self.prompts[index] if 0 <= index < len(self.prompts) else None


def scan_samples(
    folder: Path, output_name: str | None, settings: SampleSettings, prompts: list[str] | None = None
) -> SampleSet:
    """The sample images of the run called ``output_name`` in ``folder`` (the newest of each epoch and prompt)."""
    sset = SampleSet(folder=folder, prompts=list(prompts or []), settings=settings, images=[])
    try:
        entries = sorted(p for p in folder.iterdir() if p.suffix == SAMPLE_SUFFIX and p.is_file())
    except OSError:
        entries = []
    found = [s for s in map(parse_sample_name, entries) if s is not None]
    mine = [s for s in found if output_name is None or s.name == output_name]
    names = sorted({s.name or "(no output name)" for s in found})
    if output_name is not None and set(names) - {output_name}:
        others = ", ".join(n for n in names if n != output_name)
        sset.warnings.append(f"{folder}: samples of other runs ({others}) are not shown")
    elif output_name is None and len(names) > 1:
        sset.warnings.append(f"{folder}: samples of several runs ({', '.join(names)}); give the output name to choose")
    newest: dict[tuple[str | None, int | None, int | None, int], SampleImage] = {}
    for s in sorted(mine, key=lambda s: s.time):
        newest[(s.name, s.epoch, s.step, s.prompt_index)] = s  # a later training re-sampled it: the newest wins
    replaced = len(mine) - len(newest)
    if replaced:
        sset.warnings.append(
            f"{folder}: {replaced} older sample{'s' if replaced != 1 else ''} of the same epoch and prompt "
            "(from an earlier training) not shown"
        )
    sset.images = sorted(newest.values(), key=lambda s: (s.epoch is None, s.epoch, s.step, s.prompt_index))
    return sset


def attach_samples(sset: SampleSet, ranking: Ranking) -> None:
    """Put each epoch's samples on its row, collect the rest, and say which epochs have none and why."""
    rows = {r.epoch: r for r in ranking.rows}
    for img in sset.images:
        if img.epoch == 0:
            sset.before_training.append(img)
        elif img.epoch is None:
            sset.steps.append(img)
        elif img.epoch in rows:
            rows[img.epoch].samples.append(img)
        else:
            sset.other.append(img)
    if sset.other:
        shown = ", ".join(sorted({str(i.epoch) for i in sset.other}, key=int))
        sset.warnings.append(f"samples of epoch {shown}, which neither the log nor the checkpoints show")
    sset.missing = [m for r in ranking.rows if (m := _missing(r, sset)) is not None]
    sset.status = _status(sset, ranking)


def _missing(row: EpochRow, sset: SampleSet) -> MissingSamples | None:
    if row.samples:
        return None
    st = sset.settings
    if st.off:
        return MissingSamples(row.epoch, "sampling was off", expected=False)
    if st.every_n_epochs is not None:
        if row.epoch % st.every_n_epochs:
            return MissingSamples(row.epoch, f"not sampled (sample_every_n_epochs = {st.every_n_epochs})", False)
        return MissingSamples(
            row.epoch,
            "missing: this epoch should have been sampled (interrupted while sampling, no prompt file, or deleted)",
            expected=True,
        )
    if st.every_n_steps is not None:
        return MissingSamples(row.epoch, f"sampled by step (sample_every_n_steps = {st.every_n_steps})", False)
    if sset.images:
        return MissingSamples(row.epoch, "no samples of this epoch", expected=True)
    return MissingSamples(row.epoch, "no samples", expected=False)


def _status(sset: SampleSet, ranking: Ranking) -> str:
    """One sentence on the run's samples as a whole."""
    n = len(sset.images)
    if n == 0:
        if sset.settings.off:
            return "no sample images: sampling was off (set sample_every_n_epochs and sample_prompts to get some)"
        if not sset.folder.is_dir():
            return (
                f"no sample images: no {sset.folder.name}/ folder (sampling off, or the run never got that far)"
                + _unfinished(ranking)
            )
        return f"no sample images in {sset.folder}" + _unfinished(ranking)
    epochs = sum(1 for r in ranking.rows if r.samples)
    prompts = len(sset.prompt_indexes)
    text = f"{n} sample image{'s' if n != 1 else ''}: {prompts} prompt{'s' if prompts != 1 else ''}"
    text += f", {epochs} epoch{'s' if epochs != 1 else ''}"
    if sset.steps:
        text += f", {len({i.step for i in sset.steps})} step points"
    if sset.before_training:
        text += ", and before training"
    expected = [m.epoch for m in sset.missing if m.expected]
    if expected:
        text += f"; missing for epoch{'s' if len(expected) != 1 else ''} {', '.join(map(str, expected))}"
    return text + _unfinished(ranking)


def _unfinished(ranking: Ranking) -> str:
    inc = ranking.incomplete
    if inc is None or inc.epoch is None:
        return ""
    return f"; epoch {inc.epoch} did not finish, so it has no samples"
