"""One error base for the whole package, and the documented exit codes.

Every user mistake is raised as a :class:`KohyaRecipeError` with a message that names the file and the field,
and is caught once, at the CLI edge, where it becomes ``Error: <message>`` on stderr and exit code 1.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes of the ``kohya-recipe`` command (documented in docs/exit-codes.md)."""

    OK = 0
    ERROR = 1  # a user mistake or bad input; the message says what and where
    USAGE = 2  # click usage error (unknown option, missing argument)
    CHECK_FAILED = 3  # `check` found errors in the dataset
    TRAINER_FAILED = 4  # the trainer ran but did not produce the final checkpoint
    PARTIAL = 5  # a caption command changed some files and failed on others (1: it changed nothing)
    RUN_DIVERGED = 6  # `report`: every epoch's loss is NaN/inf, so no epoch is recommended
    NOT_ON_NODE = 7  # a Ray job's project folder does not exist on its node (no shared filesystem there)
    INTERRUPTED = 130  # Ctrl-C / SIGINT (128 + 2, the shell convention)


def _one_line(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


class KohyaRecipeError(Exception):
    """Base of every error the CLI reports as a one-line ``Error: ...``."""

    exit_code: int = ExitCode.ERROR

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.message = message
        self.source = source
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        parts = [p for p in (self.source, self.field) if p]
        parts.append(self.message)
        # One line, always: a key or value with a newline or other control character (from a hostile file) is
        # shown escaped, so the message cannot spill over lines or move the cursor.
        return _one_line(": ".join(parts))


class RecipeError(KohyaRecipeError):
    """A recipe, preset or ``--set`` value is malformed or breaks a trainer rule."""


class RenderError(KohyaRecipeError):
    """A rendered file could not be written, or would overwrite a file we did not write."""


class DatasetError(KohyaRecipeError):
    """The image folder is missing or unusable."""


class GuiConfigError(KohyaRecipeError):
    """A kohya_ss GUI JSON config cannot be read or cannot hold a value."""


class TrainerError(KohyaRecipeError):
    """sd-scripts was not found, or the training run failed."""

    exit_code = ExitCode.TRAINER_FAILED


class TrainingInterrupted(KohyaRecipeError):
    """The run was stopped with Ctrl-C; checkpoints written so far are kept."""

    exit_code = ExitCode.INTERRUPTED


class EventsError(KohyaRecipeError):
    """TensorBoard event files are missing or unreadable."""
