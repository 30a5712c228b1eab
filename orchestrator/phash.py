"""A perceptual hash of an image: a cheap second signal for near-duplicate detection (pure).

pHash (``imagehash.phash``) shrinks the image to 32x32 grayscale, takes its 2-D DCT and keeps
one bit per coefficient of the lowest 8x8 frequencies: whether it lies above their median.
Those frequencies are the image's coarse layout, so the hash survives what leaves the layout
alone: resizing, re-encoding (JPEG at low quality too), and moderate brightness, contrast or
colour changes, usually within a few bits. It does not survive what moves the layout: a crop
of more than a few percent, a mirror image (flipping negates the odd frequencies, about half
the bits), or a rotation; two unrelated photos differ in about half of the 64 bits.

An embedding kNN finds candidates; a small :func:`hamming` distance between their hashes
confirms that they are the same picture rather than two pictures of the same kind of thing.
"""

from __future__ import annotations

import imagehash
from PIL import Image

#: Bits per side of the DCT block kept: 8x8 = 64 bits, 16 hex digits.
HASH_SIZE = 8
HEX_DIGITS = HASH_SIZE * HASH_SIZE // 4


def perceptual_hash(image: Image.Image) -> str:
    """The 64-bit pHash of ``image`` (any mode, any size) as 16 lower-case hex digits."""
    return str(imagehash.phash(image, hash_size=HASH_SIZE))


def hamming(a: str, b: str) -> int:
    """How many of the bits of two hashes differ (0: the same layout, ~32: unrelated).

    Raises:
        ValueError: the hashes are not hex, or are not of the same length.
    """
    if len(a) != len(b):
        raise ValueError(f"hashes of different lengths: {a!r} and {b!r}")
    return (int(a, 16) ^ int(b, 16)).bit_count()
