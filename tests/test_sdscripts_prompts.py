"""The sample-prompt line: one writer, one reader, read as sd-scripts' line_to_prompt_dict reads it."""

from __future__ import annotations

import pytest

from kohya_recipe.sdscripts.prompts import PromptLine, parse_prompt_file, parse_prompt_line


def test_options_are_case_insensitive_as_in_sd_scripts() -> None:
    line = parse_prompt_line("1girl, x --W 640 --H 512 --S 20 --L 6.5 --D 7 --N bad hands")
    assert (line.width, line.height, line.steps, line.cfg_scale, line.seed) == (640, 512, 20, 6.5, 7)
    assert line.negative == "bad hands"
    assert line.dropped == []


def test_steps_are_clamped_and_unknown_options_dropped() -> None:
    line = parse_prompt_line("a --s 5000 --zz 1 --cn control.png")
    assert line.steps == 1000
    assert line.dropped == ["--zz 1"]  # --cn is an sd-scripts option (controlnet image), not dropped


def test_a_missing_space_before_an_option_loses_it_as_sd_scripts_does() -> None:
    # The article's "--w 512--h 512": sd-scripts reads width 512 and never sees the height.
    line = parse_prompt_line("a --w 512--h 512")
    assert (line.width, line.height) == (512, None)


def test_sd_scripts_reads_options_in_the_prompt_piece_too() -> None:
    assert parse_prompt_line("n ice --w 64").negative == "ice"


@pytest.mark.parametrize(
    "line",
    [
        PromptLine("1girl, CharacterAI", negative="Anime, Cartoon", width=512, height=512, steps=35),
        PromptLine("a", width=768, height=512, steps=30, cfg_scale=7.5, seed=42),
        PromptLine("b"),
    ],
)
def test_format_and_parse_round_trip(line: PromptLine) -> None:
    assert parse_prompt_line(line.format()) == line


def test_prompt_file_skips_blank_and_comment_lines() -> None:
    prompts = parse_prompt_file("# comment\n\n  a --w 64  \r\nb\n")
    assert [p.prompt for p in prompts] == ["a", "b"]
    assert prompts[0].width == 64
