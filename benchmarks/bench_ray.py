"""`queue run --ray` against the local `queue run` on the same sweep, and what `queue list` pays for a Ray refresh.

    python benchmarks/bench_ray.py                          # a 2-run sweep, fake trainer (about 1 minute)
    python benchmarks/bench_ray.py --real ../harness        # the real sd-scripts harness on CPU (minutes)
    python benchmarks/bench_ray.py --runs 4 --gpus 2        # more runs than GPUs: the rest wait in Ray's queue

1. **Training.** One recipe, swept over ``network.alpha`` into ``--runs`` runs, twice (two fresh folders). The
   first copy is trained by the local ``queue run`` (one run after another), the second by ``queue run --ray`` on a
   local Ray cluster declaring ``--gpus`` GPUs (tests/ray/_cluster.py: a head on 127.0.0.2, stopped at the end).
   Both are whole client processes, timed from start to exit; the cluster's start is timed apart (a cluster is
   started once, not per queue). Then ``report`` ranks each sweep folder. With ``--real HARNESS`` the runs train
   with the real sd-scripts of the harness (shared/harness/README.md: random SD 1.5 weights, 64 px, CPU), with the
   ``--set`` overrides its README gives; without it, with tests/fake_sd_scripts.
2. **`queue list` with Ray entries** (a refresh of each live entry from the cluster through the REST API, urllib)
   against the same ``queue list`` without Ray entries and against ``python -c "from ray.job_submission import
   JobSubmissionClient"``, the import the alternative (Ray's own client) would add to every ``queue list``.

It reports; it asserts nothing. Do not run ``--real`` beside another real training: each takes several GB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests._train_util import FAKE_SD_SCRIPTS, FAKE_SITE  # noqa: E402
from tests.ray._cluster import LocalRayCluster, http_json  # noqa: E402
from tests.real.conftest import Trainer  # noqa: E402

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DIFFUSERS_OFFLINE": "1"}


def kohya(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "kohya_recipe", *map(str, args)]


def images(folder: Path, count: int) -> Path:
    """``count`` small PNGs with blocks of colour (something to learn) and a caption each."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(0)
    for i in range(count):
        im = Image.new("RGB", (64, 64), tuple(rnd.randrange(256) for _ in range(3)))
        for _ in range(12):
            x, y = rnd.randrange(64), rnd.randrange(64)
            im.paste(tuple(rnd.randrange(256) for _ in range(3)), (x, y, min(64, x + 16), min(64, y + 16)))
        im.save(folder / f"img{i:02d}.png")
        (folder / f"img{i:02d}.txt").write_text("benchchar, 1girl, smile\n", encoding="utf-8")
    return folder


def recipe(folder: Path, args: argparse.Namespace) -> Path:
    path = folder / "recipe.toml"
    lines = [
        'preset = "likeness-sd15"',
        "[subject]",
        'trigger = "benchchar"',
        'class_token = "woman"',
        "[dataset]",
        f'images = "{images(folder / "imgs", args.images)}"',
        "repeats = 1",
        "[training]",
        f"max_train_epochs = {args.epochs}",
        "save_every_n_epochs = 1",
        'log_with = "tensorboard"',
        "[samples]",
        "prompts = []",
    ]
    if not args.real:
        lines[-2:-2] = ["resolution = [64, 64]", "min_bucket_reso = 64", "max_bucket_reso = 128"]
        lines += ["[model]", 'base = "models/sd15"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def real_sets(harness: Path) -> list[str]:
    """The harness README's overrides (random SD 1.5 weights, local tokenizers, 64 px, fp32, sdpa), as tests/real."""
    return Trainer(harness).sets()


def sweep(work: Path, name: str, args: argparse.Namespace) -> tuple[Path, list[Path]]:
    alphas = ",".join(str(2 * (i + 1)) for i in range(args.runs))
    sets = [x for s in (real_sets(args.real) if args.real else []) for x in ("--set", s)]
    out = work / name
    subprocess.run(
        kohya("sweep", recipe(work, args), "--grid", f"network.alpha={alphas}", "--out", out, *sets),
        check=True,
        capture_output=True,
    )
    projects = sorted(p.parent for p in out.glob("*/config.toml"))
    if not args.real:
        for p in projects:
            (p / "models" / "sd15").mkdir(parents=True, exist_ok=True)  # the fake's "base model"
    return out, projects


def trainer(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """``--sd-scripts``/``--python`` and the environment the trainer needs."""
    if args.real:
        h = args.real
        return ["--sd-scripts", str(h / "sd-scripts"), "--python", str(h / "venv" / "bin" / "python")], dict(OFFLINE)
    env = {"PYTHONPATH": str(FAKE_SITE), "FAKE_SD_SCRIPTS_STEP_SECONDS": str(args.step)}
    return ["--sd-scripts", str(FAKE_SD_SCRIPTS), "--python", sys.executable], env


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    return time.monotonic() - t0, proc


def overlap(projects: list[Path]) -> str:
    """When each run's trainer started and ended (its run record), relative to the first start."""
    from datetime import datetime

    spans = []
    for p in projects:
        rec = json.loads(sorted((p / "runs").glob("*.json"))[-1].read_text())
        start = datetime.fromisoformat(rec["started_at"]).timestamp()
        spans.append(
            (start, start + rec["duration_seconds"], rec["outcome"], (rec.get("ray") or {}).get("cuda_visible_devices"))
        )
    t0 = min(s for s, *_ in spans)
    return ", ".join(f"[{s - t0:.0f}-{e - t0:.0f} s {o} GPU {g}]" for s, e, o, g in spans)


def train_both(work: Path, cluster: LocalRayCluster, args: argparse.Namespace) -> None:
    opts, env = trainer(args)
    local_dir, local_projects = sweep(work, "local", args)
    ray_dir, ray_projects = sweep(work, "ray", args)
    subprocess.run(
        kohya("queue", "add", local_dir, "--queue-file", work / "local.toml"), check=True, capture_output=True
    )
    subprocess.run(kohya("queue", "add", ray_dir, "--queue-file", work / "ray.toml"), check=True, capture_output=True)

    local_s, local = timed(kohya("queue", "run", "--queue-file", work / "local.toml", "--quiet", *opts), env)
    print(f"local `queue run`: exit {local.returncode}, {local_s:.1f} s  {overlap(local_projects)}", flush=True)
    ray_env = [x for k, v in env.items() for x in ("--ray-env", f"{k}={v}")]
    argv = kohya("queue", "run", "--queue-file", work / "ray.toml", "--ray", cluster.address, *opts, *ray_env)
    ray_s, ray = timed(argv, {})
    print(f"`queue run --ray`:  exit {ray.returncode}, {ray_s:.1f} s  {overlap(ray_projects)}", flush=True)
    if local.returncode or ray.returncode:
        print(local.stderr[-3000:], ray.stderr[-3000:], sep="\n")
    print(f"Ray / local wall time: {ray_s / local_s:.2f}", flush=True)
    for name, folder in (("local", local_dir), ("ray", ray_dir)):
        rep = subprocess.run(kohya("report", folder), capture_output=True, text=True)
        names = tuple(p.name + " " for p in ray_projects)
        ranked = [ln for ln in rep.stdout.splitlines() if ln.startswith(names) and ln.split()[1].isdigit()]
        print(f"report {name}: exit {rep.returncode}; " + " | ".join(" ".join(r.split()) for r in ranked), flush=True)


def list_cost(work: Path, cluster: LocalRayCluster, repeats: int) -> None:
    """`queue list` with live Ray entries (REST refresh) against the alternatives, interleaved."""
    from kohya_recipe.train.queuefile import Queue, QueueEntry, now

    http_json(
        f"{cluster.address}/api/jobs/",
        data={"entrypoint": "sleep 600", "submission_id": "bench-list", "entrypoint_num_cpus": 0},
    )
    with_ray, without = Queue(work / "list-ray.toml"), Queue(work / "list-plain.toml")
    with with_ray.edit() as state:
        for i in range(1, 5):
            entry = QueueEntry(id=i, project=str(work / f"p{i}"), status="running", started=now())
            entry.ray_job, entry.ray_address, entry.ray_status = "bench-list", cluster.address, "RUNNING"
            state.entries.append(entry)
    with without.edit() as state:
        state.entries += [QueueEntry(id=i, project=str(work / f"p{i}"), status="done") for i in range(1, 5)]
    cases = {
        "queue list, 4 Ray entries (REST refresh)": kohya("queue", "list", "--queue-file", with_ray.path),
        "queue list, no Ray entries": kohya("queue", "list", "--queue-file", without.path),
        "python -c 'from ray.job_submission import JobSubmissionClient'": [
            sys.executable, "-c", "from ray.job_submission import JobSubmissionClient"],
    }  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, argv in cases.items():
            t0 = time.monotonic()
            subprocess.run(argv, capture_output=True, check=True)
            times[name].append(time.monotonic() - t0)
    for name, values in times.items():
        print(f"{statistics.median(values):7.3f} s  {name}  (median of {repeats})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, help="the real-trainer harness folder (holds sd-scripts/, venv/)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--gpus", type=int, default=2, help="GPUs the cluster declares")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--epochs", type=int, help="default: 2 with --real, else 6")
    parser.add_argument("--step", type=float, default=0.5, help="fake trainer: seconds per step")
    parser.add_argument("--list-repeats", type=int, default=7)
    parser.add_argument("--list-only", action="store_true")
    args = parser.parse_args()
    args.epochs = args.epochs or (2 if args.real else 6)
    work = Path(tempfile.mkdtemp(prefix="kr-bench-ray-"))
    # The fake trainer's `accelerate` lives in FAKE_SITE; a real trainer's Python must not see it (it would import
    # the fake instead of its own: "No module named 'accelerate.utils'").
    env = {} if args.real else {"PYTHONPATH": os.pathsep.join([str(ROOT), str(FAKE_SITE)])}
    cluster = LocalRayCluster(num_cpus=2, num_gpus=args.gpus, env=env)
    try:
        t0 = time.monotonic()
        cluster.start()
        print(f"local Ray cluster ({args.gpus} GPUs declared) up in {time.monotonic() - t0:.1f} s", flush=True)
        if not args.list_only:
            train_both(work, cluster, args)
        list_cost(work, cluster, args.list_repeats)
    finally:
        t0 = time.monotonic()
        cluster.stop()
        print(f"cluster stopped in {time.monotonic() - t0:.1f} s")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
