"""Duplicate images: byte-identical copies, and perceptual near-duplicates when images are decoded.

Both are reported as clusters (one item per cluster, its first image kept and the others listed), never as every
pair inside them: 10,000 copies of one picture are one cluster (:mod:`kohya_recipe.dataset.clusters`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kohya_recipe.dataset.clusters import identical_groups, near_clusters
from kohya_recipe.dataset.findings import Finding, Item, plural
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.dataset.settings import CheckSettings

# Names listed in one finding item's text; the cluster in the ``--json`` output lists them all.
NAMES_PER_ITEM = 5


@dataclass(frozen=True)
class DuplicateLink:
    """Why ``image`` is in its near-duplicate cluster: its perceptual hash is ``distance`` bits (of 64) from that of
    ``like`` (its mirror image's hash when ``mirrored``)."""

    image: str
    like: str
    distance: int
    mirrored: bool = False


@dataclass
class DuplicateCluster:
    """Images that are the same picture: ``identical`` (byte for byte) or ``near`` (perceptual hash within the
    rules' distance; byte-identical copies stand in through their first image). ``images`` are paths relative to
    the checked folder, the first one the one to keep; ``links`` say how each other image of a ``near`` cluster
    joined it."""

    kind: Literal["identical", "near"]
    images: list[str]
    links: list[DuplicateLink] = field(default_factory=list)


def duplicate_clusters(records: list[ImageRecord], rules: Rules, decoded: bool) -> list[DuplicateCluster]:
    """The clusters of byte-identical images and, when every image was ``decoded``, of near-duplicates; the
    records concerned get a ``duplicate`` / ``near-duplicate`` note."""
    readable = [r for r in records if r.header is not None]
    groups = identical_groups([(str(r.file), r.header.file_size) for r in readable if r.header is not None])
    out = []
    for group in groups:
        for i in group:
            readable[i].notes.append("duplicate")
        out.append(DuplicateCluster("identical", [readable[i].path for i in group]))
    if not decoded:
        return out
    hashes = [r.decoding.dhash if r.decoding is not None and r.decoding.ok else None for r in readable]
    mirrors = [r.decoding.dhash_mirror if r.decoding is not None and r.decoding.ok else None for r in readable]
    near = near_clusters(hashes, mirrors, rules.near_duplicate_distance, groups=groups)
    for cluster in near.clusters:
        members = set(cluster)
        links = [
            DuplicateLink(readable[k.image].path, readable[k.like].path, k.distance, k.mirrored)
            for k in near.links
            if k.image in members
        ]
        for i in cluster:
            readable[i].notes.append("near-duplicate")
        out.append(DuplicateCluster("near", [readable[i].path for i in cluster], links))
    return out


def _listed(names: list[str], total: int) -> str:
    """The first names (of ``total``), and how many more there are."""
    shown = ", ".join(names[:NAMES_PER_ITEM])
    return shown + (f" and {total - NAMES_PER_ITEM} more" if total > NAMES_PER_ITEM else "")


def _near_item(cluster: DuplicateCluster) -> Item:
    others = cluster.images[1:]
    how: dict[str, DuplicateLink] = {}
    for link in cluster.links:  # every image of a cluster is at one end of one of its links at least
        how.setdefault(link.image, link)
        how.setdefault(link.like, link)
    names = []
    for path in others[:NAMES_PER_ITEM]:
        link = how[path]
        names.append(f"{path} ({'mirror image, ' if link.mirrored else ''}{link.distance}/64)")
    return Item(cluster.images[0], f"{plural(len(others), 'near copy', 'near copies')}: {_listed(names, len(others))}")


def duplicate_findings(
    clusters: list[DuplicateCluster], settings: CheckSettings, decoded: bool, any_image: bool
) -> list[Finding]:
    """The findings of :func:`duplicate_clusters`: one warning per kind, one item per cluster."""
    out: list[Finding] = []
    exact = [c for c in clusters if c.kind == "identical"]
    if exact:
        copies = sum(len(c.images) - 1 for c in exact)
        out.append(
            Finding(
                "warning",
                "duplicates",
                f"{plural(len(exact), 'group')} of byte-identical images "
                f"({plural(copies, 'extra copy', 'extra copies')}): each copy trains the same picture again (it "
                "weighs double)",
                "delete the extra copies",
                [
                    Item(
                        c.images[0],
                        f"{plural(len(c.images) - 1, 'copy', 'copies')}: {_listed(c.images[1:], len(c.images) - 1)}",
                    )
                    for c in exact
                ],
            )
        )
    near = [c for c in clusters if c.kind == "near"]
    if near:
        flip = " (flip augmentation already trains every image mirrored)" if settings.flip else ""
        images = sum(len(c.images) for c in near)
        out.append(
            Finding(
                "warning",
                "duplicates",
                f"{plural(len(near), 'group')} of near-duplicate images ({plural(images, 'image')}){flip}: near "
                "copies add steps, not views",
                "keep the best image of each group, or vary the pose/angle",
                [_near_item(c) for c in near],
            )
        )
    if not decoded and any_image:
        out.append(
            Finding(
                "info",
                "duplicates",
                "near-duplicates not searched (header-only scan)",
                "run with --decode to decode every image and compare perceptual hashes",
            )
        )
    return out
