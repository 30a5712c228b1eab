"""A search index in a local folder (tantivy), for use without an Elasticsearch cluster.

The schema, and how documents are stored, live in :mod:`orchestrator.search.embedded_store`;
query parsing in :mod:`orchestrator.search.embedded_query`. Vectors live beside tantivy's files,
as rows and HNSW segments (:mod:`orchestrator.search.vector_store`); kNN is
:mod:`orchestrator.search.embedded_knn`. A folder written before that keeps its vectors in
tantivy's stored documents and is searched by an exact scan of them until a writer upgrades it.

tantivy allows one writer per index folder, enforced by a ``flock`` on
``.tantivy-writer.lock`` that the kernel releases when the holding process dies. Every
:meth:`EmbeddedIndex.index` call is one commit, and a commit is atomic (segment files first,
then an atomic rename of ``meta.json``), so a killed indexer loses at most its current batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import tantivy

from orchestrator.errors import InvalidQuery, SearchBackendError
from orchestrator.search.base import (
    EMBEDDING_DIMS,
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
from orchestrator.search.embedded_knn import nearest_documents, vector_at
from orchestrator.search.embedded_locations import (
    PAGE_SIZE,
    UnderPrefix,
    delete_and_commit,
    existing,
    relocated,
)
from orchestrator.search.embedded_pairs import document_pairs
from orchestrator.search.embedded_query import parse, query_fields
from orchestrator.search.embedded_search import find
from orchestrator.search.embedded_store import (
    CURRENT_FIELDS,
    REINDEX_ADVICE,
    ROW_FIELDS,
    from_stored,
    hit_count,
    is_panic,
    open_tantivy,
    opstamp,
    rows_of,
    take_writer,
    tantivy_errors,
    write_and_commit,
)
from orchestrator.search.embedded_upgrade import upgrade
from orchestrator.search.embedded_vectors import LegacyVectors
from orchestrator.search.embedded_writes import WriterSlot, prepare, store_rows, with_rows
from orchestrator.search.knn_pairs import pairs_by_knn
from orchestrator.search.limits import (
    as_filter_error,
    check_k,
    check_query,
    check_window,
    shown,
)
from orchestrator.search.photo_query import rewrite_dates
from orchestrator.search.vector_store import VectorStore
from orchestrator.search.vectors import Vectors, unit_vector

T = TypeVar("T")


class EmbeddedIndex:
    """The :class:`~orchestrator.search.base.SearchBackend` kept in a local tantivy folder.

    Open it with :meth:`open`. With ``writer=True`` the object holds the index's single-writer
    lock until :meth:`close`; otherwise each :meth:`index` call takes it for its own duration.
    """

    kind: BackendKind = "embedded"

    def __init__(
        self,
        directory: Path,
        index: tantivy.Index,
        writer: tantivy.IndexWriter | None,
        dims: int = EMBEDDING_DIMS,
        legacy: bool = False,
        fields: frozenset[str] = CURRENT_FIELDS,
    ) -> None:
        self.directory = directory
        self.dims = dims
        self.legacy = legacy
        #: Vectors stored in the documents (written before the row files): scanned exactly.
        #: A legacy folder that has rows lacks only later fields, and searches as today's.
        self.stored_vectors = legacy and not set(ROW_FIELDS.values()) <= fields
        self._index: tantivy.Index | None = index
        self._writer = WriterSlot(self._require_open, directory, writer)
        self._schema = index.schema
        self._present = fields
        self._fields = query_fields(fields)
        self.vectors = VectorStore(directory, {f: self._dims(f) for f in ("embedding", "semantic")})
        self._legacy_vectors = LegacyVectors(directory, fields, self._dims)

    @classmethod
    async def open(
        cls, directory: Path, writer: bool = False, *, dims: int = EMBEDDING_DIMS
    ) -> EmbeddedIndex:
        """Open the index in ``directory``, creating the folder and an empty index if missing.

        A writer upgrades a folder written by an earlier deeptag (before the ANN files,
        concepts or semantic vectors), and rebuilds ANN files that are missing or damaged.

        Raises:
            IndexLocked: ``writer`` is true and another process or object holds the lock.
            SearchBackendError: the folder cannot be created or holds an incompatible index.
        """
        return await asyncio.to_thread(cls._open_sync, Path(directory), writer, dims)

    @classmethod
    def _open_sync(cls, directory: Path, writer: bool, dims: int) -> EmbeddedIndex:
        opened = open_tantivy(directory)
        if writer and opened.legacy:
            upgrade(directory, {"embedding": dims, "semantic": VECTOR_DIMS["semantic"]})
            opened = open_tantivy(directory)
        held = take_writer(opened.index, directory) if writer else None
        index = cls(directory, opened.index, held, dims, legacy=opened.legacy, fields=opened.fields)
        if held is not None:
            with tantivy_errors(f"embedded index {directory}: its ANN files"):
                index.vectors.repair(index._searcher(), index._schema, opstamp(directory))
        return index

    async def ensure_index(self) -> None:
        """Nothing left to do: :meth:`open` creates the folder and the index when missing."""
        self._require_open()

    async def existing_ids(self, ids: Sequence[str], model: str | None = None) -> set[str]:
        if not ids:
            return set()
        if model is not None and "custom.model" not in self._present:
            return set()
        return await self._run(self._existing_ids, list(dict.fromkeys(ids)), model)

    async def index(self, documents: Sequence[ImageDocument]) -> AsyncIterator[IndexResult]:
        """Add or replace documents in one commit; yield one result per document.

        Raises:
            IndexLocked: this object is not the writer and another one holds the lock.
            SearchBackendError: the folder predates concepts and must be upgraded first.
        """
        if not documents:
            return
        self._refuse_if_legacy()
        for result in await self._run(self._index_batch, list(documents)):
            yield result

    async def search(
        self, query: str, size: int = 10, offset: int = 0, options: SearchOptions = NO_OPTIONS
    ) -> SearchPage:
        """An ES ``q=`` style query; ``""`` and ``"*"`` match every document.

        Raises:
            InvalidQuery: the query does not parse; the message quotes it and says why.
            BadRequest: ``size`` or ``offset`` is negative, or past the result window.
        """
        # Before tantivy: an offset it cannot allocate for aborts the process, uncatchably.
        check_window(size, offset)
        query = query.strip()
        check_query(query)
        started = time.perf_counter()
        page = await self._run(self._search, query, size, offset, options)
        return SearchPage(page.total, page.hits, _elapsed_ms(started), page.facets)

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
        """The ``k`` documents whose ``field`` vectors have the highest cosine with ``vector``,
        among those matching the word query ``filter``.

        Raises:
            InvalidQuery: ``filter`` does not parse; the message quotes it and says why.
        """
        check_k(k)
        started = time.perf_counter()
        query = unit_vector(vector, self._dims(field))
        where = self._where(filter)
        if k == 0:
            return SearchPage(0, (), _elapsed_ms(started))
        hits = await self._run(self._knn, query, k, exclude_id, field, where, min_score)
        return SearchPage(len(hits), hits, _elapsed_ms(started))

    async def similar_pairs(self, min_score: float, k: int = 10) -> list[tuple[str, str, float]]:
        if self.stored_vectors:
            return await pairs_by_knn(self, min_score, k)
        pairs = lambda: document_pairs(self.vectors, self._searcher(), self._schema, k, min_score)  # noqa: E731
        return await self._run(pairs)

    async def count_with(self, field: VectorField) -> int:
        if self.stored_vectors:
            return await self._run(lambda: self._legacy_vectors.count(self._searcher(), field))
        return await self._run(lambda: self.vectors.count(self._searcher(), field))

    async def count_with_photo(self) -> int:
        # Every image whose metadata was read has a format; older documents have none.
        if "format.keyword" not in self._present:
            return 0
        query = tantivy.Query.exists_query("format.keyword")
        return await self._run(lambda: hit_count(self._searcher().search(query, 1, count=True)))

    async def delete(self, ids: Sequence[str]) -> set[str]:
        return await self._run(self._delete, list(ids)) if ids else set()

    async def set_locations(self, doc_id: str, locations: Sequence[Location]) -> bool:
        """Rewrite the stored document with new locations; vectors and tags are kept as is."""
        self._refuse_if_legacy()
        return await self._run(self._set_locations, doc_id, list(locations))

    async def located_under(self, prefix: str) -> AsyncIterator[tuple[str, tuple[Location, ...]]]:
        walk = await self._run(
            lambda: UnderPrefix.start(self._searcher(), self._schema, self._present, prefix)
        )
        offset = 0
        while True:
            found, covered = await self._run(walk.page, offset)
            for entry in found:
                yield entry
            if covered < PAGE_SIZE:
                return
            offset += covered

    async def get(self, doc_id: str) -> ImageDocument | None:
        """The document with its vectors, or ``None`` when the id is not indexed."""
        return await self._run(self._get, doc_id)

    async def count(self) -> int:
        return await self._run(lambda: self._searcher().num_docs)

    async def close(self) -> None:
        """Release the writer lock (if held); calling it again does nothing."""
        if self._index is None:
            return
        self._index = None  # refuses new calls from now on
        self._legacy_vectors.forget()
        await asyncio.to_thread(self._writer.drop)

    # --- Blocking work, run in a worker thread -------------------------------------------

    def _refuse_if_legacy(self) -> None:
        if self.legacy:
            raise SearchBackendError(
                f"embedded index {self.directory} was written by an older deeptag, before "
                f"some of today's fields: {REINDEX_ADVICE} "
                "(that upgrades the folder, keeping its documents)"
            )

    def _delete(self, ids: list[str]) -> set[str]:
        found = existing(self._searcher(), self._schema, ids)
        if found:
            with self._writer.use() as writer:
                delete_and_commit(writer, found)
        return found

    def _set_locations(self, doc_id: str, locations: list[Location]) -> bool:
        found = relocated(self._searcher(), self._schema, doc_id, locations)
        if found is None:
            return False
        document, rows = found
        with self._writer.use() as writer:
            error = write_and_commit(writer, [(document, with_rows(document, rows))])
        if error is not None:
            raise SearchBackendError(f"embedded index {self.directory}: {error}")
        return True

    def _dims(self, field: VectorField) -> int:
        return self.dims if field == "embedding" else VECTOR_DIMS[field]

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        self._require_open()
        return await asyncio.to_thread(self._translated, call, *args)

    def _translated(self, call: Callable[..., T], *args: Any) -> T:
        with tantivy_errors(f"embedded index {self.directory}"):
            return call(*args)

    def _require_open(self) -> tantivy.Index:
        if self._index is None:
            raise SearchBackendError(f"embedded index {self.directory} is closed")
        return self._index

    def _searcher(self) -> tantivy.Searcher:
        """A searcher that sees every commit so far, this process's or another's."""
        index = self._require_open()
        index.reload()
        return index.searcher()

    def _existing_ids(self, ids: list[str], model: str | None) -> set[str]:
        searcher = self._searcher()
        with_model = (
            None if model is None else tantivy.Query.term_query(self._schema, "custom.model", model)
        )
        found = set()
        for doc_id in ids:
            # One term lookup per id: a posting-list read each, and no stored document is loaded.
            query = self._id_query(doc_id)
            if with_model is not None:
                query = tantivy.Query.boolean_query(
                    [(tantivy.Occur.Must, query), (tantivy.Occur.Must, with_model)]
                )
            if hit_count(searcher.search(query, 1)):
                found.add(doc_id)
        return found

    def _get(self, doc_id: str) -> ImageDocument | None:
        searcher = self._searcher()
        hits = searcher.search(self._id_query(doc_id), 1).hits
        if not hits:
            return None
        stored = searcher.doc(hits[0][1])
        if self.stored_vectors:
            return from_stored(stored, with_vectors=True)
        rows = rows_of(stored)
        return replace(
            from_stored(stored),
            embedding=vector_at(self.vectors, rows, "embedding"),
            semantic=vector_at(self.vectors, rows, "semantic"),
        )

    def _where(self, filter: str | None) -> tantivy.Query | None:
        words = (filter or "").strip()
        if words in ("", "*"):
            return None
        try:
            check_query(words)
            return self._parse(words)
        except InvalidQuery as e:
            raise as_filter_error(e, words) from None

    def _parse(self, query: str) -> tantivy.Query:
        return parse(self._require_open(), rewrite_dates(query), self._fields, as_typed=query)

    def _search(self, query: str, size: int, offset: int, options: SearchOptions) -> SearchPage:
        parsed = self._parse(query)
        searcher = self._searcher()
        try:
            found = find(searcher, self._schema, parsed, self._present, size, offset, options)
        except BaseException as e:
            if not is_panic(e):
                raise
            # A query that parses can still panic tantivy: a metadata range whose bounds are
            # numbers of two kinds (`year:[2000 TO 2020.5]`). The query is at fault, not the
            # index, and one-sided ranges of each kind work.
            raise InvalidQuery(
                f"query {shown(query)}: tantivy cannot evaluate it ({e}); if it has a range "
                "on metadata, write both bounds alike or as two ranges (year:>=2000 AND "
                "year:<=2020.5)"
            ) from e
        hits = tuple(
            SearchHit(from_stored(searcher.doc(address)), score) for score, address in found.hits
        )
        return SearchPage(found.total, hits, 0.0, found.facets)

    def _id_query(self, doc_id: str) -> tantivy.Query:
        return tantivy.Query.term_query(self._schema, "id", doc_id)

    def _index_batch(self, documents: list[ImageDocument]) -> list[IndexResult]:
        prepared, results = prepare(documents, self.dims)
        if not prepared:
            return results
        with self._writer.use() as writer:
            # Rows first, on disk before the commit that names them (embedded_writes.py).
            store_rows(self.vectors, prepared)
            error = write_and_commit(writer, [(p.document, p.doc) for p in prepared])
            if error is None:
                # Under the writer lock: one writer builds the ANN segments, after the commit.
                self.vectors.maintain(self._searcher(), self._schema, opstamp(self.directory))
        if error is None:
            return results
        return [r if not r.ok else IndexResult(r.id, r.uri, False, error) for r in results]

    def _knn(
        self,
        query: Vectors,
        k: int,
        exclude_id: str | None,
        field: VectorField,
        where: tantivy.Query | None,
        min_score: float | None,
    ) -> tuple[SearchHit, ...]:
        searcher = self._searcher()
        if self.stored_vectors:
            near = self._legacy_vectors.nearest(searcher, field, query, k, exclude_id, where)
        else:
            found = nearest_documents(
                self.vectors, searcher, self._schema, field, query, k, exclude_id=exclude_id,
                where=where, min_score=min_score,
            )  # fmt: skip
            near = [(n.score, n.address) for n in found]
        return tuple(
            SearchHit(from_stored(searcher.doc(address)), score)
            for score, address in near
            if min_score is None or score >= min_score
        )


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
