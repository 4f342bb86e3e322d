"""Image checks: unreadable and corrupt files, resolution and upscaling, EXIF rotation, alpha, aspect mix."""

from __future__ import annotations

from collections import Counter

from kohya_recipe.dataset.findings import Finding, plural
from kohya_recipe.dataset.rules import Rules
from kohya_recipe.dataset.scan import ImageRecord
from kohya_recipe.dataset.settings import CheckSettings


def image_findings(records: list[ImageRecord], settings: CheckSettings, rules: Rules) -> list[Finding]:
    unreadable: list[tuple[str, str]] = []
    corrupt: list[tuple[str, str]] = []
    odd_ok: list[tuple[str, str]] = []
    mismatch: list[tuple[str, str]] = []
    small: list[tuple[str, str]] = []
    upscaled: list[tuple[str, str]] = []
    bucket_errors: list[tuple[str, str]] = []
    rotated: list[tuple[str, str]] = []
    alpha: list[tuple[str, str]] = []
    alpha_opaque: list[tuple[str, str]] = []
    grey: list[tuple[str, str]] = []
    animated: list[tuple[str, str]] = []
    for r in records:
        if r.error is not None:
            unreadable.append((r.rel, r.error))
            r.notes.append("unreadable")
            continue
        h = r.header
        assert h is not None
        if r.decoded is not None and not r.decoded.ok:
            why = f"; header: {'; '.join(h.suspicious)}" if h.suspicious else ""
            corrupt.append((r.rel, f"decoding failed: {r.decoded.error}{why}"))
            r.notes.append("corrupt")
        elif h.suspicious:
            wrong_format = [s for s in h.suspicious if "as its extension says" in s]
            other = [s for s in h.suspicious if s not in wrong_format and "not parsed" not in s]
            if wrong_format:
                mismatch.append((r.rel, wrong_format[0]))
                r.notes.append(f"is {h.format}")
            if other and r.decoded is not None:
                odd_ok.append((r.rel, "; ".join(other)))
        short = min(h.width, h.height)
        b = r.bucket
        if short < rules.min_side:
            small.append((r.rel, f"{h.width}x{h.height}"))
            r.notes.append(f"<{rules.min_side}")
        if b is not None and b.error:
            bucket_errors.append((r.rel, b.error))
            r.notes.append("bucket error")
        elif b is not None and b.upscaled and b.resized is not None and b.bucket is not None:
            scale = max(b.resized[0] / h.width, b.resized[1] / h.height)
            upscaled.append(
                (
                    r.rel,
                    f"{h.width}x{h.height} -> {b.resized[0]}x{b.resized[1]} (×{scale:.2f}), "
                    f"bucket {b.bucket[0]}x{b.bucket[1]}",
                )
            )
            r.notes.append(f"upscaled ×{scale:.2f}")
        if h.orientation not in (None, 1):
            rotated.append((r.rel, f"EXIF orientation {h.orientation} ({_ORIENTATION[h.orientation]})"))
            r.notes.append(f"exif {h.orientation}")
        if h.has_alpha:
            if r.decoded is not None and r.decoded.ok and r.decoded.alpha_used is False:
                alpha_opaque.append((r.rel, "alpha channel, every pixel opaque"))
            else:
                alpha.append(
                    (
                        r.rel,
                        "alpha channel" + (" with transparent pixels" if r.decoded and r.decoded.alpha_used else ""),
                    )
                )
                r.notes.append("alpha")
        if h.grayscale:
            grey.append((r.rel, "greyscale"))
            r.notes.append("grey")
        if h.animated:
            animated.append((r.rel, "animated"))
    out: list[Finding] = []
    if unreadable:
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
    if corrupt:
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
    if odd_ok:
        out.append(Finding("info", "corrupt", "the header looked odd, but the image decodes completely", "", odd_ok))
    if mismatch:
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
    if bucket_errors:
        out.append(
            Finding(
                "error",
                "resolution",
                "sd-scripts cannot bucket these images",
                "fix the bucket settings or drop the images",
                bucket_errors,
            )
        )
    if small:
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
    if upscaled:
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
    if rotated:
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
    if alpha:
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
    if alpha_opaque:
        out.append(Finding("info", "alpha", "alpha channel present but fully opaque: harmless", "", alpha_opaque))
    if grey:
        out.append(
            Finding(
                "info", "images", "greyscale images train as grey RGB (colour comes only from the others)", "", grey
            )
        )
    if animated:
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
    sized = [r for r in trained if r.header is not None]
    if not sized:
        return []
    gw, gh = rules.generation_aspect
    target = gw / gh
    groups: Counter[str] = Counter()
    others: list[tuple[str, str]] = []
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
            others.append((r.rel, f"{r.header.width}x{r.header.height} ({kind}, {ar:.2f})"))
    buckets: Counter[str] = Counter(
        f"{r.bucket.bucket[0]}x{r.bucket.bucket[1]}"
        for r in sized
        if r.bucket is not None and r.bucket.bucket is not None
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
