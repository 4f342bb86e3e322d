"""The names sd-scripts gives its sample images, read back: which epoch or step, which prompt, which seed.

``library/train_util.py`` ``sample_image_inference`` saves
``{output_dir}/sample/{output_name}_{tag}_{prompt index:02d}_{YYYYmmddHHMMSS}[_{seed}].png``: the tag is
``e{epoch:06d}`` for epoch samples (``e000000`` before the first step, ``--sample_at_first``) and
``{global_step:06d}`` for step samples; without an output name the ``{output_name}_`` prefix is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_SUFFIX = ".png"  # sd-scripts saves samples with PIL as .png only

_NAME_RE = re.compile(
    r"^(?:(?P<name>.+)_)?(?:e(?P<epoch>\d{6,})|(?P<step>\d{6,}))_(?P<index>\d{2,})_(?P<time>\d{14})"
    r"(?:_(?P<seed>-?\d+))?\.png$"
)


@dataclass
class SampleImage:
    """One sample image: the epoch (0 = before training) or global step it was made at, and its prompt."""

    path: Path
    name: str | None = field(metadata={"json": False})  # the output name in the file name
    epoch: int | None
    step: int | None
    prompt_index: int
    time: str  # YYYYmmddHHMMSS, the trainer's local time
    seed: int | None

    __json_properties__ = ("file",)

    @property
    def file(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        if self.epoch is not None:
            return "before training" if self.epoch == 0 else f"epoch {self.epoch}"
        return f"step {self.step}"


def parse_sample_name(path: Path) -> SampleImage | None:
    """The sample image ``path`` is, by its name; None for any other file."""
    m = _NAME_RE.match(path.name)
    if m is None:
        return None
    return SampleImage(
        path=path,
        name=m["name"],
        epoch=int(m["epoch"]) if m["epoch"] is not None else None,
        step=int(m["step"]) if m["step"] is not None else None,
        prompt_index=int(m["index"]),
        time=m["time"],
        seed=int(m["seed"]) if m["seed"] is not None else None,
    )
