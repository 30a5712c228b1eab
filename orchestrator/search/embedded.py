"""A search index in a local folder (tantivy), for use without an Elasticsearch cluster.

Field names are Elasticsearch's dotted paths (``categories.category``, ``categories.score``), so
the same ``q=`` strings work on both backends. Each document also keeps its whole JSON (as
:func:`document_to_source` writes it, minus the embedding) and its float32 embedding as stored
bytes; kNN is an exact cosine over all embeddings, with numpy. User metadata is indexed in one
JSON field that the query parser falls back to for unknown field names, so ``album:paris``
works as it does on an Elasticsearch index with dynamic mapping.

tantivy allows one writer per index folder, enforced by a ``flock`` on
``.tantivy-writer.lock`` that the kernel releases when the holding process dies. Every
:meth:`EmbeddedIndex.index` call is one commit, and a commit is atomic (segment files first,
then an atomic rename of ``meta.json``), so a killed indexer loses at most its current batch.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import tantivy

from orchestrator.errors import (
    BadRequest,
    DeeptagError,
    IndexLocked,
    InvalidQuery,
    SearchBackendError,
)
from orchestrator.search.base import (
    DEFAULT_QUERY_FIELDS,
    EMBEDDING_DIMS,
    BackendKind,
    ImageDocument,
    IndexResult,
    SearchHit,
    SearchPage,
)
from orchestrator.search.documents import document_from_source, document_to_source
from orchestrator.search.vectors import (
    Vectors,
    embedding_bytes,
    normalise_rows,
    top_k,
    unit_vector,
)

T = TypeVar("T")

#: The writer's indexing memory: small enough for a laptop, large enough that a batch of a few
#: hundred documents never spills into extra segments. tantivy needs >= 15 MB per thread.
WRITER_HEAP_BYTES = 64_000_000
#: One indexing thread: the model, not tantivy, is the bottleneck of ``deeptag index``.
WRITER_THREADS = 1

#: Stored-only fields: the document's JSON and its embedding (little-endian float32).
SOURCE_FIELD = "_source"
EMBEDDING_FIELD = "embedding"
#: User metadata, indexed (and fast, for ranges) under its own keys: ``album``, ``camera.make``.
METADATA_FIELD = "_metadata"

#: tantivy resolves an unknown field name inside the JSON field among the default fields.
_QUERY_FIELDS = (*DEFAULT_QUERY_FIELDS, METADATA_FIELD)


def build_schema() -> tantivy.Schema:
    """The fields of the index; changing them makes existing index folders unreadable."""
    builder = tantivy.SchemaBuilder()
    # "raw" keeps ids and keywords whole, so a term query (and delete-by-term) matches exactly.
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("uri", stored=True)
    builder.add_text_field("categories.category")
    # Multi-valued: a range matches when any of a document's scores does, as on ES arrays.
    builder.add_float_field("categories.score", indexed=True, fast=True)
    builder.add_text_field("tags")
    builder.add_integer_field("width", indexed=True, fast=True)
    builder.add_integer_field("height", indexed=True, fast=True)
    builder.add_text_field("model", tokenizer_name="raw", index_option="basic")
    # A raw ISO-8601 string rather than a date field: tantivy's date syntax needs a full
    # RFC 3339 timestamp, while string ranges also accept ES-style `indexed_at:>2024-05-01`.
    builder.add_text_field("indexed_at", tokenizer_name="raw", index_option="basic")
    builder.add_json_field(METADATA_FIELD, fast=True)
    builder.add_bytes_field(SOURCE_FIELD, stored=True)
    builder.add_bytes_field(EMBEDDING_FIELD, stored=True)
    return builder.build()


@dataclass(frozen=True)
class _VectorSnapshot:
    """Every embedding of one index generation, with the searcher their addresses belong to."""

    generation: str
    searcher: tantivy.Searcher
    addresses: list[tantivy.DocAddress]
    rows: dict[str, int]  # document id -> its row in matrix (and addresses)
    matrix: Vectors  # (len(rows), dims), rows L2-normalised


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
    ) -> None:
        self.directory = directory
        self.dims = dims
        self._index: tantivy.Index | None = index
        self._writer = writer
        self._schema = index.schema
        # tantivy's IndexWriter refuses concurrent use from two threads; so do we.
        self._write_lock = threading.Lock()
        self._vectors_lock = threading.Lock()
        self._snapshot: _VectorSnapshot | None = None

    @classmethod
    async def open(
        cls, directory: Path, writer: bool = False, *, dims: int = EMBEDDING_DIMS
    ) -> EmbeddedIndex:
        """Open the index in ``directory``, creating the folder and an empty index if missing.

        Raises:
            IndexLocked: ``writer`` is true and another process or object holds the lock.
            SearchBackendError: the folder cannot be created or holds an incompatible index.
        """
        return await asyncio.to_thread(cls._open_sync, Path(directory), writer, dims)

    @classmethod
    def _open_sync(cls, directory: Path, writer: bool, dims: int) -> EmbeddedIndex:
        index = _open_tantivy(directory)
        held = _take_writer(index, directory) if writer else None
        return cls(directory, index, held, dims)

    async def ensure_index(self) -> None:
        """Nothing left to do: :meth:`open` creates the folder and the index when missing."""
        self._require_open()

    async def existing_ids(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        return await self._run(self._existing_ids, list(dict.fromkeys(ids)))

    async def index(self, documents: Sequence[ImageDocument]) -> AsyncIterator[IndexResult]:
        """Add or replace documents in one commit; yield one result per document.

        Raises:
            IndexLocked: this object is not the writer and another one holds the lock.
        """
        if not documents:
            return
        for result in await self._run(self._index_batch, list(documents)):
            yield result

    async def search(self, query: str, size: int = 10, offset: int = 0) -> SearchPage:
        """An ES ``q=`` style query; ``""`` and ``"*"`` match every document.

        Raises:
            InvalidQuery: the query does not parse; the message quotes it and says why.
        """
        if size < 0 or offset < 0:
            raise BadRequest(f"size ({size}) and offset ({offset}) must not be negative")
        started = time.perf_counter()
        total, hits = await self._run(self._search, query.strip(), size, offset)
        return SearchPage(total, hits, _elapsed_ms(started))

    async def knn(
        self, vector: Sequence[float], k: int = 10, exclude_id: str | None = None
    ) -> SearchPage:
        """The ``k`` documents whose embeddings have the highest cosine with ``vector``."""
        started = time.perf_counter()
        query = unit_vector(vector, self.dims)
        hits = await self._run(self._knn, query, k, exclude_id) if k > 0 else ()
        return SearchPage(len(hits), hits, _elapsed_ms(started))

    async def get(self, doc_id: str) -> ImageDocument | None:
        """The document with its embedding, or ``None`` when the id is not indexed."""
        return await self._run(self._get, doc_id)

    async def count(self) -> int:
        return await self._run(lambda: self._searcher().num_docs)

    async def close(self) -> None:
        """Release the writer lock (if held); calling it again does nothing."""
        if self._index is None:
            return
        self._index = None  # refuses new calls from now on
        self._snapshot = None
        await asyncio.to_thread(self._drop_writer)

    # --- Blocking work, run in a worker thread -------------------------------------------

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        self._require_open()
        return await asyncio.to_thread(self._translated, call, *args)

    def _translated(self, call: Callable[..., T], *args: Any) -> T:
        with _tantivy_errors(f"embedded index {self.directory}"):
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

    def _existing_ids(self, ids: list[str]) -> set[str]:
        searcher = self._searcher()
        # One term lookup per id: a posting-list read each, and no stored document is loaded.
        return {doc_id for doc_id in ids if _hit_count(searcher.search(self._id_query(doc_id), 1))}

    def _get(self, doc_id: str) -> ImageDocument | None:
        searcher = self._searcher()
        hits = searcher.search(self._id_query(doc_id), 1).hits
        if not hits:
            return None
        return _from_stored(searcher.doc(hits[0][1]), with_embedding=True)

    def _search(self, query: str, size: int, offset: int) -> tuple[int, tuple[SearchHit, ...]]:
        parsed = self._parse(query)
        searcher = self._searcher()
        # tantivy panics on a limit of 0; ES answers size=0 with the total only.
        result = searcher.search(parsed, max(size, 1), count=True, offset=offset)
        hits = tuple(
            SearchHit(_from_stored(searcher.doc(address)), float(score))
            for score, address in result.hits[:size]
        )
        return _hit_count(result), hits

    def _parse(self, query: str, as_typed: str | None = None) -> tantivy.Query:
        """ES ``q=`` semantics on tantivy's query parser, which shares most of its syntax.

        ``as_typed`` is the user's query when ``query`` is a rewrite of it, for error messages.
        """
        index = self._require_open()
        if query in ("", "*"):
            return tantivy.Query.all_query()
        fields = list(_QUERY_FIELDS)
        try:
            return index.parse_query(query, fields)
        except ValueError as e:
            strict_error = str(e)
        # The lenient parser says what is wrong more precisely, and turns a purely negative
        # query (`-bicycle`), which the strict one refuses, into "all but", as ES does.
        lenient, errors = index.parse_query_lenient(query, fields)
        unknown = [error for error in errors if _names_unknown_field(error)]
        reasons = [str(e) for e in errors if not _is_all_but_error(e) and e not in unknown]
        if not reasons:
            rewritten = _in_metadata(query, sorted({str(getattr(e, "field", "")) for e in unknown}))
            if rewritten != query:
                # Terms on metadata resolve by themselves; ranges (`year:>2000`) need the path.
                return self._parse(rewritten, as_typed=query)
            reasons = [str(error) for error in unknown]
        if errors and not reasons:
            return lenient
        raise InvalidQuery(f"query {as_typed or query!r}: {'; '.join(reasons) or strict_error}")

    def _id_query(self, doc_id: str) -> tantivy.Query:
        return tantivy.Query.term_query(self._schema, "id", doc_id)

    def _index_batch(self, documents: list[ImageDocument]) -> list[IndexResult]:
        results: list[IndexResult] = []
        prepared: list[tuple[ImageDocument, tantivy.Document]] = []
        for document in documents:
            try:
                prepared.append((document, self._to_tantivy(document)))
                results.append(IndexResult(document.id, document.uri, True))
            except (TypeError, ValueError, OverflowError) as e:
                # One document that cannot be stored must not cost the rest of its batch.
                results.append(IndexResult(document.id, document.uri, False, str(e)))
        if not prepared:
            return results
        with self._writer_for_call() as writer:
            error = _write_and_commit(writer, prepared)
        self._snapshot = None
        if error is None:
            return results
        return [r if not r.ok else IndexResult(r.id, r.uri, False, error) for r in results]

    def _to_tantivy(self, document: ImageDocument) -> tantivy.Document:
        """The indexed and stored fields of one document.

        Raises:
            ValueError: the document cannot be stored as it is (no id, a wrong embedding).
            TypeError: its metadata is not JSON-serialisable.
        """
        if not document.id:
            raise ValueError("document has no id")
        source = document_to_source(document)
        source.pop("embedding", None)
        doc = tantivy.Document()
        doc.add_text("id", document.id)
        doc.add_text("uri", document.uri)
        for category in document.categories:
            doc.add_text("categories.category", category.category)
            doc.add_float("categories.score", float(category.score))
        for tag in document.tags:
            doc.add_text("tags", tag)
        doc.add_integer("width", int(document.width))
        doc.add_integer("height", int(document.height))
        doc.add_text("model", document.model)
        doc.add_text("indexed_at", document.indexed_at)
        # Serialising the source first refuses metadata JSON cannot hold (NaN, objects).
        doc.add_bytes(SOURCE_FIELD, json.dumps(source, allow_nan=False).encode())
        if document.metadata:
            doc.add_json(METADATA_FIELD, dict(document.metadata))
        if document.embedding is not None:
            doc.add_bytes(EMBEDDING_FIELD, embedding_bytes(document.embedding, self.dims))
        return doc

    @contextmanager
    def _writer_for_call(self) -> Iterator[tantivy.IndexWriter]:
        """The writer this object holds, or one taken (and released) for this call only."""
        with self._write_lock:
            if self._writer is not None:
                yield self._writer
                return
            writer = _take_writer(self._require_open(), self.directory)
            try:
                yield writer
            finally:
                self._release_writer(writer)

    def _drop_writer(self) -> None:
        # Under the lock, so that a batch being committed finishes before the writer goes.
        with self._write_lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._release_writer(writer)

    def _release_writer(self, writer: tantivy.IndexWriter) -> None:
        # Waiting for merges consumes the writer; dropping it releases the lock at once,
        # rather than whenever the garbage collector gets to it.
        with _tantivy_errors(f"embedded index {self.directory}: releasing the writer"):
            writer.wait_merging_threads()

    def _knn(self, query: Vectors, k: int, exclude_id: str | None) -> tuple[SearchHit, ...]:
        snapshot = self._vectors()
        if not snapshot.rows:
            return ()
        scores = snapshot.matrix @ query
        if exclude_id in snapshot.rows:
            scores[snapshot.rows[exclude_id]] = -np.inf
        top = top_k(scores, k)
        return tuple(
            SearchHit(_from_stored(snapshot.searcher.doc(snapshot.addresses[i])), float(scores[i]))
            for i in top
        )

    def _vectors(self) -> _VectorSnapshot:
        """Every embedding, re-read only when a commit (from any process) changed the index."""
        with self._vectors_lock:
            # Read the generation before reloading: a commit in between then only costs one
            # extra rebuild, never a stale cache labelled as current.
            generation = _generation(self.directory)
            snapshot = self._snapshot
            if snapshot is None or snapshot.generation != generation:
                snapshot = self._read_vectors(generation)
                self._snapshot = snapshot
            return snapshot

    def _read_vectors(self, generation: str) -> _VectorSnapshot:
        searcher = self._searcher()
        everything = searcher.search(tantivy.Query.all_query(), max(searcher.num_docs, 1))
        # Filled in place: no list of rows next to the matrix, so the peak stays one matrix.
        matrix = np.empty((len(everything.hits), self.dims), dtype=np.float32)
        addresses: list[tantivy.DocAddress] = []
        rows: dict[str, int] = {}
        for _, address in everything.hits:
            stored = searcher.doc(address)
            embedding = stored.get_first(EMBEDDING_FIELD)
            if embedding is None or len(embedding) != 4 * self.dims:
                continue  # indexed without an embedding: not a kNN candidate
            matrix[len(rows)] = np.frombuffer(bytes(embedding), dtype="<f4")
            rows[str(stored.get_first("id"))] = len(rows)
            addresses.append(address)
        matrix = matrix[: len(rows)]
        normalise_rows(matrix)
        return _VectorSnapshot(generation, searcher, addresses, rows, matrix)


# --- Helpers --------------------------------------------------------------------------------


def _open_tantivy(directory: Path) -> tantivy.Index:
    where = f"embedded index {directory}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SearchBackendError(f"{where}: cannot create the folder: {e}") from e
    path = str(directory)
    with _tantivy_errors(where):
        if tantivy.Index.exists(path) and not tantivy.Index.is_compatible(path):
            raise SearchBackendError(
                f"{where} was written by an incompatible tantivy version; "
                "delete the folder and index the images again"
            )
        try:
            index = tantivy.Index(build_schema(), path=path, reuse=True)
        except ValueError as e:
            if "schema does not match" not in str(e):
                raise
            raise SearchBackendError(
                f"{where} was created with different fields by another deeptag version; "
                "delete the folder (or choose another one) and index the images again"
            ) from e
        # Searches reload explicitly, so no background thread needs to watch for commits.
        index.config_reader(reload_policy="Manual")
        return index


def _take_writer(index: tantivy.Index, directory: Path) -> tantivy.IndexWriter:
    try:
        return index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=WRITER_THREADS)
    except ValueError as e:
        if "LockBusy" not in str(e):
            raise SearchBackendError(f"embedded index {directory}: {e}") from e
        raise IndexLocked(
            f"the embedded index at {directory} is locked: another `deeptag index` or server "
            "is writing to it. Wait for it to finish (or stop it) and try again."
        ) from e


def _write_and_commit(
    writer: tantivy.IndexWriter, prepared: list[tuple[ImageDocument, tantivy.Document]]
) -> str | None:
    """Replace the documents in one commit; the reason it failed, or ``None``.

    The batch is all or nothing: a failed delete or add must not commit the deletion of a
    document whose replacement never made it in.
    """
    try:
        for document, doc in prepared:
            # Delete first: re-indexing an id (even twice in one batch) keeps one copy.
            writer.delete_documents_by_term("id", document.id)
            writer.add_document(doc)
        writer.commit()
    except Exception as e:
        writer.rollback()
        return f"not committed to the embedded index: {e}"
    return None


@contextmanager
def _tantivy_errors(where: str) -> Iterator[None]:
    """Turn tantivy's (and the filesystem's) exceptions into :class:`SearchBackendError`."""
    try:
        yield
    except DeeptagError:
        raise
    except Exception as e:
        raise SearchBackendError(f"{where}: {e}") from e
    except BaseException as e:
        # A Rust panic reaches Python as pyo3's PanicException, a BaseException that would
        # otherwise slip past every `except Exception` up to the event loop.
        if type(e).__name__ != "PanicException":
            raise
        raise SearchBackendError(f"{where}: tantivy failed: {e}") from e


def _generation(directory: Path) -> str:
    """What identifies the committed state: tantivy rewrites meta.json atomically per commit."""
    meta = json.loads((directory / "meta.json").read_bytes())
    return json.dumps([meta.get("opstamp"), meta.get("segments")], sort_keys=True)


def _from_stored(stored: tantivy.Document, with_embedding: bool = False) -> ImageDocument:
    source = json.loads(bytes(stored.get_first(SOURCE_FIELD) or b"{}"))
    if with_embedding:
        embedding = stored.get_first(EMBEDDING_FIELD)
        if embedding is not None:
            source["embedding"] = np.frombuffer(bytes(embedding), dtype="<f4").tolist()
    return document_from_source(str(stored.get_first("id")), source)


def _hit_count(result: tantivy.SearchResult) -> int:
    # `count` exists at runtime (we always ask for it) but is missing from tantivy's stubs.
    return int(getattr(result, "count", 0) or 0)


def _is_all_but_error(error: object) -> bool:
    # tantivy.query_parser_error is missing from tantivy's type stubs; match by name.
    return type(error).__name__ == "AllButQueryForbiddenError"


def _names_unknown_field(error: object) -> bool:
    return type(error).__name__ == "FieldDoesNotExistError"


def _in_metadata(query: str, names: Sequence[str]) -> str:
    """The query with each ``name:`` (not already a path) addressed inside the metadata field."""
    for name in names:
        if name and not name.startswith(METADATA_FIELD):
            query = re.sub(rf"(?<![\w.]){re.escape(name)}:", f"{METADATA_FIELD}.{name}:", query)
    return query


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
