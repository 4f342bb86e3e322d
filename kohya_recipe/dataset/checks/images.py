"""Image checks: unreadable and corrupt files, resolution and upscaling, EXIF rotation, alpha, aspect mix."""

from __future__ import annotations

from collections import Counter, defaultdict

from kohya_recipe.dataset.findings import Finding, Item, plural
from kohya_recipe.dataset.images import ImageHeader
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.dataset.settings import CheckSettings


def image_findings(records: list[ImageRecord], settings: CheckSettings, rules: Rules) -> list[Finding]:
    """Unreadable, corrupt and mislabelled files; small, unbucketable and upscaled images; EXIF rotation, alpha,
    greyscale and animation. Each image's notes say what was found about it."""
    found: dict[str, list[Item]] = defaultdict(list)
    for r in records:
        if r.error is not None:
            found["unreadable"].append(Item(r.path, r.error))
            r.notes.append("unreadable")
            continue
        assert r.header is not None
        _note_content(r, r.header, found)
        _note_resolution(r, r.header, rules, found)
        _note_pixels(r, r.header, found)
    return _content_findings(found) + _resolution_findings(found, settings, rules) + _pixel_findings(found)


def _note_content(r: ImageRecord, h: ImageHeader, found: dict[str, list[Item]]) -> None:
    """A decode that failed, an extension that lies about the format, a header that looked odd."""
    if r.decoding is not None and not r.decoding.ok:
        why = f"; header: {'; '.join(h.suspicious)}" if h.suspicious else ""
        found["corrupt"].append(Item(r.path, f"decoding failed: {r.decoding.error}{why}"))
        r.notes.append("corrupt")
    elif h.suspicious:
        wrong_format = [s for s in h.suspicious if "as its extension says" in s]
        other = [s for s in h.suspicious if s not in wrong_format and "not parsed" not in s]
        if wrong_format:
            found["mismatch"].append(Item(r.path, wrong_format[0]))
            r.notes.append(f"is {h.format}")
        if other and r.decoding is not None:
            found["odd_ok"].append(Item(r.path, "; ".join(other)))


def _note_resolution(r: ImageRecord, h: ImageHeader, rules: Rules, found: dict[str, list[Item]]) -> None:
    """Smaller than the rules' minimum side; refused by the bucketing; upscaled into its bucket."""
    if min(h.width, h.height) < rules.min_side:
        found["small"].append(Item(r.path, f"{h.width}x{h.height}"))
        r.notes.append(f"<{rules.min_side}")
    b = r.assignment
    if b is not None and b.error:
        found["bucket_errors"].append(Item(r.path, b.error))
        r.notes.append("bucket error")
    elif b is not None and b.upscaled and b.resized is not None and b.bucket is not None:
        scale = max(b.resized[0] / h.width, b.resized[1] / h.height)
        detail = (
            f"{h.width}x{h.height} -> {b.resized[0]}x{b.resized[1]} (×{scale:.2f}), bucket {b.bucket[0]}x{b.bucket[1]}"
        )
        found["upscaled"].append(Item(r.path, detail))
        r.notes.append(f"upscaled ×{scale:.2f}")


def _note_pixels(r: ImageRecord, h: ImageHeader, found: dict[str, list[Item]]) -> None:
    """What sd-scripts' RGB conversion ignores or drops: EXIF rotation, alpha; greyscale and animation."""
    if h.orientation not in (None, 1):
        found["rotated"].append(Item(r.path, f"EXIF orientation {h.orientation} ({_ORIENTATION[h.orientation]})"))
        r.notes.append(f"exif {h.orientation}")
    if h.has_alpha:
        if r.decoding is not None and r.decoding.ok and r.decoding.alpha_used is False:
            found["alpha_opaque"].append(Item(r.path, "alpha channel, every pixel opaque"))
        else:
            transparent = " with transparent pixels" if r.decoding and r.decoding.alpha_used else ""
            found["alpha"].append(Item(r.path, "alpha channel" + transparent))
            r.notes.append("alpha")
    if h.grayscale:
        found["grey"].append(Item(r.path, "greyscale"))
        r.notes.append("grey")
    if h.animated:
        found["animated"].append(Item(r.path, "animated"))


def _content_findings(found: dict[str, list[Item]]) -> list[Finding]:
    out: list[Finding] = []
    if unreadable := found["unreadable"]:
        out.append(
            Finding(
                "error",
                "corrupt",
                f"{plural(len(unreadable), 'file')} with an image extension that cannot be read as an image: "
                "sd-scripts stops with an exception when it reaches them",
                "replace them with good copies, fix permissions or broken links, or delete them",
                unreadable,
            )
        )
    if corrupt := found["corrupt"]:
        out.append(
            Finding(
                "error",
                "corrupt",
                f"{plural(len(corrupt), 'image')} cannot be decoded (truncated or corrupt): sd-scripts stops when it "
                "loads them (while caching latents or in the first epoch)",
                "re-export or re-download them",
                corrupt,
            )
        )
    if odd_ok := found["odd_ok"]:
        out.append(Finding("info", "corrupt", "the header looked odd, but the image decodes completely", "", odd_ok))
    if mismatch := found["mismatch"]:
        out.append(
            Finding(
                "info",
                "files",
                "the extension does not match the content: sd-scripts reads it anyway (Pillow looks at the content), "
                "but other tools may not",
                "rename the file to its real format's extension",
                mismatch,
            )
        )
    return out


def _resolution_findings(found: dict[str, list[Item]], settings: CheckSettings, rules: Rules) -> list[Finding]:
    out: list[Finding] = []
    if bucket_errors := found["bucket_errors"]:
        out.append(
            Finding(
                "error",
                "resolution",
                "sd-scripts cannot bucket these images",
                "fix the bucket settings or drop the images",
                bucket_errors,
            )
        )
    if small := found["small"]:
        out.append(
            Finding(
                "warning",
                "resolution",
                f"{plural(len(small), 'image')} shorter than {rules.min_side} px on a side: the article needs "
                f"at least {rules.min_side} (and recommends ~4096)",
                "replace them with larger captures",
                small,
            )
        )
    if upscaled := found["upscaled"]:
        mode = f"resolution {settings.resolution[0]}x{settings.resolution[1]}" + (
            ", buckets" if settings.enable_bucket else ", no buckets"
        )
        out.append(
            Finding(
                "warning",
                "resolution",
                f"sd-scripts will upscale {plural(len(upscaled), 'image')} to fill its bucket ({mode}): upscaled "
                "images teach blur",
                "use larger source images, or set training.bucket_no_upscale = true",
                upscaled,
            )
        )
    return out


def _pixel_findings(found: dict[str, list[Item]]) -> list[Finding]:
    out: list[Finding] = []
    if rotated := found["rotated"]:
        out.append(
            Finding(
                "warning",
                "exif",
                f"{plural(len(rotated), 'image')} rely on EXIF rotation, which sd-scripts ignores: they train "
                "sideways or mirrored, as the pixels are stored",
                "rotate the pixels and drop the tag (e.g. `exiftran -ai FILE` or `mogrify -auto-orient FILE`)",
                rotated,
            )
        )
    if alpha := found["alpha"]:
        out.append(
            Finding(
                "warning",
                "alpha",
                f"{plural(len(alpha), 'image')} with an alpha channel: sd-scripts converts to RGB and drops it, so "
                "transparent areas train as whatever colour is stored under them (usually black)",
                "flatten them onto a plain background (the article: simple, solid-colour backgrounds)",
                alpha,
            )
        )
    if alpha_opaque := found["alpha_opaque"]:
        out.append(Finding("info", "alpha", "alpha channel present but fully opaque: harmless", "", alpha_opaque))
    if grey := found["grey"]:
        out.append(
            Finding(
                "info", "images", "greyscale images train as grey RGB (colour comes only from the others)", "", grey
            )
        )
    if animated := found["animated"]:
        out.append(Finding("info", "images", "animated images: sd-scripts trains the first frame only", "", animated))
    return out


_ORIENTATION = {
    1: "normal",
    2: "mirrored",
    3: "rotated 180°",
    4: "flipped vertically",
    5: "mirrored and rotated 90° CCW",
    6: "rotated 90° CW",
    7: "mirrored and rotated 90° CW",
    8: "rotated 90° CCW",
}


def aspect_findings(trained: list[ImageRecord], rules: Rules, settings: CheckSettings) -> list[Finding]:
    """The aspect mix against the article's generation aspect, and the buckets the images land in."""
    sized = [r for r in trained if r.header is not None]
    if not sized:
        return []
    gw, gh = rules.generation_aspect
    target = gw / gh
    groups: Counter[str] = Counter()
    others: list[Item] = []
    for r in sized:
        assert r.header is not None
        ar = r.header.width / r.header.height
        if abs(ar - target) / target <= rules.aspect_tolerance:
            groups[f"{gw}:{gh}"] += 1
        elif abs(ar - 1.0) <= rules.aspect_tolerance:
            groups["square"] += 1
        else:
            kind = "portrait" if ar < 1 else "landscape"
            groups[f"other {kind}"] += 1
            others.append(Item(r.path, f"{r.header.width}x{r.header.height} ({kind}, {ar:.2f})"))
    buckets: Counter[str] = Counter(
        f"{r.assignment.bucket[0]}x{r.assignment.bucket[1]}"
        for r in sized
        if r.assignment is not None and r.assignment.bucket is not None
    )
    mix = ", ".join(f"{k} {v}" for k, v in groups.most_common())
    bucket_text = ", ".join(f"{k}: {v}" for k, v in sorted(buckets.items(), key=lambda kv: (-kv[1], kv[0])))
    out = [Finding("info", "aspect", f"aspect mix: {mix}; buckets: {bucket_text or 'none'}")]
    share = (groups[f"{gw}:{gh}"] + groups["square"]) / len(sized)
    if share < rules.aspect_min_share:
        out.append(
            Finding(
                "warning",
                "aspect",
                f"only {share:.0%} of the images are {gw}:{gh} portraits or square: the article keeps a good "
                f"proportion at its generation size {gw}x{gh} and the rest square (aspect ratio shapes the output)",
                f"crop the others to {gw}:{gh} or square",
                others,
            )
        )
    elif groups[f"{gw}:{gh}"] == 0 and len(sized) >= 4:
        out.append(
            Finding(
                "info",
                "aspect",
                f"no image at the generation aspect {gw}:{gh}: the article keeps a good proportion at the size it "
                "generates at",
                f"crop some portraits to {gw}:{gh}",
            )
        )
    return out
