"""Generate the bundled example dataset ``examples/CharacterAI/`` (42 images + Danbooru captions).

The article trains a character likeness from 42 images "mostly 640x768 portraits, the rest square", shot to a
list: almost all very close front portraits, 2-3 slightly from each side, one 90 degrees to each side, one
slightly from above, two from behind (head; head and torso), one upper body and one full body from the front.
Its captions are short Danbooru tags, ``1girl, <name>, dark skin, braided hair, earrings, 3D render, UHD, 4K``,
with ``from side`` / ``from behind`` added where they apply and ``earrings`` removed where they cannot be seen.

The images are simple synthetic drawings (solid background, a head with braids and earrings) in a 16-colour
palette, so that the whole folder stays small (PNG compresses flat colour well) while having the article's
sizes, which is what bucketing and the step plan depend on. The output is deterministic: a fixed shot list and
``random.Random(index)`` (only ``.random()``, whose sequence is stable across Python versions).

    python examples/make_example.py                 # rewrite examples/CharacterAI/
    python examples/make_example.py --out /tmp/ds   # anywhere else
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import ImageDraw

TRIGGER = "CharacterAI"
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / TRIGGER

# Palette indices (the images are mode "P": flat colour, a few kilobytes each).
BACKGROUNDS = [(176, 196, 222), (200, 200, 200), (222, 206, 176), (182, 204, 178), (206, 190, 222), (236, 200, 180)]
SKIN, SKIN_SHADE, HAIR, HAIR_LIGHT, GOLD, EYE_WHITE, IRIS, LIPS, CLOTH, OUTLINE = range(6, 16)
PALETTE = [
    *BACKGROUNDS,
    (96, 60, 42),  # skin: the caption's "dark skin"
    (72, 44, 30),  # skin shade
    (24, 20, 22),  # hair
    (58, 48, 50),  # braid highlight
    (212, 175, 55),  # gold earrings
    (236, 230, 224),  # eye white
    (62, 36, 20),  # iris
    (118, 62, 56),  # lips
    (84, 88, 96),  # plain clothing for the body shots
    (40, 26, 20),  # outline
]


@dataclass(frozen=True)
class Shot:
    """One image of the shot list: file stem, pixel size, the pose drawn and the extra caption tags."""

    stem: str
    size: tuple[int, int]
    view: str  # front | side | profile | above | back
    framing: str  # head | upper | full
    facing: int = 0  # -1 looks to the viewer's left, +1 to the right (side and profile views)
    tags: tuple[str, ...] = ()

    @property
    def earrings_visible(self) -> bool:
        # The article: remove tags that are not visible from the back, like "earrings".
        return self.view != "back"

    @property
    def caption(self) -> str:
        tags = ["1girl", TRIGGER, "dark skin", "braided hair"]
        if self.earrings_visible:
            tags.append("earrings")
        tags += [*self.tags, "3D render", "UHD", "4K"]
        return ", ".join(tags)

    @property
    def filename(self) -> str:
        return f"{self.stem}.png"


def shot_list() -> list[Shot]:
    """The article's 42 shots: 29 close front portraits and 13 others, at 640x768, 768x768 and larger."""
    portrait, square = (640, 768), (768, 768)
    front_sizes = [portrait] * 20 + [square] * 7 + [(1024, 1024), (1536, 1536)]
    shots: list[Shot] = []

    def add(view: str, framing: str, size: tuple[int, int], facing: int = 0, tags: tuple[str, ...] = ()) -> None:
        name = view if not facing else f"{view}-{'left' if facing < 0 else 'right'}"
        if framing != "head":
            name += f"-{framing}"
        shots.append(Shot(f"{len(shots) + 1:02d}-{name}", size, view, framing, facing, tags))

    for size in front_sizes:
        add("front", "head", size)
    # "2 or 3 slightly from each side" - some a little further away so the braids are in frame.
    for facing in (-1, 1):
        for size in (portrait, portrait, square):
            add("side", "head", size, facing, ("from side",))
    for facing in (-1, 1):  # "one 90 degrees to each side"
        add("profile", "head", square, facing, ("from side",))
    add("above", "head", portrait, tags=("from above",))
    add("back", "head", portrait, tags=("from behind",))  # "one close to the head ..."
    add("back", "upper", portrait, tags=("from behind", "upper body"))  # "... and the other including the torso"
    add("front", "upper", (1024, 1024), tags=("upper body",))
    add("front", "full", (1024, 1536), tags=("full body",))
    return shots


# ----------------------------------------------------------------------------------------------------------------
# Drawing


def _ellipse(d: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float, fill: int) -> None:
    d.ellipse([round(cx - rx), round(cy - ry), round(cx + rx), round(cy + ry)], fill=fill)


def _braid(d: ImageDraw.ImageDraw, x: float, y0: float, y1: float, w: float) -> None:
    """A braid: overlapping segments, alternately offset, each with a highlight stripe."""
    seg = w * 1.1
    y, i = y0, 0
    while y < y1:
        off = w * 0.18 * (1 if i % 2 else -1)
        _ellipse(d, x + off, y, w * 0.55, seg * 0.6, HAIR)
        _ellipse(d, x + off - w * 0.12, y - seg * 0.1, w * 0.15, seg * 0.3, HAIR_LIGHT)
        y += seg * 0.8
        i += 1
    _ellipse(d, x, y, w * 0.25, w * 0.25, HAIR_LIGHT)  # the tie at the end


def _cornrows(d: ImageDraw.ImageDraw, cx: float, top: float, bottom: float, rx: float, n: int) -> None:
    """Cornrow lines running back over the hair cap."""
    for k in range(n):
        x = cx - rx * 0.8 + (2 * rx * 0.8) * k / max(n - 1, 1)
        d.line(
            [(round(x), round(top)), (round(cx + (x - cx) * 0.6), round(bottom))],
            fill=HAIR_LIGHT,
            width=max(1, round(rx / 30)),
        )


def _body(d: ImageDraw.ImageDraw, cx: float, neck_y: float, r: float, framing: str, bottom: float) -> None:
    """Neck, shoulders and, for the wider framings, torso, arms and legs in plain clothing."""
    d.rectangle(
        [round(cx - 0.35 * r), round(neck_y - 0.3 * r), round(cx + 0.35 * r), round(neck_y + 0.6 * r)], fill=SKIN_SHADE
    )
    shoulder_y = neck_y + 0.5 * r
    if framing == "head":
        _ellipse(d, cx, shoulder_y + 1.2 * r, 1.9 * r, 1.3 * r, SKIN)
        return
    torso_h = 3.2 * r
    d.polygon(
        [
            (cx - 1.6 * r, shoulder_y),
            (cx + 1.6 * r, shoulder_y),
            (cx + 1.2 * r, shoulder_y + torso_h),
            (cx - 1.2 * r, shoulder_y + torso_h),
        ],
        fill=CLOTH,
    )
    for side in (-1, 1):  # arms
        d.polygon(
            [
                (cx + side * 1.6 * r, shoulder_y),
                (cx + side * 2.0 * r, shoulder_y + 0.3 * r),
                (cx + side * 1.8 * r, shoulder_y + torso_h),
                (cx + side * 1.4 * r, shoulder_y + torso_h),
            ],
            fill=SKIN,
        )
    if framing == "full":
        hip = shoulder_y + torso_h
        for side in (-1, 1):  # legs down to the feet
            d.rectangle(
                [
                    round(cx + side * 0.15 * r + min(side, 0) * 0.9 * r),
                    round(hip),
                    round(cx + side * 0.15 * r + max(side, 0) * 0.9 * r),
                    round(min(bottom, hip + 4.6 * r)),
                ],
                fill=SKIN,
            )
        d.rectangle([round(cx - 1.2 * r), round(hip - 0.2 * r), round(cx + 1.2 * r), round(hip + 0.9 * r)], fill=CLOTH)


def _face(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, hh: float, shift: float, squash: float) -> None:
    """Eyes, nose and mouth; ``shift`` turns the face sideways, ``squash`` lowers it (seen from above)."""
    ey = cy + hh * (0.05 + squash)
    for side in (-1, 1):
        width = 0.22 * r * (1 - 0.5 * abs(shift) * (1 if side * shift < 0 else 0))
        ex = cx + side * 0.42 * r + shift * r * 0.6
        _ellipse(d, ex, ey, width, 0.12 * r, EYE_WHITE)
        _ellipse(d, ex + shift * 0.05 * r, ey, 0.09 * r, 0.1 * r, IRIS)
    nx = cx + shift * r * 0.75
    d.polygon([(nx, ey + 0.1 * r), (nx - 0.12 * r, ey + 0.5 * r), (nx + 0.12 * r, ey + 0.5 * r)], fill=SKIN_SHADE)
    _ellipse(d, cx + shift * r * 0.65, cy + hh * (0.55 + squash * 0.5), 0.28 * r, 0.08 * r, LIPS)


def draw_shot(shot: Shot, index: int) -> object:
    """Draw one shot as a palette image (a PIL ``Image``)."""
    from PIL import Image, ImageDraw

    rng = random.Random(index)
    w, h = shot.size
    img = Image.new("P", (w, h), color=int(rng.random() * len(BACKGROUNDS)))
    img.putpalette([c for rgb in PALETTE for c in rgb])
    d = ImageDraw.Draw(img)

    jitter = (rng.random() - 0.5) * 0.06
    if shot.framing == "head":
        r = min(w, h) * (0.24 if shot.view in ("side", "profile") else 0.28) * (1 + jitter)
        cx, cy = w * (0.5 + jitter), h * 0.44
    elif shot.framing == "upper":
        r = min(w, h) * 0.11
        cx, cy = w * 0.5, h * 0.28
    else:
        r = h * 0.055
        cx, cy = w * 0.5, h * 0.1
    hh = r * 1.25  # half height of the head
    f = shot.facing

    _body(d, cx, cy + hh, r, shot.framing, h)

    if shot.view == "back":
        for x in (cx - 0.45 * r, cx, cx + 0.45 * r):  # braids hang down the back
            _braid(d, x, cy + 0.4 * hh, cy + 3.2 * hh, 0.32 * r)
        _ellipse(d, cx, cy, r * 1.05, hh * 1.02, HAIR)
        for k in range(5):  # cornrows seen from behind run down to the nape
            x = cx - 0.7 * r + 1.4 * r * k / 4
            d.line(
                [(round(x), round(cy - hh * 0.9)), (round(cx + (x - cx) * 0.7), round(cy + hh * 0.9))],
                fill=HAIR_LIGHT,
                width=max(1, round(r / 30)),
            )
        return img

    if shot.view == "profile":
        back = cx - f * 0.7 * r
        _braid(d, back, cy + 0.2 * hh, cy + 2.8 * hh, 0.34 * r)
        _ellipse(d, cx, cy, r * 0.95, hh, SKIN)
        d.polygon(
            [
                (cx + f * 0.85 * r, cy - 0.05 * hh),
                (cx + f * 1.18 * r, cy + 0.3 * hh),
                (cx + f * 0.9 * r, cy + 0.38 * hh),
            ],
            fill=SKIN,
        )  # nose
        d.pieslice(
            [round(cx - 1.02 * r), round(cy - 1.06 * hh), round(cx + 1.02 * r), round(cy + 1.06 * hh)],
            start=180,
            end=360,
            fill=HAIR,
        )  # hair over the top ...
        d.pieslice(
            [round(cx - 1.02 * r), round(cy - 1.06 * hh), round(cx + 1.02 * r), round(cy + 1.06 * hh)],
            start=90 if f > 0 else 0,
            end=180 if f > 0 else 90,
            fill=HAIR,
        )  # ... and the back of the head
        _ellipse(d, cx + f * 0.6 * r, cy + 0.02 * hh, 0.14 * r, 0.1 * r, EYE_WHITE)
        _ellipse(d, cx + f * 0.66 * r, cy + 0.02 * hh, 0.06 * r, 0.08 * r, IRIS)
        _ellipse(d, cx + f * 0.7 * r, cy + 0.58 * hh, 0.16 * r, 0.07 * r, LIPS)
        _ellipse(d, cx - f * 0.1 * r, cy + 0.1 * hh, 0.16 * r, 0.24 * r, SKIN_SHADE)  # ear
        _ellipse(d, cx - f * 0.1 * r, cy + 0.38 * hh, 0.08 * r, 0.08 * r, GOLD)  # earring
        return img

    shift = 0.3 * f if shot.view == "side" else 0.0
    squash = 0.3 if shot.view == "above" else 0.0
    # Braids behind the head, one on each side (the nearer one hidden when turned).
    for side in (-1, 1):
        if shift and side == f:
            continue
        _braid(d, cx + side * 0.95 * r, cy + 0.1 * hh, cy + 2.6 * hh, 0.3 * r)
    for side in (-1, 1):  # ears; the one the face turns towards is hidden behind the cheek
        if shift and side == f:
            continue
        ex = cx + side * 0.98 * r - shift * 0.2 * r
        _ellipse(d, ex, cy + 0.1 * hh, 0.14 * r, 0.22 * r, SKIN_SHADE)
    _ellipse(d, cx, cy, r, hh, SKIN)
    cap_bottom = cy - hh * (0.25 - squash * 1.2)
    cap_top = cy - 1.08 * hh
    d.chord(
        [round(cx - 1.04 * r), round(cap_top), round(cx + 1.04 * r), round(2 * cap_bottom - cap_top)],
        start=180,
        end=360,
        fill=HAIR,
    )
    _cornrows(d, cx + shift * r * 0.3, cy - hh * 1.0, cap_bottom, r, 6)
    _face(d, cx, cy, r, hh, shift, squash)
    for side in (-1, 1):  # earrings: gold dots below the visible ears
        if shift and side == f:
            continue
        _ellipse(d, cx + side * 0.98 * r - shift * 0.2 * r, cy + 0.42 * hh, 0.08 * r, 0.08 * r, GOLD)
    return img


def generate(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Write every shot's PNG and ``.txt`` caption into ``out_dir``; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, shot in enumerate(shot_list()):
        img = draw_shot(shot, index)
        png = out_dir / shot.filename
        img.save(png, format="PNG", optimize=True)  # type: ignore[attr-defined]
        txt = png.with_suffix(".txt")
        txt.write_text(shot.caption + "\n", encoding="utf-8", newline="\n")
        written += [png, txt]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    files = generate(args.out)
    total = sum(p.stat().st_size for p in files)
    print(f"wrote {len(files) // 2} images and captions to {args.out} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
