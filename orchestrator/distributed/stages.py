"""The stages of a Ray run, as the callable classes Ray Data runs in actor pools.

Each actor builds its clients once (a Ray actor is a long-lived process) and runs the same
stage code as the single-process :class:`orchestrator.indexing.Indexer`: ``Tagger.prepare_all``
to read and decode, ``backend.existing_ids`` to skip what is indexed, ``Tagger.classify`` and
``document_from_prediction`` to tag, ``backend.index`` to write. The clients are asyncio ones,
so each actor owns one event loop, made once and run for each batch.

Settings travel as ``Settings.model_dump()`` and are rebuilt here without reading the worker's
environment: every worker runs with the driver's settings.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy.typing as npt

from orchestrator.analysis.registry import enabled_names
from orchestrator.distributed.rows import (
    DECODED_COLUMNS,
    OUTCOME_COLUMNS,
    TAGGED_COLUMNS,
    Batch,
    Status,
    decoded_row,
    prepared_of,
    source_of,
    to_batch,
    to_rows,
)
from orchestrator.enrichment import Enricher
from orchestrator.fetch import FetchPolicy, SourceReader, build_http_client
from orchestrator.pipeline import Tagger, TagOptions
from orchestrator.retry import RetryPolicy
from orchestrator.runtime import triton_pool
from orchestrator.search.base import ImageDocument, IndexResult, SearchBackend
from orchestrator.search.documents import (
    document_from_prediction,
    document_from_source,
    document_to_source,
)
from orchestrator.search.factory import open_backend
from orchestrator.settings import Settings
from orchestrator.triton.endpoint import Endpoint
from orchestrator.types import Prediction

T = TypeVar("T")

#: Ids the screen remembers having let through. Those it has forgotten are older than
#: anything still on its way to the writers (Ray Data's backpressure bounds what is buffered
#: between stages far below this: it would be 15 GB of pixels), so Elasticsearch already
#: reports them as indexed, as in the single-process Indexer.
REMEMBERED_IDS = 100_000


class _Stage:
    """An actor's settings, event loop and the clients to close when Ray Data lets it go."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = Settings.model_validate(dict(settings))
        self.retry = RetryPolicy(self.settings.retry_window_s)
        self._loop = asyncio.new_event_loop()
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(work)

    def _reader(self) -> SourceReader:
        """A reader as ``deeptag index`` has one: any path (the user's own), URLs bounded."""
        http = build_http_client(self.settings.fetch_timeout_s)
        self._closers.append(http.aclose)
        policy = FetchPolicy(
            max_bytes=self.settings.max_image_bytes,
            allow_private=self.settings.fetch_allow_private,
            path_roots=None,
            max_redirects=self.settings.fetch_max_redirects,
        )
        return SourceReader(http, policy, concurrency=self.settings.fetch_concurrency)

    async def _backend(self, writer: bool) -> SearchBackend:
        backend = await open_backend(self.settings, "es", writer=writer, retry=self.retry)
        self._closers.append(backend.close)
        return backend

    def __del__(self) -> None:
        # Ray Data drops the actor's UDF at the end of a run; a killed actor skips this.
        loop = getattr(self, "_loop", None)
        if loop is None or loop.is_closed():
            return
        try:
            for close in reversed(self._closers):
                loop.run_until_complete(close())
        except Exception:  # the process is ending: nothing left to report to
            pass
        finally:
            loop.close()


class Decode(_Stage):
    """Sources in, model inputs and content hashes out (CPU-bound: one CPU each)."""

    def __init__(self, settings: Mapping[str, Any], endpoints: Sequence[str]) -> None:
        super().__init__(settings)
        # Never connected: this Tagger only reads and decodes; Triton is the next stage's.
        triton = triton_pool(self.settings, tuple(Endpoint.parse(e) for e in endpoints))
        self.tagger = Tagger(
            self._reader(),
            triton,
            self.settings.max_image_pixels,
            with_location=self.settings.index_location,
        )
        # Prepared for the analyses the run has (OCR reads a larger view): their own stages.
        self.analyses = enabled_names(self.settings)

    def __call__(self, batch: Mapping[str, npt.NDArray[Any]]) -> Batch:
        sources = [source_of(row) for row in to_rows(batch)]
        prepared = self._run(self.tagger.prepare_all(sources, self.analyses))
        return to_batch([decoded_row(p) for p in prepared], DECODED_COLUMNS)


class Screen(_Stage):
    """Marks images already indexed, or seen earlier in this run, as skipped: before inference.

    One actor for the whole run, fed in source order, so the first copy of a photo is the one
    indexed, as in the single-process run.
    """

    def __init__(self, settings: Mapping[str, Any], reindex: bool) -> None:
        super().__init__(settings)
        self.reindex = reindex
        self.backend = self._run(self._backend(writer=False))
        self._recent: deque[frozenset[str]] = deque()
        self._remembered = 0

    def __call__(self, batch: Mapping[str, npt.NDArray[Any]]) -> Batch:
        rows = to_rows(batch)
        ready = [row for row in rows if row["status"] == Status.READY]
        ids = [row["sha256"] for row in ready]
        already = set() if self.reindex or not ids else self._run(self.backend.existing_ids(ids))
        fresh: set[str] = set()
        for row in ready:
            doc_id = row["sha256"]
            if doc_id in already or doc_id in fresh or self._seen(doc_id):
                row.update(status=Status.SKIPPED.value, pixels=b"", view=b"", view_shape="")
            else:
                fresh.add(doc_id)
        self._remember(frozenset(fresh))
        return to_batch(rows, DECODED_COLUMNS)

    def _seen(self, doc_id: str) -> bool:
        return any(doc_id in ids for ids in self._recent)

    def _remember(self, ids: frozenset[str]) -> None:
        self._recent.append(ids)
        self._remembered += len(ids)
        while self._remembered > REMEMBERED_IDS and len(self._recent) > 1:
            self._remembered -= len(self._recent.popleft())


class Classify(_Stage):
    """Model inputs in, documents (as JSON) out: Triton, then concepts and semantic vectors."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        endpoints: Sequence[str],
        enricher: Enricher,
        best: int,
        metadata: Mapping[str, Any],
    ) -> None:
        super().__init__(settings)
        pool = triton_pool(
            self.settings, tuple(Endpoint.parse(e) for e in endpoints), retry=self.retry
        )
        self.model = self._run(pool.connect())
        self._closers.append(pool.close)
        # The driver's enricher: documents match the single-process run's whatever model
        # repository (or none) this worker's machine has.
        self.tagger = Tagger(
            self._reader(), pool, self.settings.max_image_pixels, enricher=enricher
        )
        # Every probability too: concepts and the semantic vector are made from them.
        self.options = TagOptions(best=best, with_embedding=True, with_probs=True)
        self.metadata = dict(metadata)

    def __call__(self, batch: Mapping[str, npt.NDArray[Any]]) -> Batch:
        rows = to_rows(batch)
        ready = [row for row in rows if row["status"] == Status.READY]
        if ready:
            outcomes = self._run(
                self.tagger.classify([prepared_of(r) for r in ready], self.options)
            )
            for row, outcome in zip(ready, outcomes, strict=True):
                assert isinstance(outcome, Prediction)  # every input was a decoded image
                document = document_from_prediction(outcome, self.model, self.metadata)
                # What the analysis stages before this one found.
                found = json.loads(row.get("analyses") or "{}")
                source = document_to_source(replace(document, analyses=found))
                row.update(status=Status.TAGGED.value, document=json.dumps(source))
        for row in rows:
            row.setdefault("document", "")
        return to_batch(rows, TAGGED_COLUMNS)


class Write(_Stage):
    """Documents in, one outcome per row out; a refused document is an "index" failure."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.backend = self._run(self._backend(writer=True))

    def __call__(self, batch: Mapping[str, npt.NDArray[Any]]) -> Batch:
        rows = to_rows(batch)
        tagged = [row for row in rows if row["status"] == Status.TAGGED]
        if tagged:
            documents = [
                document_from_source(row["sha256"], json.loads(row["document"])) for row in tagged
            ]
            results = self._run(self._index(documents))
            for row in tagged:
                result = results.get(row["sha256"])
                if result is not None and result.ok:
                    row["status"] = Status.INDEXED.value
                else:
                    error = (result.error if result is not None else None) or "not indexed"
                    row.update(
                        status=Status.FAILED.value, stage="index", reason="not_indexed", error=error
                    )
        return to_batch(rows, OUTCOME_COLUMNS)

    async def _index(self, documents: Sequence[ImageDocument]) -> dict[str, IndexResult]:
        return {result.id: result async for result in self.backend.index(documents)}
