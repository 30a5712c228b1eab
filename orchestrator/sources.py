"""Interpret the items of a request's ``data`` as URLs, local paths or base64 images (pure)."""

from __future__ import annotations

import base64
import binascii
import re

from orchestrator.types import ImageSource, SourceKind

_DATA_URI = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")
# Below this length a string is far likelier to be a file name than an image.
_MIN_BASE64_LEN = 64


def classify(item: str, index: int) -> ImageSource:
    """Decide what a ``data`` item is. A base64 item is named by its index, as DeepDetect does."""
    stripped = item.strip()
    lowered = stripped[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return ImageSource(uri=stripped, kind=SourceKind.URL, location=stripped)
    match = _DATA_URI.match(stripped)
    if match:
        return ImageSource(uri=str(index), kind=SourceKind.BASE64, location=stripped[match.end() :])
    if (
        len(stripped) >= _MIN_BASE64_LEN
        and "/" not in stripped[:1]
        and _BASE64_CHARS.match(stripped)
        and _decodes(stripped)
    ):
        return ImageSource(uri=str(index), kind=SourceKind.BASE64, location=stripped)
    if lowered.startswith("file://"):
        stripped = stripped[len("file://") :]
    return ImageSource(uri=stripped, kind=SourceKind.PATH, location=stripped)


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


def classify_all(items: list[str]) -> list[ImageSource]:
    return [classify(item, i) for i, item in enumerate(items)]
