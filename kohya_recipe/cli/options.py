"""Options many commands share, declared once so that their names and help read the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

SET_HELP = "Override a recipe value: dotted key or sd-scripts option name, e.g. network.alpha=48 or network_alpha=48."


def json_option(f: F) -> F:
    """``--json``: print machine-readable JSON (parameter ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def set_option(f: F) -> F:
    """``--set KEY=VALUE`` (repeatable; parameter ``sets``)."""
    return click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=SET_HELP)(f)


def force_option(help_text: str = "Overwrite files kohya-recipe did not write.") -> Callable[[F], F]:
    """``--force`` with a command-specific help text."""
    return click.option("--force", is_flag=True, help=help_text)


def dry_run_option(help_text: str = "Show what would be done; change nothing.") -> Callable[[F], F]:
    """``--dry-run`` with a command-specific help text."""
    return click.option("--dry-run", is_flag=True, help=help_text)


def out_option(help_text: str, *, required: bool = False, default: str | None = None) -> Callable[[F], F]:
    """``--out/-o PATH``: where a command writes (one spelling for every command)."""
    return click.option("-o", "--out", "out", type=click.Path(), required=required, default=default, help=help_text)
