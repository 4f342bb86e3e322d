"""Plain-text building blocks shared by every text output: the width to fit, the one table formatter, wrapping.

Library functions that format text for people (the plan, the check report, the epoch report, the queue) build
their tables with :func:`format_table` and pass their lines through :func:`fit_lines`, so that widths, alignment,
cutting and wrapping are decided in one place.

The width is the terminal's: ``COLUMNS`` when set (shells export it; tests set it), else the size of the terminal
on stdout. Output to a file or a pipe is not cut at all, so that nothing is lost to a script or a log.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import textwrap
from collections.abc import Iterable, Sequence

# A column is never cut below this many characters (an ellipsis needs room to say something).
MIN_CUT_WIDTH = 8


def output_width() -> int | None:
    """The width text output must fit, or ``None`` when it goes to a file or a pipe (no limit)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _plain(header: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int], indent: int) -> list[str]:
    right = set(right)
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    pad = " " * indent

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return (pad + "  ".join(out)).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _shrink(natural: list[int], fixed: set[int], room: int) -> list[int]:
    """Column widths that fit ``room``: the widest cuttable column gives up one character at a time, down to
    :data:`MIN_CUT_WIDTH` (then to 1), so the columns that fit keep their full width."""
    widths = list(natural)
    floor = MIN_CUT_WIDTH
    while sum(widths) > room:
        cuttable = [i for i in range(len(widths)) if i not in fixed and widths[i] > floor]
        if not cuttable:
            if floor == 1:
                break
            floor = 1
            continue
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _fitted(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int], indent: int, width: int
) -> list[str]:
    """The table cut to ``width`` and drawn by rich: text columns lose their ends (with an ellipsis), numbers are
    kept whole; widths are counted in terminal cells (a CJK character takes two)."""
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table

    right = set(right)
    natural = [max([cell_len(h), *(cell_len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    room = max(width - indent - 2 * (len(header) - 1), len(header))
    widths = _shrink(natural, right, room)
    table = Table(box=None, header_style="", pad_edge=False, padding=(0, 2, 0, 0), show_edge=False, expand=False)
    for i, name in enumerate(header):
        table.add_column(
            name, justify="right" if i in right else "left", no_wrap=True, overflow="ellipsis", width=widths[i]
        )
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    console = Console(file=out, width=width - indent + 2, color_system=None, legacy_windows=False, soft_wrap=False)
    console.print(table)
    pad = " " * indent
    return [(pad + line).rstrip() for line in out.getvalue().splitlines()]


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Iterable[int] = frozenset(),
    indent: int = 0,
    width: int | None = None,
) -> list[str]:
    """Lines of a table: each column as wide as its widest cell, ``right`` column indexes right-aligned, columns
    two spaces apart, no trailing spaces.

    When the table is wider than ``width`` (default :func:`output_width`), every row stays one line: the text
    columns are cut with an ellipsis (rich decides how much each gives up), numbers are kept whole.
    """
    lines = _plain(header, rows, right, indent)
    limit = width if width is not None else output_width()
    if limit is None or max(len(line) for line in lines) <= limit:
        return lines
    return _fitted(header, rows, right, indent, limit)


def fit_lines(lines: Iterable[str], width: int | None = None) -> list[str]:
    """``lines`` with every line longer than ``width`` (default :func:`output_width`) wrapped at spaces; the
    continuation keeps the line's indent plus two spaces. Lines that fit are untouched."""
    limit = width if width is not None else output_width()
    out: list[str] = []
    for line in lines:
        if limit is None or len(line) <= limit:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip(" ")))
        out += textwrap.wrap(
            line.strip(),
            width=max(limit, len(indent) + 20),
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_long_words=True,
            break_on_hyphens=False,
        )
    return out
