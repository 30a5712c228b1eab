"""Bulk indexing: a stream of sources in, documents in the search backend out.

Three stages overlap: while one chunk is written to the backend, the next is classified by
Triton and the one after is read, decoded and hashed. Queues are bounded, so memory stays flat
however many images flow through. An image whose content hash is already indexed is skipped
before inference, which is what makes an interrupted run resumable without duplicates; found
at another path, that path is recorded among the document's locations (still no inference).

With a trained model (``deeptag index --model NAME``) the same pixels go to it too, and its
top categories are stored beside ImageNet's. An image indexed without that model's categories
is then tagged again (no ``--reindex`` needed), so adding a model to a collection is one run.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from orchestrator.errors import OutageTooLong
from orchestrator.indexing_analyses import (
    Found,
    analyse_lacking,
    lacking_images,
    with_analyses,
)
from orchestrator.indexing_metadata import with_metadata
from orchestrator.pipeline import Tagger, TagOptions, chunked
from orchestrator.search.base import CustomCategory, ImageDocument, Location, SearchBackend
from orchestrator.search.documents import document_from_prediction, with_locations
from orchestrator.triton.client import Classifier
from orchestrator.triton.model_info import ModelInfo
from orchestrator.types import ImageSource, ItemFailure, Prediction, PreparedImage

T = TypeVar("T")

#: Chunks read ahead while others are classified and written.
QUEUED_CHUNKS = 2
#: A trained model's categories scoring below this are noise, not worth storing or finding.
CUSTOM_MIN_SCORE = 0.05


@dataclass(frozen=True)
class IndexOptions:
    reindex: bool = False
    chunk_size: int = 32
    #: Chunks classified at once: a Triton with several model instances (or a pool of several
    #: Tritons) runs them side by side, and one chunk's request is on the wire while another
    #: is computed.
    in_flight: int = 2
    best: int = 5
    metadata: Mapping[str, Any] = field(default_factory=dict)


def batches_in_flight(setting: int, instances: int, least: int = 2) -> int:
    """Batches to keep in Triton: ``DEEPTAG_INDEX_IN_FLIGHT`` if set, else one per model
    instance, and at least ``least``: with one instance, the next batch travels while this
    one runs (pure)."""
    return setting or max(least, instances)


@dataclass(frozen=True)
class FailedImage:
    """One line of the failure log."""

    source: str
    stage: str  # "read" (fetch/decode) or "index" (the backend refused it)
    reason: str
    error: str


@dataclass
class IndexStats:
    indexed: int = 0
    skipped: int = 0
    #: Images whose content was indexed at another path: that path was added to its document.
    copies: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    #: Why the run stopped before the end (an outage longer than the retry window), if it did.
    stopped_by: str | None = None
    #: Metadata fields left out of the photos read because they were unreadable or absurd.
    metadata_warnings: int = 0
    #: Images indexed before, given only the analyses they lacked (``--ocr`` on an indexed
    #: folder); they are counted among ``skipped`` or ``copies`` too.
    analysed: int = 0
    #: Images indexed before, given the run's ``--meta`` (counted among ``skipped`` too).
    relabelled: int = 0

    @property
    def done(self) -> int:
        return self.indexed + self.skipped + self.copies + self.failed

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def images_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class _Chunk:
    fresh: list[PreparedImage]
    #: Images whose content is indexed (or on its way) under another image of the run or an
    #: earlier run: their places, recorded by the writer once that document is written.
    copies: list[tuple[str, Location]] = field(default_factory=list)
    #: Images indexed before that lack some of the run's analyses, with the ones they lack.
    lacking: list[tuple[PreparedImage, frozenset[str]]] = field(default_factory=list)


#: What the writer stage receives: documents to write, copies to record on documents, and
#: what the analyses found in documents indexed before (by id).
_Writes = tuple[list[ImageDocument], list[tuple[str, Location]], dict[str, Found]]


def _place_of(image: PreparedImage) -> Location:
    return Location(image.source.uri, image.size, image.mtime)


@dataclass(frozen=True)
class RecordedCopies:
    added: int  # places new to their documents, now recorded
    known: int  # places their documents already had: nothing to do
    waiting: tuple[tuple[str, Location], ...]  # copies of documents not (yet) indexed


async def record_copies(
    backend: SearchBackend, copies: Iterable[tuple[str, Location]]
) -> RecordedCopies:
    """Add each ``(document id, place)`` to its document, once per document, without
    inference: the same photo found at another path or URL (both indexing engines use it)."""
    places: dict[str, list[Location]] = {}
    for doc_id, place in copies:
        places.setdefault(doc_id, []).append(place)
    added = known = 0
    waiting: list[tuple[str, Location]] = []
    for doc_id, found in places.items():
        document = await backend.get(doc_id)
        if document is None:
            waiting.extend((doc_id, place) for place in found)
            continue
        have = {place.uri for place in document.places}
        new = list({p.uri: p for p in found if p.uri not in have}.values())
        known += len(found) - len(new)
        if new and await backend.set_locations(doc_id, (*document.places, *new)):
            added += len(new)
    return RecordedCopies(added, known, tuple(waiting))


async def _while_running(operation: Awaitable[T], stage: asyncio.Task[None]) -> T | None:
    """``operation``'s result; should ``stage`` (the task at the queue's other end) end first,
    ``operation`` is dropped and what stopped ``stage`` is re-raised (None if nothing did)."""
    pending = asyncio.ensure_future(operation)
    await asyncio.wait({pending, stage}, return_when=asyncio.FIRST_COMPLETED)
    if pending.done():
        return pending.result()
    pending.cancel()
    stage.result()
    return None


class Indexer:
    """Runs one bulk indexing job; ``stop()`` ends it after the chunks already read.

    Its Triton client and backend decide how long an outage is waited out; one that lasts
    longer (:class:`OutageTooLong`) ends the run early, with ``stats.stopped_by`` saying why.
    """

    def __init__(
        self,
        tagger: Tagger,
        model: ModelInfo,
        backend: SearchBackend,
        options: IndexOptions,
        on_failure: Callable[[FailedImage], None] = lambda _: None,
        on_progress: Callable[[IndexStats], None] = lambda _: None,
        custom: Classifier | None = None,
    ) -> None:
        self.tagger = tagger
        #: A trained model (connected), whose categories are stored under its name.
        self.custom = custom
        self.model = model
        self.backend = backend
        self.options = options
        self.on_failure = on_failure
        self.on_progress = on_progress
        self.stats = IndexStats()
        self._stopping = asyncio.Event()
        # Ids on their way to the backend: the same photo twice in a folder is indexed once.
        # The chunks that passed the duplicate check but may not be committed yet are the
        # queued ones, those being classified, the one waiting for the writer, the one being
        # written, and one more for margin. Older ones the backend itself reports as existing,
        # so remembering only these keeps memory flat over millions of images.
        self._uncommitted: deque[frozenset[str]] = deque(
            maxlen=QUEUED_CHUNKS + options.in_flight + 3
        )
        # Copies whose document was still on its way when their chunk was written: at most
        # the images of those in-flight chunks.
        self._late_copies: list[tuple[str, Location]] = []

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopped_early(self) -> bool:
        return self._stopping.is_set()

    async def run(self, sources: Iterable[ImageSource]) -> IndexStats:
        """Three stages, each on its own chunk: read (fetch, decode, hash, skip what is
        indexed), classify (Triton), write (the backend's bulk call or commit)."""
        queue: asyncio.Queue[_Chunk | None] = asyncio.Queue(maxsize=QUEUED_CHUNKS)
        to_write: asyncio.Queue[_Writes | None] = asyncio.Queue(maxsize=1)
        classifying = max(1, self.options.in_flight)
        reader = asyncio.create_task(self._read(sources, queue, classifying))
        writer = asyncio.create_task(self._write_all(to_write))
        classifiers = [
            asyncio.create_task(self._classify_all(queue, reader, to_write, writer))
            for _ in range(classifying)
        ]
        try:
            # The first classifier to fail (an outage too long) ends the run.
            for done in asyncio.as_completed(classifiers):
                await done
            await _while_running(to_write.put(None), writer)
            await writer
            await self._record_copies([], final=True)  # copies written before their document
        except OutageTooLong as e:
            # What was written stays written (ids are content hashes): a re-run resumes.
            self.stats.stopped_by = e.message
            self._stopping.set()
        finally:
            tasks = (reader, *classifiers, writer)
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.stats.finished = time.perf_counter()
        return self.stats

    async def _read(
        self, sources: Iterable[ImageSource], queue: asyncio.Queue[_Chunk | None], consumers: int
    ) -> None:
        for batch in chunked(sources, self.options.chunk_size):
            if self._stopping.is_set():
                break
            await queue.put(await self._prepare(batch))
        for _ in range(consumers):  # an end mark for each classifier
            await queue.put(None)

    async def _classify_all(
        self,
        queue: asyncio.Queue[_Chunk | None],
        reader: asyncio.Task[None],
        to_write: asyncio.Queue[_Writes | None],
        writer: asyncio.Task[None],
    ) -> None:
        while (chunk := await _while_running(queue.get(), reader)) is not None:
            if chunk.fresh or chunk.copies:
                documents = await self._classify(chunk) if chunk.fresh else []
                found = await analyse_lacking(self.tagger, chunk.lacking)
                await _while_running(to_write.put((documents, chunk.copies, found)), writer)

    async def _prepare(self, batch: list[ImageSource]) -> _Chunk:
        prepared = await self.tagger.prepare_all(batch)
        images: list[PreparedImage] = []
        for item in prepared:
            if isinstance(item, ItemFailure):
                self._fail(FailedImage(item.source.uri, "read", item.reason, item.error.message))
            else:
                images.append(item)
                if item.photo is not None:
                    self.stats.metadata_warnings += len(item.photo.warnings)
        already = (
            set()
            if self.options.reindex
            else await self.backend.existing_ids(
                [image.sha256 for image in images],
                model=None if self.custom is None else self.custom.model,
            )
        )
        fresh: dict[str, PreparedImage] = {}
        copies: list[tuple[str, Location]] = []
        for image in images:
            if image.sha256 in already or image.sha256 in fresh or self._in_flight(image.sha256):
                # Whether this place is new is known once the document is: the writer says.
                copies.append((image.sha256, _place_of(image)))
            else:
                fresh[image.sha256] = image
        self._uncommitted.append(frozenset(fresh))
        self.on_progress(self.stats)
        names = frozenset(self.tagger.analyses)
        lacks = await lacking_images(self.backend, images, already, names)
        return _Chunk(list(fresh.values()), copies, lacks)

    def _in_flight(self, doc_id: str) -> bool:
        return any(doc_id in ids for ids in self._uncommitted)

    async def _classify(self, chunk: _Chunk) -> list[ImageDocument]:
        # Every probability too: concepts and the semantic vector are made from them.
        options = TagOptions(
            best=self.options.best,
            with_embedding=True,
            with_probs=True,
            analyses=frozenset(self.tagger.analyses),
        )
        outcomes = await self.tagger.classify(chunk.fresh, options)
        custom = await self._custom_categories(chunk.fresh)
        documents = [
            document_from_prediction(
                outcome, self.model, self.options.metadata, custom=custom.get(outcome.sha256, ())
            )
            for outcome in outcomes
            if isinstance(outcome, Prediction)
        ]
        if self.options.reindex or self.custom is not None:
            # Tagged again, the document is replaced whole: it keeps every place it had.
            documents = [await self._keeping_places(d) for d in documents]
        return documents

    async def _keeping_places(self, document: ImageDocument) -> ImageDocument:
        before = await self.backend.get(document.id)
        if before is None:
            return document
        known = {place.uri for place in before.places}
        added = tuple(p for p in document.places if p.uri not in known)
        # The place just read comes first: its size and mtime are the current ones.
        return with_locations(document, (*added, *before.places) if added else before.places)

    async def _write_all(self, queue: asyncio.Queue[_Writes | None]) -> None:
        while (writes := await queue.get()) is not None:
            documents, copies, found = writes
            if documents:
                await self._write(documents)
            if found:
                await self._write(await with_analyses(self.backend, found), "analysed")
            await self._record_copies(copies)
            if self.options.metadata and copies:
                ids = (doc_id for doc_id, _ in copies)
                relabelled = await with_metadata(self.backend, ids, self.options.metadata)
                await self._write(relabelled, "relabelled")

    async def _record_copies(self, copies: list[tuple[str, Location]], final: bool = False) -> None:
        """Add each copy's place to its document, once per document; a copy of a document not
        written yet (still being classified) waits for a later write."""
        pending = [*self._late_copies, *copies]
        self._late_copies = []
        recorded = await record_copies(self.backend, pending)
        if not final:  # their documents may still be on their way
            self._late_copies = list(recorded.waiting)
        else:
            self.stats.skipped += len(recorded.waiting)  # its document failed, and so would it
        self.stats.skipped += recorded.known
        self.stats.copies += recorded.added
        self.on_progress(self.stats)

    async def _write(
        self,
        documents: list[ImageDocument],
        counted: Literal["indexed", "analysed", "relabelled"] = "indexed",
    ) -> None:
        if not documents:
            return
        async for result in self.backend.index(documents):
            if result.ok and counted == "analysed":
                self.stats.analysed += 1
            elif result.ok and counted == "relabelled":
                self.stats.relabelled += 1
            elif result.ok:
                self.stats.indexed += 1
            else:
                self._fail(
                    FailedImage(result.uri, "index", "not_indexed", result.error or "not indexed")
                )
        self.on_progress(self.stats)

    async def _custom_categories(
        self, images: list[PreparedImage]
    ) -> dict[str, tuple[CustomCategory, ...]]:
        """The trained model's top categories of each image (by content hash)."""
        if self.custom is None:
            return {}
        info = self.custom.info
        best = min(self.options.best, info.num_classes) if info else self.options.best
        result = await self.custom.classify([p.pixels for p in images], best, False)
        name = self.custom.model
        found: dict[str, tuple[CustomCategory, ...]] = {}
        for image, labels in zip(images, result.labels, strict=True):
            # A document is replaced whole: other models' categories it had are kept.
            before = await self.backend.get(image.sha256)
            kept = tuple(c for c in before.custom if c.model != name) if before else ()
            found[image.sha256] = kept + tuple(
                CustomCategory(name, label.category, round(label.score, 6))
                for label in labels
                if label.score >= CUSTOM_MIN_SCORE
            )
        return found

    def _fail(self, failure: FailedImage) -> None:
        self.stats.failed += 1
        self.on_failure(failure)
