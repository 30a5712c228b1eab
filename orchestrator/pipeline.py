"""Sources in, predictions out: read, decode and preprocess each image, classify in batches.

One bad image becomes an :class:`ItemFailure` in its place; it never fails the others.
Sources are processed in chunks (fetch, decode, classify, then only the small predictions are
kept), so memory follows the chunk size rather than the number of sources, and a cancelled
call stops after the chunk in flight instead of leaving the rest queued.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

from orchestrator.concepts import load_table
from orchestrator.enrichment import Enricher, Enrichment
from orchestrator.errors import ItemError
from orchestrator.fetch import SourceReader
from orchestrator.metrics import Metrics
from orchestrator.preprocess import prepare
from orchestrator.triton.client import Classifier
from orchestrator.types import ImageSource, ItemFailure, Outcome, Prediction, PreparedImage

T = TypeVar("T")
DEFAULT_CHUNK_SIZE = 32


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last one shorter), in order (pure)."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class TagOptions:
    best: int = 5
    confidence_threshold: float | None = None
    with_embedding: bool = False
    #: Ask for every probability, to add concepts and the semantic vector to each prediction.
    with_probs: bool = False


class Tagger:
    def __init__(
        self,
        reader: SourceReader,
        triton: Classifier,
        max_pixels: int,
        metrics: Metrics | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        enricher: Enricher | None = None,
        decode_pool: Executor | None = None,
        with_location: bool = True,
    ) -> None:
        self.reader = reader
        #: Where decoding runs: one thread per core, or ``DEEPTAG_DECODE_WORKERS`` processes;
        #: None: asyncio's default threads.
        self.decode_pool = decode_pool
        self.triton = triton
        self.max_pixels = max_pixels
        self.metrics = metrics or Metrics()
        self.chunk_size = chunk_size
        # Concepts need only the packaged table; semantic vectors need the exported space.
        self.enricher = enricher or Enricher(load_table())
        # DEEPTAG_INDEX_LOCATION=false: neither the position nor the place leaves the photo.
        self._prepare_one = functools.partial(prepare, with_location=with_location)

    async def _prepare(self, source: ImageSource) -> PreparedImage | ItemFailure:
        try:
            with self.metrics.timed("fetch"):
                image = await self.reader.read(source)
            with self.metrics.timed("decode"):
                # Threads by default: Pillow and hashlib release the GIL while they work.
                loop = asyncio.get_running_loop()
                prepared = await loop.run_in_executor(
                    self.decode_pool, self._prepare_one, image, self.max_pixels
                )
        except ItemError as e:
            return ItemFailure(source=source, error=e)
        if prepared.photo is not None:
            for warning in prepared.photo.warnings:
                field, _, _ = warning.partition(":")
                self.metrics.metadata_warnings.labels(field=field).inc()
        return prepared

    async def prepare_all(
        self, sources: Sequence[ImageSource]
    ) -> list[PreparedImage | ItemFailure]:
        """Read, decode and preprocess; the content hash is known after this step."""
        return list(await asyncio.gather(*(self._prepare(s) for s in sources)))

    async def tag(self, sources: Sequence[ImageSource], options: TagOptions) -> list[Outcome]:
        """Predictions in the order of ``sources``, ``chunk_size`` images at a time.

        The next chunk is read while the current one is classified, so at most two chunks of
        pixels are held at once. Cancelling the call cancels the reads and the Triton call in
        flight, and nothing further is started.
        """
        outcomes: list[Outcome] = []
        pending = chunked(sources, self.chunk_size)
        first = next(pending, None)
        if first is None:
            return outcomes
        ahead: asyncio.Future[list[PreparedImage | ItemFailure]] | None = asyncio.ensure_future(
            self.prepare_all(first)
        )
        try:
            while ahead is not None:
                prepared = await ahead
                following = next(pending, None)
                ahead = (
                    None
                    if following is None
                    else asyncio.ensure_future(self.prepare_all(following))
                )
                outcomes.extend(await self.classify(prepared, options))
                # Only the predictions stay; the chunk's pixels can be freed now.
                del prepared
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
        return outcomes

    async def classify(
        self, prepared: Sequence[PreparedImage | ItemFailure], options: TagOptions
    ) -> list[Outcome]:
        """Classify the prepared images together; failures keep their place."""
        ready = [p for p in prepared if isinstance(p, PreparedImage)]
        with self.metrics.timed("infer"):
            result = await self.triton.classify(
                [p.pixels for p in ready],
                options.best,
                options.with_embedding,
                with_probs=options.with_probs,
            )
        extras: list[Enrichment] = []
        if result.probs is not None and self.enricher.fits(result.probs):
            extras = self.enricher.apply(result.probs, result.labels)
        predictions = iter(
            Prediction(
                source=image.source,
                labels=tuple(
                    label
                    for label in labels
                    if options.confidence_threshold is None
                    or label.score >= options.confidence_threshold
                ),
                width=image.width,
                height=image.height,
                sha256=image.sha256,
                embedding=None if result.embeddings is None else result.embeddings[i],
                concepts=extras[i].concepts if extras else None,
                semantic=extras[i].semantic if extras else None,
                photo=image.photo,
                size=image.size,
                mtime=image.mtime,
                phash=image.phash,
            )
            for i, (image, labels) in enumerate(zip(ready, result.labels, strict=True))
        )
        outcomes: list[Outcome] = [
            next(predictions) if isinstance(p, PreparedImage) else p for p in prepared
        ]
        for outcome in outcomes:
            if isinstance(outcome, ItemFailure):
                self.metrics.images.labels(outcome="failed").inc()
                self.metrics.item_errors.labels(reason=outcome.reason).inc()
            else:
                self.metrics.images.labels(outcome="tagged").inc()
        return outcomes
