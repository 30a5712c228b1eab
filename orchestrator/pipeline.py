"""Sources in, predictions out: read, decode and preprocess each image, classify in batches.

One bad image becomes an :class:`ItemFailure` in its place; it never fails the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import ItemError
from orchestrator.fetch import SourceReader
from orchestrator.metrics import Metrics
from orchestrator.preprocess import prepare
from orchestrator.triton.client import TritonClient
from orchestrator.types import ImageSource, ItemFailure, Outcome, Prediction, PreparedImage


@dataclass(frozen=True)
class TagOptions:
    best: int = 5
    confidence_threshold: float | None = None
    with_embedding: bool = False


class Tagger:
    def __init__(
        self,
        reader: SourceReader,
        triton: TritonClient,
        max_pixels: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.reader = reader
        self.triton = triton
        self.max_pixels = max_pixels
        self.metrics = metrics or Metrics()

    async def _prepare(self, source: ImageSource) -> PreparedImage | ItemFailure:
        try:
            with self.metrics.timed("fetch"):
                image = await self.reader.read(source)
            with self.metrics.timed("decode"):
                return await asyncio.to_thread(prepare, image, self.max_pixels)
        except ItemError as e:
            return ItemFailure(source=source, error=e)

    async def prepare_all(
        self, sources: Sequence[ImageSource]
    ) -> list[PreparedImage | ItemFailure]:
        """Read, decode and preprocess; the content hash is known after this step."""
        return list(await asyncio.gather(*(self._prepare(s) for s in sources)))

    async def tag(self, sources: Sequence[ImageSource], options: TagOptions) -> list[Outcome]:
        """Predictions in the order of ``sources``."""
        return await self.classify(await self.prepare_all(sources), options)

    async def classify(
        self, prepared: Sequence[PreparedImage | ItemFailure], options: TagOptions
    ) -> list[Outcome]:
        """Classify the prepared images in one batch; failures keep their place."""
        ready = [p for p in prepared if isinstance(p, PreparedImage)]
        with self.metrics.timed("infer"):
            result = await self.triton.classify(
                [p.pixels for p in ready], options.best, options.with_embedding
            )
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
