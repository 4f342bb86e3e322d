"""Helpers for the report tests: rebuild the real fixture runs, and generate sd-scripts-like runs of any shape."""

from __future__ import annotations

import gzip
import json
import math
import random
import shutil
import struct
from pathlib import Path
from typing import Any

from kohya_recipe.cli.output import jsonable
from kohya_recipe.report.events import event_file_name, write_scalars

DATA = Path(__file__).parent / "data" / "runs"
RUNS = ("article-mini", "interrupted", "validation", "resume")


def report_data(report: object) -> Any:
    """A report as ``kohya-recipe report --json`` prints it, read back (strict JSON: NaN would fail here)."""
    return json.loads(json.dumps(jsonable(report), allow_nan=False))


def materialise_run(name: str, dest: Path) -> Path:
    """Copy fixture run ``name`` (tests/data/runs/README.md) to ``dest/name`` with full-length checkpoints."""
    src = DATA / name
    out = dest / name
    for f in src.rglob("*"):
        if not f.is_file():
            continue
        rel = f.relative_to(src)
        if f.name.endswith(".safetensors.header.gz"):
            head = gzip.decompress(f.read_bytes())
            (n,) = struct.unpack("<Q", head[:8])
            header = json.loads(head[8 : 8 + n])
            header.pop("__metadata__", None)
            body = max(t["data_offsets"][1] for t in header.values())
            target = out / rel.parent / f.name[: -len(".header.gz")]
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as fh:
                fh.write(head)
                fh.truncate(len(head) + body)  # zero body of the real length (sparse, instant)
        else:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
    return out


def materialise_runs(dest: Path, names: tuple[str, ...] = RUNS) -> Path:
    """:func:`materialise_run` for each of ``names`` into ``dest``; returns ``dest``."""
    for name in names:
        materialise_run(name, dest)
    return dest


def write_safetensors(
    path: Path, metadata: dict[str, str] | None, tensors: int = 3, *, nan_in: tuple[int, ...] = ()
) -> Path:
    """A small valid safetensors file (F16 LoRA-shaped tensors, zero data) with the given metadata; the tensors
    numbered in ``nan_in`` hold one fp16 NaN (what a diverged run saves)."""
    header: dict[str, object] = {}
    off = 0
    for i in range(tensors):
        name = f"lora_unet_block_{i}.lora_down.weight"
        size = 4 * 8 * 2
        header[name] = {"dtype": "F16", "shape": [4, 8], "data_offsets": [off, off + size]}
        off += size
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = bytearray(off)
    for i in nan_in:
        body[i * 64 + 6 : i * 64 + 8] = struct.pack("<e", math.nan)  # the 4th value of tensor i
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(body))
    return path


def synthetic_rows(
    epochs: int = 8,
    steps_per_epoch: int = 420,
    *,
    epoch_tag: str = "loss/epoch_average",
    lr_tags: tuple[str, ...] = ("lr/textencoder", "lr/unet", "lr/group1"),
    validation: bool = False,
    seed: int = 0,
    start_wall: float = 1_795_000_000.0,
    first_epoch: int = 1,
    epoch_means: list[float] | None = None,
    noise: float = 0.05,
) -> tuple[list[tuple[str, int, float, float]], dict[int, float]]:
    """Rows in sd-scripts' order: per step loss/current, loss/average, lr/*; per epoch (validation, then) the epoch
    loss. Returns the rows and the exact per-epoch mean of loss/current (float32 values, as logged)."""
    rng = random.Random(seed)
    rows: list[tuple[str, int, float, float]] = []
    wall = start_wall
    means: dict[int, float] = {}
    step = 0
    window: list[float] = []
    for e in range(first_epoch, first_epoch + epochs):
        centre = epoch_means[e - first_epoch] if epoch_means else 0.12 - 0.004 * e + 0.006 * math.sin(e)
        vals = []
        for _ in range(steps_per_epoch):
            step += 1
            wall += 0.25
            v = struct.unpack("<f", struct.pack("<f", centre + rng.gauss(0, noise)))[0]
            vals.append(v)
            window.append(v)
            rows.append(("loss/current", step, v, wall))
            rows.append(("loss/average", step, sum(window[-steps_per_epoch:]) / len(window[-steps_per_epoch:]), wall))
            for t in lr_tags:
                rows.append((t, step, 1e-4, wall))
        wall += 0.5
        mean = math.fsum(vals) / len(vals)
        means[e] = mean
        if validation:
            rows.append(("loss/validation/epoch_average", e, centre + 0.01, wall))
            rows.append(("loss/validation/epoch_divergence", e, 0.01, wall))
        rows.append((epoch_tag, e, mean, wall))
        wall += 0.5
    return rows, means


def write_run(
    log_dir: Path,
    rows: list[tuple[str, int, float, float]],
    folder: str = "20261125233907",
    pid: int = 1,
) -> Path:
    """Write rows where sd-scripts would: ``<log_dir>/<folder>/network_train/events.out.tfevents.*``."""
    wall = rows[0][3] if rows else 1_795_000_000.0
    return write_scalars(log_dir / folder / "network_train" / event_file_name(wall, pid=pid), rows)


def record_offsets(data: bytes) -> list[int]:
    """Offsets of each TFRecord in an intact event file."""
    offs = []
    off = 0
    while off < len(data):
        offs.append(off)
        (n,) = struct.unpack_from("<Q", data, off)
        off += 16 + n
    return offs


BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Appended to a copy of a report (which has no script of its own): once the page has loaded, write how many of
# its <img> elements decoded (naturalWidth > 0) into the DOM, where --dump-dom prints it.
_IMAGE_PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt || i.src.slice(0, 40));
  const out = document.createElement("pre");
  out.id = "image-probe";
  out.textContent = JSON.stringify({total: imgs.length, loaded: imgs.length - bad.length, bad: bad});
  document.body.appendChild(out);
});
</script>"""


def browser() -> str | None:
    """A headless-capable Chromium on this machine (Debian package ``chromium``), or None."""
    return next((b for b in BROWSERS if shutil.which(b)), None)


def images_loaded_in_browser(page: Path, tmp_path: Path) -> tuple[int, int, list[str]]:
    """Open ``page`` in headless Chromium; (images on the page, images that loaded, the alt of those that did not).

    The probe runs on a copy next to the page (so relative links resolve the same), never on the report itself.
    """
    import html as html_lib
    import re
    import subprocess

    exe = browser()
    assert exe is not None
    probe = page.with_name(f"{page.stem}.probe.html")
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", _IMAGE_PROBE + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="image-probe">(.*?)</pre>', proc.stdout, re.S)
    assert found is not None, proc.stderr[-2000:]
    result = json.loads(html_lib.unescape(found[1]))
    return int(result["total"]), int(result["loaded"]), list(result["bad"])
