"""How ``deeptag sync`` and the watcher index new content: `deeptag index`'s indexer, with
Triton connected (or started) on first need only: a dry run or an unchanged folder needs none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from orchestrator import collect
from orchestrator.errors import OutageTooLong
from orchestrator.indexing import FailedImage, Indexer, IndexOptions, batches_in_flight
from orchestrator.metrics import Metrics
from orchestrator.pipeline import Tagger
from orchestrator.retry import NO_RETRY, RetryPolicy, Waiting, not_waiting
from orchestrator.runtime import tagging_session, triton_for
from orchestrator.search.base import SearchBackend
from orchestrator.settings import Settings
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.model_info import ModelInfo


class LocalIndexing:
    """Indexes paths with `deeptag index`'s indexer; Triton is started on the first call only
    (a dry run or an unchanged folder needs none) and kept until :meth:`aclose`."""

    def __init__(
        self,
        settings: Settings,
        backend: SearchBackend,
        on_failure: Callable[[FailedImage], None],
        retry: RetryPolicy = NO_RETRY,
        on_wait: Waiting = not_waiting,
        *,
        endpoints: tuple[Endpoint, ...] | None = None,
        path_roots: tuple[Path, ...] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.on_failure = on_failure
        self.retry = retry
        self.on_wait = on_wait
        #: A server's Triton (else one is found or started); the folders it may read.
        self.endpoints = endpoints
        self.path_roots = path_roots
        self.metrics = metrics
        self._stack = AsyncExitStack()
        self._started: tuple[Tagger, ModelInfo, IndexOptions] | None = None

    async def _start(self) -> tuple[Tagger, ModelInfo, IndexOptions]:
        endpoints = self.endpoints
        if endpoints is None:
            endpoints = self._stack.enter_context(triton_for(self.settings)).endpoints
        session = await self._stack.enter_async_context(
            tagging_session(
                self.settings,
                endpoints,
                path_roots=self.path_roots,
                metrics=self.metrics,
                retry=self.retry,
                on_wait=self.on_wait,
            )
        )
        options = IndexOptions(
            chunk_size=self.settings.infer_batch_size,
            in_flight=batches_in_flight(self.settings.index_in_flight, session.model.instances),
        )
        return session.tagger, session.model, options

    async def __call__(self, paths: Sequence[str]) -> None:
        if self._started is None:
            self._started = await self._start()
        # A fresh indexer per batch: its statistics and duplicate memory are per run.
        tagger, model, options = self._started
        indexer = Indexer(tagger, model, self.backend, options, self.on_failure)
        stats = await indexer.run(collect.expand(paths))
        if stats.stopped_by is not None:
            raise OutageTooLong(stats.stopped_by)

    async def aclose(self) -> None:
        await self._stack.aclose()
