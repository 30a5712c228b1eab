"""The perceptual hash: what it matches and what it tells apart, where indexing computes it,
how documents keep it, and how ``--refresh-metadata`` gives it to documents indexed before.

Measured on the five sample photos (scikit-image 0.2x): a copy halved, a JPEG at quality 40,
and one 15 % brighter are all within 2 bits of the original (mostly 0); a mirror image is 30 to
32 bits away, and two different photos 26 to 38.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageEnhance, ImageOps

from orchestrator.distributed.rows import (
    DECODED_COLUMNS,
    decoded_row,
    prepared_of,
    to_batch,
    to_rows,
)
from orchestrator.fetch import FetchPolicy, SourceReader
from orchestrator.phash import hamming, perceptual_hash
from orchestrator.preprocess import phash_of, prepare, to_model_input
from orchestrator.refresh import MetadataRefresher
from orchestrator.samples import sample_photos
from orchestrator.search.base import Category, ImageDocument
from orchestrator.search.documents import (
    document_from_prediction,
    document_from_source,
    document_to_source,
)
from orchestrator.search.embedded import EmbeddedIndex
from orchestrator.sources import classify
from orchestrator.triton.model_info import ModelInfo
from orchestrator.types import ImageBytes, ImageSource, Label, Prediction, SourceKind

HEX64 = re.compile(r"^[0-9a-f]{16}$")
#: Bounds with a wide margin over what the sample photos measure (see the module docstring).
SAME_PICTURE = 8
DIFFERENT = 20


def photos() -> dict[str, Image.Image]:
    return {path.stem: Image.open(path).convert("RGB") for path in sample_photos()}


def jpeg(image: Image.Image, quality: int, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, **params)
    return out.getvalue()


def as_input(data: bytes, name: str = "photo.jpg") -> ImageBytes:
    return ImageBytes(ImageSource(name, SourceKind.PATH, name), data)


@pytest.fixture(scope="module")
def originals() -> dict[str, Image.Image]:
    return photos()


def test_a_hash_is_16_lowercase_hex_digits(originals: dict[str, Image.Image]) -> None:
    hashes = {name: perceptual_hash(image) for name, image in originals.items()}
    assert all(HEX64.match(h) for h in hashes.values()), hashes
    # Any mode hashes the same picture alike: pHash looks at its grayscale only.
    chelsea = originals["chelsea"]
    assert perceptual_hash(chelsea.convert("RGBA")) == hashes["chelsea"]


@pytest.mark.parametrize("name", [path.stem for path in sample_photos()])
def test_resized_reencoded_and_brightened_copies_stay_close(
    originals: dict[str, Image.Image], name: str
) -> None:
    original = originals[name]
    width, height = original.size
    copies = {
        "resized to a third": original.resize((width // 3, height // 3), Image.Resampling.BICUBIC),
        "JPEG quality 40": Image.open(io.BytesIO(jpeg(original, 40))),
        "15 % brighter": ImageEnhance.Brightness(original).enhance(1.15),
        "15 % more contrast": ImageEnhance.Contrast(original).enhance(1.15),
    }
    expected = perceptual_hash(original)
    distances = {label: hamming(expected, perceptual_hash(c)) for label, c in copies.items()}
    assert max(distances.values()) <= SAME_PICTURE, distances


def test_different_photos_and_mirror_images_are_far_apart(
    originals: dict[str, Image.Image],
) -> None:
    hashes = {name: perceptual_hash(image) for name, image in originals.items()}
    names = sorted(hashes)
    pairs = {
        (a, b): hamming(hashes[a], hashes[b]) for i, a in enumerate(names) for b in names[i + 1 :]
    }
    assert min(pairs.values()) >= DIFFERENT, pairs
    mirrored = {
        name: hamming(hashes[name], perceptual_hash(ImageOps.mirror(image)))
        for name, image in originals.items()
    }
    assert min(mirrored.values()) >= DIFFERENT, mirrored


def test_hamming_counts_differing_bits() -> None:
    assert hamming("bb8320376c0f3637", "bb8320376c0f3637") == 0
    assert hamming("0000000000000000", "ffffffffffffffff") == 64
    assert hamming("0000000000000000", "8000000000000001") == 2
    with pytest.raises(ValueError, match="different lengths"):
        hamming("00", "0000")
    with pytest.raises(ValueError, match="invalid literal"):
        hamming("zz", "00")


def test_prepare_hashes_the_whole_upright_picture(originals: dict[str, Image.Image]) -> None:
    # A wide picture, stored sideways with an EXIF orientation, as phones do.
    wide = originals["motorcycle_left"]
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    sideways = wide.transpose(Image.Transpose.ROTATE_90)
    prepared = prepare(as_input(jpeg(sideways, 95, exif=exif.tobytes())), max_pixels=10**8)
    assert prepared.phash is not None
    upright = perceptual_hash(wide)
    assert hamming(prepared.phash, upright) <= SAME_PICTURE
    assert hamming(prepared.phash, perceptual_hash(sideways)) >= DIFFERENT
    # Not the model's centre crop, which leaves out a third of a 3:2 picture.
    crop = Image.fromarray(to_model_input(wide))
    assert hamming(prepared.phash, perceptual_hash(crop)) > hamming(prepared.phash, upright)


def test_a_large_jpeg_decoded_at_reduced_scale_hashes_like_the_full_picture(
    originals: dict[str, Image.Image],
) -> None:
    large = originals["rocket"].resize((2560, 1708), Image.Resampling.BICUBIC)
    prepared = prepare(as_input(jpeg(large, 90)), max_pixels=10**8)
    assert prepared.phash is not None
    assert hamming(prepared.phash, perceptual_hash(large)) <= SAME_PICTURE
    # What --refresh-metadata computes for the same bytes is exactly what indexing stored.
    assert phash_of(as_input(jpeg(large, 90)), max_pixels=10**8) == prepared.phash


def test_the_hash_survives_the_ray_row_conversion(originals: dict[str, Image.Image]) -> None:
    prepared = prepare(as_input(jpeg(originals["coffee"], 90)), max_pixels=10**8)
    (row,) = to_rows(to_batch([decoded_row(prepared)], DECODED_COLUMNS))
    assert prepared.phash is not None
    assert prepared_of(row).phash == prepared.phash


def document(doc_id: str = "ab" * 32, uri: str = "/photos/cat.png") -> ImageDocument:
    """A document as deeptag wrote it before computing perceptual hashes."""
    return ImageDocument(
        id=doc_id,
        uri=uri,
        categories=(Category("n02123159 tiger cat", 0.6),),
        tags=("tiger cat",),
        embedding=None,
        width=451,
        height=300,
        model="efficientnet_lite0/1",
        indexed_at="2025-01-01T00:00:00Z",
    )


def test_documents_keep_the_hash_and_older_ones_read_back_without_it() -> None:
    prediction = Prediction(
        ImageSource("/photos/cat.png", SourceKind.PATH, "/photos/cat.png"),
        (Label("n02123159 tiger cat", 0.6),),
        451,
        300,
        "ab" * 32,
        phash="b15fe6465121175e",
    )
    model = ModelInfo("efficientnet_lite0", "1", 8, (224, 224, 3), ("probs",), 1000)
    made = document_from_prediction(prediction, model)
    assert made.phash == "b15fe6465121175e"
    source = document_to_source(made)
    assert source["phash"] == "b15fe6465121175e"
    assert document_from_source(made.id, source).phash == "b15fe6465121175e"
    # Written before deeptag computed hashes: no key at all, and no ``"phash": null`` added.
    old = document_to_source(document())
    assert "phash" not in old
    assert document_from_source("ab" * 32, old).phash is None
    assert "phash" not in document_from_source("ab" * 32, old).metadata


async def _refresh(index: Path, sources: list[Path]) -> list[ImageDocument | None]:
    """Refresh twice: the second run finds nothing left to do."""
    async with httpx.AsyncClient() as http:
        backend = await EmbeddedIndex.open(index, writer=True)
        try:
            await backend.ensure_index()
            reader = SourceReader(http, FetchPolicy(max_bytes=10**8, path_roots=None))
            refresher = MetadataRefresher(reader, backend, max_pixels=10**8)
            stats = await refresher.run(classify(str(p), i) for i, p in enumerate(sources))
            assert (stats.updated, stats.hashed, stats.failed) == (1, 1, 0)
            again = await MetadataRefresher(reader, backend, max_pixels=10**8).run(
                classify(str(p), i) for i, p in enumerate(sources)
            )
            assert (again.updated, again.unchanged, again.hashed) == (0, 1, 0)
            return [await backend.get(hashlib.sha256(p.read_bytes()).hexdigest()) for p in sources]
        finally:
            await backend.close()


def test_refresh_metadata_gives_older_documents_their_hash(tmp_path: Path) -> None:
    chelsea = sample_photos()[1]
    doc_id = hashlib.sha256(chelsea.read_bytes()).hexdigest()

    async def index_old() -> ImageDocument | None:
        backend = await EmbeddedIndex.open(tmp_path / "index", writer=True)
        try:
            await backend.ensure_index()
            results = [r async for r in backend.index([document(doc_id, str(chelsea))])]
            assert [r.ok for r in results] == [True]
            return await backend.get(doc_id)
        finally:
            await backend.close()

    before = asyncio.run(index_old())
    assert before is not None
    assert before.phash is None  # an older document reads back without one

    (after,) = asyncio.run(_refresh(tmp_path / "index", [chelsea]))
    assert after is not None
    expected = prepare(as_input(chelsea.read_bytes(), str(chelsea)), max_pixels=10**8).phash
    assert expected is not None
    assert after.phash == expected
    assert after.categories == before.categories  # the model's labels are kept
