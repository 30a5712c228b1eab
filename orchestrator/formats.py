"""Which image formats deeptag reads, and how: Pillow, plus HEIF and camera RAW as extras.

Pillow reads JPEG, PNG, WebP, AVIF (a plugin of its own in recent releases), TIFF, GIF, BMP.
HEIC/HEIF comes from ``pillow-heif`` (``deeptag[heif]``; its binary wheel bundles x265, so it
is GPLv2 as a whole and stays optional), which registers a Pillow opener. Camera RAW files are
read by the JPEG preview the camera embedded in them, through ``rawpy`` (``deeptag[raw]``; MIT,
with LibRaw inside, LGPL): demosaicing the sensor data would cost seconds per photo for pixels
the model sees at 224x224 anyway.
"""

from __future__ import annotations

import io
import struct
import threading
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from orchestrator.errors import CorruptImage, ImageTooLarge, NotAnImage, quote_input

HEIF_EXTRA = "pip install 'deeptag[heif]'"
RAW_EXTRA = "pip install 'deeptag[raw]'"

RAW_SUFFIXES = frozenset({".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".rw2", ".raf"})
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
#: Every file suffix deeptag can read (when the extras are installed), for folder scans.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".avif", ".tif", ".tiff", ".gif", ".bmp"}
    | HEIF_SUFFIXES
    | RAW_SUFFIXES
)

#: Formats every current browser shows, by the name :func:`format_name` gives, and their
#: Content-Type; anything else (HEIF, RAW, TIFF, ...) is served as a JPEG instead.
BROWSER_MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "AVIF": "image/avif",
}
BROWSER_JPEG_QUALITY = 90

# ISO base media file brands of HEIF images (HEVC-coded); AVIF has its own and Pillow reads it.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_DNG_VERSION_TAG = 50706
#: The most IFD entries looked at while sniffing for a DNG; real ones have a few dozen.
_SNIFF_ENTRIES = 512

_heif_lock = threading.Lock()
_heif_available: bool | None = None


@dataclass(frozen=True, eq=False)
class OpenedImage:
    """An image opened by Pillow (not loaded yet) and what else its file told us."""

    #: The photo; for a RAW file, the camera's embedded preview.
    image: Image.Image
    #: The format's name as documents store it: "JPEG", "HEIF", "AVIF", "RAW", ...
    format: str
    #: The file's bytes as read (a RAW file's, whose own TIFF directories hold the EXIF).
    data: bytes
    #: The lens LibRaw read from a RAW file's maker notes; its previews seldom say.
    raw_lens: str | None = None


def register_heif() -> bool:
    """Register pillow-heif's Pillow opener once per process; False when it is not installed.

    Safe to call from any thread, as often as wanted: only the first call imports.
    """
    global _heif_available
    if _heif_available is None:
        with _heif_lock:
            if _heif_available is None:
                try:
                    import pillow_heif
                except (ImportError, OSError):
                    _heif_available = False
                else:
                    pillow_heif.register_heif_opener()
                    _heif_available = True
    return _heif_available


def suffix_of(name: str) -> str:
    """The lower-case file suffix of a path or URL ("" for none): ``.nef``."""
    path = urlsplit(name).path if "://" in name[:12] else name
    return PurePosixPath(path).suffix.lower()


def format_name(pillow_format: str | None) -> str | None:
    """What a document calls the format Pillow reports; a multi-picture JPEG is a JPEG."""
    if pillow_format is None:
        return None
    return "JPEG" if pillow_format == "MPO" else pillow_format.upper()


def is_heif(data: bytes) -> bool:
    """Whether ``data`` is a HEIF (HEIC) file, by its ``ftyp`` box's brands (pure)."""
    if data[4:8] != b"ftyp":
        return False
    size = int.from_bytes(data[:4], "big")
    brands = data[8:12], *(data[i : i + 4] for i in range(16, min(size, 64), 4))
    return any(brand in _HEIF_BRANDS for brand in brands)


def is_raw(data: bytes, name: str = "") -> bool:
    """Whether ``data`` is a camera RAW file, by its header or else its file suffix (pure).

    CR3, RAF, ORF and RW2 have headers of their own; CR2 and DNG are TIFF files that say so.
    NEF and ARW are plain TIFF files: for them, and for a base64 item with no name, the
    suffix decides, and a TIFF without one is read as a TIFF.
    """
    head = data[:16]
    if head[4:12] == b"ftypcrx " or head.startswith(b"FUJIFILMCCD-RAW"):
        return True
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00"):
        return True
    if head[:4] in _TIFF_MAGIC:
        if head[8:10] == b"CR" or _has_tiff_tag(data, _DNG_VERSION_TAG):
            return True
    elif head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n":
        return False  # a JPEG or PNG named like a RAW file: read what it is
    return suffix_of(name) in RAW_SUFFIXES


def _has_tiff_tag(data: bytes, tag: int) -> bool:
    """Whether the first directory of a TIFF file holds ``tag`` (pure, bounded, never raises)."""
    endian = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(endian + "I", data, 4)
        (count,) = struct.unpack_from(endian + "H", data, offset)
        for i in range(min(count, _SNIFF_ENTRIES)):
            (found,) = struct.unpack_from(endian + "H", data, offset + 2 + 12 * i)
            if found == tag:
                return True
    except struct.error:
        return False
    return False


#: Images in formats no installed reader knows, by their first bytes: what to tell the user.
_UNREADABLE = (
    (
        (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n"),
        "a JPEG XL image, a format deeptag does not read: convert it to JPEG or PNG "
        "(libjxl's `djxl photo.jxl photo.png`)",
    ),
    (
        (b"<svg", b"<?xml"),
        "an SVG drawing (vector graphics), not a photo: deeptag reads raster images; export "
        "it as PNG",
    ),
    ((b"%PDF",), "a PDF document, not an image: export its pages as images"),
)


def unreadable_format(data: bytes) -> str | None:
    """What ``data`` is, when it is an image (or a document) in a format deeptag cannot read,
    and what to do about it (pure)."""
    head = data[:16].lstrip()
    for magics, said in _UNREADABLE:
        if head.startswith(magics):
            if magics[0] == b"<svg" and b"<svg" not in data[:1024]:
                continue  # some other XML
            return said
    return None


def open_image(data: bytes, name: str, max_pixels: int) -> OpenedImage:
    """Open ``data`` with Pillow (HEIF and RAW included), refusing images over ``max_pixels``.

    Nothing is decoded yet but a RAW file's preview. ``name`` (a path, a URL or ``data[3]``)
    names the input in errors, and its suffix tells a NEF or an ARW from a TIFF.

    Raises:
        NotAnImage: not an image, or one whose extra (``deeptag[heif]``, ``deeptag[raw]``) is
            not installed, or a RAW file without a usable preview.
        CorruptImage: a broken file.
        ImageTooLarge: over ``max_pixels``.
    """
    shown = quote_input(name)
    raw_lens = ""
    payload: bytes | Image.Image = data
    register_heif()
    raw = is_raw(data, name)
    if raw:
        payload, raw_lens = _raw_preview(data, shown)
    try:
        with warnings.catch_warnings():
            # The pixel limit is ours to enforce (below), with an error that names the input.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Opening a JPEG parses its EXIF (for the DPI), warning of each corrupt tag: the
            # metadata reader notes what it could not read, a warning would only be noise.
            warnings.simplefilter("ignore", UserWarning)
            image = payload if isinstance(payload, Image.Image) else Image.open(io.BytesIO(payload))
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{shown}: {e}") from e
    except UnidentifiedImageError as e:
        if is_heif(data) and not register_heif():
            raise NotAnImage(
                f"{shown}: not a decodable image: HEIF photos need pillow-heif ({HEIF_EXTRA})"
            ) from e
        known = unreadable_format(data)
        if known is not None:
            raise NotAnImage(f"{shown}: {known}") from e
        raise NotAnImage(f"{shown}: not a decodable image") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptImage(f"{shown}: corrupt or truncated image: {e}") from e
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{shown}: {width}x{height} is {width * height} pixels, "
            f"over the {max_pixels} pixel limit"
        )
    kind = "RAW" if raw else format_name(image.format) or "UNKNOWN"
    return OpenedImage(image=image, format=kind, data=data, raw_lens=raw_lens or None)


def _raw_preview(data: bytes, shown: str) -> tuple[bytes | Image.Image, str]:
    """The embedded preview of a RAW file (JPEG bytes, or an image for a bitmap preview),
    and its lens name ("" when LibRaw found none)."""
    try:
        import rawpy
    except ImportError as e:
        raise NotAnImage(f"{shown}: a camera RAW file; reading it needs rawpy ({RAW_EXTRA})") from e
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            lens = " ".join(raw.lens.model.split()) if raw.lens is not None else ""
            thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError) as e:
        raise NotAnImage(
            f"{shown}: RAW file without a usable embedded preview "
            "(deeptag reads RAW files by the JPEG preview the camera stores in them)"
        ) from e
    except rawpy.LibRawFileUnsupportedError as e:
        raise NotAnImage(f"{shown}: not a RAW file LibRaw can read") from e
    except (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError) as e:
        raise ImageTooLarge(f"{shown}: RAW file too large to read: {_said(e)}") from e
    except (rawpy.LibRawError, OSError, ValueError) as e:
        raise CorruptImage(f"{shown}: corrupt or truncated RAW file: {_said(e)}") from e
    if thumb.format == rawpy.ThumbFormat.JPEG:
        return bytes(thumb.data), lens
    # An uncompressed preview (some older cameras): already pixels.
    return Image.fromarray(np.asarray(thumb.data)).convert("RGB"), lens


def _said(error: Exception) -> str:
    """LibRaw's message: its errors carry bytes ("b'Input/output error'" otherwise)."""
    said = error.args[0] if len(error.args) == 1 else error
    return said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)


def upright_rgb(image: Image.Image) -> Image.Image:
    """The loaded image turned upright per its EXIF orientation, in RGB."""
    try:
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        # A broken EXIF block should not cost the user the image.
        upright = image
    return upright if upright.mode == "RGB" else upright.convert("RGB")


def browser_image(data: bytes, name: str, max_pixels: int) -> tuple[bytes, str]:
    """Bytes a browser can show, and their Content-Type (CPU-bound).

    JPEG, PNG, GIF, WebP, BMP and AVIF come back as they are; HEIF, RAW previews, TIFF and
    the rest as an upright JPEG of the same size.

    Raises:
        NotAnImage, CorruptImage, ImageTooLarge: as :func:`open_image` does.
    """
    opened = open_image(data, name, max_pixels)
    media_type = BROWSER_MEDIA_TYPES.get(opened.format)
    if media_type is not None:
        return data, media_type
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened.image.load()
            rgb = upright_rgb(opened.image)
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=BROWSER_JPEG_QUALITY)
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptImage(f"{quote_input(name)}: corrupt or truncated image: {e}") from e
    return out.getvalue(), "image/jpeg"
