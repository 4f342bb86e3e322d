"""The kohya_ss GUI's LoRA-tab form: its 287 fields, their widgets, and the checks those widgets make.

The field list is read from ``data/kohya_ss_gui-lora-fields.json``, which was taken from the GUI's own
Gradio components (bmaltais/kohya_ss 45088f04, gradio 6.17.3): widget type, fresh-form default, choices of
dropdowns and radios, and minimum/maximum/precision of numbers and sliders.

Why this matters: the GUI *loads* any JSON without checking it (``kohya_gui/lora_gui.py``
``open_configuration``: unknown keys are dropped, a missing or ``null`` key keeps whatever the form shows), and
only on the next Save, Train or "Print training command" does Gradio's preprocess refuse a dropdown value outside
its choices or a number outside its range. A file that loads fine can therefore still be unusable.
:func:`validate_gui_values` makes those checks up front, plus the pre-launch checks ``train_model()`` makes, so
we never hand the GUI a broken file.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from kohya_recipe.errors import GuiConfigError
from kohya_recipe.files import read_json
from kohya_recipe.sdscripts.options import did_you_mean

FIELDS_FILE = Path(__file__).parent.parent / "data" / "kohya_ss_gui-lora-fields.json"

# LoRA types whose network_dim/conv_dim slider maximum the GUI raises from 512 to 100000 when selected
# (kohya_gui/lora_gui.py update_LoRA_settings, which fires after a load too).
BIG_DIM_LORA_TYPES = frozenset({"LyCORIS/LoHa", "LyCORIS/LoKr", "LyCORIS/BOFT", "LyCORIS/Diag-OFT"})
BIG_DIM_MAXIMUM = 100000
BIG_DIM_FIELDS = ("network_dim", "conv_dim")

# num_cpu_threads_per_process's slider maximum is os.cpu_count() *of the GUI host*; the fields file recorded
# the 2-core machine it was read on, so that number says nothing about the user's machine.
HOST_DEPENDENT_MAXIMUM = frozenset({"num_cpu_threads_per_process"})

# Model-family checkboxes (kohya_gui/lora_gui.py train_model picks the training script from them).
FAMILY_CHECKBOXES = (
    "sdxl",
    "flux1_checkbox",
    "sd3_checkbox",
    "hunyuan_image_checkbox",
    "anima_checkbox",
    "lumina_checkbox",
)

ProblemKind = Literal["type", "choice", "range", "missing", "preflight"]
Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class GuiField:
    """One form field of the LoRA tab, as the GUI's Gradio component defines it."""

    key: str
    widget: str  # Checkbox | Textbox | Number | Slider | Dropdown | Radio
    default: Any
    choices: tuple[Any, ...] | None = None
    allow_custom_value: bool = False
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    precision: int | None = None
    note: str | None = None

    @property
    def numeric(self) -> bool:
        return self.widget in ("Number", "Slider")

    @property
    def fixed_choices(self) -> bool:
        """A dropdown/radio that refuses values outside its choices on Save/Train."""
        return self.widget in ("Dropdown", "Radio") and not self.allow_custom_value

    def maximum_for(self, lora_type: str | None) -> float | None:
        """The slider maximum in effect for ``lora_type`` (network_dim/conv_dim depend on it)."""
        if self.key in BIG_DIM_FIELDS and lora_type in BIG_DIM_LORA_TYPES:
            return BIG_DIM_MAXIMUM
        return self.maximum

    def limits_text(self, lora_type: str | None = None) -> str:
        lo, hi = self.minimum, self.maximum_for(lora_type)
        if lo is not None and hi is not None:
            return f"{_num(lo)}..{_num(hi)}"
        if lo is not None:
            return f">= {_num(lo)}"
        if hi is not None:
            return f"<= {_num(hi)}"
        return "any number"


@dataclass(frozen=True)
class GuiProblem:
    """A value the GUI would refuse (``error``) or that it accepts but that does not do what it says."""

    source: str
    key: str
    message: str
    kind: ProblemKind
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.source}: {self.key}: {self.message}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@lru_cache(maxsize=1)
def _load() -> tuple[str, dict[str, GuiField]]:
    raw = read_json(FIELDS_FILE)
    fields: dict[str, GuiField] = {}
    for entry in raw["fields"]:
        choices = entry.get("choices")
        fields[entry["key"]] = GuiField(
            key=entry["key"],
            widget=entry["widget"],
            default=entry.get("default"),
            choices=tuple(choices) if choices is not None else None,
            allow_custom_value=bool(entry.get("allow_custom_value", False)),
            minimum=entry.get("minimum"),
            maximum=entry.get("maximum"),
            step=entry.get("step"),
            precision=entry.get("precision"),
            note=entry.get("note"),
        )
    return str(raw["gui"]), fields


def gui_fields() -> dict[str, GuiField]:
    """All LoRA-tab fields by key, in the GUI's registry order (a fresh dict; the cache stays untouched)."""
    return dict(_load()[1])


def gui_field(key: str) -> GuiField:
    return _load()[1][key]


def gui_version() -> str:
    """Which kohya_ss GUI the field list was read from."""
    return _load()[0]


def gui_keys() -> tuple[str, ...]:
    """The 287 registry keys: what the GUI saves, loads and trains from."""
    return tuple(_load()[1])


def gui_defaults() -> dict[str, Any]:
    """The values a fresh LoRA form shows (no ``config.toml``). Some text fields default to ``None``."""
    return {k: f.default for k, f in _load()[1].items()}


def lora_types() -> tuple[str, ...]:
    choices = gui_field("LoRA_type").choices
    assert choices is not None
    return tuple(str(c) for c in choices)


# ----------------------------------------------------------------------------------------------------
# Widget checks


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe(value: Any) -> str:
    """A value as the user wrote it in JSON, for messages."""
    return json.dumps(value, ensure_ascii=False)


def _checkbox_problem(field: GuiField, value: Any) -> tuple[ProblemKind, str] | None:
    if isinstance(value, bool):
        return None
    # gr.Checkbox applies bool(value): the string "false" becomes true.
    return "type", f"must be true or false, not {describe(value)} (the GUI reads any non-empty text as true)"


def _textbox_problem(field: GuiField, value: Any) -> tuple[ProblemKind, str] | None:
    return None if isinstance(value, str) else ("type", f"must be text, not {describe(value)}")


def _choice_problem(field: GuiField, value: Any) -> tuple[ProblemKind, str] | None:
    if not field.fixed_choices:
        return None if isinstance(value, str) else ("type", f"must be text, not {describe(value)}")
    choices = field.choices or ()
    if value not in choices or isinstance(value, bool):
        shown = ", ".join(describe(c) for c in choices)
        return "choice", f"{describe(value)} is not one of the GUI's choices: {shown}"
    return None


def _range_note(field: GuiField, value: Any, lora_type: str | None) -> str:
    """Why the range is what it is, for the two fields whose maximum depends on something."""
    if field.key in BIG_DIM_FIELDS:
        where = f" for LoRA_type {lora_type or 'Standard'}"
        lo = field.minimum
        if lora_type not in BIG_DIM_LORA_TYPES and lo is not None and lo <= value <= BIG_DIM_MAXIMUM:
            where += f" (only {', '.join(sorted(BIG_DIM_LORA_TYPES))} allow up to {BIG_DIM_MAXIMUM})"
        return where
    if field.key in HOST_DEPENDENT_MAXIMUM:
        return " (the GUI host's CPU count)"
    return ""


def _number_problem(
    field: GuiField, value: Any, lora_type: str | None, host_cpu_count: int | None
) -> tuple[ProblemKind, str] | None:
    if not _is_number(value):
        return "type", f"must be a number, not {describe(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return "type", f"must be a finite number, not {value}"
    if field.precision == 0 and not float(value).is_integer():
        # gr.Number(precision=0) rounds on load: 2.5 would silently become 2.
        return "type", f"must be a whole number, not {describe(value)}"
    lo = field.minimum
    hi = host_cpu_count if field.key in HOST_DEPENDENT_MAXIMUM else field.maximum_for(lora_type)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        limits = f"{_num(lo) if lo is not None else ''}..{_num(hi) if hi is not None else ''}"
        return "range", f"{describe(value)} is outside the GUI's range {limits}{_range_note(field, value, lora_type)}"
    return None


def gui_refusal(field: GuiField, value: Any, *, lora_type: str | None = None) -> str | None:
    """The GUI's own sentence refusing ``value`` on Save/Train/Print (gradio 6's ``Number``/``Slider`` bounds check
    and ``Dropdown`` choice check), for quoting; ``None`` when the widget takes it or says nothing of its own."""
    if field.numeric and _is_number(value):
        lo, hi = field.minimum, field.maximum_for(lora_type)
        if lo is not None and value < lo:
            return f"Value {value} is less than minimum value {_num(lo)}."
        if hi is not None and value > hi:
            return f"Value {value} is greater than maximum value {_num(hi)}."
    if field.widget == "Dropdown" and field.fixed_choices and value not in (field.choices or ()):
        return f"Value: {value} is not in the list of choices: {list(field.choices or ())}"
    return None


def args_refusal(text: str) -> str:
    """The GUI's sentence refusing an ``optimizer_args``/``lr_scheduler_args`` text (``validate_args_setting``)."""
    return f"'{text}' is not a valid settings string."


_WIDGET_CHECKS = {
    "Checkbox": _checkbox_problem,
    "Textbox": _textbox_problem,
    "Dropdown": _choice_problem,
    "Radio": _choice_problem,
}


def check_value(
    field: GuiField, value: Any, *, lora_type: str | None = None, host_cpu_count: int | None = None
) -> tuple[ProblemKind, str] | None:
    """Why ``field`` would refuse ``value`` on the next Save/Train (Gradio 6 preprocess), or ``None``.

    ``None`` itself is not checked here: in a file it means "keep what the form shows" (see ``complete``).
    """
    if value is None:
        return None
    check = _WIDGET_CHECKS.get(field.widget)
    if check is not None:
        return check(field, value)
    if field.numeric:
        return _number_problem(field, value, lora_type, host_cpu_count)
    return None  # pragma: no cover - every widget type of the fields file is handled above


_KV_TOKEN = re.compile(r"^[^\s=]+=\S+$")


def args_problem(text: str) -> str | None:
    """``kohya_gui/common_gui.py`` ``validate_args_setting`` (called by train_model): empty, or key=value tokens
    split by single spaces, no spaces around '='."""
    if text == "":
        return None
    if "  " in text or text != text.strip():
        return "must be key=value pairs separated by single spaces"
    for token in text.split(" "):
        if not _KV_TOKEN.match(token):
            return f"{token!r} is not key=value (no spaces around '=')"
    return None


def _args_preflight(values: dict[str, Any]) -> list[tuple[str, str, Severity]]:
    out: list[tuple[str, str, Severity]] = []
    for key in ("optimizer_args", "lr_scheduler_args"):
        text = values.get(key)
        if isinstance(text, str):
            why = args_problem(text)
            if why:
                out.append((key, why, "error"))
    return out


def _family_preflight(values: dict[str, Any]) -> list[tuple[str, str, Severity]]:
    """train_model's LoRA type / model family checks (check 3)."""
    lora_type = values.get("LoRA_type")
    if not isinstance(lora_type, str):
        return []
    flags = {k: values.get(k) is True for k in FAMILY_CHECKBOXES}
    why: list[str] = []
    if flags["flux1_checkbox"] and not (lora_type in ("Flux1", "Flux1 OFT") or lora_type.startswith("LyCORIS/")):
        why.append(f"{lora_type!r} cannot train Flux.1 (use Flux1, Flux1 OFT or a LyCORIS type)")
    if flags["anima_checkbox"] and lora_type not in ("Anima", "Kohya LoHa", "Kohya LoKr"):
        why.append(f"{lora_type!r} cannot train Anima (use Anima, Kohya LoHa or Kohya LoKr)")
    if lora_type == "Anima" and not flags["anima_checkbox"]:
        why.append("'Anima' needs the anima_checkbox model family")
    if flags["lumina_checkbox"] != (lora_type == "Lumina"):
        why.append("the Lumina checkbox and LoRA_type 'Lumina' go together")
    if lora_type in ("Kohya LoHa", "Kohya LoKr"):
        if not (flags["sdxl"] or flags["anima_checkbox"]):
            why.append(f"{lora_type!r} needs SDXL or Anima")
        for other in ("flux1_checkbox", "sd3_checkbox", "hunyuan_image_checkbox", "lumina_checkbox"):
            if flags[other]:
                why.append(f"{lora_type!r} cannot be combined with {other}")
    return [("LoRA_type", w, "error") for w in why]


def _value_preflight(values: dict[str, Any]) -> list[tuple[str, str, Severity]]:
    """train_model's checks on single values: Anima's compile options, the text-encoder stop, learning rates."""
    out: list[tuple[str, str, Severity]] = []
    if values.get("anima_compile") is True and values.get("anima_torch_compile") is True:
        out.append(("anima_compile", "anima_compile and anima_torch_compile exclude each other", "error"))
    stop = values.get("stop_text_encoder_training")
    if _is_number(stop) and stop != 0:
        out.append(
            ("stop_text_encoder_training", "is not supported by the GUI: it resets it to 0 and ignores it", "warning")
        )
    lrs = [values.get(k) for k in ("learning_rate", "text_encoder_lr", "unet_lr")]
    if all(_is_number(v) and v == 0 for v in lrs):
        why = "learning_rate, text_encoder_lr and unet_lr are all 0: the GUI refuses to train"
        out.append(("learning_rate", why, "error"))
    t5, te = values.get("t5xxl_lr"), values.get("text_encoder_lr")
    if isinstance(t5, int | float) and _is_number(t5) and t5 > 0 and _is_number(te) and te == 0:
        out.append(("t5xxl_lr", "needs text_encoder_lr > 0 (the GUI refuses to train otherwise)", "error"))
    return out


def _preflight(values: dict[str, Any], source: str) -> list[GuiProblem]:
    """The checks ``kohya_gui/lora_gui.py`` ``train_model`` makes before launching, on whatever keys are present."""
    found = [*_args_preflight(values), *_family_preflight(values), *_value_preflight(values)]
    return [GuiProblem(source, key, message, "preflight", severity) for key, message, severity in found]


def validate_gui_values(
    mapping: dict[str, Any],
    source: str = "gui.json",
    *,
    complete: bool = False,
    preflight: bool = True,
    host_cpu_count: int | None = None,
) -> list[GuiProblem]:
    """Every value of ``mapping`` the GUI's widgets would refuse on Save/Train, and (``preflight``) what
    ``train_model()`` refuses before launching.

    Keys the GUI does not know are not checked (the GUI ignores them; :func:`unknown_gui_keys` lists them).
    ``complete=True`` also requires all 287 keys with non-null values: a missing or null key keeps whatever
    the form happens to show, so a partial file does not say what will be trained. ``host_cpu_count`` enables
    the ``num_cpu_threads_per_process`` maximum, which is the GUI host's core count.
    """
    fields = _load()[1]
    out: list[GuiProblem] = []
    lora_type = mapping.get("LoRA_type")
    lora_type = lora_type if isinstance(lora_type, str) else None
    for key, field in fields.items():
        if key not in mapping or mapping[key] is None:
            if complete:
                what = "is missing" if key not in mapping else "is null"
                out.append(GuiProblem(source, key, f"{what}: the GUI would keep whatever its form shows", "missing"))
            continue
        problem = check_value(field, mapping[key], lora_type=lora_type, host_cpu_count=host_cpu_count)
        if problem:
            out.append(GuiProblem(source, key, problem[1], problem[0]))
    if preflight:
        out.extend(_preflight(mapping, source))
    return out


def unknown_gui_keys(mapping: dict[str, Any]) -> list[str]:
    """Keys the LoRA tab does not have (the GUI silently ignores them), sorted."""
    fields = _load()[1]
    return sorted(k for k in mapping if k not in fields)


def check_gui_passthrough(gui: dict[str, Any], *, source: str = "recipe") -> None:
    """``recipe.gui`` may only hold GUI form keys (or the layout keys), each a value its widget accepts."""
    fields = gui_fields()
    for key, value in gui.items():
        if key not in fields:
            raise GuiConfigError(
                f"not a field of the GUI's LoRA tab{did_you_mean(key, fields)}", source=source, field=f"gui.{key}"
            )
        if value is None:
            raise GuiConfigError(
                "must not be null (the GUI would keep what its form shows)", source=source, field=f"gui.{key}"
            )
    problems = [p for p in validate_gui_values(gui, source, preflight=False) if p.kind == "type"]
    if problems:
        p = problems[0]
        raise GuiConfigError(p.message, source=source, field=f"gui.{p.key}")
