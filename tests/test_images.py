"""The header-only image reader: sizes, orientation, alpha, truncation, and the on-demand decode."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kohya_recipe.dataset.images import (
    ImageReadError,
    decode_image,
    image_size,
    list_trainer_images,
    read_header,
    sniff_format,
)
from kohya_recipe.sdscripts.folders import is_trainer_image
from tests._dataset_util import finishes, image, is_root

FORMATS = [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp"), ("BMP", ".bmp"), ("GIF", ".gif")]


@pytest.mark.parametrize(("fmt", "ext"), FORMATS)
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "1"])
def test_header_size_matches_pillow(tmp_path: Path, fmt: str, ext: str, mode: str) -> None:
    path = tmp_path / f"x{ext}"
    im = Image.new(mode, (37, 53))
    try:
        im.save(path, fmt)
    except OSError:
        pytest.skip(f"Pillow cannot write {mode} as {fmt}")
    header = read_header(path)
    with Image.open(path) as pil:
        assert (header.width, header.height) == pil.size
        assert header.format == pil.format
    assert header.file_size == path.stat().st_size
    assert header.suspicious == ()


@pytest.mark.parametrize("size", [(1, 1), (768, 768), (640, 768), (4000, 3000), (16383, 2)])
@pytest.mark.parametrize(("fmt", "ext"), [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp")])
def test_header_sizes(tmp_path: Path, size: tuple[int, int], fmt: str, ext: str) -> None:
    path = tmp_path / f"x{ext}"
    Image.new("L" if fmt != "WEBP" else "RGB", size).save(path, fmt)
    assert image_size(path) == size


def test_webp_variants(tmp_path: Path) -> None:
    transparent = Image.new("RGBA", (20, 30), (0, 0, 0, 0))
    transparent.save(tmp_path / "lossless.webp", lossless=True)  # VP8L with the alpha hint
    transparent.save(tmp_path / "lossy.webp", quality=80)  # VP8X + ALPH
    Image.new("RGB", (20, 30)).save(tmp_path / "opaque.webp", lossless=True)
    assert read_header(tmp_path / "lossless.webp").has_alpha is True
    assert read_header(tmp_path / "lossy.webp").has_alpha is True
    assert read_header(tmp_path / "opaque.webp").has_alpha is False
    for name in ("lossless.webp", "lossy.webp", "opaque.webp"):
        assert image_size(tmp_path / name) == (20, 30)


def test_alpha_from_png_colour_type_and_trns(tmp_path: Path) -> None:
    Image.new("RGBA", (8, 8)).save(tmp_path / "rgba.png")
    Image.new("LA", (8, 8)).save(tmp_path / "la.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "rgb.png")
    palette = Image.new("P", (8, 8))
    palette.save(tmp_path / "ptrns.png", transparency=0)  # palette + tRNS chunk
    assert read_header(tmp_path / "rgba.png").has_alpha
    assert read_header(tmp_path / "la.png").has_alpha
    assert read_header(tmp_path / "ptrns.png").has_alpha
    assert not read_header(tmp_path / "rgb.png").has_alpha
    assert read_header(tmp_path / "la.png").grayscale


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation(tmp_path: Path, ext: str, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{ext}"
    Image.new("RGB", (40, 20)).save(path, exif=exif)
    header = read_header(path)
    assert header.orientation == orientation
    assert (header.width, header.height) == (40, 20)  # stored size: sd-scripts never applies the rotation


def test_jpeg_with_large_metadata_before_the_frame(tmp_path: Path) -> None:
    # A 60 KB comment pushes the frame header far beyond the first read; the parser must follow the segments.
    path = tmp_path / "big.jpg"
    Image.new("RGB", (123, 45)).save(path, comment=b"x" * 60000)
    assert image_size(path) == (123, 45)


@pytest.mark.parametrize(("fmt", "ext"), [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp"), ("BMP", ".bmp")])
def test_truncated_files_are_suspicious_and_fail_to_decode(tmp_path: Path, fmt: str, ext: str) -> None:
    whole = image(tmp_path / f"whole{ext}", (96, 96), fmt=fmt)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    header = read_header(cut)
    assert header.suspicious, header
    assert (header.width, header.height) == (96, 96)
    result = decode_image(cut)
    assert not result.ok and result.error
    assert decode_image(whole).ok


def test_magic_that_contradicts_the_extension(tmp_path: Path) -> None:
    path = image(tmp_path / "photo.png", fmt="JPEG")
    header = read_header(path)
    assert header.format == "JPEG"
    assert any("not PNG as its extension says" in s for s in header.suspicious)


def test_fake_png_zero_bytes_and_broken_symlink(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_text("I am not a picture")
    with pytest.raises(ImageReadError, match=r"fake\.png: not an image: its first bytes b'I am not a p'"):
        read_header(tmp_path / "fake.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty file"):
        read_header(tmp_path / "empty.png")
    (tmp_path / "link.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(ImageReadError, match="does not exist"):
        read_header(tmp_path / "link.png")
    # A PNG signature followed by junk: a broken header, still one clean error.
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 5)
    with pytest.raises(ImageReadError, match="junk.png"):
        read_header(tmp_path / "junk.png")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_named_like_an_image_is_an_error_not_a_hang(tmp_path: Path) -> None:
    # Opening a FIFO for reading waits for a writer: the header reader must refuse it at once.
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "link.png").symlink_to(tmp_path / "pipe.png")
    for name in ("pipe.png", "link.png"):
        with pytest.raises(ImageReadError, match=rf"{name}: not a regular file \(a FIFO\)"):
            finishes(lambda n=name: read_header(tmp_path / n))


@pytest.mark.skipif(is_root(), reason="root reads files regardless of permissions")
def test_permission_denied(tmp_path: Path) -> None:
    path = image(tmp_path / "locked.png")
    path.chmod(0)
    try:
        with pytest.raises(ImageReadError, match="permission denied"):
            read_header(path)
    finally:
        path.chmod(0o644)


def test_permission_denied_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs as root too: the OS error is what read_header sees either way.
    path = image(tmp_path / "locked.png")

    def denied(*_a: object, **_k: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(ImageReadError, match="locked.png: cannot open: permission denied"):
        read_header(path)


def test_other_formats_go_through_pillow(tmp_path: Path) -> None:
    path = tmp_path / "scan.tiff"
    Image.new("RGBA", (30, 10)).save(path)
    header = read_header(path)
    assert (header.format, header.width, header.height, header.has_alpha) == ("TIFF", 30, 10, True)
    assert header.suspicious  # not parsed here, so a decode check is due


def test_sniff_format() -> None:
    assert sniff_format(b"\x89PNG\r\n\x1a\n....") == "PNG"
    assert sniff_format(b"\xff\xd8\xff\xe0") == "JPEG"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff_format(b"\x00\x00\x00\x1cftypavif") == "AVIF"
    assert sniff_format(b"hello") is None


def test_trainer_extensions_and_listing(tmp_path: Path) -> None:
    for name in ("a.png", "b.PNG", "c.Png", "d.jpeg", "e.gif", ".hidden.png", "f.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert is_trainer_image(Path("x.JPG")) and not is_trainer_image(Path("x.Jpg"))
    # Mixed case and hidden files are skipped, exactly as sd-scripts' case-sensitive glob skips them.
    assert [p.name for p in list_trainer_images(tmp_path)] == ["a.png", "b.PNG", "d.jpeg"]


def test_decode_hashes_alpha_and_mirror(tmp_path: Path) -> None:
    png = image(tmp_path / "a.png", (120, 90), color=3)
    jpg = tmp_path / "a.jpg"
    Image.open(png).save(jpg, quality=95)
    mirrored = tmp_path / "m.png"
    Image.open(png).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    a, b, m = decode_image(png), decode_image(jpg), decode_image(mirrored)
    assert a.ok and a.size == (120, 90) and a.dhash is not None
    assert b.dhash is not None and (a.dhash ^ b.dhash).bit_count() <= 4  # same picture, other codec
    assert m.dhash == a.dhash_mirror
    transparent = image(tmp_path / "t.png", mode="RGBA", color=2)
    opaque = image(tmp_path / "o.png", mode="RGBA", color=1)
    assert decode_image(transparent).alpha_used is True
    assert decode_image(opaque).alpha_used is False
    assert decode_image(png).alpha_used is None


def test_bmp_declared_size_check(tmp_path: Path) -> None:
    path = image(tmp_path / "x.bmp", (40, 40), fmt="BMP")
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 2, len(data) + 1000)  # header claims more bytes than there are
    path.write_bytes(bytes(data))
    assert any("promises" in s for s in read_header(path).suspicious)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    magic=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x10\x00\x00\x00WEBP", b"BM", b"GIF89a", b""]),
    body=st.binary(max_size=300),
)
def test_any_bytes_give_a_header_or_one_clean_error(tmp_path: Path, magic: bytes, body: bytes) -> None:
    path = tmp_path / "fuzz.png"
    path.write_bytes(magic + body)
    try:
        header = read_header(path)
    except ImageReadError as exc:
        assert "fuzz.png" in str(exc)
    else:
        assert header.width > 0 and header.height > 0
