"""Images in: loading untrusted image inputs safely and turning them into tower pixels.

An image of a `Sample` may be a file path, raw bytes or a ``PIL.Image.Image``. `load_image`
checks it once, here, before any decoder touches the pixels:

- a path must be a regular local file (no URLs, devices, FIFOs) of at most ``max_bytes``;
- the container must be one of ``formats`` (PNG, JPEG, WEBP, GIF, BMP by default): Pillow is
  told to try only those decoders, and the detected format is checked again;
- the header's width x height is checked against ``max_side`` / ``max_pixels`` *before*
  decoding (the decompression-bomb guard: a 50-byte PNG can claim 10^10 pixels), and Pillow's
  own bomb error is reported the same way;
- the file is verified and then fully decoded, so corrupt and truncated files fail here and
  not later inside the model;
- EXIF orientation is applied, the first frame of an animation is used, transparency is
  composited on white and the result is RGB.

Every failure is an `InvalidSampleError` naming the sample (``record``) and the image
(``field="images[1]"``), so the judge turns it into an abstained verdict with reason code
``input_error`` and the batch goes on.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judgelm.errors import InvalidSampleError

if TYPE_CHECKING:
    from PIL import Image as PILImage
    from torch import Tensor

    from judgelm.types import Sample

__all__ = ["DEFAULT_IMAGE_LIMITS", "ImageLimits", "blank_like", "load_image", "load_sample_images"]

_MIB = 1 << 20


@dataclass(frozen=True)
class ImageLimits:
    """What an input image may be. The defaults admit photos and screenshots up to 8K."""

    max_bytes: int = 32 * _MIB
    max_pixels: int = 40_000_000  # width x height; 8K UHD is 33.2 M
    max_side: int = 12_000
    formats: frozenset[str] = field(default_factory=lambda: frozenset({"PNG", "JPEG", "MPO", "WEBP", "GIF", "BMP"}))

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_pixels, self.max_side) < 1:
            raise ValueError("image limits must be positive")
        object.__setattr__(self, "formats", frozenset(f.upper() for f in self.formats))


DEFAULT_IMAGE_LIMITS = ImageLimits()


def _error(message: str, sample_id: str | None, index: int) -> InvalidSampleError:
    return InvalidSampleError(message, field=f"images[{index}]", record=sample_id)


def _read_path(path: Path, limits: ImageLimits, fail: Callable[[str], InvalidSampleError]) -> bytes:
    try:
        if not path.is_file():  # False for missing files, folders, devices and FIFOs
            raise fail(f"not a regular file: {str(path)!r}")
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise fail(f"file is {size} bytes, over the limit of {limits.max_bytes}")
        with path.open("rb") as f:
            data = f.read(limits.max_bytes + 1)  # bounded even if the file grew since stat()
    except OSError as e:
        raise fail(f"cannot read {str(path)!r}: {e.strerror or e}") from None
    if len(data) > limits.max_bytes:
        raise fail(f"file is over the limit of {limits.max_bytes} bytes")
    return data


def _check_size(width: int, height: int, limits: ImageLimits, fail: Callable[[str], InvalidSampleError]) -> None:
    if width < 1 or height < 1:
        raise fail(f"empty image ({width}x{height})")
    if max(width, height) > limits.max_side:
        raise fail(f"image is {width}x{height}; the longest side may be at most {limits.max_side} pixels")
    if width * height > limits.max_pixels:
        raise fail(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {limits.max_pixels} "
            "(decompression-bomb guard)"
        )


def _decode(data: bytes, limits: ImageLimits, fail: Callable[[str], InvalidSampleError]) -> PILImage.Image:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise fail("empty file")
    allowed = sorted(limits.formats)
    Image.init()  # register every plugin, so `formats=` below can name them
    openers = [f for f in allowed if f in Image.OPEN]  # MPO is detected by the JPEG opener
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) on huge images; our own limit is checked first, but an
            # image between Pillow's two thresholds must not pass as a mere warning.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data), formats=openers)  # header only
            if probe.format not in limits.formats:
                raise fail(f"format {probe.format} is not allowed (allowed: {', '.join(allowed)})")
            _check_size(*probe.size, limits, fail)
            probe.verify()  # structure and checksums, without decoding pixels
            image = Image.open(io.BytesIO(data), formats=openers)
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animations: the first frame
            image.load()  # decodes everything: truncated data fails here
    except InvalidSampleError:
        raise
    except UnidentifiedImageError:
        raise fail(f"not an image in an allowed format ({', '.join(allowed)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise fail(f"decompression-bomb guard: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as e:
        raise fail(f"corrupt or truncated image: {e}") from None
    return image


def _to_rgb(image: PILImage.Image, fail: Callable[[str], InvalidSampleError]) -> PILImage.Image:
    """Upright RGB: EXIF orientation applied, alpha composited on white, wide modes scaled."""
    from PIL import Image, ImageOps

    try:
        image = ImageOps.exif_transpose(image)
    except Exception as e:  # malformed EXIF must not crash a batch job
        raise fail(f"unreadable EXIF orientation: {e}") from None
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit grey: scale to 8 bits
        lo, hi = image.getextrema()
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        image = image.point(lambda v: (v - lo) * scale).convert("L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB") if image.mode != "RGB" else image.copy()


def load_image(
    source: Any,
    *,
    sample_id: str | None = None,
    index: int = 0,
    limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
) -> PILImage.Image:
    """Load and validate one image (a path, bytes or a PIL image) as an upright RGB image.

    Raises `InvalidSampleError` with ``record=sample_id`` and ``field="images[index]"``."""
    from PIL import Image

    def fail(message: str) -> InvalidSampleError:
        return _error(message, sample_id, index)

    if isinstance(source, Image.Image):
        _check_size(*source.size, limits, fail)
        try:
            source.load()
        except (OSError, ValueError, SyntaxError) as e:
            raise fail(f"corrupt or truncated image: {e}") from None
        return _to_rgb(source, fail)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > limits.max_bytes:
            raise fail(f"image is {len(data)} bytes, over the limit of {limits.max_bytes}")
    elif isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if isinstance(text, str) and "://" in text:
            raise fail(f"remote images are never fetched; download {text[:80]!r} and pass its path")
        data = _read_path(Path(text), limits, fail)
    else:
        raise fail(f"an image must be a path, bytes or a PIL image, got {type(source).__name__}")
    return _to_rgb(_decode(data, limits, fail), fail)


def load_sample_images(
    sample: Sample,
    preprocess: Callable[[PILImage.Image], Tensor] | None = None,
    *,
    limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
) -> tuple[Any, ...]:
    """All images of ``sample`` in prompt order: PIL images, or ``preprocess(image)`` tensors
    (``[3, S, S]`` with a vision judge's ``model.preprocess``). Raises `InvalidSampleError`
    at the first image that fails, naming it."""
    out = []
    for i, source in enumerate(sample.images):
        image = load_image(source, sample_id=sample.id, index=i, limits=limits)
        out.append(image if preprocess is None else preprocess(image))
    return tuple(out)


def blank_like(images: Sequence[PILImage.Image], color: tuple[int, int, int] = (128, 128, 128)) -> list[Any]:
    """Uniform grey images of the same sizes (the "image withheld" control)."""
    from PIL import Image

    return [Image.new("RGB", im.size, color) for im in images]
