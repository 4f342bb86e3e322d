"""Byte-identical groups and perceptual clusters: exact against brute force, and near-linear on alike images."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kohya_recipe.dataset.clusters import identical_groups, near_clusters

FULL = (1 << 64) - 1


def brute_force(hashes: list[int | None], mirrors: list[int | None], d: int) -> list[list[int]]:
    """Every pair compared: the clusters the fast search must find."""
    n = len(hashes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            hi, hj = hashes[i], hashes[j]
            if hi is None or hj is None:
                continue
            close = (hi ^ hj).bit_count() <= d
            mi, mj = mirrors[i], mirrors[j]
            close = close or (mi is not None and (mi ^ hj).bit_count() <= d)
            close = close or (mj is not None and (mj ^ hi).bit_count() <= d)
            if close:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        if hashes[i] is not None:
            groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def flip(value: int, bits: list[int]) -> int:
    for b in bits:
        value ^= 1 << b
    return value


@st.composite
def alike_hashes(draw: st.DrawFn) -> tuple[list[int | None], list[int | None], int]:
    """Hashes around a few centres (some bits flipped), some sharing whole bands, some mirrors, some missing."""
    centres = draw(st.lists(st.integers(0, FULL), min_size=1, max_size=4))
    shared_top = draw(st.booleans())  # a plain background: every hash has the same top 16 bits
    n = draw(st.integers(0, 60))
    hashes: list[int | None] = []
    mirrors: list[int | None] = []
    for _ in range(n):
        centre = draw(st.sampled_from(centres))
        h = flip(centre, draw(st.lists(st.integers(0, 63), max_size=12)))
        if shared_top:
            h = (h & ((1 << 48) - 1)) | (0xBEEF << 48)
        hashes.append(None if draw(st.integers(0, 15)) == 0 else h)
        mirrors.append(draw(st.one_of(st.none(), st.integers(0, FULL), st.sampled_from(centres))))
    return hashes, mirrors, draw(st.integers(0, 10))


@settings(max_examples=80, deadline=None)
@given(alike_hashes())
def test_near_clusters_equal_brute_force(case: tuple[list[int | None], list[int | None], int]) -> None:
    hashes, mirrors, d = case
    found = near_clusters(hashes, mirrors, d)
    assert found.clusters == brute_force(hashes, mirrors, d)
    # A spanning forest: one link fewer than images per cluster, each within the distance, never inside one image.
    assert len(found.links) == sum(len(c) - 1 for c in found.clusters)
    for link in found.links:
        a, b = link.image, link.like
        ha, hb, ma, mb = hashes[a], hashes[b], mirrors[a], mirrors[b]
        assert a != b and ha is not None and hb is not None and link.distance <= d
        if link.mirrored:
            assert link.distance in {(m ^ h).bit_count() for m, h in ((ma, hb), (mb, ha)) if m is not None}
        else:
            assert (ha ^ hb).bit_count() == link.distance


def test_groups_stand_in_through_their_first_image() -> None:
    hashes: list[int | None] = [0, 0, 1, 0xFFFF]
    found = near_clusters(hashes, [None] * 4, 2, groups=[[0, 1]])
    assert found.clusters == [[0, 2]]  # 1 is byte-identical to 0: reported there, not here


def test_alike_images_cost_one_comparison_each_not_one_per_pair() -> None:
    # The case: 1,000 similar images gave 14 million comparisons and "499,499 near-duplicate pairs".
    rng = random.Random(1)
    centre = rng.getrandbits(64)
    n = 5000
    hashes: list[int | None] = [flip(centre, rng.sample(range(64), 3)) for _ in range(n)]
    mirrors: list[int | None] = [flip(centre ^ FULL, rng.sample(range(64), 3)) for _ in range(n)]
    found = near_clusters(hashes, mirrors, 6)
    assert [len(c) for c in found.clusters] == [n]
    assert found.comparisons < 20 * n, found.comparisons  # all pairs would be 12.5 million


def test_a_band_shared_by_unrelated_images_is_split_again() -> None:
    # A plain studio background: every dHash has the same top rows, the faces differ. One band holds every image,
    # and hardly any are near-duplicates; comparing within that band pair by pair would be n²/2.
    rng = random.Random(2)
    n = 5000
    hashes: list[int | None] = [(0xFFFF << 48) | rng.getrandbits(48) for _ in range(n)]
    found = near_clusters(hashes, [None] * n, 6)
    assert found.comparisons < 200 * n, found.comparisons  # all pairs (the old band index) would be 12.5 million
    assert all(len(c) == 2 for c in found.clusters) and len(found.clusters) < 5  # chance pairs (p ~ 5e-8 per pair)
    for link in found.links:
        assert (hashes[link.image] ^ hashes[link.like]).bit_count() <= 6  # type: ignore[operator]


def _generated(kind: str, n: int) -> tuple[list[int | None], list[int | None]]:
    rng = random.Random(kind)
    centres = [rng.getrandbits(64) for _ in range(3)]
    if kind.startswith("alike"):  # around a few centres, k bits flipped: big buckets, splits, cluster by cluster
        k = int(kind[5:])
        hashes: list[int | None] = [flip(rng.choice(centres), rng.sample(range(64), k)) for _ in range(n)]
    elif kind == "shared":
        hashes = [(0xABCD << 48) | flip(centres[0] >> 16, rng.sample(range(48), 12)) for _ in range(n)]
    else:
        hashes = [rng.getrandbits(64) for _ in range(n)]
    mirrors: list[int | None] = [
        None if i % 3 == 0 else flip(rng.choice(centres) ^ FULL, rng.sample(range(64), 4)) for i in range(n)
    ]
    return hashes, mirrors


@pytest.mark.parametrize("kind", ["alike2", "alike6", "alike10", "shared", "random"])
def test_large_inputs_equal_brute_force(kind: str) -> None:
    # Large enough that buckets split twice and the cluster-by-cluster search runs.
    hashes, mirrors = _generated(kind, 600)
    for d in (3, 6):
        assert near_clusters(hashes, mirrors, d).clusters == brute_force(hashes, mirrors, d)


def test_identical_groups(tmp_path: Path) -> None:
    big = bytes(range(256)) * 1024  # 256 KiB: sampled blocks first, then the whole file
    files = {
        "a": b"same small",
        "b": b"same small",
        "c": b"diff small",
        "big1": big,
        "big2": big,
        "big3": big[:-1] + b"\x00",  # same size, same head and samples, differs in the last byte
        "big4": b"\x01" + big[1:],  # same size, differs in the first block
        "big5": big[:10000] + b"\x00" + big[10001:],  # same size, head and samples: only the whole file differs
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    listing = [(str(tmp_path / name), len(data)) for name, data in files.items()]
    listing.append((str(tmp_path / "gone"), 10))  # vanished since the scan: in no group
    assert identical_groups(listing) == [[0, 1], [3, 4]]
