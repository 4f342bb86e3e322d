"""sd-scripts' sample-prompt line: ``prompt --n negative --w 512 --h 512 --s 30 --l 7 --d 42 --ss euler_a``.

The one writer and the one reader of that format. sd-scripts (``library/train_util.py`` ``line_to_prompt_dict``)
splits each line on ``" --"``, takes the first piece as the prompt, and matches every piece against each option
in a fixed order with ``re.match(..., re.IGNORECASE)``: ``--W 640`` sets the width just as ``--w 640`` does, and a
value that does not parse is logged and ignored. ``load_prompts`` reads the file with universal newlines, strips
each line and skips empty and ``#`` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# (attribute, pattern, converter) in line_to_prompt_dict's order: the first match wins for each piece.
_OPTIONS: tuple[tuple[str, re.Pattern[str], type], ...] = (
    ("width", re.compile(r"w (\d+)", re.IGNORECASE), int),
    ("height", re.compile(r"h (\d+)", re.IGNORECASE), int),
    ("seed", re.compile(r"d (\d+)", re.IGNORECASE), int),
    ("steps", re.compile(r"s (\d+)", re.IGNORECASE), int),
    ("cfg_scale", re.compile(r"l ([\d\.]+)", re.IGNORECASE), float),
    ("guidance_scale", re.compile(r"g ([\d\.]+)", re.IGNORECASE), float),
    ("negative", re.compile(r"n (.+)", re.IGNORECASE), str),
    ("sampler", re.compile(r"ss (.+)", re.IGNORECASE), str),
)
# Options sd-scripts reads that a LoRA sample never needs here; recognised so that they are not "dropped".
_KNOWN_OTHER = re.compile(r"(cn|ctr|rcfg|fs) (.+)", re.IGNORECASE)

# sd-scripts clamps the sampling steps to 1..1000 (line_to_prompt_dict).
MIN_STEPS, MAX_STEPS = 1, 1000


@dataclass
class PromptLine:
    """One sample-prompt line as sd-scripts reads it; ``None`` means the option is absent (the trainer's default).

    ``dropped`` lists the ``--`` pieces sd-scripts would ignore (unknown options, values that do not parse).
    """

    prompt: str
    negative: str = ""
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    sampler: str | None = None
    guidance_scale: float | None = None
    dropped: list[str] = field(default_factory=list)

    def format(self) -> str:
        """The line sd-scripts reads back as this prompt (every option with its space; ``--n`` last)."""
        # "--w 512--h 512" (the article's spelling) has no space before "--h", so sd-scripts would read the
        # width piece as "w 512--h 512": every option needs " --" before it.
        parts = [self.prompt]
        for flag, value in (
            ("w", self.width),
            ("h", self.height),
            ("s", self.steps),
            ("l", self.cfg_scale),
            ("g", self.guidance_scale),
            ("d", self.seed),
            ("ss", self.sampler),
        ):
            if value is not None:
                parts.append(f"--{flag} {value:g}" if isinstance(value, float) else f"--{flag} {value}")
        if self.negative:
            # --n takes the rest of its piece, so it goes last.
            parts.append(f"--n {self.negative}")
        return " ".join(parts)


def format_prompt_line(
    prompt: str,
    *,
    negative: str = "",
    width: int | None = None,
    height: int | None = None,
    steps: int | None = None,
    cfg_scale: float | None = None,
    seed: int | None = None,
) -> str:
    """One line of the ``--sample_prompts`` file."""
    return PromptLine(
        prompt, negative=negative, width=width, height=height, steps=steps, cfg_scale=cfg_scale, seed=seed
    ).format()


def parse_prompt_line(line: str) -> PromptLine:
    """Read one line exactly as sd-scripts does (case-insensitive options, the first matching option wins)."""
    pieces = line.strip().split(" --")
    out = PromptLine(prompt=pieces[0])
    # sd-scripts matches the prompt piece too: a prompt that starts with "w 5" or "n " sets an option.
    for index, piece in enumerate(pieces):
        for attr, pattern, convert in _OPTIONS:
            m = pattern.match(piece)
            if m is None:
                continue
            try:
                value = convert(m.group(1))
            except ValueError:
                # sd-scripts logs "Exception in parsing" and goes on without the value.
                if index:
                    out.dropped.append("--" + piece)
                break
            if attr == "steps":
                value = max(MIN_STEPS, min(MAX_STEPS, value))
            setattr(out, attr, value)
            break
        else:
            if index and not _KNOWN_OTHER.match(piece):
                out.dropped.append("--" + piece)
    return out


def prompt_lines(text: str) -> list[str]:
    """The lines of a prompt file sd-scripts samples: stripped, without empty and ``#`` lines."""
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]


def parse_prompt_file(text: str) -> list[PromptLine]:
    """Every prompt of a ``--sample_prompts`` text file, as sd-scripts reads them."""
    return [parse_prompt_line(line) for line in prompt_lines(text)]
