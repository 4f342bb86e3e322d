"""Plain-text building blocks shared by every text output: the one table formatter.

Library functions that format text for people (the plan, the check report, the epoch report, the queue) build
their tables here, so that column widths, alignment and cutting are decided in one place.
"""

from __future__ import annotations

from collections.abc import Sequence


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: frozenset[int] | set[int] = frozenset(),
    indent: int = 0,
) -> list[str]:
    """Lines of a table: each column as wide as its widest cell, ``right`` column indexes right-aligned.

    Columns are separated by two spaces; trailing spaces are dropped.
    """
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    pad = " " * indent

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return (pad + "  ".join(out)).rstrip()

    return [line(header), *(line(r) for r in rows)]
