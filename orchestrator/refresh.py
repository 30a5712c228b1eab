"""``deeptag index --refresh-metadata``: what photos say about themselves, and their
perceptual hash, for documents already indexed, without the models.

A second driver over the same reader and backends as the indexer: each source is read, hashed
and opened (not decoded, but for a PNG, whose text may follow its pixels), its metadata read,
and the document of that content hash rewritten with it. A document indexed before deeptag
computed perceptual hashes also gets its ``phash``: only then is the image decoded, as
indexing decodes it, so the same bytes always get the same hash. Nothing else of the document
changes and no Triton is needed, so a collection indexed before deeptag read metadata catches
up at the speed of reading files.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from orchestrator.errors import ItemError
from orchestrator.fetch import SourceReader
from orchestrator.formats import open_image
from orchestrator.indexing import FailedImage
from orchestrator.metadata import read_metadata
from orchestrator.photo import PhotoMetadata
from orchestrator.pipeline import chunked
from orchestrator.places import place_of
from orchestrator.preprocess import phash_of
from orchestrator.search.base import ImageDocument, SearchBackend
from orchestrator.sources import name_of
from orchestrator.types import ImageBytes, ImageSource

#: Formats whose metadata may follow the pixels, so they are decoded to reach it.
_TEXT_AFTER_PIXELS = frozenset({"PNG"})


@dataclass
class RefreshStats:
    updated: int = 0
    unchanged: int = 0
    #: Sources whose content no document holds: ``deeptag index`` them first.
    not_indexed: int = 0
    failed: int = 0
    metadata_warnings: int = 0
    #: Of the updated, those that had no perceptual hash and now have one.
    hashed: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    @property
    def done(self) -> int:
        return self.updated + self.unchanged + self.not_indexed + self.failed

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.perf_counter()) - self.started


@dataclass(frozen=True)
class ReadPhoto:
    sha256: str
    photo: PhotoMetadata


def read_photo(image: ImageBytes, max_pixels: int, with_location: bool) -> ReadPhoto:
    """The content hash and the metadata of one image (CPU-bound; raises ItemError)."""
    opened = open_image(image.data, name_of(image.source), max_pixels)
    if opened.format in _TEXT_AFTER_PIXELS:
        opened.image.load()
    photo = read_metadata(opened, with_location=with_location, geocode=place_of)
    return ReadPhoto(hashlib.sha256(image.data).hexdigest(), photo)


@dataclass(frozen=True)
class _Read:
    #: The bytes are kept until the document is found: decoded only if it lacks a phash.
    image: ImageBytes
    found: ReadPhoto


class MetadataRefresher:
    """Rewrites the photo fields of indexed documents from their files, a chunk at a time,
    and gives those indexed before perceptual hashes their ``phash``."""

    def __init__(
        self,
        reader: SourceReader,
        backend: SearchBackend,
        *,
        max_pixels: int,
        with_location: bool = True,
        chunk_size: int = 32,
        on_failure: Callable[[FailedImage], None] = lambda _: None,
        on_progress: Callable[[RefreshStats], None] = lambda _: None,
    ) -> None:
        self.reader = reader
        self.backend = backend
        self.max_pixels = max_pixels
        self.with_location = with_location
        self.chunk_size = chunk_size
        self.on_failure = on_failure
        self.on_progress = on_progress
        self.stats = RefreshStats()

    async def run(self, sources: Iterable[ImageSource]) -> RefreshStats:
        try:
            for batch in chunked(sources, self.chunk_size):
                read = await asyncio.gather(*(self._read(source) for source in batch))
                documents, hashed = await self._updated([r for r in read if r is not None])
                del read  # the chunk's bytes
                if documents:
                    await self._write(documents, hashed)
                self.on_progress(self.stats)
        finally:
            self.stats.finished = time.perf_counter()
        return self.stats

    async def _read(self, source: ImageSource) -> _Read | None:
        try:
            image = await self.reader.read(source)
            found = await asyncio.to_thread(read_photo, image, self.max_pixels, self.with_location)
        except ItemError as e:
            self._fail(FailedImage(source.uri, "read", e.reason, e.message))
            return None
        self.stats.metadata_warnings += len(found.photo.warnings)
        return _Read(image, found)

    async def _updated(self, read: list[_Read]) -> tuple[list[ImageDocument], set[str]]:
        """The documents to rewrite, and the ids of those among them given a ``phash``."""
        documents: dict[str, ImageDocument] = {}
        unhashed: dict[str, _Read] = {}
        for item in read:
            found = item.found
            if found.sha256 in documents:
                # The same photo twice in the folders: one rewrite is enough.
                self.stats.unchanged += 1
                continue
            document = await self.backend.get(found.sha256)
            if document is None:
                self.stats.not_indexed += 1
            elif document.photo == found.photo and document.phash is not None:
                self.stats.unchanged += 1
            else:
                documents[found.sha256] = replace(document, photo=found.photo)
                if document.phash is None:
                    unhashed[found.sha256] = item
        # Decoded together, as the reads were: the few that need it, in threads.
        hashes = await asyncio.gather(*(self._phash(item) for item in unhashed.values()))
        hashed: set[str] = set()
        for doc_id, phash in zip(unhashed, hashes, strict=True):
            if phash is None:
                del documents[doc_id]  # counted as failed, not written half-refreshed
            else:
                documents[doc_id] = replace(documents[doc_id], phash=phash)
                hashed.add(doc_id)
        return list(documents.values()), hashed

    async def _phash(self, item: _Read) -> str | None:
        try:
            return await asyncio.to_thread(phash_of, item.image, self.max_pixels)
        except ItemError as e:
            self._fail(FailedImage(item.image.source.uri, "read", e.reason, e.message))
            return None

    async def _write(self, documents: list[ImageDocument], hashed: set[str]) -> None:
        async for result in self.backend.index(documents):
            if result.ok:
                self.stats.updated += 1
                if result.id in hashed:
                    self.stats.hashed += 1
            else:
                self._fail(
                    FailedImage(result.uri, "index", "not_indexed", result.error or "not indexed")
                )

    def _fail(self, failure: FailedImage) -> None:
        self.stats.failed += 1
        self.on_failure(failure)
