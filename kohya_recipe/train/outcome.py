"""Did a training run succeed? Decided from the files and the output, not from the exit code alone.

sd-scripts exits 0 when it finds no images (``ERROR No data found...``: ``train_network.py``
``NetworkTrainer.train`` logs it and returns; fixture ``no-data``) and writes no checkpoint, and ``accelerate
launch`` turns any failure of the script into exit 1 with a ``CalledProcessError`` traceback that only repeats
the status (fixture ``bad-dataset-config``; accelerate ``commands/launch.py`` ``simple_launcher``). So:

- **success**: exit 0 *and* the final ``<output_name>.safetensors`` exists (``NetworkTrainer.train`` writes the last
  epoch only under that unnumbered name, ``library/train_util.py`` ``get_last_ckpt_name``);
- **interrupted**: we forwarded Ctrl-C (or the launcher died of SIGINT: exit 130 from a shell, ``-2`` from
  :mod:`subprocess`), and the final file is missing;
- **failed**: anything else, with the most telling line of the output: the "No data found" message, the
  trainer's own exception (not accelerate's wrapper), or the last ERROR record.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from kohya_recipe.errors import ExitCode
from kohya_recipe.train.progress import ProgressState

SUCCESS = "success"
FAILED = "failed"
INTERRUPTED = "interrupted"

# 128 + SIGINT: what a shell reports for a process that died of Ctrl-C (fixture `interrupted`: exit_code 130)
_SHELL_SIGINT = 128 + int(signal.SIGINT)


@dataclass(frozen=True)
class RunOutcome:
    """The verdict on one run: ``outcome`` is ``success``, ``failed`` or ``interrupted``."""

    outcome: str
    exit_code: int | None
    message: str
    final_checkpoint: Path | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == SUCCESS

    @property
    def cli_exit_code(self) -> int:
        """The ``kohya-recipe`` exit code for this outcome (docs/exit-codes.md)."""
        if self.outcome == SUCCESS:
            return int(ExitCode.OK)
        if self.outcome == INTERRUPTED:
            return int(ExitCode.INTERRUPTED)
        return int(ExitCode.TRAINER_FAILED)


def describe_exit(code: int | None) -> str:
    """``exit 1``, or ``killed by SIGKILL`` for a negative :mod:`subprocess` return code."""
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit {code}"


def is_sigint_exit(code: int | None) -> bool:
    return code in (-int(signal.SIGINT), _SHELL_SIGINT)


def decide_outcome(
    exit_code: int | None,
    final_checkpoint: Path,
    state: ProgressState,
    *,
    interrupted: bool = False,
    final_written: bool | None = None,
) -> RunOutcome:
    """Judge a finished run from its exit code, the final checkpoint's presence and the parsed output.

    ``final_written`` overrides the presence check; pass whether *this* run wrote the file, so that a final
    checkpoint left by an earlier run does not turn a run that trained nothing into a success.
    """
    final_exists = final_checkpoint.is_file() if final_written is None else final_written
    if exit_code == 0 and final_exists:
        return RunOutcome(SUCCESS, exit_code, f"wrote {final_checkpoint.name}", final_checkpoint)
    if interrupted or is_sigint_exit(exit_code):
        where = _position(state)
        return RunOutcome(INTERRUPTED, exit_code, f"interrupted{where}")
    if exit_code == 0:
        if state.no_data:
            # sd-scripts' own message, English half (fixture `no-data`)
            return RunOutcome(FAILED, exit_code, f"sd-scripts found no training images: {state.no_data}")
        detail = state.last_error()
        tail = f": {detail}" if detail else ""
        return RunOutcome(FAILED, exit_code, f"the trainer exited 0 but did not write {final_checkpoint.name}{tail}")
    detail = state.last_error()
    sigkill = getattr(signal, "SIGKILL", None)  # POSIX only
    if sigkill is not None and exit_code == -int(sigkill) and not detail:
        # The kernel's OOM killer is the usual sender of an unexplained SIGKILL.
        detail = "no error message (out of memory? the OOM killer sends SIGKILL)"
    tail = f": {detail}" if detail else ": no error message in the output"
    return RunOutcome(FAILED, exit_code, f"the trainer failed ({describe_exit(exit_code)}){tail}")


def _position(state: ProgressState) -> str:
    parts = []
    if state.epoch is not None and state.epochs is not None:
        parts.append(f"epoch {state.epoch}/{state.epochs}")
    if state.step is not None and state.total_steps is not None:
        parts.append(f"step {state.step}/{state.total_steps}")
    return f" at {', '.join(parts)}" if parts else " before the first step"
