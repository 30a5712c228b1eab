"""A search backend that rides out outages, for bulk runs.

Wraps any :class:`SearchBackend`: a call that fails because the backend is unreachable or
overloaded (:class:`SearchBackendUnavailable`) is retried with backoff for up to the window,
and documents a bulk call could not deliver for that reason are sent again rather than
reported as failed. Documents keep their content-hash ids, so one sent twice is stored once.
The HTTP server does not use this: its requests answer 503 at once instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from orchestrator.errors import SearchBackendUnavailable
from orchestrator.retry import RetryPolicy, Waiting, not_waiting, ride_out
from orchestrator.search.base import (
    NO_OPTIONS,
    BackendKind,
    ImageDocument,
    IndexResult,
    Location,
    SearchBackend,
    SearchOptions,
    SearchPage,
    VectorField,
)

T = TypeVar("T")


class OutageTolerantBackend:
    def __init__(
        self, inner: SearchBackend, policy: RetryPolicy, on_wait: Waiting = not_waiting
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.on_wait = on_wait
        self.kind: BackendKind = inner.kind

    async def _ride(self, call: Callable[[], Awaitable[T]]) -> T:
        return await ride_out(call, self.policy, self.on_wait)

    async def ensure_index(self) -> None:
        await self._ride(self.inner.ensure_index)

    async def existing_ids(self, ids: Sequence[str], model: str | None = None) -> set[str]:
        return await self._ride(lambda: self.inner.existing_ids(ids, model))

    async def index(self, documents: Sequence[ImageDocument]) -> AsyncIterator[IndexResult]:
        """Every document's result; those the backend could not take now are resent until it
        takes them or the window passes (then :class:`OutageTooLong`, none reported failed)."""
        settled: list[IndexResult] = []
        pending = list(documents)

        async def attempt() -> None:
            nonlocal pending
            by_id = {d.id: d for d in pending}
            again: list[ImageDocument] = []
            done: list[IndexResult] = []
            last_error = ""
            # Should the call itself fail midway, every pending document is sent again.
            async for result in self.inner.index(pending):
                if not result.ok and result.retryable and result.id in by_id:
                    again.append(by_id[result.id])
                    last_error = result.error or "not indexed"
                else:
                    done.append(result)
            settled.extend(done)
            pending = again
            if again:
                raise SearchBackendUnavailable(
                    f"{len(again)} of {len(by_id)} documents not taken: {last_error}"
                )

        await self._ride(attempt)
        for result in settled:
            yield result

    async def search(
        self, query: str, size: int = 10, offset: int = 0, options: SearchOptions = NO_OPTIONS
    ) -> SearchPage:
        return await self._ride(lambda: self.inner.search(query, size, offset, options))

    async def knn(
        self,
        vector: Sequence[float],
        k: int = 10,
        exclude_id: str | None = None,
        field: VectorField = "embedding",
        *,
        filter: str | None = None,
        min_score: float | None = None,
    ) -> SearchPage:
        return await self._ride(
            lambda: self.inner.knn(vector, k, exclude_id, field, filter=filter, min_score=min_score)
        )

    async def similar_pairs(self, min_score: float, k: int = 10) -> list[tuple[str, str, float]]:
        return await self._ride(lambda: self.inner.similar_pairs(min_score, k))

    async def count_with(self, field: VectorField) -> int:
        return await self._ride(lambda: self.inner.count_with(field))

    async def count_with_photo(self) -> int:
        return await self._ride(self.inner.count_with_photo)

    async def delete(self, ids: Sequence[str]) -> set[str]:
        # Deleting an id twice is harmless, but the second try would not report it: keep
        # what the first try removed, should it have gone through before failing.
        return await self._ride(lambda: self.inner.delete(ids))

    async def set_locations(self, doc_id: str, locations: Sequence[Location]) -> bool:
        return await self._ride(lambda: self.inner.set_locations(doc_id, locations))

    async def located_under(self, prefix: str) -> AsyncIterator[tuple[str, tuple[Location, ...]]]:
        # Not retried: a walk restarted midway would yield its first pages twice; the
        # caller's own retry (a later sync) starts it afresh.
        async for entry in self.inner.located_under(prefix):
            yield entry

    async def get(self, doc_id: str) -> ImageDocument | None:
        return await self._ride(lambda: self.inner.get(doc_id))

    async def count(self) -> int:
        return await self._ride(self.inner.count)

    async def close(self) -> None:
        await self.inner.close()
