"""The step plan in words: the article-style formula and the terminal table."""

from __future__ import annotations

import math

from kohya_recipe.dataset.plan_model import BucketRow, Plan, PlanSettings, Steps, SubsetRow
from kohya_recipe.sdscripts.buckets import Reso
from kohya_recipe.text import fit_lines, format_table


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def formula_text(
    subsets: list[SubsetRow], reg_items: int, buckets: tuple[BucketRow, ...], steps: Steps, s: PlanSettings
) -> tuple[str, str | None]:
    """``42 images × 10 repeats × 8 epochs / batch 1 = 3360 steps``, and a note when the buckets change it."""
    train = [r for r in subsets if not r.is_reg and not r.skipped]
    train_items = sum(r.train_images * r.repeats for r in train)
    repeats = {r.repeats for r in train}
    n_images = sum(r.train_images for r in train)
    if len(repeats) <= 1:
        what = f"{n_images} images × {repeats.pop() if repeats else 0} repeats"
    else:
        what = "(" + " + ".join(f"{r.train_images}×{r.repeats}" for r in train) + ") images×repeats"
    items = train_items
    if reg_items:
        if reg_items == train_items:
            what += " × 2 (regularization)"
        else:
            what += f" + {reg_items} regularization"
        items += reg_items

    divisor = f" / batch {s.batch_size}"
    if s.grad_accum > 1:
        divisor += f" / gradient accumulation {s.grad_accum}"
    if s.num_processes > 1:
        divisor += f" / {s.num_processes} processes"
    per_step = s.batch_size * s.grad_accum * s.num_processes

    if steps.max_train_steps_source == "epochs":
        assert s.max_train_epochs is not None
        naive = items * s.max_train_epochs / per_step
        formula = f"{what} × {s.max_train_epochs} epochs{divisor} = {_num(naive)} steps"
    else:
        naive = items / per_step
        cap = "sd-scripts' default" if steps.max_train_steps_source == "default" else "max_train_steps"
        formula = (
            f"{what}{divisor} = {_num(naive)} steps per epoch; {steps.max_train_steps} steps ({cap}) "
            f"= {_num(steps.max_train_steps / naive) if naive else '∞'} epochs"
        )

    reasons = []
    naive_batches = math.ceil(items / s.batch_size)
    if steps.batches_per_epoch != naive_batches:
        reasons.append(
            f"sd-scripts batches each of the {len(buckets)} buckets separately and rounds each up to whole "
            f"batches of {s.batch_size} ({naive_batches} → {steps.batches_per_epoch} batches per epoch)"
        )
    if steps.batches_per_epoch and steps.batches_per_epoch % (s.num_processes * s.grad_accum):
        reasons.append("each epoch rounds up to whole optimizer steps")
    if steps.max_train_steps_source == "epochs":
        if reasons or not float(naive).is_integer() or int(naive) != steps.max_train_steps:
            note = (
                f"bucket-aware: {steps.steps_per_epoch} steps per epoch × {s.max_train_epochs} epochs = "
                f"{steps.max_train_steps} steps"
            )
            return formula, note + (" (" + "; ".join(reasons) + ")" if reasons else "")
        return formula, None
    if reasons or not float(naive).is_integer() or int(naive) != steps.steps_per_epoch:
        note = f"bucket-aware: {steps.steps_per_epoch} steps per epoch, {steps.num_epochs} epochs"
        return formula, note + (" (" + "; ".join(reasons) + ")" if reasons else "")
    return formula, None


# ----------------------------------------------------------------------------------------------------------
# Terminal table


def reso_text(r: Reso | None) -> str:
    return "-" if r is None else f"{r[0]}x{r[1]}"


def format_plan(plan: Plan) -> str:
    """The plan as the terminal shows it: formula, totals, buckets, images, warnings - fitted to the terminal (tables
    cut by ``format_table``, long lines wrapped by ``fit_lines``; a pipe gets every line whole)."""
    s = plan.settings
    out = ["Step plan", f"  {plan.formula}"]
    if plan.formula_note:
        out.append(f"  {plan.formula_note}")
    out.append(
        f"  batches per epoch: {plan.batches_per_epoch_per_process}   "
        f"steps per epoch: {plan.steps_per_epoch}   epochs: {plan.num_epochs}   "
        f"total optimization steps: {plan.max_train_steps}"
    )
    counts = f"  train images × repeats: {plan.num_train_images}"
    if plan.num_reg_images:
        counts += f"   reg images: {plan.num_reg_images}"
    if plan.num_validation_images:
        counts += f"   validation images: {plan.num_validation_images}"
    out.append(counts)

    if s.enable_bucket:
        mode = (
            "no upscaling (bucket_no_upscale)"
            if s.bucket_no_upscale
            else f"buckets {plan.min_bucket_reso}-{plan.max_bucket_reso}"
        )
        out += ["", f"Buckets (resolution {reso_text(s.resolution)}, {mode}, step {s.bucket_reso_steps})"]
    else:
        out += ["", f"Buckets (bucketing off: every image goes to {reso_text(s.resolution)})"]
    out += format_table(
        ["#", "bucket", "images", "×repeats", "batches"],
        [[str(b.index), reso_text(b.resolution), str(b.images), str(b.count), str(b.batches)] for b in plan.buckets],
        right={0, 2, 3, 4},
        indent=2,
    )
    if plan.mean_ar_error is not None:
        out.append(f"  mean aspect-ratio error: {plan.mean_ar_error:.4f}")
    if plan.validation_buckets:
        out += ["", "Validation buckets (a second dataset, repeats 1; not counted in the steps)"]
        out += format_table(
            ["#", "bucket", "images", "batches"],
            [[str(b.index), reso_text(b.resolution), str(b.images), str(b.batches)] for b in plan.validation_buckets],
            right={0, 2, 3},
            indent=2,
        )

    out += ["", "Images"]
    image_rows = []
    for r in plan.images:
        note = "crash" if r.error else ("upscaled" if r.upscaled else "")
        image_rows.append(
            [
                r.file,
                r.subset,
                r.role,
                str(r.repeats),
                reso_text(r.size),
                reso_text(r.bucket),
                reso_text(r.resized),
                note,
            ]
        )
    out += format_table(
        ["file", "subset", "role", "repeats", "size", "bucket", "resized", "note"], image_rows, right={3}, indent=2
    )

    if plan.warnings:
        out += ["", "Findings"]
        out += [f"  {w.severity}: {w.message}" for w in plan.warnings]
    return "\n".join(fit_lines(out)) + "\n"
