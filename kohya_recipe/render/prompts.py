"""The sample-prompt file (``--sample_prompts``): one prompt per line with ``--w --h --s --l --d --n``."""

from __future__ import annotations

from kohya_recipe.recipe.models import Recipe, SamplePrompt


def prompt_line(p: SamplePrompt) -> str:
    # sd-scripts splits the line on " --" (§6): every option needs the space before it, which the article's
    # "--w 512--h 512" lacks. --n goes last because it takes the rest of its piece.
    parts = [p.prompt, f"--w {p.width}", f"--h {p.height}", f"--s {p.steps}"]
    if p.cfg_scale is not None:
        parts.append(f"--l {p.cfg_scale:g}")
    if p.seed is not None:
        parts.append(f"--d {p.seed}")
    if p.negative:
        parts.append(f"--n {p.negative}")
    return " ".join(parts)


def render_prompts(recipe: Recipe) -> str:
    """The file's text (empty when the recipe has no sample prompts)."""
    lines = [prompt_line(p) for p in recipe.samples.prompts]
    return "".join(line + "\n" for line in lines)
