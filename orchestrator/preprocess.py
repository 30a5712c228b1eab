"""Decode image bytes and turn them into the model's input (pure, CPU-bound)."""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import numpy.typing as npt
from PIL import Image

from orchestrator.errors import CorruptImage, ImageTooLarge
from orchestrator.formats import OpenedImage, open_image, upright_rgb
from orchestrator.metadata import read_metadata
from orchestrator.phash import perceptual_hash
from orchestrator.places import place_of
from orchestrator.sources import name_of
from orchestrator.types import ImageBytes, PreparedImage

RESIZE_SHORT_SIDE = 256
CROP_SIZE = 224


_ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})


def decode(image: ImageBytes, max_pixels: int, short_side: int | None = None) -> Image.Image:
    """Decode to RGB, upright per EXIF, refusing images over ``max_pixels`` before decoding.

    With ``short_side``, a JPEG may be decoded at a reduced scale (1/2, 1/4, 1/8) that keeps
    its short side at least that long: a 3 MP photo decodes several times faster. HEIF and
    camera RAW files are read as :mod:`orchestrator.formats` says.
    """
    return _decode(image, max_pixels, short_side)[0]


def _decode(
    image: ImageBytes, max_pixels: int, short_side: int | None, long_side: int | None = None
) -> tuple[Image.Image, tuple[int, int], OpenedImage]:
    """The upright RGB image, its full-resolution upright size, and the opened file.

    A JPEG is decoded at the smallest DCT scale that keeps its short side at least
    ``short_side`` and its long side at least ``long_side``."""
    uri = name_of(image.source)  # data[3] for base64, never a megabyte of it
    try:
        with warnings.catch_warnings():
            # The pixel limit is ours to enforce (open_image does), with an error naming the input.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            found = open_image(image.data, uri, max_pixels)
            opened = found.image
            width, height = opened.size
            orientation = _orientation(opened)
            if short_side is not None and opened.format == "JPEG":
                scale = short_side / min(width, height)
                if long_side is not None:
                    scale = max(scale, long_side / max(width, height))
                opened.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            opened.load()
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{uri}: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptImage(f"{uri}: corrupt or truncated image: {e}") from e
    size = (height, width) if orientation in _ROTATED_ORIENTATIONS else (width, height)
    if orientation not in (None, 1):
        return upright_rgb(opened), size, found
    # Most photos are upright and RGB already: transposing or converting would only copy them.
    return (opened if opened.mode == "RGB" else opened.convert("RGB")), size, found


def _orientation(opened: Image.Image) -> int | None:
    try:
        value = opened.getexif().get(0x0112)
    except Exception:  # a broken EXIF block (or a warning made an error) costs only the rotation
        return None
    return value if isinstance(value, int) else None


def to_model_input(rgb: Image.Image) -> npt.NDArray[np.uint8]:
    """Resize the short side to 256 (bilinear) and centre-crop 224x224; uint8 HWC."""
    width, height = rgb.size
    scale = RESIZE_SHORT_SIDE / min(width, height)
    resized = rgb.resize(
        (max(CROP_SIZE, round(width * scale)), max(CROP_SIZE, round(height * scale))),
        Image.Resampling.BILINEAR,
    )
    left = (resized.width - CROP_SIZE) // 2
    top = (resized.height - CROP_SIZE) // 2
    cropped = resized.crop((left, top, left + CROP_SIZE, top + CROP_SIZE))
    return np.asarray(cropped, dtype=np.uint8)


def to_view(rgb: Image.Image, side: int) -> npt.NDArray[np.uint8]:
    """The whole image with its longest side at most ``side`` (never enlarged); uint8 HWC."""
    if max(rgb.size) > side:
        scale = side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(rgb, dtype=np.uint8)


def prepare(
    image: ImageBytes,
    max_pixels: int,
    *,
    with_location: bool = True,
    view_side: int | None = None,
) -> PreparedImage:
    """The model's input, the image's size, content hash and perceptual hash, and what the
    photo says about itself (``photo``; without position or place when ``with_location`` is
    False); with ``view_side``, also the whole upright image that size (``view``, for the
    analyses that read more than the crop, such as OCR)."""
    rgb, (width, height), opened = _decode(image, max_pixels, RESIZE_SHORT_SIDE, view_side)
    return PreparedImage(
        source=image.source,
        pixels=to_model_input(rgb),
        width=width,
        height=height,
        sha256=hashlib.sha256(image.data).hexdigest(),
        photo=read_metadata(opened, with_location=with_location, geocode=place_of),
        size=image.size,
        mtime=image.mtime,
        # Of the whole upright picture, not the model's centre crop. Hashing the drafted
        # (downscaled) decode loses nothing: pHash looks at a 32x32 thumbnail only.
        phash=perceptual_hash(rgb),
        view=None if view_side is None else to_view(rgb, view_side),
    )


def phash_of(image: ImageBytes, max_pixels: int) -> str:
    """The perceptual hash :func:`prepare` gives ``image``, decoded the same way (so the same
    bytes always get the same hash), for documents indexed before deeptag computed it."""
    return perceptual_hash(_decode(image, max_pixels, RESIZE_SHORT_SIDE)[0])
