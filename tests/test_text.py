"""The one table formatter and line wrapper: natural widths when they fit, cut to the terminal when not."""

from __future__ import annotations

import pytest

from kohya_recipe.text import fit_lines, format_table, output_width

HEADER = ["file", "subset", "repeats", "note"]
ROWS = [["img/10_CharacterAI woman/01-front-with-a-long-name.png", "10_CharacterAI woman", "10", "upscaled"]]


def test_a_table_that_fits_keeps_natural_widths() -> None:
    lines = format_table(HEADER, ROWS, right={2}, indent=2, width=200)
    assert lines[0] == "  file" + " " * 52 + "subset                repeats  note"
    assert lines[1].endswith("10_CharacterAI woman       10  upscaled")


@pytest.mark.parametrize("width", [80, 60, 40])
def test_a_wide_table_is_cut_to_the_width_keeping_numbers_whole(width: int) -> None:
    rows = ROWS * 3 + [["x.png", "s", "1234567", ""]]
    lines = format_table(HEADER, rows, right={2}, indent=2, width=width)
    assert max(len(line) for line in lines) <= width
    assert len(lines) == 5  # one line per row: never wrapped
    assert "…" in lines[1] and "1234567" in lines[4]


def test_output_width_follows_columns_and_is_unlimited_for_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert output_width() == 80
    monkeypatch.delenv("COLUMNS")
    assert output_width() is None  # pytest captures stdout: not a terminal


def test_fit_lines_wraps_long_lines_under_their_indent() -> None:
    lines = fit_lines(["short", "  warning: " + "word " * 30], width=40)
    assert lines[0] == "short" and all(len(line) <= 40 for line in lines)
    assert lines[1].startswith("  warning:") and all(line.startswith("    ") for line in lines[2:])
