"""The human report of a dataset check: header, per-image table, findings with fixes, tag table, summary.

Every line fits the terminal (:mod:`kohya_recipe.text`: the table is cut by ``format_table``, other lines wrapped by
``fit_lines``); output to a pipe is never cut. Colour is plain ANSI escape codes, only when asked for
(``color=True``), added after fitting; the CLI's printer drops them when the output is not a terminal.
"""

from __future__ import annotations

from kohya_recipe.dataset.findings import SEVERITIES, Finding, plural
from kohya_recipe.dataset.result import CheckResult
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.text import fit_lines, format_table, output_width

_ANSI = {"red": 31, "green": 32, "yellow": 33, "cyan": 36}
_SEVERITY_COLOURS = {"error": "red", "warning": "yellow", "info": "cyan"}
TABLE_AUTO_MAX = 60  # --table auto: every image up to this many, else this many of those with notes
TOP_TAGS = 20


def _style(text: str, colour: str, *, bold: bool = False, enabled: bool = True) -> str:
    if not enabled:
        return text
    return f"\x1b[{_ANSI[colour]}m" + ("\x1b[1m" if bold else "") + text + "\x1b[0m"


def format_report(result: CheckResult, *, table: str = "auto", max_items: int = 10, color: bool = False) -> str:
    """The human report: header, per-image table, findings with fixes, tag table, summary - fitted to the terminal
    (:func:`kohya_recipe.text.output_width`: the table's columns cut, long lines wrapped under their indent).

    ``table``: ``all`` rows, ``problems`` (rows with notes), ``none``, or ``auto`` (all up to 60 images, else up
    to 60 rows with notes). ``max_items``: files listed per finding (``--json`` lists all).
    """
    width = output_width()
    findings = fit_lines(_findings(result.findings, max_items), width)
    sections = [
        fit_lines(_header(result), width),
        _image_table(result, table, width),
        [_label(line, color) for line in findings],
        fit_lines(_tag_line(result), width),
    ]
    lines: list[str] = []
    for section in sections:
        if section:
            lines += ["", *section] if lines else section
    return "\n".join([*lines, "", _summary(result, color)])


def _label(line: str, color: bool) -> str:
    """A finding's first line with its severity coloured (after fitting: escape codes take no room on screen)."""
    severity = line[:7].strip().lower()
    if not color or severity not in _SEVERITY_COLOURS or line[7:9] != " [":
        return line
    return _style(line[:7], _SEVERITY_COLOURS[severity], bold=severity == "error") + line[7:]


def _header(result: CheckResult) -> list[str]:
    """What was checked (layout, subsets) and with which settings and rules."""
    lay, s = result.layout, result.settings
    lines = [f"Checked {result.root} ({lay.kind}, {plural(len(result.images), 'image')})"]
    for sub in lay.subsets:
        flags = (["regularization"] if sub.is_reg else []) + ([] if sub.trained else ["SKIPPED by sd-scripts"])
        rep = f", {sub.repeats} repeats" if sub.repeats is not None else ""
        lines.append(f"  {sub.path}: {plural(sub.images, 'image')}{rep}" + (f" ({', '.join(flags)})" if flags else ""))
    if s.enable_bucket:
        bucket = f"buckets {s.min_bucket_reso}-{s.max_bucket_reso}/{s.bucket_reso_steps}"
        bucket += ", no upscale" if s.bucket_no_upscale else ""
    else:
        bucket = "no buckets"
    trig = f"trigger '{s.trigger}' ({s.trigger_source})" if s.trigger else "trigger unknown"
    lines.append(
        f"Settings from {s.source}: resolution {s.resolution[0]}x{s.resolution[1]}, {bucket}, captions "
        f"'{s.caption_extension}', {trig}, purpose {s.purpose}"
    )
    if result.rules.source != Rules().source:
        lines.append(f"Rules from {result.rules.source}")
    return lines


def _image_table(result: CheckResult, table: str, width: int | None) -> list[str]:
    """One row per image (``all``), per image with notes (``problems``), or none; ``auto`` lists every image up
    to :data:`TABLE_AUTO_MAX`, else that many rows with notes."""
    mode = table
    if mode == "auto":
        mode = "all" if len(result.images) <= TABLE_AUTO_MAX else "problems"
    if mode == "all":
        rows = result.images
    elif mode == "problems":
        rows = [r for r in result.images if r.notes]
    else:
        rows = []
    if not rows:
        return []
    with_notes = len(rows) if mode == "problems" else 0
    if table == "auto" and mode == "problems":
        rows = rows[:TABLE_AUTO_MAX]
    shots = bool(result.rules.shots)
    header = ["image", "size", "format", "bucket", "caption", "tags", *(["shots"] if shots else []), "notes"]
    lines = format_table(header, [_image_row(r, shots) for r in rows], width=width)
    if with_notes > len(rows):
        lines.append(f"({with_notes - len(rows)} more images with notes; --table problems lists them all)")
    if mode != "all" and len(result.images) > with_notes:
        lines.append(f"({len(result.images) - with_notes} images without notes not shown; --table all shows them)")
    return fit_lines(lines, width)


def _image_row(r: ImageRecord, shots: bool) -> list[str]:
    return [
        r.path,
        f"{r.size[0]}x{r.size[1]}" if r.size else "-",
        r.header.format if r.header else "-",
        f"{r.bucket[0]}x{r.bucket[1]}" if r.bucket is not None else "-",
        r.caption_status,
        str(len(r.tags)) if r.parsed else "-",
        *([", ".join(r.shots)] if shots else []),
        ", ".join(dict.fromkeys(r.notes)),
    ]


def _findings(findings: list[Finding], max_items: int) -> list[str]:
    """Each finding: severity, check and message, up to ``max_items`` files, and the fix."""
    lines = []
    for f in findings:
        lines.append(f"{f.severity.upper():<7} [{f.check}] {f.message}")
        for item in f.items[:max_items]:
            lines.append(f"          {item.path}" + (f": {item.detail}" if item.detail else ""))
        if len(f.items) > max_items:
            lines.append(f"          ... and {len(f.items) - max_items} more (--json lists all)")
        if f.fix:
            lines.append(f"          fix: {f.fix}")
    return lines


def _tag_line(result: CheckResult) -> list[str]:
    """The most frequent tags of the trained captions."""
    if not result.tags:
        return []
    n = sum(1 for r in result.images if r.caption_text and r.folder.trained and not r.folder.is_reg)
    top = ", ".join(f"{t.tag} {t.count}" for t in result.tags[:TOP_TAGS])
    more = f", ... ({len(result.tags)} tags)" if len(result.tags) > TOP_TAGS else ""
    return [f"Tags ({n} captions): {top}{more}"]


def _summary(result: CheckResult, color: bool) -> str:
    e, w, i = (result.count(x) for x in SEVERITIES)
    verdict = (
        _style("FAILED", "red", bold=True, enabled=color) if e else _style("OK", "green", bold=True, enabled=color)
    )
    return f"{plural(e, 'error')}, {plural(w, 'warning')}, {i} info: {verdict}"
