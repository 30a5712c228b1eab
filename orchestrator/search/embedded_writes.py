"""Writing documents to the embedded index: their vectors as rows first, then one commit.

Rows are appended (and on disk) before the commit that names them, so a crash between the
two leaves unnamed rows, never a document without its vectors (see vector_rows.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tantivy

from orchestrator.search.base import ImageDocument, IndexResult
from orchestrator.search.embedded_store import (
    ROW_FIELDS,
    take_writer,
    tantivy_errors,
    to_tantivy,
    unit_vectors,
)
from orchestrator.search.vector_store import VectorStore
from orchestrator.search.vectors import Vectors


@dataclass(frozen=True, eq=False)
class Prepared:
    document: ImageDocument
    doc: tantivy.Document
    vectors: dict[str, Vectors]


def prepare(
    documents: Sequence[ImageDocument], dims: int
) -> tuple[list[Prepared], list[IndexResult]]:
    """The storable documents, and one result per document (a refusal for the others)."""
    prepared: list[Prepared] = []
    results: list[IndexResult] = []
    for document in documents:
        try:
            vectors = unit_vectors(document, dims)
            prepared.append(Prepared(document, to_tantivy(document), vectors))
            results.append(IndexResult(document.id, document.uri, True))
        except (TypeError, ValueError, OverflowError) as e:
            # One document that cannot be stored must not cost the rest of its batch.
            results.append(IndexResult(document.id, document.uri, False, str(e)))
    return prepared, results


def store_rows(store: VectorStore, prepared: Sequence[Prepared]) -> None:
    """Append every vector as a row (one write and sync per field) and name the rows in the
    tantivy documents."""
    for field, row_field in ROW_FIELDS.items():
        owners = [p for p in prepared if field in p.vectors]
        if not owners:
            continue
        first = store.append(field, np.stack([p.vectors[field] for p in owners]))  # type: ignore[arg-type]
        for i, owner in enumerate(owners):
            owner.doc.add_integer(row_field, first + i)


def with_rows(document: ImageDocument, rows: dict[str, int]) -> tantivy.Document:
    """A document rewritten (new locations) naming the rows it already had."""
    doc = to_tantivy(document)
    for field, row in rows.items():
        doc.add_integer(ROW_FIELDS[field], row)
    return doc


class WriterSlot:
    """The index's writer: held for the object's life (``deeptag index``, a server), or
    taken for each call and released after it. tantivy's IndexWriter refuses concurrent
    use from two threads; so does this."""

    def __init__(
        self, index: Callable[[], tantivy.Index], directory: Path, held: tantivy.IndexWriter | None
    ) -> None:
        self._index = index
        self.directory = directory
        self._held = held
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._held is not None

    @contextmanager
    def use(self) -> Iterator[tantivy.IndexWriter]:
        with self._lock:
            if self._held is not None:
                yield self._held
                return
            writer = take_writer(self._index(), self.directory)
            try:
                yield writer
            finally:
                self._release(writer)

    def drop(self) -> None:
        # Under the lock, so that a batch being committed finishes before the writer goes.
        with self._lock:
            writer, self._held = self._held, None
            if writer is not None:
                self._release(writer)

    def _release(self, writer: tantivy.IndexWriter) -> None:
        # Waiting for merges consumes the writer; dropping it releases the lock at once,
        # rather than whenever the garbage collector gets to it.
        with tantivy_errors(f"embedded index {self.directory}: releasing the writer"):
            writer.wait_merging_threads()
