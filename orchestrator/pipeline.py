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
from typing import Any, TypeVar

from orchestrator.analysis.base import Analysis, AnalysisResult, ModelCaller
from orchestrator.analysis.registry import specs, view_side
from orchestrator.concepts import load_table
from orchestrator.enrichment import Enricher, Enrichment
from orchestrator.errors import ConfigError, ItemError
from orchestrator.fetch import SourceReader
from orchestrator.metrics import Metrics
from orchestrator.preprocess import prepare
from orchestrator.triton.client import Classification, Classifier
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
    #: The analyses to run beside classification (their names; the tagger must have them).
    analyses: frozenset[str] = frozenset()


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
        analyses: Sequence[Analysis] = (),
        caller: ModelCaller | None = None,
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
        #: The analyses this tagger can run (orchestrator.analysis), and how it reaches their
        #: models: the classifier's own pool, so they share its failover and retries.
        self.analyses = {analysis.name: analysis for analysis in analyses}
        self.caller = caller
        # DEEPTAG_INDEX_LOCATION=false: neither the position nor the place leaves the photo.
        self._prepare_one = functools.partial(prepare, with_location=with_location)

    async def _prepare(
        self, source: ImageSource, view_side: int | None = None
    ) -> PreparedImage | ItemFailure:
        try:
            with self.metrics.timed("fetch"):
                image = await self.reader.read(source)
            with self.metrics.timed("decode"):
                # Threads by default: Pillow and hashlib release the GIL while they work.
                loop = asyncio.get_running_loop()
                prepared = await loop.run_in_executor(
                    self.decode_pool,
                    functools.partial(self._prepare_one, view_side=view_side),
                    image,
                    self.max_pixels,
                )
        except ItemError as e:
            return ItemFailure(source=source, error=e)
        if prepared.photo is not None:
            for warning in prepared.photo.warnings:
                field, _, _ = warning.partition(":")
                self.metrics.metadata_warnings.labels(field=field).inc()
        return prepared

    async def prepare_all(
        self, sources: Sequence[ImageSource], analyses: Iterable[str] | None = None
    ) -> list[PreparedImage | ItemFailure]:
        """Read, decode and preprocess; the content hash is known after this step. The
        images are prepared for ``analyses`` (default: every one this tagger runs): OCR, for
        one, reads a larger view of each, from the same decode."""
        side = view_side(specs(self.analyses if analyses is None else analyses))
        return list(await asyncio.gather(*(self._prepare(s, side) for s in sources)))

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
            self.prepare_all(first, options.analyses)
        )
        try:
            while ahead is not None:
                prepared = await ahead
                following = next(pending, None)
                ahead = (
                    None
                    if following is None
                    else asyncio.ensure_future(self.prepare_all(following, options.analyses))
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
        # The analyses run beside classification, not after it: each waits on its own models.
        result, found = await asyncio.gather(
            self._classify_ready(ready, options), self.analyse(ready, options.analyses)
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
                analyses=found[i],
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

    async def _classify_ready(
        self, ready: Sequence[PreparedImage], options: TagOptions
    ) -> Classification:
        with self.metrics.timed("infer"):
            return await self.triton.classify(
                [p.pixels for p in ready],
                options.best,
                options.with_embedding,
                with_probs=options.with_probs,
            )

    async def analyse(
        self, images: Sequence[PreparedImage], names: Iterable[str]
    ) -> list[dict[str, dict[str, Any]]]:
        """Per image, the fields each named analysis found (by analysis name), the analyses
        running side by side; an image's entry for an analysis that found nothing is ``{}``."""
        chosen = [self.analyses[name] for name in self.analyses if name in set(names)]
        found: list[dict[str, dict[str, Any]]] = [{} for _ in images]
        if not chosen or not images:
            return found
        if self.caller is None:
            raise ConfigError("this tagger was built without a way to reach the analyses' models")
        caller = self.caller

        async def run(analysis: Analysis) -> list[AnalysisResult]:
            with self.metrics.timed(analysis.name):
                return await analysis.run(images, caller)

        results = await asyncio.gather(*(run(analysis) for analysis in chosen))
        for analysis, per_image in zip(chosen, results, strict=True):
            for fields, result in zip(found, per_image, strict=True):
                fields[analysis.name] = result.to_fields()
        return found
