"""The report as text for the terminal."""

from __future__ import annotations

from kohya_recipe.report.model import RunReport, SweepReport


def _num(v: float | None, width: int = 9) -> str:
    return f"{v:.6f}".rjust(width) if v is not None else "-".rjust(width)


def format_run(rep: RunReport) -> str:
    """The terminal table."""
    rk = rep.ranking
    lines = [f"{rep.name} — {rep.source.kind}: {rep.source.root}"]
    if rk.metric == "none":
        lines.append("no epoch loss in the log: epochs cannot be ranked")
    else:
        how = f"ranked by {rk.metric_label}"
        if rk.metric == "train":
            how += f"; ±SE from the epoch's loss/current points; ≈ = within {rk.z:g} SE of the best"
        else:
            how += "; validation has no per-batch values, so ≈ marks ties only"
        lines.append(how)
    lines.append("")
    lines.append(
        f"{'epoch':>5}  {'loss':>9}  {'±SE':>9}  {'rank':>5}  {'≈best':>5}  {'train':>9}  {'val':>9}  checkpoint"
    )
    for row in rk.rows:
        rank = "" if row.rank is None else (f"={row.rank}" if row.tied else str(row.rank))
        cp = rep.files.get(row.epoch)
        if cp is None:
            file_text = "(no file)"
        else:
            mark = "ok" if rep.confirmed.get(row.epoch) else "unconfirmed"
            file_text = f"{cp.path.name} [{mark}]"
        close = "yes" if row.indistinguishable else ""
        lines.append(
            f"{row.epoch:>5}  {_num(row.metric)}  {_num(row.se)}  {rank:>5}  {close:>5}"
            f"  {_num(row.train_loss)}  {_num(row.validation_loss)}  {file_text}"
        )
        for note in row.notes:
            lines.append(f"{'':>7}note: {note}")
    if rk.incomplete is not None:
        inc = rk.incomplete
        lines.append(
            f"{inc.epoch if inc.epoch is not None else '?':>5}  (incomplete: {inc.steps.n} steps, "
            f"mean loss/current {inc.steps.mean:.6f})"
        )
    lines.append("")
    for p in rep.picks:
        why = ", ".join(p.reasons)
        if p.tied_with:
            why += f"; tied with epoch{'s' if len(p.tied_with) > 1 else ''} {', '.join(map(str, p.tied_with))}"
        where = str(p.checkpoint.path) if p.checkpoint else "no file"
        lines.append(f"pick: epoch {p.epoch} ({why}): {where}")
        if p.a1111:
            lines.extend(f"    {line}" for line in p.a1111.splitlines())
    if rep.warnings:
        lines.append("")
        lines.append("warnings:")
        lines.extend(f"  - {w}" for w in rep.warnings)
    return "\n".join(lines)


def format_sweep(rep: SweepReport) -> str:
    rows = rep.comparison()
    lines = [f"sweep: {rep.root} ({len(rep.runs)} runs)", ""]
    keys = sorted({k for r in rows for k in r["settings"]})
    head = f"{'run':<24} {'rank':>4} {'metric':>10} {'best':>10} {'loss':>9} {'±SE':>9} {'final':>5} {'loss':>9}"
    # Each setting column as wide as its name or its widest value, so the values sit under their names.
    widths = {k: max([len(k)] + [len(str(r["settings"].get(k))) for r in rows]) for k in keys}
    lines.append((head + "".join(f"  {k:<{widths[k]}}" for k in keys)).rstrip())
    for r in rows:
        best = ",".join(map(str, r["best_epochs"])) or "-"
        lines.append(
            (
                f"{r['run']:<24} {r['sweep_rank'] if r['sweep_rank'] is not None else '-':>4} {r['metric']:>10} "
                f"{best:>10} {_num(r['best_metric'])} {_num(r['best_se'])} "
                f"{r['final_epoch'] if r['final_epoch'] is not None else '-':>5} {_num(r['final_metric'])}"
                + "".join(f"  {r['settings'].get(k)!s:<{widths[k]}}" for k in keys)
            ).rstrip()
        )
    for name, err in rep.failed:
        lines.append(f"{name:<24} could not be read: {err}")
    for run in rep.runs:
        lines.append("")
        lines.append(format_run(run))
    return "\n".join(lines)


def format_report(rep: RunReport | SweepReport) -> str:
    return format_sweep(rep) if isinstance(rep, SweepReport) else format_run(rep)
