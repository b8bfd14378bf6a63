"""`judgelm.modalities.image.load_image`: untrusted image inputs are validated once, and every
failure names the sample and the image."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from judgelm.errors import InvalidSampleError
from judgelm.modalities.image import ImageLimits, load_image, load_sample_images
from judgelm.types import Sample


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid-looking PNG header claiming width x height pixels, with a tiny payload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _expect_error(source, match: str, *, limits: ImageLimits | None = None) -> InvalidSampleError:
    with pytest.raises(InvalidSampleError, match=match) as info:
        load_image(source, sample_id="s7", index=1, **({"limits": limits} if limits else {}))
    err = info.value
    assert err.record == "s7" and err.field == "images[1]"
    assert "record s7" in str(err) and "images[1]" in str(err)
    return err


def test_path_bytes_and_pil_give_the_same_rgb_image(tmp_path: Path):
    img = Image.new("RGB", (5, 3), (10, 200, 30))
    path = tmp_path / "a.png"
    path.write_bytes(_png(img))
    for source in (str(path), path, _png(img), bytearray(_png(img)), img):
        out = load_image(source)
        assert out.mode == "RGB" and out.size == (5, 3) and out.getpixel((4, 2)) == (10, 200, 30)
    assert img.mode == "RGB" and load_image(img) is not img  # the caller's image is not touched


def test_jpeg_webp_gif_bmp_are_accepted():
    img = Image.new("RGB", (8, 8), (200, 10, 10))
    for fmt in ("JPEG", "WEBP", "GIF", "BMP"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out = load_image(buf.getvalue())
        assert out.mode == "RGB" and out.size == (8, 8)
        r, g, b = out.getpixel((4, 4))
        assert r > 150 and g < 60 and b < 60, fmt


def test_disallowed_format_is_refused_even_if_pillow_could_read_it():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="TIFF")
    _expect_error(buf.getvalue(), "allowed format")
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    _expect_error(buf.getvalue(), "allowed", limits=ImageLimits(formats=frozenset({"JPEG"})))


def test_non_image_corrupt_and_truncated_files(tmp_path: Path):
    _expect_error(b"%PDF-1.4 not an image at all", "allowed format")
    _expect_error(b"", "empty")
    png = _png(Image.effect_noise((64, 64), 40).convert("RGB"))
    _expect_error(png[: len(png) // 2], "corrupt or truncated")
    broken = bytearray(png)
    broken[60:80] = b"\0" * 20  # inside the first IDAT chunk's data: CRC mismatch
    _expect_error(bytes(broken), "corrupt or truncated")
    (tmp_path / "t.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 10)
    _expect_error(tmp_path / "t.jpg", "corrupt or truncated|allowed format")


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _bomb_png(100_000, 100_000)  # 10^10 pixels claimed in ~100 bytes
    assert len(bomb) < 200
    err = _expect_error(bomb, "bomb|longest side")
    assert "100000x100000" in str(err) or "bomb" in str(err)
    # Under the side limit but over the pixel limit: the pixel guard names it.
    _expect_error(_bomb_png(3000, 3000), "decompression-bomb guard", limits=ImageLimits(max_pixels=1_000_000))


def test_size_limits(tmp_path: Path):
    big = _png(Image.new("RGB", (300, 10)))
    _expect_error(big, "longest side", limits=ImageLimits(max_side=200))
    _expect_error(big, "bytes", limits=ImageLimits(max_bytes=len(big) - 1))
    path = tmp_path / "big.png"
    path.write_bytes(big)
    _expect_error(path, "bytes", limits=ImageLimits(max_bytes=len(big) - 1))
    _expect_error(Image.new("RGB", (300, 10)), "longest side", limits=ImageLimits(max_side=200))


def test_paths_must_be_local_regular_files(tmp_path: Path):
    _expect_error(tmp_path / "missing.png", "not a regular file")
    _expect_error(tmp_path, "not a regular file")
    _expect_error("https://example.com/cat.png", "never fetched")
    _expect_error(12345, "path, bytes or a PIL image")


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (4, 2), (0, 0, 255))
    img.putpixel((0, 0), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="PNG", exif=exif)
    out = load_image(buf.getvalue())
    assert out.size == (2, 4)  # upright
    assert out.getpixel((1, 0))[0] > 200  # the red corner moved to the top right


def test_transparency_palette_and_16_bit_become_rgb():
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 255, 255))
    out = load_image(_png(rgba))
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white, not black
    assert out.getpixel((1, 0)) == (0, 0, 255)
    assert load_image(_png(Image.new("P", (3, 3)))).mode == "RGB"
    wide = Image.new("I;16", (2, 1))
    wide.putpixel((1, 0), 65535)
    out = load_image(_png(wide))
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((1, 0)) == (255, 255, 255)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    r, g, _ = load_image(buf.getvalue()).getpixel((1, 1))
    assert r > 200 and g < 50


def test_load_sample_images_names_the_failing_image(tmp_path: Path):
    ok = _png(Image.new("RGB", (4, 4)))
    sample = Sample("q", ("a",), images=(ok, b"garbage", ok), id="row-3")
    with pytest.raises(InvalidSampleError) as info:
        load_sample_images(sample)
    assert info.value.field == "images[1]" and info.value.record == "row-3"
    good = load_sample_images(sample.replace(images=(ok, ok)), preprocess=lambda im: im.size)
    assert good == ((4, 4), (4, 4))
