"""The sample-prompt file (``--sample_prompts``): one line per recipe prompt (:mod:`kohya_recipe.sdscripts.prompts`)."""

from __future__ import annotations

from kohya_recipe.recipe.models import Recipe
from kohya_recipe.recipe.sections import SamplePrompt


def prompt_line(p: SamplePrompt) -> str:
    """One prompt as the line sd-scripts reads back as it."""
    return p.line().format()


def render_prompts(recipe: Recipe) -> str:
    """The file's text (empty when the recipe has no sample prompts)."""
    return "".join(prompt_line(p) + "\n" for p in recipe.samples.prompts)
