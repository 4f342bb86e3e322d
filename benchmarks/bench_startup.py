"""Start-up time of the kohya-recipe CLI, as whole processes, against the cost of importing the heavy libraries.

Issue 2 asks for `kohya-recipe --help` in under 0.25 s, with no pandas/matplotlib/tensorboard on that path. This
script measures it (and `python -m kohya_recipe --help`, and sub-command `--help`s) against `python -c pass` and
`python -c "import pandas"`-style baselines, all in the same run and interleaved round-robin so that machine load
affects every case alike. It reports; it asserts nothing (tests/test_startup.py checks what is imported).

    python benchmarks/bench_startup.py            # 15 runs per case
    python benchmarks/bench_startup.py --runs 31 --json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.25  # issue 2's budget for `kohya-recipe --help`

BASELINES = [
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("python -c 'import pandas'", [sys.executable, "-c", "import pandas"]),
    ("python -c 'import matplotlib.pyplot'", [sys.executable, "-c", "import matplotlib.pyplot"]),
    # A bare `import tensorboard` is lazy and nearly free; the event-file reader is what a report would load.
    ("python -c 'import tensorboard'", [sys.executable, "-c", "import tensorboard"]),
    (
        "python -c 'import ...event_accumulator'",
        [sys.executable, "-c", "from tensorboard.backend.event_processing import event_accumulator"],
    ),
]


def console_script() -> list[str] | None:
    """The installed `kohya-recipe` entry point next to this interpreter.

    Found beside ``sys.executable`` first: a version-manager shim on PATH (pyenv's is a bash script that runs
    `pyenv exec`) would add its own start-up to every run and measure the shim, not the tool.
    """
    beside = Path(sys.executable).parent / "kohya-recipe"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("kohya-recipe")
    return [found] if found else None


def cases(sub_commands: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    script = console_script()
    if script:
        out.append(("kohya-recipe --help", [*script, "--help"]))
    else:
        print("note: the kohya-recipe console script is not installed (pip install -e .); skipping it", file=sys.stderr)
    out.append(("python -m kohya_recipe --help", [sys.executable, "-m", "kohya_recipe", "--help"]))
    from kohya_recipe.cli import COMMANDS  # only the table: no command module is imported here

    runner = script or [sys.executable, "-m", "kohya_recipe"]
    for name in sub_commands:
        entry = COMMANDS.get(name)
        if entry is None or importlib.util.find_spec(entry[0]) is None:
            print(f"note: command {name!r} is not available; skipping it", file=sys.stderr)
            continue
        out.append((f"kohya-recipe {name} --help", [*runner, name, "--help"]))
    return out


def _run(argv: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start, proc.returncode


def measure(all_cases: list[tuple[str, list[str]]], runs: int) -> dict[str, list[float]]:
    """Seconds per run for every case that works; one untimed warm-up run each (byte-code caches, disk cache)."""
    working = []
    for label, argv in all_cases:
        _, code = _run(argv)
        if code == 0:
            working.append((label, argv))
        else:
            print(f"note: {label!r} exits {code} here; left out", file=sys.stderr)
    times: dict[str, list[float]] = {label: [] for label, _ in working}
    for _ in range(runs):
        for label, argv in working:
            times[label].append(_run(argv)[0])
    return times


def report(times: dict[str, list[float]], tool_labels: list[str]) -> dict[str, object]:
    med = {label: statistics.median(ts) for label, ts in times.items()}
    base = med.get(BASELINES[0][0])
    heavy = [label for label, _ in BASELINES[1:] if label in med]
    rows = []
    for label, ts in times.items():
        row: dict[str, object] = {"case": label, "median_s": med[label], "min_s": min(ts), "runs": len(ts)}
        if base:
            row["x_python_pass"] = med[label] / base
            row["over_python_pass_s"] = med[label] - base
        if label in tool_labels:
            row["x_baselines"] = {h: med[label] / med[h] for h in heavy}
        rows.append(row)
    return {"python": sys.version.split()[0], "executable": sys.executable, "target_s": TARGET_S, "rows": rows}


def print_table(result: dict[str, object]) -> None:
    rows = result["rows"]
    assert isinstance(rows, list)
    print(f"Start-up, median of {rows[0]['runs']} runs per case (Python {result['python']})\n")
    width = max(len(str(r["case"])) for r in rows)
    print(f"{'case':<{width}}  {'median':>8}  {'min':>8}  {'× python -c pass':>16}  {'+ over it':>9}")
    for r in rows:
        ratio = f"{r['x_python_pass']:.2f}" if "x_python_pass" in r else "-"
        over = f"{r['over_python_pass_s'] * 1000:+.0f} ms" if "over_python_pass_s" in r else "-"
        print(
            f"{r['case']:<{width}}  {r['median_s'] * 1000:>6.0f} ms  {r['min_s'] * 1000:>5.0f} ms  "
            f"{ratio:>16}  {over:>9}"
        )
    print()
    for r in rows:
        if r.get("x_baselines"):
            parts = ", ".join(f"{v:.2f}× {k.split(' ', 2)[-1]}" for k, v in r["x_baselines"].items())
            verdict = "under" if r["median_s"] < TARGET_S else "OVER"
            print(f"{r['case']}: {parts}; {verdict} the {TARGET_S:.2f} s target")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per case (default 15)")
    parser.add_argument(
        "--sub",
        action="append",
        default=None,
        metavar="COMMAND",
        help="sub-command whose --help to time (repeatable; default: build, report)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    tool = cases(args.sub or ["build", "report"])
    times = measure([*tool, *BASELINES], max(1, args.runs))
    result = report(times, [label for label, _ in tool])
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
