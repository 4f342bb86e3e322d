"""Grouping images that are the same picture, in near-linear time: byte-identical groups and perceptual clusters.

A folder of 10,000 copies of one image is one group of 10,000, not 50 million pairs: everything here returns
*groups* (lists of indexes), never the pairs inside them.

- :func:`identical_groups` narrows files step by step (size, then a hash of the first 4 KiB, then - for large
  files - of a few more blocks, then of the whole file), so distinct files are rarely read whole and each file is
  read at most a few times.
- :func:`near_clusters` joins 64-bit perceptual hashes that differ in at most ``max_distance`` bits (also
  against each image's mirror hash) into clusters (single linkage: A~B and B~C put A, B, C in one cluster).
  It is an exact search: the pigeonhole principle (two hashes that close agree exactly on at least one of
  ``max_distance + 1`` disjoint bit bands) narrows the candidates, a union-find keeps the clusters, and two
  candidates already in one cluster are never compared again. Images that all look alike therefore cost one
  comparison each instead of one per pair; a band shared by many unrelated images (a plain studio background
  gives every image the same top rows) is split again by the remaining bits.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from kohya_recipe.files import open_regular_file

_BLOCK = 4096
# Files up to this size that share their first block are hashed whole at once: one more open and read beat two
# more of sampled blocks.
_WHOLE_FILE_BYTES = 64 << 10


# ----------------------------------------------------------------------------------------------------------
# Byte-identical files


def _read_digest(path: str, offsets: Sequence[int] | None) -> bytes | None:
    """blake2b of the 4 KiB blocks at ``offsets``, or of the whole file (``None``); ``None`` when unreadable.

    Regular files only (never blocks on a FIFO that replaced an image since the scan).
    """
    h = hashlib.blake2b(digest_size=32)
    try:
        fd = open_regular_file(path)
    except (OSError, ValueError):
        return None
    try:
        if offsets is None:
            pos = 0
            while block := os.pread(fd, 1 << 20, pos):
                h.update(block)
                pos += len(block)
        else:
            for offset in offsets:
                h.update(os.pread(fd, _BLOCK, offset))
    except OSError:
        return None
    finally:
        os.close(fd)
    return h.digest()


def _split(files: Sequence[tuple[str, int]], candidates: list[int], offsets: Sequence[int] | None) -> list[list[int]]:
    """``candidates`` split by the digest of their blocks at ``offsets`` (``None``: whole files); groups of 2+."""
    buckets: dict[bytes, list[int]] = defaultdict(list)
    for i in candidates:
        digest = _read_digest(files[i][0], offsets)
        if digest is not None:
            buckets[digest].append(i)
    return [b for b in buckets.values() if len(b) > 1]


def identical_groups(files: Sequence[tuple[str, int]]) -> list[list[int]]:
    """Indexes of byte-identical files, in groups of two or more (each group in input order, groups by their
    first index). ``files`` holds (path, size in bytes) pairs; unreadable files are in no group."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, (_path, size) in enumerate(files):
        by_size[size].append(i)
    groups: list[list[int]] = []
    for size, same_size in by_size.items():
        if len(same_size) < 2:
            continue
        if size <= _BLOCK:  # the first block is the whole file
            groups += _split(files, same_size, None)
            continue
        # Files of one size usually differ in their first block (metadata, or any compressed data), else in the
        # middle or at the end; only files alike in those are read whole.
        for same_head in _split(files, same_size, (0,)):
            alike = _split(files, same_head, (size // 2, size - _BLOCK)) if size > _WHOLE_FILE_BYTES else [same_head]
            for candidates in alike:
                groups += _split(files, candidates, None)
    return sorted(groups, key=lambda g: g[0])


# ----------------------------------------------------------------------------------------------------------
# Perceptual near-duplicates


@dataclass(frozen=True)
class Link:
    """Why ``image`` joined its cluster: its hash is ``distance`` bits from that of ``like`` (from its mirror
    image's hash when ``mirrored``)."""

    image: int
    like: int
    distance: int
    mirrored: bool = False


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra


# Buckets up to this size are compared entry against entry; larger ones are split by further bands, at most this
# many times (each split puts an entry in max_distance + 1 more buckets), then searched cluster by cluster.
_SMALL_BUCKET = 48
_MAX_SPLITS = 2


class _Search:
    """One near-duplicate search over entries: entry ``e`` is the hash ``values[e]`` of image ``images[e]``, or of
    its mirror image when ``mirrored[e]``. Links join images; two mirror entries are never compared (a mirror
    pair is the same as the plain pair)."""

    def __init__(self, n: int, max_distance: int) -> None:
        self.uf = _UnionFind(n)
        self.max_distance = max_distance
        self.images: list[int] = []
        self.values: list[int] = []
        self.mirrored: list[bool] = []
        self.links: list[Link] = []
        self.comparisons = 0

    def add(self, image: int, value: int, mirrored: bool) -> None:
        self.images.append(image)
        self.values.append(value)
        self.mirrored.append(mirrored)

    def join(self, a: int, b: int, distance: int, mirrored: bool) -> None:
        self.uf.union(a, b)
        self.links.append(Link(a, b, distance, mirrored))

    def nothing_to_link(self, members: Sequence[int]) -> bool:
        """True when the entries are all in one cluster, or all mirror entries."""
        find, images, mirrored = self.uf.find, self.images, self.mirrored
        if all(mirrored[e] for e in members):
            return True
        root = find(images[members[0]])
        return all(find(images[e]) == root for e in members)

    def search(self, members: list[int], mask: int, splits: int) -> None:
        """Link every pair of ``members`` (entries that agree on the bits outside ``mask``) within the distance.
        Exact: a pair within ``max_distance`` bits agrees on one of ``max_distance + 1`` disjoint bands of the
        bits where they may differ (pigeonhole), so it meets in that band's bucket."""
        if self.nothing_to_link(members):
            return
        if len(members) <= _SMALL_BUCKET:
            self.each_against_each(members)
            return
        # Bits every member has alike hold no difference: the bands are cut from the bits that vary.
        values = self.values
        first = values[members[0]]
        varying = 0
        for e in members:
            varying |= values[e] ^ first
        mask &= varying
        bands = _bands(mask, self.max_distance + 1)
        if splits >= _MAX_SPLITS or len(bands) <= self.max_distance:
            self.cluster_by_cluster(members)
            return
        for band in bands:
            buckets: dict[int, list[int]] = defaultdict(list)
            for e in members:
                buckets[values[e] & band].append(e)
            for bucket in buckets.values():
                if len(bucket) > 1:
                    self.search(bucket, mask & ~band, splits + 1)

    def each_against_each(self, members: list[int]) -> None:
        """A small bucket: each entry against every earlier one (plain against plain and mirror entries)."""
        find, images, values, mirrored, limit = self.uf.find, self.images, self.values, self.mirrored, self.max_distance
        plain: list[int] = []
        mirrors: list[int] = []
        for e in members:
            value = values[e]
            others = plain if mirrored[e] else plain + mirrors
            self.comparisons += len(others)
            for other in [o for o in others if (value ^ values[o]).bit_count() <= limit]:
                if find(images[e]) != find(images[other]):
                    distance = (value ^ values[other]).bit_count()
                    self.join(images[e], images[other], distance, mirrored[e] or mirrored[other])
            (mirrors if mirrored[e] else plain).append(e)

    def cluster_by_cluster(self, members: list[int]) -> None:
        """A large bucket that does not split: each entry against the entries of every *other* cluster in it,
        stopping at the first match per cluster, so images that all look alike cost one comparison each."""
        find, images, values, mirrored, limit = self.uf.find, self.images, self.values, self.mirrored, self.max_distance
        # cluster root -> (plain entries, mirror entries) of this bucket in it; the keys are always current roots
        groups: dict[int, tuple[list[int], list[int]]] = {}
        for e in members:
            value = values[e]
            mine = find(images[e])
            for root in list(groups):
                if root == mine or root not in groups:
                    continue
                plain, mirror = groups[root]
                for other in plain if mirrored[e] else (*plain, *mirror):
                    self.comparisons += 1
                    distance = (value ^ values[other]).bit_count()
                    if distance <= limit:
                        self.join(images[e], images[other], distance, mirrored[e] or mirrored[other])
                        new = find(mine)
                        _merge(groups, root, new)
                        _merge(groups, mine, new)
                        mine = new
                        break
            groups.setdefault(mine, ([], []))[1 if mirrored[e] else 0].append(e)


def _merge(groups: dict[int, tuple[list[int], list[int]]], old: int, new: int) -> None:
    """Move the entries of cluster ``old`` under its new root ``new``."""
    if old == new or old not in groups:
        return
    moved = groups.pop(old)
    target = groups.get(new)
    if target is None:
        groups[new] = moved
        return
    for have, more in zip(target, moved, strict=True):
        have.extend(more)


def _bands(mask: int, count: int) -> list[int]:
    """``mask``'s set bits split into ``count`` disjoint bands of neighbouring bits (as even as possible); fewer
    bands when ``mask`` has fewer bits."""
    bits = []
    while mask:
        low = mask & -mask
        bits.append(low)
        mask ^= low
    count = min(count, len(bits))
    return [sum(bits[k * len(bits) // count : (k + 1) * len(bits) // count]) for k in range(count)]


@dataclass(frozen=True)
class NearClusters:
    """The outcome of :func:`near_clusters`: ``clusters`` of image indexes (two or more each, in input order,
    ordered by their first index), the ``links`` that joined them (one fewer than images per cluster), and the
    number of hash ``comparisons`` made."""

    clusters: list[list[int]]
    links: list[Link]
    comparisons: int


def near_clusters(
    hashes: Sequence[int | None],
    mirrors: Sequence[int | None],
    max_distance: int,
    *,
    groups: Sequence[Sequence[int]] = (),
) -> NearClusters:
    """Cluster the images whose 64-bit ``hashes`` differ in at most ``max_distance`` bits, or whose mirror
    hash (``mirrors``) is that close to another's hash. ``None`` hashes take no part. ``groups`` are images
    already known to be the same (byte-identical): each such group is searched through its first image only and
    its other images are in no cluster."""
    skip = {i for g in groups for i in g[1:]}
    search = _Search(len(hashes), max_distance)
    # Identical hashes are one cluster at once (distance 0), searched through their first image; mirror hashes
    # give one entry per (such cluster, mirror hash), usually one per cluster.
    first_of: dict[int, int] = {}
    mirror_entries: set[tuple[int, int]] = set()
    for i, h in enumerate(hashes):
        if h is None or i in skip:
            continue
        first = first_of.setdefault(h, i)
        if first == i:
            search.add(i, h, False)
        else:
            search.join(i, first, 0, False)
        mirror = mirrors[i]
        if mirror is not None and mirror != h and (first, mirror) not in mirror_entries:
            mirror_entries.add((first, mirror))
            search.add(i, mirror, True)
    if len(search.images) > 1:
        search.search(list(range(len(search.images))), (1 << 64) - 1, 0)

    by_root: dict[int, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if h is not None and i not in skip:
            by_root[search.uf.find(i)].append(i)
    clusters = sorted((c for c in by_root.values() if len(c) > 1), key=lambda c: c[0])
    return NearClusters(clusters, search.links, search.comparisons)
