"""Interpret the items of a request's ``data`` as URLs, local paths or base64 images.

Pure, except for one ``stat``: when an item reads both as an image in base64 and as a path,
an existing file under the roots decides it.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from orchestrator.errors import quote_input
from orchestrator.types import ImageSource, SourceKind

_DATA_URI = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")
# Below this length a string is far likelier to be a file name than an image.
_MIN_BASE64_LEN = 64
# Linux's PATH_MAX: anything longer cannot name a file, whatever it looks like.
_MAX_PATH_LEN = 4096
# Enough base64 characters to decode every signature below (12 bytes).
_SNIFF_CHARS = 16

# Magic numbers of the formats Pillow decodes here; anything else is refused before decoding.
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (0, b"BM"),
    (0, b"II*\x00"),  # TIFF little-endian
    (0, b"MM\x00*"),  # TIFF big-endian
    (8, b"WEBP"),
    # ISO base media files: HEIC/HEIF and AVIF photos, and Canon's CR3 RAW (brands "heic",
    # "mif1", "avif", "crx "...). A video passes this too, and is refused by the decoder.
    (4, b"ftyp"),
    (0, b"IIRO"),  # Olympus ORF
    (0, b"IIRS"),  # Olympus ORF
    (0, b"MMOR"),  # Olympus ORF, big-endian
    (0, b"IIU\x00"),  # Panasonic RW2
    (0, b"FUJIFILMCCD-RAW"),  # Fujifilm RAF
)


def looks_like_image(data: bytes) -> bool:
    return any(data[offset : offset + len(sig)] == sig for offset, sig in _SIGNATURES)


def classify(item: str, index: int, path_roots: tuple[Path, ...] | None = None) -> ImageSource:
    """Decide what a ``data`` item is. A base64 item is named by its index, as DeepDetect does.

    Base64 is recognised by its content, not its first character: every JPEG's base64 starts
    with ``/9j/``. ``path_roots`` are the folders paths are read from (None: anywhere); they
    only matter when an item could be either an image or an existing file.
    """
    stripped = item.strip()
    lowered = stripped[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return ImageSource(uri=stripped, kind=SourceKind.URL, location=stripped)
    match = _DATA_URI.match(stripped)
    if match:
        return ImageSource(uri=str(index), kind=SourceKind.BASE64, location=stripped[match.end() :])
    as_base64 = ImageSource(uri=str(index), kind=SourceKind.BASE64, location=stripped)
    if len(stripped) >= _MIN_BASE64_LEN and _BASE64_CHARS.match(stripped):
        if _sniffs_as_image(stripped):
            return _path_source(stripped) if _is_file_under(stripped, path_roots) else as_base64
        # Base64 of something else: the reader then says it is not an image. A leading "/"
        # without an image inside reads as an absolute path.
        if not stripped.startswith("/") and _decodes(stripped):
            return as_base64
    if len(stripped) > _MAX_PATH_LEN:
        # Too long to be a path: named by its index so no error quotes it.
        return as_base64
    if lowered.startswith("file://"):
        stripped = stripped[len("file://") :]
    return _path_source(stripped)


def _path_source(path: str) -> ImageSource:
    return ImageSource(uri=path, kind=SourceKind.PATH, location=path)


def _sniffs_as_image(text: str) -> bool:
    head = "".join(text[: _SNIFF_CHARS * 8].split())[:_SNIFF_CHARS]
    try:
        return looks_like_image(decode_base64(head))
    except ValueError:
        return False


def _is_file_under(text: str, roots: tuple[Path, ...] | None) -> bool:
    if len(text) > _MAX_PATH_LEN:
        return False
    path = Path(text)
    try:
        if not path.is_file():
            return False
        resolved = path.resolve()
    except (OSError, ValueError):  # a name too long, say
        return False
    return roots is None or is_under(resolved, roots)


def is_under(resolved: Path, roots: tuple[Path, ...]) -> bool:
    """Whether the resolved path ``resolved`` lies inside one of ``roots``."""
    return any(resolved.is_relative_to(root.resolve()) for root in roots)


def _decodes(text: str) -> bool:
    try:
        decode_base64(text)
    except ValueError:
        return False
    return True


def decode_base64(text: str) -> bytes:
    compact = "".join(text.split())
    padded = compact + "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not valid base64: {e}") from e


def classify_all(items: list[str], path_roots: tuple[Path, ...] | None = None) -> list[ImageSource]:
    return [classify(item, i, path_roots) for i, item in enumerate(items)]


def name_of(source: ImageSource) -> str:
    """How an error names a source: ``data[3]`` for base64, else its uri cut to ~80 chars."""
    if source.kind is SourceKind.BASE64:
        return f"data[{source.uri}]"
    return quote_input(source.uri)
