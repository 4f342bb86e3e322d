"""How fast is `kohya-recipe check`, as whole processes, on distinct, identical and near-identical images?

Issue 14's targets, on a 2-core machine:

- ``check`` of 10,000 distinct images: under 2 s;
- ``check`` of 10,000 byte-identical images: under 2 s and under 200 MB peak memory (the old duplicate finder built
  every pair: 1,000 copies took 2.5 s and 162 MB, 10,000 died of MemoryError);
- ``check --decode`` of 1,000 similar images: no slower than decoding them with Pillow (the old near-duplicate
  search compared 14 million pairs of them in 22 s).

Every case is a whole process (``python -m kohya_recipe check DIR``, interpreter and CLI start-up included, text
output to a pipe), run the same number of rounds as its alternative, interleaved round by round so that machine
load hits every side alike. Peak memory is the child's own maximum resident set (``os.wait4``). The named
alternative for ``--decode`` is a plain Pillow loop in its own process (``Image.open(p).load()`` for every image
of the folder, sorted, as a script would do it); for the header-only check the alternatives are the same loop and
Pillow's lazy open (``Image.open(p).size``, sizes only).

The images are generated in a temporary folder, one ``img/10_Zed woman/`` train_data_dir per set, each image with
a Danbooru caption:

- ``distinct``: 10,000 small PNGs (64x80) of random noise, no two alike (bytes or looks);
- ``identical``: 10,000 byte-identical copies of one small PNG;
- ``near``: 10,000 small PNGs of one picture, each with a different single pixel changed (distinct bytes, alike
  looks: every one a near-duplicate of every other);
- ``similar``: 1,000 PNGs at the article's 768x768 of one picture with light noise of their own.

Run: ``python benchmarks/bench_check.py`` (``--images 2000 --similar 200`` for a quick run, ``--rounds 5``,
``--keep`` to keep the generated folder).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTIONS = (
    "1girl, Zed, dark skin, braided hair, earrings, 3D render, UHD, 4K",
    "1girl, Zed, dark skin, braided hair, 3D render, UHD, 4K, from side",
    "1girl, Zed, dark skin, braided hair, 3D render, UHD, 4K, from behind",
)
SMALL = (64, 80)
ARTICLE = (768, 768)

PILLOW_DECODE = """
import sys
from pathlib import Path
from PIL import Image
n = 0
for p in sorted(Path(sys.argv[1]).iterdir()):
    if p.suffix == ".png":
        with Image.open(p) as im:
            im.load()
        n += 1
print(n)
"""
PILLOW_LAZY = PILLOW_DECODE.replace("im.load()", "im.size")


# ----------------------------------------------------------------------------------------------------------
# Data


def _folder(root: Path, name: str) -> Path:
    folder = root / name / "img" / "10_Zed woman"
    folder.mkdir(parents=True)
    return folder


def _caption(folder: Path, i: int) -> None:
    (folder / f"{i:05d}.txt").write_text(CAPTIONS[i % len(CAPTIONS)] + "\n", encoding="utf-8")


def _png_bytes(im: object, compress_level: int = 6) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=compress_level)  # type: ignore[attr-defined]
    return buf.getvalue()


def _picture(size: tuple[int, int]):  # -> PIL.Image.Image: a smooth picture with some structure
    from PIL import Image

    w, h = size
    grad = Image.linear_gradient("L").resize((w, h))
    return Image.merge("RGB", (grad, grad.rotate(90), grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def make_distinct(root: Path, n: int) -> Path:
    from PIL import Image

    folder = _folder(root, "distinct")
    w, h = SMALL
    for i in range(n):
        im = Image.frombytes("RGB", (w, h), os.urandom(w * h * 3))
        (folder / f"{i:05d}.png").write_bytes(_png_bytes(im, 1))
        _caption(folder, i)
    return folder.parent


def make_identical(root: Path, n: int) -> Path:
    folder = _folder(root, "identical")
    data = _png_bytes(_picture(SMALL))
    for i in range(n):
        (folder / f"{i:05d}.png").write_bytes(data)
        _caption(folder, i)
    return folder.parent


def make_near(root: Path, n: int) -> Path:
    folder = _folder(root, "near")
    base = _picture(SMALL)
    w, h = SMALL
    for i in range(n):
        im = base.copy()
        x, y = i % w, (i // w) % h
        r, g, b = im.getpixel((x, y))  # type: ignore[misc]
        im.putpixel((x, y), ((r + 1 + i // (w * h)) % 256, g, b))
        (folder / f"{i:05d}.png").write_bytes(_png_bytes(im, 1))
        _caption(folder, i)
    return folder.parent


def make_similar(root: Path, n: int) -> Path:
    from PIL import Image

    folder = _folder(root, "similar")
    base = _picture(ARTICLE)
    noise = [Image.effect_noise(ARTICLE, 4).convert("RGB") for _ in range(8)]
    noisy = [Image.blend(base, layer, 0.05) for layer in noise]
    for i in range(n):
        # Light noise, and the image's number in the first 16 pixels: alike to the eye and to a 9x8 dHash, distinct
        # bytes.
        im = noisy[i % len(noisy)].copy()
        for bit in range(16):
            im.putpixel((bit, 0), (255, 255, 255) if i >> bit & 1 else (0, 0, 0))
        (folder / f"{i:05d}.png").write_bytes(_png_bytes(im, 1))
        _caption(folder, i)
    return folder.parent


# ----------------------------------------------------------------------------------------------------------
# Measurement


@dataclass
class Side:
    """One whole-process command, run once per round: wall seconds, peak RSS (MB) and exit code of every run."""

    name: str
    argv: list[str]
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)

    def run(self, env: dict[str, str]) -> None:
        start = time.perf_counter()
        proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        self.seconds.append(time.perf_counter() - start)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.codes.append(proc.returncode)
        self.peak_mb.append(usage.ru_maxrss / 1024)  # Linux: kilobytes
        if proc.returncode not in (0, 3):
            raise SystemExit(f"{self.name} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")

    def line(self) -> str:
        best, median = min(self.seconds), statistics.median(self.seconds)
        runs = ", ".join(f"{s:.2f}" for s in self.seconds)
        return (
            f"  {self.name:<44} best {best:6.2f} s  median {median:6.2f} s  peak {max(self.peak_mb):6.0f} MB  [{runs}]"
        )


def interleaved(sides: list[Side], rounds: int, env: dict[str, str]) -> None:
    for side in sides:  # one untimed warm-up each (byte-code caches, page cache)
        side.run(env)
        side.seconds.clear()
        side.peak_mb.clear()
    for _ in range(rounds):
        for side in sides:
            side.run(env)


def check(folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "kohya_recipe", "check", str(folder), *extra]


def pillow(script: str, folder: Path) -> list[str]:
    return [sys.executable, "-c", script, str(folder / "10_Zed woman")]


MAKERS: dict[str, Callable[[Path, int], Path]] = {
    "distinct": make_distinct,
    "identical": make_identical,
    "near": make_near,
    "similar": make_similar,
}


def generate(tmp: Path, sets: list[str], images: int, similar: int) -> None:
    """Write the sets (in a child process, so that the measuring process stays small: the kernel counts a child's
    peak memory from its parent's size at fork)."""
    for name in sets:
        n = similar if name == "similar" else images
        t0 = time.perf_counter()
        MAKERS[name](tmp, n)
        print(f"generated {name}: {n} images + captions in {time.perf_counter() - t0:.1f} s", flush=True)


def clusters(folder: Path, extra: list[str]) -> None:
    """Print (kind, size) of every duplicate cluster ``check --json`` reports, as JSON (run as a child)."""
    out = subprocess.run(check(folder, "--json", *extra), capture_output=True, check=False)
    print(json.dumps([[c["kind"], len(c["images"])] for c in json.loads(out.stdout)["duplicates"]]))


def verify(folder: Path, env: dict[str, str], *extra: str) -> list[list[object]]:
    """The duplicate clusters of ``folder``: proof that each set is what it claims to be."""
    argv = [sys.executable, __file__, "--clusters", str(folder), "--", *extra]
    return json.loads(subprocess.run(argv, capture_output=True, env=env, check=True).stdout)  # type: ignore[no-any-return]


Verdict = Callable[[list[Side]], tuple["bool | None", str]]  # (met, what): met is None for a figure without target


@dataclass
class Case:
    """One set's measurement: its folder, the sides, what ``check`` must report for it, and its verdict."""

    title: str
    folder: Path
    sides: list[Side]
    expect: list[list[object]]
    verify_args: tuple[str, ...]
    verdict: Verdict


def cases(sets: dict[str, Path], n: int, m: int) -> dict[str, Case]:
    def under_2s(sides: list[Side]) -> tuple[bool | None, str]:
        return min(sides[0].seconds) < 2.0, "check under 2 s"

    def under_2s_200mb(sides: list[Side]) -> tuple[bool | None, str]:
        return min(sides[0].seconds) < 2.0 and max(sides[0].peak_mb) < 200, "check under 2 s and 200 MB"

    def ratio(target: bool) -> Verdict:
        def verdict(sides: list[Side]) -> tuple[bool | None, str]:
            r = min(sides[-2].seconds) / min(sides[-1].seconds)
            return (r <= 1.0 if target else None), f"ratio check --decode / Pillow decode {r:.2f}"

        return verdict

    lazy, decode = "Pillow Image.open().size (lazy open)", "Pillow Image.open().load() (decode)"
    distinct, identical, near, similar = (sets[k] for k in ("distinct", "identical", "near", "similar"))
    return {
        "distinct": Case(
            f"{n} distinct images (header-only check)",
            distinct,
            [
                Side("kohya-recipe check", check(distinct)),
                Side(lazy, pillow(PILLOW_LAZY, distinct)),
                Side(decode, pillow(PILLOW_DECODE, distinct)),
            ],
            [],
            (),
            under_2s,
        ),
        "identical": Case(
            f"{n} byte-identical images (header-only check)",
            identical,
            [
                Side("kohya-recipe check", check(identical)),
                Side("kohya-recipe check --json", check(identical, "--json")),
                Side(lazy, pillow(PILLOW_LAZY, identical)),
            ],
            [["identical", n]],
            (),
            under_2s_200mb,
        ),
        "near": Case(
            f"{n} near-identical images",
            near,
            [
                Side("kohya-recipe check", check(near)),
                Side("kohya-recipe check --decode", check(near, "--decode")),
                Side(decode, pillow(PILLOW_DECODE, near)),
            ],
            [["near", n]],
            ("--decode",),
            ratio(False),
        ),
        "similar": Case(
            f"{m} similar images at {ARTICLE[0]}x{ARTICLE[1]} (--decode)",
            similar,
            [
                Side("kohya-recipe check --decode", check(similar, "--decode")),
                Side(decode, pillow(PILLOW_DECODE, similar)),
            ],
            [["near", m]],
            ("--decode",),
            ratio(True),
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000, help="images of the distinct, identical, near sets")
    parser.add_argument("--similar", type=int, default=1_000, help="images of the similar set (--decode)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of every side")
    parser.add_argument("--sets", default=",".join(MAKERS), help="which sets to run (comma-separated)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folder")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clusters", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    chosen = [s for s in args.sets.split(",") if s]
    if args.generate:
        generate(args.generate, chosen, args.images, args.similar)
        return 0
    if args.clusters:
        clusters(args.clusters, args.extra)
        return 0

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("COLUMNS", None)
    tmp = Path(tempfile.mkdtemp(prefix="bench_check_"))
    full = args.images == 10_000 and args.similar == 1_000
    failures = 0
    try:
        argv = [sys.executable, __file__, "--generate", str(tmp), "--sets", args.sets]
        subprocess.run([*argv, "--images", str(args.images), "--similar", str(args.similar)], check=True)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.rounds} rounds per side, in {tmp}")
        all_cases = cases({name: tmp / name / "img" for name in MAKERS}, args.images, args.similar)
        for name in chosen:
            case = all_cases[name]
            found = verify(case.folder, env, *case.verify_args)
            assert found == case.expect, (name, found)
            print(f"\n{case.title}: check reports {found or 'no duplicates'}")
            interleaved(case.sides, args.rounds, env)
            print("\n".join(s.line() for s in case.sides))
            met, what = case.verdict(case.sides)
            if met is None:
                print(f"  {what}")
            elif full:
                failures += not met
                print(f"  target: {what}: {'PASS' if met else 'FAIL'}")
            else:
                print(f"  target: {what} (the targets are for 10,000 and 1,000 images)")
        return 1 if failures else 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
