"""The report as text for the terminal: the epoch table, the picks with their A1111 prompts, the sample images of
each epoch, the warnings; for a sweep, one comparison table first.

Every table goes through :func:`kohya_recipe.text.format_table` and the whole text through
:func:`kohya_recipe.text.fit_lines`, so it fits the terminal (an 80-column one included): each number is shown once
(the ranking loss is not repeated in a "train" or "val" column), columns with nothing to say are left out, file
names are shown without their folder (printed once above), and what is still too long is cut or wrapped there.
"""

from __future__ import annotations

from collections.abc import Callable

from kohya_recipe.report.model import ComparisonRow, Pick, RunReport, SweepReport
from kohya_recipe.report.ranking import EpochRow
from kohya_recipe.report.samplenames import SampleImage
from kohya_recipe.text import fit_lines, format_table

_SWEEP_HEADER = ("run", "rank", "metric", "best", "loss", "±SE", "final", "loss")


def format_report(rep: RunReport | SweepReport) -> str:
    return format_sweep(rep) if isinstance(rep, SweepReport) else format_run(rep)


def format_run(rep: RunReport) -> str:
    return "\n".join(fit_lines(_run_lines(rep)))


def format_sweep(rep: SweepReport) -> str:
    rows = rep.comparison
    table = format_table(_SWEEP_HEADER, [_comparison_cells(r) for r in rows], right=set(range(1, len(_SWEEP_HEADER))))
    lines = [f"sweep: {rep.root} ({len(rep.runs)} runs)", "", *table]
    lines += [f"{f.run}  could not be read: {f.error}" for f in rep.failed]
    differ = [(r.run, r.settings) for r in rows if r.settings]
    if differ:
        # one line per run, not one column per setting: a sweep's settings would push the table off the screen
        lines += ["", "settings that differ:"]
        lines += [f"  {run}: {', '.join(f'{k}={v}' for k, v in sorted(s.items()))}" for run, s in differ]
    for run in rep.runs:
        lines += ["", *_run_lines(run)]
    return "\n".join(fit_lines(lines))


def _run_lines(rep: RunReport) -> list[str]:
    lines = [f"{rep.name} — {rep.source.kind}: {rep.source.root}", _how_ranked(rep)]
    if rep.checkpoint_set is not None:
        lines.append(f"checkpoints: {rep.checkpoint_set.model_dir}")
    if rep.diverged is not None:
        lines += ["", f"DIVERGED: {rep.diverged.message}"]
    lines += ["", *_epoch_table(rep), ""]
    lines += _pick_lines(rep)
    lines += _sample_lines(rep)
    if rep.warnings:
        lines += ["", "warnings:", *(f"  - {w}" for w in rep.warnings)]
    return lines


def _how_ranked(rep: RunReport) -> str:
    rk = rep.ranking
    if rk.metric == "none":
        return "no epoch loss in the log: epochs cannot be ranked"
    if rk.metric == "train":
        return (
            f"ranked by {rk.metric_label}, lowest first; ±SE from the epoch's loss/current points; "
            f"≈best: within {rk.z:g} SE of the best"
        )
    return f"ranked by {rk.metric_label}, lowest first; validation has no per-batch values, so ≈best marks ties only"


def _pick_lines(rep: RunReport) -> list[str]:
    if rep.diverged is not None:
        return ["no pick: the run diverged"]
    lines = []
    for p in rep.picks:
        lines.append(f"pick: epoch {p.epoch} ({_why(p)}): {_pick_target(p)}")
        if p.a1111:
            lines.extend(f"    {line}" for line in p.a1111.splitlines())
    return lines


def _why(p: Pick) -> str:
    why = ", ".join(p.reasons)
    if p.tied_with:
        why += f"; tied with epoch{'s' if len(p.tied_with) > 1 else ''} {', '.join(map(str, p.tied_with))}"
    return why


def _pick_target(p: Pick) -> str:
    if p.problem is not None:
        return f"not recommended: {p.problem}"
    return p.file.file if p.file is not None else "no file"


# --- the epoch table ----------------------------------------------------------------------------------------------

_Column = tuple[str, bool, Callable[[EpochRow], str]]  # header, right-aligned, cell


def _epoch_columns(rep: RunReport) -> list[_Column]:
    """The epoch table's columns; one whose every cell is empty is left out by :func:`_epoch_table`."""
    metric = rep.ranking.metric
    columns: list[_Column] = [
        ("epoch", True, lambda r: str(r.epoch)),
        ("loss", True, lambda r: _num(r.validation_loss if metric == "validation" else r.train_loss)),
        ("±SE", True, lambda r: _num(r.se, empty="")),
        ("rank", True, _rank),
        ("≈best", True, lambda r: "yes" if r.indistinguishable_from_best else ""),
    ]
    # The other loss, when the ranking uses one and the log has both (never the ranking loss a second time).
    if metric == "validation":
        columns.append(("train", True, lambda r: _num(r.train_loss, empty="")))
    else:
        columns.append(("val", True, lambda r: _num(r.validation_loss, empty="")))
    columns.append(("samples", True, lambda r: str(len(r.samples)) if r.samples else ""))
    columns.append(("checkpoint", False, _checkpoint))
    return columns


def _epoch_table(rep: RunReport) -> list[str]:
    rows = rep.ranking.rows
    columns = [c for c in _epoch_columns(rep) if c[0] in ("epoch", "loss", "checkpoint") or any(c[2](r) for r in rows)]
    header, *lines = format_table(
        [c[0] for c in columns],
        [[c[2](r) for c in columns] for r in rows],
        right={i for i, c in enumerate(columns) if c[1]},
    )
    out = [header]
    for row, line in zip(rows, lines, strict=True):
        out.append(line)
        out.extend(f"{'':>7}note: {note}" for note in row.notes)
    inc = rep.ranking.incomplete
    if inc is not None:
        out.append(
            f"{inc.epoch if inc.epoch is not None else '?':>5}  (incomplete: {inc.steps.n} steps, "
            f"mean loss/current {inc.steps.mean:.6f})"
        )
    return out


def _rank(row: EpochRow) -> str:
    if row.rank is None:
        return ""
    return f"={row.rank}" if row.tied else str(row.rank)


def _checkpoint(row: EpochRow) -> str:
    cp = row.checkpoint
    if cp is None:
        return "(no file)"
    return cp.file if cp.confirmed else f"{cp.file} [unconfirmed]"


# --- samples ------------------------------------------------------------------------------------------------------


def _sample_lines(rep: RunReport) -> list[str]:
    sset = rep.samples
    if sset is None:
        return []
    lines = ["", f"samples: {sset.status}"]
    if not sset.images:
        return lines
    lines.append(f"  in {sset.folder}")
    for i in sset.prompt_indexes:
        text = sset.prompt_text(i)
        lines.append(f"  prompt {i}: {text if text is not None else '(not in the prompt file)'}")
    images: list[SampleImage] = [
        *sset.before_training,
        *(s for r in rep.ranking.rows for s in r.samples),
        *sset.other,
        *sset.steps,
    ]
    lines += format_table(
        ["when", "prompt", "file"], [[s.label, str(s.prompt_index), s.file] for s in images], right={1}, indent=2
    )
    for reason, epochs in _group_missing(rep).items():
        lines.append(f"  epoch{'s' if len(epochs) > 1 else ''} {', '.join(map(str, epochs))}: {reason}")
    return lines


def _group_missing(rep: RunReport) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for m in rep.samples.missing if rep.samples is not None else []:
        groups.setdefault(m.reason, []).append(m.epoch)
    return groups


# --- the sweep ----------------------------------------------------------------------------------------------------


def _comparison_cells(r: ComparisonRow) -> list[str]:
    final_is_best = r.final_epoch is not None and r.final_epoch in r.best_epochs and r.final_metric == r.best_metric
    return [
        r.run,
        "-" if r.sweep_rank is None else str(r.sweep_rank),
        "val" if r.metric == "validation" else r.metric,
        ",".join(map(str, r.best_epochs)) or "-",
        _num(r.best_metric),
        _num(r.best_se),
        "-" if r.final_epoch is None else str(r.final_epoch),
        "= best" if final_is_best else _num(r.final_metric),  # a number is shown once
    ]


def _num(v: float | None, empty: str = "-") -> str:
    return empty if v is None else f"{v:.6f}"
