"""How fast is `kohya-recipe check` (header-only) against opening and decoding every image with Pillow?

The issue's target: checking 10,000 images takes under 2 s on a 2-core machine and is >= 20x faster than
opening + decoding them with Pillow, measured in the same run.

The script builds a train_data_dir in a temporary folder: ``img/10_Zed woman/`` with N images (JPEG, PNG, WebP
and BMP in the proportions below, at the article's sizes 640x768 and 768x768 plus a few others) and one
Danbooru caption each. To make 10,000 *distinct* files quickly, a few base images per format are encoded once
and every copy gets a unique id written into a metadata field (JPEG comment, PNG tEXt chunk with its CRC
recomputed, WebP EXIF, a BMP pixel), so no two files are byte-identical (the duplicate check sees a realistic
dataset, not 10,000 copies). Then, on the same files, it times:

- ``check_dataset(DIR)``: the full doctor (layout, headers, buckets, captions, tags, duplicates...), best of 3;
- Pillow ``Image.open(p).load()`` of every image (open + decode, the alternative named in the issue);
- Pillow ``Image.open(p).size`` of every image (lazy open: the cheapest Pillow-based size read), for reference;

and prints the ratios. Run: ``python benchmarks/bench_check.py`` (``--images 2000`` for a quicker run,
``--keep`` to keep the generated folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIX = (("JPEG", ".jpg", 0.50), ("PNG", ".png", 0.35), ("WEBP", ".webp", 0.12), ("BMP", ".bmp", 0.03))
SIZES = ((640, 768), (768, 768), (640, 768), (768, 768), (768, 1024), (900, 600))  # the article: 640x768 and square
BASES_PER_FORMAT = 12
PLACEHOLDER = b"ID0000000000"
CAPTIONS = (
    "1girl, Zed, dark skin, braided hair, earrings, 3D render, UHD, 4K",
    "1girl, Zed, dark skin, braided hair, 3D render, UHD, 4K, from side",
    "1girl, Zed, dark skin, braided hair, 3D render, UHD, 4K, from behind",
)


def base_image(index: int, size: tuple[int, int]):  # -> PIL.Image.Image
    """A smooth picture with some noise: compresses like a photo-ish render, not like a flat colour."""
    from PIL import Image

    w, h = size
    grad = Image.linear_gradient("L").resize((w, h)).rotate(index * 29 % 360, expand=False)
    noise = Image.effect_noise((w, h), 6 + index % 8)
    red = Image.blend(grad, noise, 0.25)
    green = grad.point(lambda v, k=index: (v + k * 23) % 256)
    return Image.merge("RGB", (red, green, noise))


def encode_base(fmt: str, index: int, size: tuple[int, int]) -> tuple[bytes, int]:
    """Encoded bytes with a placeholder id, and the offset of that placeholder."""
    import io

    from PIL import Image, PngImagePlugin

    im = base_image(index, size)
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=88, comment=PLACEHOLDER)
    elif fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("id", PLACEHOLDER.decode())
        im.save(buf, "PNG", pnginfo=info)
    elif fmt == "WEBP":
        exif = Image.Exif()
        exif[0x010E] = PLACEHOLDER.decode()  # ImageDescription
        im.save(buf, "WEBP", quality=80, method=0, exif=exif)
    else:
        im.save(buf, "BMP")
    data = buf.getvalue()
    if fmt == "BMP":
        return data, struct.unpack("<I", data[10:14])[0]  # the first pixel bytes
    return data, data.index(PLACEHOLDER)


def unique_copy(fmt: str, data: bytes, offset: int, n: int) -> bytes:
    uid = f"ID{n:010d}".encode()
    out = bytearray(data)
    out[offset : offset + len(uid)] = uid
    if fmt == "PNG":  # fix the tEXt chunk's CRC: chunk = length(4) type(4) data crc(4)
        start = data.rindex(b"tEXt", 0, offset) - 4
        length = struct.unpack(">I", data[start : start + 4])[0]
        body = bytes(out[start + 4 : start + 8 + length])
        out[start + 8 + length : start + 12 + length] = struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return bytes(out)


def build(root: Path, total: int) -> list[Path]:
    folder = root / "img" / "10_Zed woman"
    folder.mkdir(parents=True)
    paths: list[Path] = []
    n = 0
    for fmt, ext, share in MIX:
        count = round(total * share) if fmt != MIX[-1][0] else total - n
        bases = [encode_base(fmt, i, SIZES[i % len(SIZES)]) for i in range(BASES_PER_FORMAT)]
        for k in range(count):
            data, offset = bases[k % len(bases)]
            path = folder / f"{n:05d}{ext}"
            path.write_bytes(unique_copy(fmt, data, offset, n))
            path.with_suffix(".txt").write_text(CAPTIONS[n % len(CAPTIONS)], encoding="utf-8")
            paths.append(path)
            n += 1
    return paths


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def pillow_decode(paths: list[Path]) -> int:
    from PIL import Image

    for p in paths:
        with Image.open(p) as im:
            im.load()
    return len(paths)


def pillow_lazy(paths: list[Path]) -> int:
    from PIL import Image

    for p in paths:
        with Image.open(p) as im:
            _ = im.size
    return len(paths)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated folder")
    args = parser.parse_args()

    from kohya_recipe.dataset.check import check_dataset
    from kohya_recipe.dataset.images import read_header

    tmp = Path(tempfile.mkdtemp(prefix="bench_check_"))
    try:
        t0 = time.perf_counter()
        paths = build(tmp, args.images)
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"generated {len(paths)} images ({size_mb:.0f} MB) + captions in {time.perf_counter() - t0:.1f} s: {tmp}")
        # Warm the page cache for both sides the same way: read every file once.
        for p in paths:
            p.read_bytes()

        runs = []
        result = None
        for _ in range(3):
            seconds, result = timed(lambda: check_dataset(tmp / "img"))
            runs.append(seconds)
        check_s = min(runs)
        assert result is not None and len(result.images) == len(paths)  # type: ignore[attr-defined]
        dup = [f for f in result.findings if f.check == "duplicates" and f.severity == "warning"]  # type: ignore[attr-defined]
        assert not dup, "the generated images must all be distinct"
        headers_s, _ = timed(lambda: [read_header(p) for p in paths], repeat=3)
        lazy_s, _ = timed(lambda: pillow_lazy(paths))
        decode_s, _ = timed(lambda: pillow_decode(paths))

        n = len(paths)
        print(f"cores: {os.cpu_count()}  python {sys.version.split()[0]}")
        print(
            f"kohya-recipe check (header-only, full doctor): {check_s:7.3f} s  ({check_s / n * 1e6:6.1f} µs/image)"
            f"  runs: {', '.join(f'{r:.3f}' for r in runs)}  median {statistics.median(runs):.3f}"
        )
        print(
            f"kohya_recipe.dataset.images.read_header only:         {headers_s:7.3f} s  "
            f"({headers_s / n * 1e6:6.1f} µs/image)"
        )
        print(f"Pillow Image.open().size (lazy, sizes only):  {lazy_s:7.3f} s  ({lazy_s / n * 1e6:6.1f} µs/image)")
        print(f"Pillow Image.open().load() (open + decode):   {decode_s:7.3f} s  ({decode_s / n * 1e6:6.1f} µs/image)")
        print(f"ratio decode / check: {decode_s / check_s:6.1f}x   (target >= 20x)")
        print(f"ratio lazy   / check: {lazy_s / check_s:6.1f}x   (the doctor reads captions and runs every check too)")
        print(f"ratio lazy   / read_header: {lazy_s / headers_s:6.1f}x   (header reading alone, like for like)")
        verdict = "PASS" if check_s < 2.0 * n / 10_000 and decode_s / check_s >= 20 else "FAIL"
        print(f"target for {n} images: check under {2.0 * n / 10_000:.2f} s and >= 20x faster than decoding: {verdict}")
        return 0 if verdict == "PASS" else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
