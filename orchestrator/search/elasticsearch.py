"""Elasticsearch (8.x API) as the search backend, through the official async client."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.errors import InvalidQuery, SearchBackendError, SearchBackendUnavailable
from orchestrator.search import es_locations, es_pairs
from orchestrator.search.base import (
    DEFAULT_QUERY_FIELDS,
    NO_OPTIONS,
    VECTOR_DIMS,
    BackendKind,
    ImageDocument,
    IndexResult,
    Location,
    SearchHit,
    SearchOptions,
    SearchPage,
    VectorField,
)
from orchestrator.search.documents import document_from_source, document_to_source
from orchestrator.search.es_errors import (
    describe,
    describe_item_error,
    error_type,
    is_transient_error,
    item_is_transient,
)
from orchestrator.search.es_knn import cosine_page, filter_words, knn_section, refused_filter
from orchestrator.search.es_mapping import added_fields, index_mapping
from orchestrator.search.es_query import search_body
from orchestrator.search.facets import facets_from
from orchestrator.search.limits import check_k, check_query, check_window, shown
from orchestrator.search.query_errors import explain
from orchestrator.search.vectors import unit_vector
from orchestrator.settings import Settings

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

__all__ = ["ElasticsearchBackend", "added_fields", "index_mapping"]

#: Hits carry everything but the vectors (1280 + 384 floats), which only kNN needs.
_SOURCE_EXCLUDES = ["embedding", "semantic"]


class ElasticsearchBackend:
    kind: BackendKind = "es"

    def __init__(
        self,
        client: AsyncElasticsearch,
        index: str,
        *,
        url: str,
        chunk_size: int = 200,
        max_retries: int = 5,
        initial_backoff_s: float = 1.0,
    ) -> None:
        self.client = client
        self.index_name = index
        self.url = url
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.initial_backoff_s = initial_backoff_s

    @classmethod
    def from_settings(cls, settings: Settings) -> ElasticsearchBackend:
        from elasticsearch import AsyncElasticsearch

        assert settings.es_url is not None
        auth: dict[str, Any] = {}
        if settings.es_authorization is not None:
            auth["headers"] = {"Authorization": settings.es_authorization}
        if settings.es_ca_certs is not None:
            auth["ca_certs"] = str(settings.es_ca_certs)
        client = AsyncElasticsearch(
            settings.es_url,
            verify_certs=settings.es_verify_certs,
            request_timeout=settings.sink_timeout_s,
            # The bulk helper does its own 429 backoff; these cover single calls.
            retry_on_timeout=True,
            max_retries=2,
            **auth,
        )
        return cls(
            client,
            settings.es_index,
            url=settings.es_url,
            chunk_size=settings.es_bulk_chunk_size,
            max_retries=settings.es_max_retries,
        )

    def _unreachable(self, error: Exception) -> SearchBackendError:
        kind = SearchBackendUnavailable if is_transient_error(error) else SearchBackendError
        return kind(
            f"Elasticsearch at {self.url} (index {self.index_name!r}) failed: {describe(error)}"
        )

    async def ensure_index(self) -> None:
        from elasticsearch import ApiError, TransportError

        try:
            if await self.client.indices.exists(index=self.index_name):
                await self._add_new_fields()
                return
            await self.client.indices.create(
                index=self.index_name,
                mappings=index_mapping(),
                # Bare words search the same fields as in the embedded index.
                settings={"index": {"query": {"default_field": list(DEFAULT_QUERY_FIELDS)}}},
            )
        except ApiError as e:
            # Another indexer created it between our two calls: that is what we wanted.
            if error_type(e) == "resource_already_exists_exception":
                return
            raise self._unreachable(e) from e
        except TransportError as e:
            raise self._unreachable(e) from e

    async def _add_new_fields(self) -> None:
        """Map the fields added since an index was made (concepts, ``semantic``, ``custom``,
        photo metadata) before any document brings them: dynamic mapping would make the
        vector a plain float array, ``taken_at`` maybe a string and ``location`` two floats."""
        from elasticsearch import ApiError

        response = await self.client.indices.get_mapping(index=self.index_name)
        indexes: dict[str, Any] = dict(response)
        fields = added_fields()
        for entry in indexes.values():
            mapped = entry.get("mappings", {}).get("properties", {})
            if all(name in mapped for name in fields):
                return
        try:
            await self.client.indices.put_mapping(index=self.index_name, properties=fields)
        except ApiError:
            # A field of one of these names mapped otherwise (user metadata, dynamically)
            # refuses the whole call: put the others one by one.
            for name, mapping in fields.items():
                try:
                    await self.client.indices.put_mapping(
                        index=self.index_name, properties={name: mapping}
                    )
                except ApiError:
                    # Searching by words still works; semantic search reports no vectors,
                    # and searches by that photo field find what the old mapping allows.
                    continue

    async def count_with(self, field: VectorField) -> int:
        return await self._count_existing(field)

    async def count_with_photo(self) -> int:
        # Every image whose metadata was read has a format; older documents have none.
        return await self._count_existing("format")

    async def _count_existing(self, field: str) -> int:
        from elasticsearch import ApiError

        try:
            response = await self._call(
                self.client.count(index=self.index_name, query={"exists": {"field": field}}),
                passthrough=(ApiError,),
            )
        except ApiError:
            return 0
        return int(response["count"])

    async def existing_ids(self, ids: Sequence[str], model: str | None = None) -> set[str]:
        if not ids:
            return set()
        if model is None:
            response = await self._call(
                self.client.mget(index=self.index_name, ids=list(ids), source=False)
            )
            return {doc["_id"] for doc in response["docs"] if doc.get("found")}
        response = await self._call(
            self.client.mget(index=self.index_name, ids=list(ids), source_includes=["custom.model"])
        )
        return {
            doc["_id"]
            for doc in response["docs"]
            if doc.get("found")
            and any(
                isinstance(c, dict) and c.get("model") == model
                for c in (doc.get("_source") or {}).get("custom") or ()
            )
        }

    async def index(self, documents: Sequence[ImageDocument]) -> AsyncIterator[IndexResult]:
        from elasticsearch import TransportError
        from elasticsearch.helpers import async_streaming_bulk

        if not documents:
            return
        uris = {d.id: d.uri for d in documents}
        actions = (
            {"_index": self.index_name, "_id": d.id, "_source": document_to_source(d)}
            for d in documents
        )
        reported: set[str] = set()
        try:
            async for ok, item in async_streaming_bulk(
                self.client,
                actions,
                chunk_size=self.chunk_size,
                max_retries=self.max_retries,
                initial_backoff=self.initial_backoff_s,
                max_backoff=60,
                raise_on_error=False,
                raise_on_exception=False,
            ):
                result = next(iter(item.values()))
                doc_id = str(result.get("_id", ""))
                reported.add(doc_id)
                error = None if ok else describe_item_error(result)
                retryable = not ok and item_is_transient(result)
                yield IndexResult(doc_id, uris.get(doc_id, ""), ok, error, retryable)
        except TransportError as e:
            # Nothing after this point reached the index: say so for each document.
            reason = str(self._unreachable(e))
            for doc in documents:
                if doc.id not in reported:
                    yield IndexResult(doc.id, doc.uri, False, reason, is_transient_error(e))
            return
        await self._call(self.client.indices.refresh(index=self.index_name))

    async def search(
        self, query: str, size: int = 10, offset: int = 0, options: SearchOptions = NO_OPTIONS
    ) -> SearchPage:
        from elasticsearch import BadRequestError

        # Checked here too, so both backends refuse the same requests in the same words.
        check_window(size, offset)
        query = query.strip()
        check_query(query)
        started = time.perf_counter()
        body = search_body(query, DEFAULT_QUERY_FIELDS, options)
        try:
            response = await self._call(
                self.client.search(
                    index=self.index_name,
                    size=size,
                    from_=offset,
                    track_total_hits=True,
                    source_excludes=_SOURCE_EXCLUDES,
                    **body,
                ),
                passthrough=(BadRequestError,),
            )
        except BadRequestError as e:
            why = explain(query) or describe(e)[:200]
            raise InvalidQuery(f"query {shown(query)}: {why}") from e
        page = _page(response, started)
        if not options.facets:
            return page
        aggregations = response.get("aggregations")
        facets = facets_from(options.facets, aggregations)
        return SearchPage(page.total, page.hits, page.took_ms, facets)

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
        from elasticsearch import BadRequestError

        check_k(k)
        # The same refusal of NaN, infinite, zero or wrongly sized vectors as the embedded index.
        query_vector = unit_vector(vector, VECTOR_DIMS[field])
        words = filter_words(filter)
        # Built before k == 0 is answered, so a bad filter is refused whatever k.
        section = knn_section(
            query_vector, k, field, exclude_id=exclude_id, words=words, min_score=min_score
        )
        started = time.perf_counter()
        if k == 0:
            # ES refuses k=0; the embedded index answers it with no hits, and so do we.
            return SearchPage(0, (), 0.0)
        try:
            response = await self._call(
                self.client.search(
                    index=self.index_name, knn=section, size=k, source_excludes=_SOURCE_EXCLUDES
                ),
                passthrough=(BadRequestError,),
            )
        except BadRequestError as e:
            # The vector, k and field are checked above: a refusal is the filter's.
            if words is None:
                raise self._unreachable(e) from e
            raise refused_filter(words, describe(e)) from e
        return cosine_page(_page(response, started), min_score)

    async def similar_pairs(self, min_score: float, k: int = 10) -> list[tuple[str, str, float]]:
        return await es_pairs.close_pairs(
            self.client, self.index_name, self._call, self._close_pit, min_score, k
        )

    async def get(self, doc_id: str) -> ImageDocument | None:
        from elasticsearch import NotFoundError

        try:
            response = await self._call(
                self.client.get(index=self.index_name, id=doc_id), passthrough=(NotFoundError,)
            )
        except NotFoundError:
            return None
        return document_from_source(response["_id"], response["_source"])

    async def delete(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        operations = es_locations.delete_operations(self.index_name, ids)
        response = await self._call(self.client.bulk(operations=operations, refresh=True))
        return es_locations.deleted_ids(response)

    async def set_locations(self, doc_id: str, locations: Sequence[Location]) -> bool:
        from elasticsearch import NotFoundError

        update = es_locations.locations_update(locations)
        try:
            await self._call(
                self.client.update(index=self.index_name, id=doc_id, doc=update, refresh=True),
                passthrough=(NotFoundError,),
            )
        except NotFoundError:
            return False
        return True

    async def located_under(self, prefix: str) -> AsyncIterator[tuple[str, tuple[Location, ...]]]:
        # A point in time: documents re-placed or removed during the walk shift no page.
        keep_alive = es_locations.KEEP_ALIVE
        pit = await self._call(
            self.client.open_point_in_time(index=self.index_name, keep_alive=keep_alive)
        )
        pit_id, after = str(pit["id"]), None
        try:
            while True:
                body = es_locations.page_body(pit_id, prefix, after)
                response = await self._call(self.client.search(**body))
                pit_id = str(response.get("pit_id") or pit_id)
                hits = response["hits"]["hits"]
                for hit in hits:
                    places = es_locations.places_of(hit.get("_source") or {})
                    # The uri's keyword twin also matches a document whose locations do not.
                    if any(place.uri.startswith(prefix) for place in places):
                        yield str(hit["_id"]), places
                if len(hits) < es_locations.PAGE_SIZE:
                    return
                after = hits[-1]["sort"]
        finally:
            await self._close_pit(pit_id)

    async def _close_pit(self, pit_id: str) -> None:
        from elasticsearch import ApiError, TransportError

        # Should closing fail, it expires on its own after its keep-alive.
        with contextlib.suppress(ApiError, TransportError):
            await self.client.close_point_in_time(id=pit_id)

    async def count(self) -> int:
        response = await self._call(self.client.count(index=self.index_name))
        return int(response["count"])

    async def close(self) -> None:
        await self.client.close()

    async def _call(self, call: Any, passthrough: tuple[type[Exception], ...] = ()) -> Any:
        """Await an API call, turning transport and API errors into deeptag's."""
        from elasticsearch import ApiError, TransportError

        try:
            return await call
        except passthrough:
            raise
        except (ApiError, TransportError) as e:
            raise self._unreachable(e) from e


def _page(response: Any, started: float) -> SearchPage:
    hits = tuple(
        SearchHit(document_from_source(h["_id"], h["_source"]), float(h["_score"] or 0.0))
        for h in response["hits"]["hits"]
    )
    total = response["hits"]["total"]
    count = total["value"] if isinstance(total, dict) else int(total)
    return SearchPage(count, hits, (time.perf_counter() - started) * 1000)
