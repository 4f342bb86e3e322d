"""The report as text for the terminal: the epoch table, the picks with their A1111 prompts, the warnings; for a
sweep, one comparison table first."""

from __future__ import annotations

from kohya_recipe.report.model import ComparisonRow, RunReport, SweepReport
from kohya_recipe.report.ranking import EpochRow
from kohya_recipe.text import format_table

_EPOCH_HEADER = ("epoch", "loss", "±SE", "rank", "≈best", "train", "val", "checkpoint")
_SWEEP_HEADER = ("run", "rank", "metric", "best", "loss", "±SE", "final", "loss")


def format_report(rep: RunReport | SweepReport) -> str:
    return format_sweep(rep) if isinstance(rep, SweepReport) else format_run(rep)


def format_run(rep: RunReport) -> str:
    lines = [f"{rep.name} — {rep.source.kind}: {rep.source.root}", _how_ranked(rep), ""]
    lines += _epoch_table(rep)
    lines.append("")
    for p in rep.picks:
        why = ", ".join(p.reasons)
        if p.tied_with:
            why += f"; tied with epoch{'s' if len(p.tied_with) > 1 else ''} {', '.join(map(str, p.tied_with))}"
        lines.append(f"pick: epoch {p.epoch} ({why}): {p.checkpoint or 'no file'}")
        if p.a1111:
            lines.extend(f"    {line}" for line in p.a1111.splitlines())
    if rep.warnings:
        lines += ["", "warnings:", *(f"  - {w}" for w in rep.warnings)]
    return "\n".join(lines)


def format_sweep(rep: SweepReport) -> str:
    rows = rep.comparison
    keys = sorted({k for r in rows for k in r.settings})
    table = format_table(
        [*_SWEEP_HEADER, *keys],
        [_comparison_cells(r, keys) for r in rows],
        right=set(range(1, len(_SWEEP_HEADER))),
    )
    lines = [f"sweep: {rep.root} ({len(rep.runs)} runs)", "", *table]
    lines += [f"{f.run}  could not be read: {f.error}" for f in rep.failed]
    for run in rep.runs:
        lines += ["", format_run(run)]
    return "\n".join(lines)


def _how_ranked(rep: RunReport) -> str:
    rk = rep.ranking
    if rk.metric == "none":
        return "no epoch loss in the log: epochs cannot be ranked"
    if rk.metric == "train":
        return (
            f"ranked by {rk.metric_label}; ±SE from the epoch's loss/current points; ≈ = within {rk.z:g} SE of the best"
        )
    return f"ranked by {rk.metric_label}; validation has no per-batch values, so ≈ marks ties only"


def _epoch_table(rep: RunReport) -> list[str]:
    rows = rep.ranking.rows
    header, *lines = format_table(_EPOCH_HEADER, [_epoch_cells(r) for r in rows], right=set(range(7)))
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


def _epoch_cells(row: EpochRow) -> list[str]:
    rank = "" if row.rank is None else (f"={row.rank}" if row.tied else str(row.rank))
    cp = row.checkpoint
    file_text = "(no file)" if cp is None else f"{cp.file} [{'ok' if cp.confirmed else 'unconfirmed'}]"
    close = "yes" if row.indistinguishable_from_best else ""
    numbers = (row.metric, row.se)
    losses = (row.train_loss, row.validation_loss)
    return [str(row.epoch), *map(_num, numbers), rank, close, *map(_num, losses), file_text]


def _comparison_cells(r: ComparisonRow, keys: list[str]) -> list[str]:
    return [
        r.run,
        "-" if r.sweep_rank is None else str(r.sweep_rank),
        r.metric,
        ",".join(map(str, r.best_epochs)) or "-",
        _num(r.best_metric),
        _num(r.best_se),
        "-" if r.final_epoch is None else str(r.final_epoch),
        _num(r.final_metric),
        *(str(r.settings.get(k)) for k in keys),
    ]


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.6f}"
