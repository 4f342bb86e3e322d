"""Duplicate images: byte-identical copies, and perceptual near-duplicates when images are decoded."""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from kohya_recipe.dataset.findings import Finding, Item, plural
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.dataset.settings import CheckSettings


def _sample_digest(path: Path, offsets: Sequence[int]) -> bytes | None:
    """blake2b of the 4 KiB blocks at ``offsets`` (cheap evidence before hashing a whole file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        h = hashlib.blake2b(digest_size=16)
        for offset in offsets:
            h.update(os.pread(fd, 4096, offset))
        return h.digest()
    except OSError:
        return None
    finally:
        os.close(fd)


def _full_digest(path: Path) -> bytes | None:
    h = hashlib.blake2b(digest_size=32)
    try:
        with open(path, "rb") as f:  # noqa: PTH123
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.digest()


def _exact_duplicates(records: list[ImageRecord]) -> list[list[ImageRecord]]:
    """Groups of byte-identical images, narrowed step by step so that distinct files are rarely read whole:
    same size, then the same first 4 KiB (metadata differs between photos), then the same middle and last
    4 KiB, then the same full hash."""
    by_size: dict[int, list[ImageRecord]] = defaultdict(list)
    for r in records:
        if r.header is not None:
            by_size[r.header.file_size].append(r)
    groups: list[list[ImageRecord]] = []

    def split(candidates: list[ImageRecord], key: Callable[[ImageRecord], bytes | None]) -> list[list[ImageRecord]]:
        buckets: dict[bytes, list[ImageRecord]] = defaultdict(list)
        for r in candidates:
            k = key(r)
            if k is not None:
                buckets[k].append(r)
        return [b for b in buckets.values() if len(b) > 1]

    for size, same_size in by_size.items():
        if len(same_size) < 2:
            continue
        tail = (size // 2, max(0, size - 4096))
        for same_head in split(same_size, lambda r: _sample_digest(r.file, (0,))):
            for same_sample in split(same_head, lambda r, t=tail: _sample_digest(r.file, t)):  # type: ignore[misc]
                groups += split(same_sample, lambda r: _full_digest(r.file))
    return groups


def _near_duplicates(records: list[ImageRecord], max_distance: int) -> list[tuple[ImageRecord, ImageRecord, int, bool]]:
    """Pairs whose 64-bit dHashes differ in at most ``max_distance`` bits (also against the mirror image).

    Multi-index search: split the hash into ``max_distance + 1`` bands; two hashes that close share at least
    one band exactly (pigeonhole), so only records sharing a band are compared.
    """
    hashed = [r for r in records if r.decoding is not None and r.decoding.ok and r.decoding.dhash is not None]
    bands = max_distance + 1
    width = -(-64 // bands)
    index: dict[tuple[int, int], list[int]] = defaultdict(list)

    def band_keys(h: int) -> list[tuple[int, int]]:
        return [(b, (h >> (b * width)) & ((1 << width) - 1)) for b in range(bands)]

    for i, r in enumerate(hashed):
        assert r.decoding is not None and r.decoding.dhash is not None
        for key in band_keys(r.decoding.dhash):
            index[key].append(i)
    pairs: dict[tuple[int, int], tuple[int, bool]] = {}
    for i, r in enumerate(hashed):
        assert r.decoding is not None and r.decoding.dhash is not None
        for mirrored, h in ((False, r.decoding.dhash), (True, r.decoding.dhash_mirror)):
            if h is None:
                continue
            for key in band_keys(h):
                for j in index[key]:
                    if j == i:
                        continue
                    other = hashed[j].decoding
                    assert other is not None and other.dhash is not None
                    dist = (h ^ other.dhash).bit_count()
                    pair = (min(i, j), max(i, j))
                    if dist <= max_distance and (pair not in pairs or dist < pairs[pair][0]):
                        pairs[pair] = (dist, mirrored)
    return [(hashed[i], hashed[j], d, m) for (i, j), (d, m) in sorted(pairs.items())]


def duplicate_findings(
    records: list[ImageRecord], rules: Rules, settings: CheckSettings, decoded: bool
) -> list[Finding]:
    """Byte-identical images, and (when every image was ``decoded``) perceptual near-duplicates and mirror images."""
    out: list[Finding] = []
    exact = _exact_duplicates(records)
    exact_pairs: set[frozenset[str]] = set()
    if exact:
        items = []
        for group in exact:
            names = [r.path for r in group]
            for r in group:
                r.notes.append("duplicate")
            items.append(Item(names[0], "identical to " + ", ".join(names[1:])))
            exact_pairs |= {frozenset((a, b)) for a in names for b in names if a != b}
        out.append(
            Finding(
                "warning",
                "duplicates",
                f"{plural(len(exact), 'group')} of byte-identical images: each copy trains the same picture again "
                "(it weighs double)",
                "delete the extra copies",
                items,
            )
        )
    if decoded:
        near = [
            (a, b, d, m)
            for a, b, d, m in _near_duplicates(records, rules.near_duplicate_distance)
            if frozenset((a.path, b.path)) not in exact_pairs
        ]
        if near:
            items = []
            for a, b, dist, mirrored in near:
                a.notes.append("near-duplicate")
                b.notes.append("near-duplicate")
                how = "a mirror image of" if mirrored else "nearly identical to"
                items.append(Item(a.path, f"{how} {b.path} (hash distance {dist}/64)"))
            flip = " (flip augmentation already trains every image mirrored)" if settings.flip else ""
            out.append(
                Finding(
                    "warning",
                    "duplicates",
                    f"{plural(len(near), 'pair')} of near-duplicate images{flip}: near copies add steps, not views",
                    "keep the better of each pair, or vary the pose/angle",
                    items,
                )
            )
    elif records:
        out.append(
            Finding(
                "info",
                "duplicates",
                "near-duplicates not searched (header-only scan)",
                "run with --decode to decode every image and compare perceptual hashes",
            )
        )
    return out
