"""Advice on a valid recipe: what the trainer will do differently from what the recipe seems to say."""

from __future__ import annotations

from kohya_recipe.recipe.models import Recipe


def recipe_warnings(recipe: Recipe) -> list[str]:
    """Things the trainer will do differently from what the recipe seems to say."""
    out: list[str] = []
    opt = recipe.optimizer
    if opt.is_adafactor and opt.relative_step:
        set_lrs = [n for n in ("learning_rate", "unet_lr", "text_encoder_lr") if getattr(opt, n) is not None]
        if set_lrs:
            out.append(
                f"optimizer: Adafactor in relative-step mode ignores {', '.join(set_lrs)} (sd-scripts sets them "
                "to None); pass relative_step=False in optimizer.args for a fixed learning rate"
            )
        if opt.scheduler != "adafactor":
            out.append(
                f"optimizer.scheduler: {opt.scheduler!r} is replaced by 'adafactor' in Adafactor's relative-step mode"
            )
    net = recipe.network
    if net.alpha > net.rank:
        # networks/lora.py LoRAModule: the update is scaled by alpha / rank.
        out.append(
            f"network.alpha {net.alpha:g} is above network.rank {net.rank}: the LoRA's update is scaled by "
            f"alpha/rank = x{net.alpha / net.rank:g}, which usually overshoots (the article uses 72/96 = 0.75)"
        )
    if not recipe.subject.trigger:
        out.append("subject.trigger: no trigger word; the LoRA will have nothing to call it up by")
    if recipe.dataset.regularization:
        out.append("dataset.regularization: the article advises against regularization images for a single subject")
    if recipe.training.save_every_n_epochs is None:
        out.append(
            "training.save_every_n_epochs is unset: only the final epoch gets a checkpoint, so no earlier epoch "
            "can be kept (the article keeps the lowest-loss epoch and the last)"
        )
    elif recipe.training.save_every_n_epochs != 1:
        out.append(
            f"training.save_every_n_epochs = {recipe.training.save_every_n_epochs}: only every "
            f"{recipe.training.save_every_n_epochs}th epoch gets a checkpoint to compare"
        )
    for i, p in enumerate(recipe.samples.prompts):
        if recipe.subject.trigger and recipe.subject.trigger not in p.prompt:
            out.append(f"samples.prompts[{i}]: the prompt does not contain the trigger {recipe.subject.trigger!r}")
    return out
