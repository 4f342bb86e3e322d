"""The human report of a dataset check: header, per-image table, findings with fixes, tag table, summary."""

from __future__ import annotations

from typing import Any

from kohya_recipe.dataset.findings import SEVERITIES, plural, rel
from kohya_recipe.dataset.result import CheckResult
from kohya_recipe.dataset.rules import Rules


def format_report(result: CheckResult, *, table: str = "auto", max_items: int = 10, color: bool = False) -> str:
    """The human report: header, per-image table, findings with fixes, tag table, summary.

    ``table``: ``all`` rows, ``problems`` (rows with notes), ``none``, or ``auto`` (all up to 60 images).
    """
    import click

    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if color else text

    lines: list[str] = []
    lay = result.layout
    s = result.settings
    subsets = list(lay.subsets)
    lines.append(f"Checked {result.root} ({lay.kind}, {plural(len(result.images), 'image')})")
    for sub in subsets:
        flags = []
        if sub.is_reg:
            flags.append("regularization")
        if not sub.trained:
            flags.append("SKIPPED by sd-scripts")
        rep = f", {sub.repeats} repeats" if sub.repeats is not None else ""
        lines.append(
            f"  {rel(sub.path, result.root)}: {plural(sub.image_count, 'image')}{rep}"
            + (f" ({', '.join(flags)})" if flags else "")
        )
    bucket = (
        f"buckets {s.min_bucket_reso}-{s.max_bucket_reso}/{s.bucket_reso_steps}"
        + (", no upscale" if s.bucket_no_upscale else "")
        if s.enable_bucket
        else "no buckets"
    )
    trig = f"trigger '{s.trigger}' ({s.trigger_source})" if s.trigger else "trigger unknown"
    lines.append(
        f"Settings from {s.source}: resolution {s.resolution[0]}x{s.resolution[1]}, {bucket}, captions "
        f"'{s.caption_extension}', {trig}"
    )
    if result.rules.source != Rules().source:
        lines.append(f"Rules from {result.rules.source}")

    mode = table
    if mode == "auto":
        mode = "all" if len(result.images) <= 60 else "problems"
    rows = result.images if mode == "all" else [r for r in result.images if r.notes] if mode == "problems" else []
    if rows:
        lines.append("")
        header = ("image", "size", "format", "bucket", "caption", "tags", "shots", "notes")
        data = []
        for r in rows:
            size = f"{r.size[0]}x{r.size[1]}" if r.size else "-"
            b = r.bucket
            bucket_text = f"{b.bucket[0]}x{b.bucket[1]}" if b is not None and b.bucket is not None else "-"
            data.append(
                (
                    r.rel,
                    size,
                    r.header.format if r.header else "-",
                    bucket_text,
                    r.caption_status,
                    str(len(r.tags)) if r.caption else "-",
                    ", ".join(r.shots),
                    ", ".join(dict.fromkeys(r.notes)),
                )
            )
        widths = [max(len(h), *(len(d[i]) for d in data)) for i, h in enumerate(header)]
        widths[0] = min(widths[0], 48)
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        for d in data:
            lines.append("  ".join(c.ljust(w) for c, w in zip(d, widths, strict=True)).rstrip())
        if mode == "problems" and len(rows) < len(result.images):
            lines.append(f"({len(result.images) - len(rows)} images without notes not shown; --table all shows them)")

    if result.findings:
        lines.append("")
        colors = {"error": "red", "warning": "yellow", "info": "cyan"}
        for f in result.findings:
            label = style(f"{f.severity.upper():<7}", fg=colors[f.severity], bold=f.severity == "error")
            lines.append(f"{label} [{f.check}] {f.message}")
            for path, detail in f.items[:max_items]:
                lines.append(f"          {path}" + (f": {detail}" if detail else ""))
            if len(f.items) > max_items:
                lines.append(f"          ... and {len(f.items) - max_items} more (--json lists all)")
            if f.fix:
                lines.append(f"          fix: {f.fix}")

    if result.tag_counts:
        lines.append("")
        n = sum(
            1
            for r in result.images
            if r.caption is not None and r.caption.text and r.subset.trained and not r.subset.is_reg
        )
        top = result.tag_counts[:20]
        lines.append(
            f"Tags ({n} captions): "
            + ", ".join(f"{t} {c}" for t, c in top)
            + (f", ... ({len(result.tag_counts)} tags)" if len(result.tag_counts) > 20 else "")
        )

    lines.append("")
    e, w, i = (result.count(x) for x in SEVERITIES)
    verdict = style("FAILED", fg="red", bold=True) if e else style("OK", fg="green", bold=True)
    lines.append(f"{plural(e, 'error')}, {plural(w, 'warning')}, {i} info: {verdict}")
    return "\n".join(lines)
