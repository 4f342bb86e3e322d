"""Benchmark the epoch report's reader against tbparse and TensorBoard's EventAccumulator (issue 6).

Usage::

    python benchmarks/bench_report.py [--out DIR] [--reps N] [--quick] [--skip-large]
    python benchmarks/bench_report.py --weights [--reps N]   # the NaN/inf scan of a checkpoint's weights

It generates, with kohya_recipe.report.events.write_scalars (the layout torch's SummaryWriter writes for sd-scripts):

* **article**: the article's run — 3360 steps x the five per-step tags sd-scripts logs (loss/current,
  loss/average, lr/textencoder, lr/unet, lr/group1) + 8 ``loss/epoch_average``; as a project folder with
  config.toml and 8 checkpoints whose headers have the real 792-tensor shape (bodies sparse);
* **sweep**: 20 such runs (even runs ``loss/epoch``, odd ``loss/epoch_average``, every 5th U-Net only);
* **large**: one 200,000-step run (5 per-step tags + 50 epoch values, ~50 MB).

Every reader runs as **its own whole process** (interpreter start-up and imports included, as a user would run
it), round-robin after a warm-up, and does the same task: read the ``loss/`` scalars of every run, split
``loss/current`` into epochs by wall time, and rank the epochs. Wall time is measured around the child, peak RSS
comes from ``/usr/bin/time``. Children load kohya_recipe from precompiled bytecode (kept under ``--out``), as
an installed tool does. Every reader's per-epoch means are checked against the generator's. Ratios are printed
against our reader measured in the same run. Nothing here is asserted in tests (team rule).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from kohya_recipe.report.events import event_file_name, parse_event_bytes
from kohya_recipe.report.proto import encode_file_version_event, encode_scalar_event
from kohya_recipe.report.tfrecord import encode_record

STEP_TAGS = ("loss/current", "loss/average", "lr/textencoder", "lr/unet", "lr/group1")
UNET_ONLY_TAGS = ("loss/current", "loss/average", "lr/unet", "lr/group0")


# --- data ---------------------------------------------------------------------------------------------------------


def f32(v: float) -> float:
    return struct.unpack("<f", struct.pack("<f", v))[0]


def gen_run(
    log_dir: Path,
    steps: int,
    epochs: int,
    *,
    seed: int,
    epoch_tag: str = "loss/epoch_average",
    tags: tuple[str, ...] = STEP_TAGS,
    start: float = 1_795_000_000.0,
) -> list[float]:
    """Write one run's event file; return the exact per-epoch means of loss/current."""
    rng = random.Random(seed)
    per_epoch = steps // epochs
    path = log_dir / "20261125233907" / "network_train" / event_file_name(start, pid=seed + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    means: list[float] = []
    wall = start
    with path.open("wb") as fh:
        buf = [encode_record(encode_file_version_event(wall))]
        step = 0
        avg_window: list[float] = []
        for e in range(1, epochs + 1):
            total = 0.0
            centre = 0.12 - 0.002 * e + 0.01 * math.sin(e * 1.3)
            for _ in range(per_epoch):
                step += 1
                wall += 0.21
                v = f32(centre + rng.gauss(0, 0.04))
                total += v
                avg_window.append(v)
                for tag in tags:
                    if tag == "loss/current":
                        value = v
                    elif tag == "loss/average":
                        value = v  # the value does not matter for reading speed; the layout does
                    else:
                        value = 1e-4
                    buf.append(encode_record(encode_scalar_event(tag, step, value, wall)))
                if len(buf) > 8192:
                    fh.write(b"".join(buf))
                    buf.clear()
            wall += 0.5
            means.append(total / per_epoch)
            buf.append(encode_record(encode_scalar_event(epoch_tag, e, means[-1], wall)))
            wall += 0.5
        fh.write(b"".join(buf))
    return means


def write_checkpoint_header(path: Path, epoch: int, steps: int, num_epochs: int, finished_at: float) -> None:
    """A checkpoint with the real header shape (264 modules x 3 tensors, 792 entries) and a sparse body."""
    header: dict[str, object] = {}
    off = 0
    for i in range(264):
        for part, shape in ((".lora_down.weight", [1, 320]), (".lora_up.weight", [320, 1]), (".alpha", [])):
            size = 2 * (math.prod(shape) if shape else 1)
            header[f"lora_unet_block_{i}{part}"] = {"dtype": "F16", "shape": shape, "data_offsets": [off, off + size]}
            off += size
    header["__metadata__"] = {
        "ss_epoch": str(epoch),
        "ss_steps": str(steps),
        "ss_num_epochs": str(num_epochs),
        "ss_training_finished_at": str(finished_at),
        "ss_network_dim": "96",
        "ss_network_alpha": "72.0",
        "ss_output_name": "CharacterAI-1-A",
    }
    raw = json.dumps(header).encode()
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + off)


def generate(out: Path, skip_large: bool) -> dict[str, object]:
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if skip_large or "large" in manifest:
            return manifest  # type: ignore[no-any-return]
    manifest: dict[str, object] = {}  # type: ignore[no-redef]
    t = time.perf_counter()
    article = out / "article"
    means = gen_run(article / "log", 3360, 8, seed=0)
    (article / "config.toml").write_text(
        '[training_arguments]\noutput_dir = "model"\nlogging_dir = "log"\noutput_name = "CharacterAI-1-A"\n'
    )
    (article / "model").mkdir(exist_ok=True)
    for e in range(1, 9):
        name = "CharacterAI-1-A.safetensors" if e == 8 else f"CharacterAI-1-A-{e:06d}.safetensors"
        write_checkpoint_header(article / "model" / name, e, 420 * e, 8, 1_795_000_000.0 + e * 89)
    manifest["article"] = {"logs": [str(article / "log")], "means": [means]}
    sweep_logs, sweep_means = [], []
    for i in range(20):
        run = out / "sweep" / f"CharacterAI-1-{chr(65 + i)}"
        tags = UNET_ONLY_TAGS if i % 5 == 4 else STEP_TAGS
        tag = "loss/epoch" if i % 2 == 0 else "loss/epoch_average"
        sweep_means.append(gen_run(run / "log", 3360, 8, seed=100 + i, epoch_tag=tag, tags=tags))
        sweep_logs.append(str(run / "log"))
    manifest["sweep"] = {"logs": sweep_logs, "means": sweep_means, "root": str(out / "sweep")}
    if not skip_large:
        large = out / "large"
        lmeans = gen_run(large / "log", 200_000, 50, seed=7)
        manifest["large"] = {"logs": [str(large / "log")], "means": [lmeans]}
    manifest_path.write_text(json.dumps(manifest))
    print(f"generated test data in {time.perf_counter() - t:.1f} s under {out}")
    return manifest


# --- the readers (each a child process) ---------------------------------------------------------------------------

OURS = """
import json, sys
from kohya_recipe.report.events import read_log_dir
from kohya_recipe.report.ranking import RANKING_TAGS, epoch_ranking
out = {}
for d in sys.argv[1:]:
    rk = epoch_ranking(read_log_dir(d, RANKING_TAGS))
    out[d] = [r.steps.mean for r in rk.rows]
print(json.dumps(out))
"""

EVENT_ACCUMULATOR = """
import bisect, glob, json, os, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
out = {}
for d in sys.argv[1:]:
    (f,) = glob.glob(os.path.join(d, "**", "events.out.tfevents.*"), recursive=True)
    ea = EventAccumulator(f, size_guidance={"scalars": 0})
    ea.Reload()
    tags = ea.Tags()["scalars"]
    etag = "loss/epoch_average" if "loss/epoch_average" in tags else "loss/epoch"
    ends = [e.wall_time for e in ea.Scalars(etag)]
    sums = [0.0] * len(ends); counts = [0] * len(ends)
    for ev in ea.Scalars("loss/current"):
        i = bisect.bisect_left(ends, ev.wall_time)
        if i < len(ends):
            sums[i] += ev.value; counts[i] += 1
    means = [s / c for s, c in zip(sums, counts)]
    sorted(range(len(means)), key=means.__getitem__)  # rank
    out[d] = means
print(json.dumps(out))
"""

TBPARSE = """
import json, sys
import numpy as np
from tbparse import SummaryReader
root = sys.argv[1]
df = SummaryReader(root, pivot=False, extra_columns={"wall_time", "dir_name"}).scalars
df = df[df["tag"].str.startswith("loss/")]
out = {}
for d in sys.argv[2:]:
    rel = __import__("os").path.relpath(d, root)
    sub = df[df["dir_name"].str.startswith(rel) if rel != "." else slice(None)]
    ep = sub[sub["tag"].isin(["loss/epoch_average", "loss/epoch"])].sort_values("wall_time")
    cur = sub[sub["tag"] == "loss/current"]
    idx = np.searchsorted(ep["wall_time"].to_numpy(), cur["wall_time"].to_numpy(), side="left")
    means = cur.groupby(idx)["value"].mean()
    means = means[means.index < len(ep)]
    means.sort_values()  # rank
    out[d] = [float(x) for x in means.to_numpy()]
print(json.dumps(out))
"""

READ_BYTES = """
import glob, os, sys
for d in sys.argv[1:]:
    for f in glob.glob(os.path.join(d, "**", "events.out.tfevents.*"), recursive=True):
        open(f, "rb").read()
"""


# Children run with bytecode cached under the data folder, as an installed tool runs from its .pyc files (this
# machine sets PYTHONDONTWRITEBYTECODE, which would make every child recompile kohya_recipe: ~20 ms).
CHILD_ENV = dict(os.environ)
CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
TIME = "/usr/bin/time"


def run_child(argv: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one child process.

    Peak RSS comes from /usr/bin/time when present: a child forked straight from this (larger) process would
    report this process's RSS as its own peak. Without it, RUSAGE_CHILDREN is used (an upper bound).
    """
    use_time = Path(TIME).exists()
    cmd = [TIME, "-f", "KR_MAXRSS_KB %M", *argv] if use_time else argv
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CHILD_ENV)
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {err.decode(errors='replace')[-2000:]}")
    rss_kb = 0.0
    if use_time:
        for line in err.decode(errors="replace").splitlines():
            if line.startswith("KR_MAXRSS_KB "):
                rss_kb = float(line.split()[1])
    else:
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, rss_kb / 1024, out.decode()


def _cpu_times() -> tuple[float, float]:
    with open("/proc/stat") as fh:  # noqa: PTH123 - Linux only; the function is skipped elsewhere
        parts = [float(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return idle, sum(parts)


def wait_quiet(max_wait: float = 20.0, idle_cores: float = 1.5) -> None:
    """Wait (up to ``max_wait`` s) until at least ``idle_cores`` cores are idle: the machine is shared, and a
    reader timed while others' test suites run measures them, not itself."""
    if not Path("/proc/stat").exists():
        return
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        i0, t0 = _cpu_times()
        time.sleep(0.25)
        i1, t1 = _cpu_times()
        if t1 > t0 and (i1 - i0) / (t1 - t0) * cores >= min(idle_cores, cores - 0.25):
            return


def check(name: str, out: str, logs: list[str], means: list[list[float]]) -> None:
    got = json.loads(out)
    for d, expected in zip(logs, means, strict=True):
        values = got[d]
        assert len(values) == len(expected), (name, d, len(values), len(expected))
        for a, b in zip(values, expected, strict=True):
            assert abs(a - b) <= 1e-9 * abs(b), (name, d, a, b)


def bench(
    cases: dict[str, list[str]],
    reps: int,
    validate: dict[str, tuple[list[str], list[list[float]]]],
) -> dict[str, tuple[float, float]]:
    """Round-robin the commands ``reps`` times after one untimed warm-up; medians of wall and RSS."""
    walls: dict[str, list[float]] = {k: [] for k in cases}
    rss: dict[str, list[float]] = {k: [] for k in cases}
    for rep in range(reps + 1):
        for name, argv in cases.items():
            if rep > 0:
                wait_quiet()
            wall, mb, out = run_child(argv)
            if rep == 0:
                if name in validate:
                    check(name, out, *validate[name])
                continue
            walls[name].append(wall)
            rss[name].append(mb)
    return {k: (statistics.median(walls[k]), statistics.median(rss[k])) for k in cases}


def decode_comparison(path: Path, rounds: int = 9) -> tuple[float, float, float]:
    """In-process: our byte decoding vs event_pb2 on the same CRC-checked framing (ms, ms, pb2 import ms)."""
    data = path.read_bytes()
    ours = []
    for _ in range(rounds):
        t = time.perf_counter()
        parse_event_bytes(data, path)
        ours.append(time.perf_counter() - t)
    t = time.perf_counter()
    from tensorboard.compat.proto import event_pb2

    imp = time.perf_counter() - t
    from kohya_recipe.report.tfrecord import crc32c

    pb = []
    for _ in range(rounds):
        t = time.perf_counter()
        off = 0
        n = len(data)
        vals: dict[str, list[tuple[int, float, float]]] = {}
        while off < n:
            (ln,) = struct.unpack_from("<Q", data, off)
            payload = data[off + 12 : off + 12 + ln]
            c = crc32c(payload)
            assert (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF == struct.unpack_from("<I", data, off + 12 + ln)[
                0
            ]
            off += 16 + ln
            ev = event_pb2.Event.FromString(payload)
            if ev.HasField("summary"):
                for v in ev.summary.value:
                    vals.setdefault(v.tag, []).append((ev.step, v.simple_value, ev.wall_time))
        pb.append(time.perf_counter() - t)
    return min(ours) * 1e3, min(pb) * 1e3, imp * 1e3  # min: the least disturbed round on a shared machine


# --- the NaN/inf scan of a checkpoint's weights (issue 15 item 8) ---------------------------------------------------

SCAN_OURS = """
import sys
from kohya_recipe.report.tensors import scan_tensors
r = scan_tensors(sys.argv[1])
print(r.ok, r.scanned, len(r.non_finite))
"""
SCAN_NUMPY = """
import json, struct, sys
import numpy as np
p = sys.argv[1]
with open(p, "rb") as fh:
    (n,) = struct.unpack("<Q", fh.read(8))
    head = json.loads(fh.read(n))
    head.pop("__metadata__", None)
    data = fh.read()
bad = 0
for info in head.values():
    b, e = info["data_offsets"]
    bad += not np.isfinite(np.frombuffer(data[b:e], dtype=np.float16)).all()
print(bad == 0, len(head), bad)
"""
SCAN_TORCH = """
import sys
import torch
from safetensors.torch import load_file
sd = load_file(sys.argv[1])
bad = sum(1 for t in sd.values() if not torch.isfinite(t).all())
print(bad == 0, len(sd), bad)
"""


def write_lora(path: Path, rank: int, nan_last: bool, seed: int = 0) -> int:
    """An SD 1.5 LoRA with the real run's module shapes (tests/data/runs/article-mini) at ``rank``, fp16 random
    normal weights (numpy writes them); ``nan_last``: the last tensor holds one NaN (the worst case to find)."""
    import gzip

    import numpy as np

    gz = (
        Path(__file__).resolve().parent.parent / "tests/data/runs/article-mini/model/testchar-1-A.safetensors.header.gz"
    )
    head = gzip.decompress(gz.read_bytes())
    (n,) = struct.unpack("<Q", head[:8])
    real = json.loads(head[8 : 8 + n])
    real.pop("__metadata__", None)
    rng = np.random.default_rng(seed)
    header: dict[str, object] = {}
    blobs = []
    off = 0
    for name, info in sorted(real.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        shape = list(info["shape"])
        if name.endswith("lora_down.weight"):
            shape[0] = rank  # [rank, in, (1, 1)]
        elif name.endswith("lora_up.weight"):
            shape[1] = rank  # [out, rank, (1, 1)]
        arr = (rng.standard_normal(math.prod(shape) if shape else 1) * 0.01).astype(np.float16)
        blobs.append(arr.tobytes())
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [off, off + arr.nbytes]}
        off += arr.nbytes
    if nan_last:
        last = bytearray(blobs[-1])
        last[-2:] = struct.pack("<e", math.nan)
        blobs[-1] = bytes(last)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))
    return path.stat().st_size


def bench_weights(out: Path, reps: int) -> None:
    """Whole processes: our scan vs numpy's isfinite vs safetensors + torch (the harness venv, when present)."""
    scripts = out / "readers"
    scripts.mkdir(parents=True, exist_ok=True)
    for name, code in (("scan_ours", SCAN_OURS), ("scan_numpy", SCAN_NUMPY), ("scan_torch", SCAN_TORCH)):
        (scripts / f"{name}.py").write_text(textwrap.dedent(code))
    torch_py = Path(os.environ.get("KOHYA_RECIPE_REAL_TRAINER", "/work/harness")) / "venv" / "bin" / "python"
    for label, rank, nan_last in (("rank 96, clean", 96, False), ("rank 96, NaN in the last tensor", 96, True)):
        lora = out / f"lora-r{rank}-{'nan' if nan_last else 'ok'}.safetensors"
        size = lora.stat().st_size if lora.exists() else write_lora(lora, rank, nan_last)
        cases = {
            "python startup": [sys.executable, "-c", "pass"],
            "kohya-recipe scan": [sys.executable, str(scripts / "scan_ours.py"), str(lora)],
            "numpy isfinite": [sys.executable, str(scripts / "scan_numpy.py"), str(lora)],
        }
        if torch_py.exists():
            cases["safetensors + torch"] = [str(torch_py), str(scripts / "scan_torch.py"), str(lora)]
        answers = {name: run_child(argv)[2].split()[:1] for name, argv in cases.items() if name != "python startup"}
        assert all(a == [str(not nan_last)] for a in answers.values()), answers
        res = bench(cases, reps, {})
        ours = res["kohya-recipe scan"][0]
        print(f"== weights scan: {label} ({size / 1e6:.0f} MB, {reps} reps, whole processes)")
        for name, (wall, mb) in res.items():
            print(f"  {name:<24} {wall * 1e3:>8.1f}ms {mb:>8.1f} MB {wall / ours:>6.2f}x ours")
    from kohya_recipe.report.tensors import scan_tensors

    lora = out / "lora-r96-ok.safetensors"
    t = time.perf_counter()
    for _ in range(5):
        scan_tensors(lora)
    ms = (time.perf_counter() - t) / 5 * 1e3
    print(f"  in-process: scan_tensors {ms:.1f} ms for {lora.stat().st_size / 1e6:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="where to generate the data (kept; reused next time)")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions for the article run")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (3/2/1)")
    ap.add_argument("--skip-large", action="store_true", help="skip the 200,000-step file")
    ap.add_argument("--weights", action="store_true", help="only time the NaN/inf scan of a checkpoint's weights")
    args = ap.parse_args()
    out = args.out or Path(tempfile.gettempdir()) / "kohya-recipe-bench-report"
    out.mkdir(parents=True, exist_ok=True)
    if args.weights:
        bench_weights(out, 3 if args.quick else args.reps)
        return
    manifest = generate(out, args.skip_large)
    CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(out / "pycache")
    import kohya_recipe

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(kohya_recipe.__file__).parent)], env=CHILD_ENV, check=True
    )
    scripts = out / "readers"
    scripts.mkdir(exist_ok=True)
    for name, code in (("ours", OURS), ("ea", EVENT_ACCUMULATOR), ("tbparse", TBPARSE), ("read", READ_BYTES)):
        (scripts / f"reader_{name}.py").write_text(textwrap.dedent(code))
    py = sys.executable
    reps_article = 3 if args.quick else args.reps
    reps_sweep = 2 if args.quick else 3

    def cases(
        key: str, with_cli: bool = True
    ) -> tuple[dict[str, list[str]], dict[str, tuple[list[str], list[list[float]]]]]:
        m: dict[str, Any] = manifest[key]  # type: ignore[assignment]
        logs = m["logs"]
        root = m.get("root", str(Path(logs[0]).parent))
        c = {
            "python startup": [py, "-c", "pass"],
            "startup + read bytes": [py, str(scripts / "reader_read.py"), *logs],
            "kohya-recipe reader+rank": [py, str(scripts / "reader_ours.py"), *logs],
            "EventAccumulator": [py, str(scripts / "reader_ea.py"), *logs],
            "tbparse": [py, str(scripts / "reader_tbparse.py"), root, *logs],
        }
        if with_cli:
            c["kohya-recipe report --json"] = [py, "-m", "kohya_recipe", "report", root, "--json"]
        v = dict.fromkeys(("kohya-recipe reader+rank", "EventAccumulator", "tbparse"), (logs, m["means"]))  # type: ignore
        return c, v

    results: dict[str, dict[str, tuple[float, float]]] = {}
    for key, reps in (("article", reps_article), ("sweep", reps_sweep)):
        c, v = cases(key)
        print(f"timing {key} ({reps} reps, whole processes) ...", flush=True)
        results[key] = bench(c, reps, v)
    if "large" in manifest and not args.skip_large:  # data kept from an earlier run is not a reason to time it
        c, v = cases("large")
        slow = {k: c.pop(k) for k in ("EventAccumulator", "tbparse")}
        print("timing large (3 reps; EventAccumulator and tbparse 1 rep) ...", flush=True)
        res = bench(c, 1 if args.quick else 3, v)
        res.update(bench(slow, 1, v))
        results["large"] = res

    print()
    for key, res in results.items():
        ours = res["kohya-recipe reader+rank"][0]
        print(f"== {key}")
        print(f"  {'reader (whole process)':<30} {'wall':>10} {'RSS MB':>8} {'x ours':>8}")
        for name, (wall, mb) in res.items():
            print(f"  {name:<30} {wall * 1e3:>8.1f}ms {mb:>8.1f} {wall / ours:>8.2f}")
        ea, tb = res["EventAccumulator"][0], res["tbparse"][0]
        print(f"  ratios: EventAccumulator / ours = {ea / ours:.1f}x, tbparse / ours = {tb / ours:.1f}x")
        start = res["python startup"][0]
        if ours > start:
            print(
                f"  beyond interpreter start-up ({start * 1e3:.0f} ms here): EventAccumulator / ours = "
                f"{(ea - start) / (ours - start):.1f}x, tbparse / ours = {(tb - start) / (ours - start):.1f}x"
            )
        if "kohya-recipe report --json" in res:
            cli = res["kohya-recipe report --json"]
            print(
                f"  kohya-recipe report --json: {cli[0]:.3f} s, {cli[1]:.0f} MB; "
                f"EventAccumulator / report = {ea / cli[0]:.1f}x, tbparse / report = {tb / cli[0]:.1f}x"
            )
    if "large" in results:
        wall, mb = results["large"]["kohya-recipe reader+rank"]
        cwall, cmb = results["large"]["kohya-recipe report --json"]
        print(
            f"\nlarge (200,000 steps): reader {wall:.2f} s / {mb:.0f} MB, report --json {cwall:.2f} s / {cmb:.0f} MB"
            f" (targets: 1.5 s, 150 MB)"
        )
    cli_article = results["article"]["kohya-recipe report --json"][0]
    print(f"article: kohya-recipe report --json {cli_article:.3f} s (target 0.3 s)")

    # Why the reader decodes bytes itself instead of using tensorboard's event_pb2 (issue 6 asks to measure it).
    (event,) = list(Path(manifest["article"]["logs"][0]).rglob("events.out.tfevents.*"))  # type: ignore[index]
    ours_ms, pb_ms, imp_ms = decode_comparison(event)
    print(
        f"\ndecoding the article file in-process (CRC checked in both): ours {ours_ms:.1f} ms, event_pb2 "
        f"{pb_ms:.1f} ms (+{imp_ms:.0f} ms import) -> {pb_ms / ours_ms:.1f}x"
    )
    from kohya_recipe.report.tfrecord import crc32c_py

    t = time.perf_counter()
    parse_event_bytes(event.read_bytes(), event, crc=crc32c_py)
    py_ms = (time.perf_counter() - t) * 1e3
    print(f"pure-Python CRC fallback (no google-crc32c): {py_ms:.0f} ms -> {py_ms / ours_ms:.1f}x the C CRC")


if __name__ == "__main__":
    main()
