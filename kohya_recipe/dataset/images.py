"""Which files sd-scripts reads as training images, and what their headers say (no decoding).

The dataset doctor has to look at every image, so this module reads only the first few hundred bytes of a file
(and its last few) with plain ``os`` calls: PNG, JPEG, WebP, BMP and GIF headers are parsed here for the size,
the EXIF orientation, an alpha channel and signs of truncation. Anything else goes through Pillow's lazy
``Image.open`` (which also reads only the header). A header that looks wrong — magic bytes that do not match
the extension, a file shorter than its header promises, a missing end marker — is marked *suspicious*, and the
doctor then decodes that one image for real (:func:`decode_image`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from kohya_recipe.errors import DatasetError
from kohya_recipe.files import open_regular_file
from kohya_recipe.sdscripts.folders import is_trainer_image

# Extensions that are images to a person but not to sd-scripts without extra plugins (pillow_avif, jxlpy /
# pillow_jxl), or never (GIF, TIFF, HEIC...). Compared lower-cased.
OTHER_IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    [
        ".gif",
        ".avif",
        ".jxl",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".jfif",
        ".jpe",
        ".psd",
        ".tga",
        ".ico",
        ".svg",
    ]
)

# The format an extension promises, for the "magic does not match the extension" check.
_EXTENSION_FORMAT: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".avif": "AVIF",
    ".jxl": "JXL",
}

_HEAD_BYTES = 1024  # one read covers every header parsed here except a JPEG/PNG with large metadata first
_TAIL_BYTES = 32
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# JPEG start-of-frame markers that carry the size (C4 = DHT, C8 = JPG, CC = DAC are not frames).
_JPEG_SOF = frozenset([0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF])
_EXIF_ORIENTATION_TAG = 0x0112


def looks_like_image(path: Path) -> bool:
    """True for any extension a person would call an image, whether or not the trainer reads it."""
    suffix = path.suffix.lower()
    return suffix in _EXTENSION_FORMAT or suffix in OTHER_IMAGE_EXTENSIONS


def list_trainer_images(folder: Path) -> list[Path]:
    """The images sd-scripts would read from ``folder``: non-recursive, sorted by name.

    sd-scripts globs ``*<ext>`` per extension, and a glob ``*`` never matches a name starting with a dot, so
    hidden files are skipped too.
    """
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file() and is_trainer_image(p))


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as stored, read from the header; Pillow's lazy ``open`` for formats not parsed here.

    This is the size sd-scripts buckets by: it calls ``Image.open(path).size`` and never applies the EXIF
    orientation.
    """
    header = read_header(path)
    return header.width, header.height


class ImageReadError(DatasetError):
    """One file could not be read as an image (the doctor reports it per file and goes on)."""


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says about the image, without decoding any pixel.

    ``orientation`` is the EXIF orientation (1-8) when the header carries one (``None`` otherwise);
    ``has_alpha`` is ``None`` when the header cannot tell. ``suspicious`` lists reasons to decode the file
    for real (truncated, wrong magic for the extension, bad sizes).
    """

    format: str
    width: int
    height: int
    file_size: int
    orientation: int | None = None
    has_alpha: bool | None = None
    grayscale: bool | None = None
    animated: bool = False
    suspicious: tuple[str, ...] = field(default=())


def sniff_format(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or ``None``."""
    if head.startswith(_PNG_MAGIC):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return "HEIF"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JXL"
    return None


def read_header(path: Path | str) -> ImageHeader:
    """Parse the image header of ``path``; raise :class:`ImageReadError` when it is not a readable image.

    Costs one ``open``, one ``fstat``, two small reads and a ``close`` for the formats parsed here.
    """
    name = os.fspath(path)
    try:
        fd = open_regular_file(name)
    except OSError as exc:
        raise ImageReadError(_os_reason(exc), source=name) from None
    except ValueError as exc:
        raise ImageReadError(str(exc), source=name) from None
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, _HEAD_BYTES, 0)
        fmt = sniff_format(head)
        parser = _PARSERS.get(fmt) if fmt else None
        if parser is not None:
            tail = os.pread(fd, _TAIL_BYTES, max(0, size - _TAIL_BYTES)) if size > len(head) else head
            try:
                header = parser(fd, head, tail, size)
            except (struct.error, IndexError, ValueError) as exc:
                raise ImageReadError(f"broken {fmt} header ({exc})", source=name) from None
        else:
            header = None
    except OSError as exc:
        raise ImageReadError(_os_reason(exc), source=name) from None
    finally:
        os.close(fd)
    if header is None:
        if size == 0:
            raise ImageReadError("empty file (0 bytes)", source=name)
        header = _pillow_header(name, size)
    if header.width <= 0 or header.height <= 0:
        raise ImageReadError(f"{header.format} header gives a size of {header.width}x{header.height}", source=name)
    # os.path, not Path(name).suffix: this runs once per image of a 10,000-image folder.
    expected = _EXTENSION_FORMAT.get(os.path.splitext(name)[1].lower())  # noqa: PTH122
    if expected is not None and expected != header.format:
        reasons = (*header.suspicious, f"the file is {header.format}, not {expected} as its extension says")
        header = _replace(header, suspicious=reasons)
    return header


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "cannot open: the file or the symlink's target does not exist"
    if isinstance(exc, PermissionError):
        return "cannot open: permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    return f"cannot read: {exc.strerror or exc}"


def _replace(header: ImageHeader, **changes: object) -> ImageHeader:
    return replace(header, **changes)  # type: ignore[arg-type]


def _read_at(fd: int, head: bytes, offset: int, length: int) -> bytes:
    """Bytes at ``offset``: from the head buffer when they are in it, else one ``pread``."""
    end = offset + length
    if end <= len(head):
        return head[offset:end]
    return os.pread(fd, length, offset)


# ----------------------------------------------------------------------------------------------------
# Format parsers: (fd, head, tail, file_size) -> ImageHeader


def _png(fd: int, head: bytes, tail: bytes, size: int) -> ImageHeader:
    # IHDR is always the first chunk: width, height, bit depth, colour type.
    if head[12:16] != b"IHDR":
        raise ValueError("first chunk is not IHDR")
    width, height, _depth, colour = struct.unpack(">IIBB", head[16:26])
    suspicious: list[str] = []
    has_alpha = colour in (4, 6)  # grey+alpha, RGBA
    grayscale = colour in (0, 4)
    orientation: int | None = None
    animated = False
    # Walk the chunk headers up to the first IDAT: tRNS (transparency for palette/grey/RGB), eXIf, acTL.
    pos = 8 + 8 + 13 + 4
    seen_idat = False
    for _ in range(256):
        chunk = _read_at(fd, head, pos, 8)
        if len(chunk) < 8:
            break
        length, kind = struct.unpack(">I4s", chunk)
        if kind == b"IDAT":
            seen_idat = True
            break
        if kind == b"tRNS":
            has_alpha = True
        elif kind == b"acTL":
            animated = True
        elif kind == b"eXIf" and length <= 65536:
            orientation = _tiff_orientation(_read_at(fd, head, pos + 8, length))
        elif kind == b"IEND":
            break
        pos += 12 + length
        if pos > size:
            break
    if not seen_idat:
        suspicious.append("no image data (IDAT) before the end of the file")
    if not tail.endswith(_PNG_IEND):
        suspicious.append("does not end with the PNG IEND chunk (truncated or trailing data)")
    return ImageHeader("PNG", width, height, size, orientation, has_alpha, grayscale, animated, tuple(suspicious))


def _jpeg(fd: int, head: bytes, tail: bytes, size: int) -> ImageHeader:
    pos = 2
    orientation: int | None = None
    for _ in range(512):
        marker = _read_at(fd, head, pos, 4)
        if len(marker) < 4:
            break
        if marker[0] != 0xFF:
            raise ValueError(f"no marker at byte {pos}")
        code = marker[1]
        if code == 0xFF:  # fill byte
            pos += 1
            continue
        if code in (0x01, *range(0xD0, 0xD8)):  # standalone markers carry no length
            pos += 2
            continue
        length = struct.unpack(">H", marker[2:4])[0]
        if code == 0xE1 and orientation is None:
            segment = _read_at(fd, head, pos + 4, min(length - 2, 65533))
            if segment.startswith(b"Exif\x00\x00"):
                orientation = _tiff_orientation(segment[6:])
        elif code in _JPEG_SOF:
            frame = _read_at(fd, head, pos + 4, 6)
            _precision, height, width, components = struct.unpack(">BHHB", frame)
            suspicious = []
            if b"\xff\xd9" not in tail:
                suspicious.append("does not end with the JPEG end-of-image marker (truncated?)")
            if height == 0:
                suspicious.append("height 0 in the frame header (defined later by a DNL marker)")
            return ImageHeader(
                "JPEG", width, height, size, orientation, False, components == 1, False, tuple(suspicious)
            )
        elif code in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        pos += 2 + length
        if pos >= size:
            break
    raise ValueError("no frame header (SOF) found")


def _webp(fd: int, head: bytes, tail: bytes, size: int) -> ImageHeader:
    riff_size = struct.unpack("<I", head[4:8])[0]
    suspicious = []
    if riff_size + 8 > size:
        suspicious.append(f"RIFF header promises {riff_size + 8} bytes, the file has {size} (truncated)")
    elif riff_size + 8 + (riff_size & 1) < size:
        suspicious.append("trailing data after the RIFF container")
    kind = head[12:16]
    orientation = None
    animated = False
    if kind == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            raise ValueError("missing VP8 start code")
        width, height = struct.unpack("<HH", head[26:30])
        width &= 0x3FFF
        height &= 0x3FFF
        has_alpha = False
    elif kind == b"VP8L":
        if head[20] != 0x2F:
            raise ValueError("missing VP8L signature")
        bits = struct.unpack("<I", head[21:25])[0]
        width = (bits & 0x3FFF) + 1
        height = ((bits >> 14) & 0x3FFF) + 1
        has_alpha = bool((bits >> 28) & 1)  # alpha_is_used hint
    elif kind == b"VP8X":
        flags = head[20]
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        has_alpha = bool(flags & 0x10)
        animated = bool(flags & 0x02)
        if flags & 0x08:  # an EXIF chunk exists; it usually follows the image data
            orientation = _webp_exif_orientation(fd, head, size)
    else:
        raise ValueError(f"unknown WebP chunk {kind!r}")
    return ImageHeader("WEBP", width, height, size, orientation, has_alpha, None, animated, tuple(suspicious))


def _webp_exif_orientation(fd: int, head: bytes, size: int) -> int | None:
    pos = 12
    for _ in range(64):
        chunk = _read_at(fd, head, pos, 8)
        if len(chunk) < 8:
            return None
        kind, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"EXIF":
            data = _read_at(fd, head, pos + 8, min(length, 65536))
            if data.startswith(b"Exif\x00\x00"):
                data = data[6:]
            return _tiff_orientation(data)
        pos += 8 + length + (length & 1)
        if pos >= size:
            return None
    return None


def _bmp(fd: int, head: bytes, tail: bytes, size: int) -> ImageHeader:
    declared_size, pixel_offset, dib_size = struct.unpack("<I4xII", head[2:18])
    if dib_size == 12:  # BITMAPCOREHEADER (OS/2): unsigned 16-bit sizes
        width, height, _planes, bpp = struct.unpack("<HHHH", head[18:26])
        compression = 0
    elif dib_size >= 40:
        width, height, _planes, bpp, compression = struct.unpack("<iiHHI", head[18:34])
    else:
        raise ValueError(f"unknown DIB header size {dib_size}")
    height = abs(height)  # negative = top-down rows
    suspicious = []
    if declared_size and declared_size > size:
        suspicious.append(f"BMP header promises {declared_size} bytes, the file has {size} (truncated)")
    if compression in (0, 3, 6) and bpp in (1, 4, 8, 16, 24, 32):
        row = ((bpp * width + 31) // 32) * 4
        if pixel_offset + row * height > size:
            suspicious.append(f"pixel data needs {pixel_offset + row * height} bytes, the file has {size} (truncated)")
    has_alpha = False
    # 32-bit BMPs carry alpha only with BI_BITFIELDS/BI_ALPHABITFIELDS and a non-zero alpha mask (V4/V5
    # headers), which is when Pillow opens them as RGBA.
    if bpp == 32 and compression in (3, 6) and dib_size >= 56:
        alpha_mask = struct.unpack("<I", head[66:70])[0]
        has_alpha = alpha_mask != 0
    return ImageHeader("BMP", width, height, size, None, has_alpha, None, False, tuple(suspicious))


def _gif(fd: int, head: bytes, tail: bytes, size: int) -> ImageHeader:
    width, height = struct.unpack("<HH", head[6:10])
    suspicious = []
    if not tail.endswith(b"\x3b"):
        suspicious.append("does not end with the GIF trailer (truncated?)")
    return ImageHeader("GIF", width, height, size, None, None, None, False, tuple(suspicious))


_PARSERS = {"PNG": _png, "JPEG": _jpeg, "WEBP": _webp, "BMP": _bmp, "GIF": _gif}


def _tiff_orientation(data: bytes) -> int | None:
    """The Orientation tag of IFD0 in TIFF-structured EXIF data, or ``None``."""
    if len(data) < 8:
        return None
    order = data[:2]
    if order == b"II":
        endian = "<"
    elif order == b"MM":
        endian = ">"
    else:
        return None
    ifd = struct.unpack(endian + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return None
    count = struct.unpack(endian + "H", data[ifd : ifd + 2])[0]
    for i in range(min(count, 512)):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(data):
            return None
        tag, kind = struct.unpack(endian + "HH", data[entry : entry + 4])
        if tag == _EXIF_ORIENTATION_TAG:
            if kind == 3:  # SHORT, stored in the first two bytes of the value field
                value = struct.unpack(endian + "H", data[entry + 8 : entry + 10])[0]
            elif kind == 4:
                value = struct.unpack(endian + "I", data[entry + 8 : entry + 12])[0]
            else:
                return None
            return value if 1 <= value <= 8 else None
    return None


def _pillow_header(name: str, size: int) -> ImageHeader:
    """Pillow's lazy open (header only) for formats this module does not parse itself."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(name) as im:
                mode = im.mode
                has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
                orientation = None
                try:
                    value = im.getexif().get(_EXIF_ORIENTATION_TAG)
                    orientation = value if isinstance(value, int) and 1 <= value <= 8 else None
                except Exception:  # EXIF parsing problems must not hide the image itself
                    orientation = None
                return ImageHeader(
                    str(im.format or "unknown"),
                    im.size[0],
                    im.size[1],
                    size,
                    orientation,
                    has_alpha,
                    mode in ("1", "L", "LA", "I", "I;16", "F"),
                    bool(getattr(im, "is_animated", False)),
                    ("format not parsed by kohya-recipe's header reader",),
                )
    except Exception as exc:  # Pillow raises UnidentifiedImageError, SyntaxError, ValueError... per plugin
        if type(exc).__name__ == "UnidentifiedImageError":
            reason = f"not an image: its first bytes {_first_bytes(name)} match no image format"
        else:
            reason = f"not a readable image: {exc}"
        raise ImageReadError(reason, source=name) from None


def _first_bytes(name: str) -> str:
    try:
        with Path(name).open("rb") as f:
            return repr(f.read(12))
    except OSError:
        return "(unreadable)"


# ----------------------------------------------------------------------------------------------------
# Real decoding (on demand, or when a header is suspicious)


@dataclass(frozen=True)
class DecodeResult:
    """Outcome of decoding every pixel of one image, as sd-scripts' ``load_image`` would.

    ``alpha_used`` says whether any pixel is less than fully opaque (``None`` without an alpha channel);
    ``dhash``/``dhash_mirror`` are 64-bit difference hashes of the image and its mirror image, for
    near-duplicate search (flip augmentation makes a mirrored copy a duplicate too).
    """

    ok: bool
    error: str | None = None
    size: tuple[int, int] | None = None
    alpha_used: bool | None = None
    dhash: int | None = None
    dhash_mirror: int | None = None


def decode_image(path: Path | str, *, want_hash: bool = True) -> DecodeResult:
    """Decode ``path`` fully with Pillow; never raises for a bad image (the error is in the result).

    Regular files only: a FIFO or device (even one put in an image's place since its header was read) is an
    error in the result, never a read that blocks.
    """
    import warnings

    from PIL import Image

    try:
        fd = open_regular_file(path)
    except (OSError, ValueError) as exc:
        return DecodeResult(False, _os_reason(exc) if isinstance(exc, OSError) else str(exc))
    try:
        with warnings.catch_warnings(), os.fdopen(fd, "rb") as fh:
            warnings.simplefilter("ignore")
            with Image.open(fh) as im:
                size = im.size
                if want_hash and im.format == "JPEG":
                    # Decode at 1/2..1/8 scale: every entropy-coded byte is still read (so truncation and
                    # corruption still fail), the IDCT output is just smaller.
                    im.draft("RGB", (max(64, size[0] // 8), max(64, size[1] // 8)))
                im.load()
                alpha_used = _alpha_used(im)
                if not want_hash:
                    return DecodeResult(True, None, size, alpha_used)
                return DecodeResult(True, None, size, alpha_used, *_dhashes(_thumbnail(im)))
    except Exception as exc:  # any decoder failure is a per-file finding, never a traceback
        message = str(exc) or type(exc).__name__
        return DecodeResult(False, message)


def _workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def decode_images(
    paths: Sequence[Path | str], *, want_hash: bool = True, progress: Callable[[int, int], None] | None = None
) -> list[DecodeResult]:
    """:func:`decode_image` of every path, in order, on one thread per core (up to 4): Pillow's decoders and
    filters release the GIL, so a 2-core machine decodes about twice as fast. ``progress(done, total)`` is called
    per image, from the calling thread."""
    total = len(paths)
    workers = _workers() if total >= 8 else 1
    out: list[DecodeResult] = []
    if workers == 1:
        for path in paths:
            out.append(decode_image(path, want_hash=want_hash))
            if progress is not None:
                progress(len(out), total)
        return out
    from concurrent.futures import ThreadPoolExecutor

    def work(chunk: Sequence[Path | str]) -> list[DecodeResult]:
        return [decode_image(path, want_hash=want_hash) for path in chunk]

    # A few images per task: a small image decodes in less time than a thread hand-over takes.
    size = max(1, min(16, total // (workers * 8)))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
    try:
        for results in pool.map(work, [paths[i : i + size] for i in range(0, total, size)]):
            out += results
            if progress is not None:
                progress(len(out), total)
    finally:
        # On Ctrl-C: finish the few images being decoded, start no other.
        pool.shutdown(wait=True, cancel_futures=True)
    return out


def _alpha_used(im: object) -> bool | None:
    from PIL import Image

    assert isinstance(im, Image.Image)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        lo, _hi = im.getchannel("A").getextrema()
        return bool(lo < 255)  # type: ignore[operator]
    if "transparency" in im.info:
        lo, _hi = im.convert("RGBA").getchannel("A").getextrema()
        return bool(lo < 255)  # type: ignore[operator]
    return None


def _thumbnail(im: object) -> bytes:
    """The 9x8 greyscale thumbnail the hashes compare: box averages of the decoded image. A large image is first
    reduced by whole factors (a cheap box filter in C) to at least 4x the thumbnail's size."""
    from PIL import Image

    assert isinstance(im, Image.Image)
    w, h = im.size
    factor = (max(1, w // 36), max(1, h // 32))
    if factor != (1, 1) and im.mode in ("RGB", "RGBA", "L", "LA"):
        im = im.reduce(factor)
    return im.convert("L").resize((9, 8), Image.Resampling.BOX).tobytes()


def _dhashes(pixels: bytes) -> tuple[int, int]:
    """Difference hashes of a 9x8 greyscale thumbnail and of its mirror image: one bit per horizontally adjacent
    pixel pair, row by row (the mirror image reads each row backwards)."""
    plain = mirror = 0
    for row in range(8):
        r = pixels[row * 9 : row * 9 + 9]
        for col in range(8):
            plain = (plain << 1) | (r[col] > r[col + 1])
            mirror = (mirror << 1) | (r[8 - col] > r[7 - col])
    return plain, mirror
