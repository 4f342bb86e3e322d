"""Launcher overhead: `train_project` versus running the same fake trainer bare.

    python benchmarks/bench_launch.py              # 3 pairs of ~30 s runs (about 3 minutes)
    python benchmarks/bench_launch.py --seconds 5 --pairs 2

Both sides run tests/fake_sd_scripts through the fake `python -m accelerate.commands.launch` with the same argv,
environment and cwd (from `build_launch`). "Bare" redirects the trainer's stdout/stderr to a file, the cheapest
way to run it (what `train.sh > log 2>&1` does). "kohya-recipe" is the whole `train_project` verb: project
loading and the re-render check, the sd-scripts/Python lookup (one `python -c` accelerate check), the run with
both pipes read, teed to the log and parsed, the outcome check and the run record. Runs alternate to share the
machine's noise. The fake trainer prints a tqdm update about every 0.05 s (the real one about every second),
so output handling is stressed harder than in real use.

Reported: median wall times and their ratio (target: overhead < 2 %), plus the CPU time kohya-recipe's own
process spent (a steadier measure on a busy machine than the wall-time difference).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fake_sd_scripts"
sys.path.insert(0, str(ROOT))

from kohya_recipe.recipe.loading import recipe_from_dict  # noqa: E402
from kohya_recipe.render.project import load_project, render_project  # noqa: E402
from kohya_recipe.train.display import EpochLines  # noqa: E402
from kohya_recipe.train.launch import build_launch  # noqa: E402
from kohya_recipe.train.run import train_project  # noqa: E402

STEPS_PER_EPOCH = 6  # 3 images x 2 repeats, batch 1


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * 3 * 64 for _ in range(64))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_project(base: Path, epochs: int) -> Path:
    images = base / "images"
    images.mkdir()
    for i in range(3):
        (images / f"img{i}.png").write_bytes(_png())
        (images / f"img{i}.txt").write_text("1girl, testchar\n")
    recipe = recipe_from_dict(
        {
            "subject": {"trigger": "testchar", "class_token": "woman"},
            "dataset": {"images": str(images), "repeats": 2, "caption_extension": ".txt"},
            "model": {"base": "models/sd15", "family": "sd15"},
            "network": {"rank": 4, "alpha": 2.0},
            "optimizer": {"type": "AdamW", "learning_rate": 1e-4, "scheduler": "constant"},
            "training": {
                "max_train_epochs": epochs,
                "resolution": [64, 64],
                "min_bucket_reso": 64,
                "max_bucket_reso": 128,
                "save_every_n_epochs": 1,
                "log_with": "tensorboard",
            },
        },
        source="benchmark",
    )
    root = base / "project"
    render_project(recipe, root)
    (root / "models" / "sd15").mkdir(parents=True)
    return root


def run_bare(root: Path) -> float:
    cmd = build_launch(load_project(root), FAKE, sys.executable)
    with open(root / "bare.log", "wb") as log:  # noqa: PTH123
        t0 = time.perf_counter()
        subprocess.run(cmd.argv, cwd=cmd.cwd, env=cmd.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, check=True)
        return time.perf_counter() - t0


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_launcher(root: Path) -> tuple[float, float]:
    cpu0 = _cpu()
    t0 = time.perf_counter()
    record = train_project(root, sd_scripts=FAKE, python=sys.executable, display=EpochLines(io.StringIO()))
    wall = time.perf_counter() - t0
    if not record.ok:
        raise SystemExit(f"launcher run failed: {record.message}")
    return wall, _cpu() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of one fake run")
    ap.add_argument("--pairs", type=int, default=3, help="bare/launcher pairs")
    ap.add_argument("--step-seconds", type=float, default=0.05, help="fake trainer's sleep per step")
    args = ap.parse_args()
    epochs = max(1, round(args.seconds / (args.step_seconds * STEPS_PER_EPOCH)))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAKE / "site"), os.environ.get("PYTHONPATH")]))
    os.environ["FAKE_SD_SCRIPTS_STEP_SECONDS"] = str(args.step_seconds)
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        root = make_project(Path(tmp), epochs)
        steps = epochs * STEPS_PER_EPOCH
        print(
            f"fake run: {epochs} epochs x {STEPS_PER_EPOCH} steps = {steps} steps, "
            f"{args.step_seconds} s/step; {args.pairs} pairs"
        )
        bare, launched, cpu = [], [], []
        for i in range(args.pairs):
            bare.append(run_bare(root))
            wall, used = run_launcher(root)
            launched.append(wall)
            cpu.append(used)
            print(f"  pair {i + 1}: bare {bare[-1]:7.3f} s   kohya-recipe {wall:7.3f} s   (own CPU {used:.3f} s)")
        log_bytes = max(p.stat().st_size for p in (root / "log").glob("train-*.log"))
    mb, ml, mc = statistics.median(bare), statistics.median(launched), statistics.median(cpu)
    print(f"median bare         {mb:8.3f} s")
    print(f"median kohya-recipe {ml:8.3f} s   ratio {ml / mb:.4f}   overhead {100 * (ml - mb) / mb:+.2f} %")
    print(
        f"kohya-recipe's own CPU {mc:.3f} s = {100 * mc / mb:.2f} % of the bare wall time "
        f"({log_bytes / 1024:.0f} KiB of trainer output per run)"
    )


if __name__ == "__main__":
    main()
