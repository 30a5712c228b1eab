"""Upgrading an embedded index folder written by an earlier deeptag, in place, by its writer.

Every document is copied into a folder with today's fields (its stored vectors become rows and
an ANN index, see vector_store.py), then the two folders are swapped. The legacy folder's
writer lock is held throughout, so no other writer adds documents the copy would miss.
Documents keep what they had; re-tagging adds what they lack (concepts, photo metadata).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

import tantivy

from orchestrator.search.base import ImageDocument
from orchestrator.search.embedded_knn import vector_at
from orchestrator.search.embedded_store import (
    WRITER_HEAP_BYTES,
    WRITER_THREADS,
    build_schema,
    from_stored,
    opstamp,
    rows_of,
    take_writer,
)
from orchestrator.search.embedded_writes import prepare, store_rows
from orchestrator.search.vector_store import VectorStore, progress_bar

log = logging.getLogger("deeptag.embedded")
#: Documents copied per commit.
BATCH = 2000


def upgrade(directory: Path, dims: dict[str, int]) -> None:
    old = tantivy.Index.open(str(directory))
    lock = take_writer(old, directory)
    staging = directory.with_name(directory.name + ".upgrading")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    new = tantivy.Index(build_schema(), path=str(staging))
    writer = new.writer(heap_size=WRITER_HEAP_BYTES, num_threads=WRITER_THREADS)
    store = VectorStore(staging, dims)
    # A folder lacking only fields added after the row files has its vectors in rows.
    old_rows = VectorStore(directory, dims)
    searcher = old.searcher()
    total = searcher.num_docs
    log.warning(
        "embedded index %s: upgrading %d documents to this deeptag's format (once)",
        directory,
        total,
    )
    everything = searcher.search(tantivy.Query.all_query(), max(total, 1))
    addresses = [address for _, address in everything.hits]
    with progress_bar("documents", total, shown=True) as progress:
        for start in range(0, len(addresses), BATCH):
            _copy(searcher, addresses[start : start + BATCH], old_rows, store, writer, dims)
            if progress is not None:
                progress(min(start + BATCH, total), total)
    writer.wait_merging_threads()
    new.reload()
    store.maintain(new.searcher(), new.schema, opstamp(staging))
    retired = directory.with_name(directory.name + ".legacy")
    shutil.rmtree(retired, ignore_errors=True)
    directory.rename(retired)
    staging.rename(directory)
    lock.wait_merging_threads()
    shutil.rmtree(retired, ignore_errors=True)


def _copy(
    searcher: tantivy.Searcher,
    addresses: list[tantivy.DocAddress],
    old_rows: VectorStore,
    store: VectorStore,
    writer: tantivy.IndexWriter,
    dims: dict[str, int],
) -> None:
    """One batch of documents into the new folder, their vectors as rows, in one commit."""
    documents = [_read(searcher.doc(address), old_rows) for address in addresses]
    prepared, results = prepare(documents, dims["embedding"])
    # A document whose stored vector cannot be a row (all zeros) keeps the rest of itself.
    refused = [d for d, r in zip(documents, results, strict=True) if not r.ok]
    prepared += prepare([replace(d, embedding=None, semantic=None) for d in refused], 0)[0]
    store_rows(store, prepared)
    for item in prepared:
        writer.add_document(item.doc)
    writer.commit()


def _read(stored: tantivy.Document, old_rows: VectorStore) -> ImageDocument:
    """A stored document with its vectors, from the old folder's rows or from itself."""
    rows = rows_of(stored)
    if not rows:
        return from_stored(stored, with_vectors=True)
    return replace(
        from_stored(stored),
        embedding=vector_at(old_rows, rows, "embedding"),
        semantic=vector_at(old_rows, rows, "semantic"),
    )
