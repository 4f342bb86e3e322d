"""The A1111 prompt for a picked epoch: its LoRA tag, and the run's sample prompt in A1111's own format."""

from __future__ import annotations

from kohya_recipe.sdscripts.prompts import PromptLine

DEFAULT_WEIGHT = 0.8  # the article's <lora:CharacterAI-1-A-000006:0.8>

# sd-scripts sample_sampler -> the name A1111 shows for the same sampler, where they are the same algorithm.
A1111_SAMPLERS = {
    "ddim": "DDIM",
    "pndm": "PLMS",
    "lms": "LMS",
    "k_lms": "LMS",
    "euler": "Euler",
    "k_euler": "Euler",
    "euler_a": "Euler a",
    "k_euler_a": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "k_dpm_2": "DPM2",
    "dpm_2_a": "DPM2 a",
    "k_dpm_2_a": "DPM2 a",
    "dpmsolver++": "DPM++ 2M",
}


def a1111_snippet(lora_name: str, sample: PromptLine | None, weight: float = DEFAULT_WEIGHT) -> str:
    """An A1111 prompt using the LoRA, in the format A1111's "read generation parameters" accepts."""
    tag = f"<lora:{lora_name}:{weight:g}>"
    if sample is None or not sample.prompt:
        return tag
    lines = [f"{sample.prompt.rstrip(', ')}, {tag}"]
    if sample.negative:
        lines.append(f"Negative prompt: {sample.negative}")
    params = []
    if sample.steps:
        params.append(f"Steps: {sample.steps}")
    if sample.sampler and sample.sampler in A1111_SAMPLERS:
        params.append(f"Sampler: {A1111_SAMPLERS[sample.sampler]}")
    if sample.cfg_scale is not None:
        params.append(f"CFG scale: {sample.cfg_scale:g}")
    if sample.seed is not None:
        params.append(f"Seed: {sample.seed}")
    if sample.width and sample.height:
        params.append(f"Size: {sample.width}x{sample.height}")
    if params:
        lines.append(", ".join(params))
    return "\n".join(lines)
