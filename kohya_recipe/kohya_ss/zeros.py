"""What the kohya_ss GUI does with a 0 (or ``false``) in each of its 287 LoRA-tab fields.

The GUI builds its TOML for sd-scripts with ``{k: v for k, v in config_toml_data.items() if v not in ["", False,
None]}`` (``kohya_gui/lora_gui.py`` ``train_model``), and ``0 == False`` in Python, so a 0 never reaches the
trainer: sd-scripts then uses its own default. For most fields that default means the same as 0; for a few it does
not (``max_grad_norm`` 0 is "no clipping", the default 1.0 clips). The table, one verdict per field, is plain data in
``data/kohya_ss_gui-lora-zeros.json``: an audit of the real GUI (each field set to 0 through the GUI's own
``train_model``), joined with sd-scripts' argparse defaults. Re-audit it for a new GUI version; nothing here is
hand-picked.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from kohya_recipe.files import read_json

ZEROS_FILE = Path(__file__).parent.parent / "data" / "kohya_ss_gui-lora-zeros.json"

# The verdicts of the audit (the data file's "verdicts" explains each).
ZERO_CHANGES_TRAINING = "zero_dropped_DIFFERENT"
ZERO_REPLACED = "zero_replaced_by_gui"
ZERO_REFUSED = "zero_not_accepted_by_gui"
ZERO_KEPT = "zero_kept"
ZERO_SAME = "zero_dropped_same"
NOT_A_NUMBER = "n/a (text/choice field)"
NOT_A_TRAINER_VALUE = "not_a_trainer_value"
OTHER_FAMILY = "other_family"
VERDICTS = (
    ZERO_CHANGES_TRAINING,
    ZERO_REPLACED,
    ZERO_REFUSED,
    ZERO_KEPT,
    ZERO_SAME,
    NOT_A_NUMBER,
    NOT_A_TRAINER_VALUE,
    OTHER_FAMILY,
)


@dataclass(frozen=True)
class FieldZero:
    """One field's verdict: what a 0 in it becomes on the way to sd-scripts."""

    key: str  # the GUI field
    verdict: str  # one of VERDICTS
    options: tuple[str, ...]  # the sd-scripts options (TOML keys) the field feeds
    trainer_default: dict[str, Any]  # for ZERO_CHANGES_TRAINING: what sd-scripts uses when the 0 is dropped
    note: str = ""

    @property
    def option(self) -> str:
        """The one sd-scripts option of a field that feeds exactly one (a ValueError otherwise)."""
        if len(self.options) != 1:
            raise ValueError(f"{self.key} feeds {len(self.options)} options")
        return self.options[0]

    @property
    def default(self) -> Any:
        """sd-scripts' value for :attr:`option` when the GUI drops the 0."""
        return self.trainer_default.get(self.option)


@lru_cache(maxsize=1)
def _load() -> dict[str, FieldZero]:
    raw = read_json(ZEROS_FILE)
    return {
        e["key"]: FieldZero(
            key=e["key"],
            verdict=e["verdict"],
            options=tuple(e["options"]),
            trainer_default=dict(e.get("trainer_default", {})),
            note=e.get("note", ""),
        )
        for e in raw["fields"]
    }


def field_zeros() -> dict[str, FieldZero]:
    """Every LoRA-tab field's verdict, by GUI key (a fresh dict)."""
    return dict(_load())


def zero_changes_training() -> tuple[FieldZero, ...]:
    """The fields whose 0 the GUI drops while sd-scripts' default means something else."""
    return tuple(z for z in _load().values() if z.verdict == ZERO_CHANGES_TRAINING)


def zero_refused() -> tuple[str, ...]:
    """The fields whose widget refuses 0 (its minimum is above 0)."""
    return tuple(k for k, z in _load().items() if z.verdict == ZERO_REFUSED)
