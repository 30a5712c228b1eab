"""Nearest neighbours in the embedded index: tantivy documents, their rows, the HNSW segments.

A document names its vectors' rows (``_row.embedding``, ``_row.semantic``: stored, indexed and
fast integer fields). A search asks the segments and the tail for the nearest rows, then maps
rows to documents with one term-set query on the same searcher: a row no live document names
(replaced, removed, or written by a batch that crashed before its commit) is skipped, and more
candidates are asked for until ``k`` documents are found.

A word filter is applied before the ``k`` are chosen. When it matches at most
:data:`EXACT_FILTERED` documents, their rows are scanned exactly (~20 ms for 20,000 rows of
1,280 values); otherwise the graphs are asked for enough candidates that ``k`` of them match
at the filter's share of the index, and for more until they do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import tantivy

from orchestrator.search.base import VectorField
from orchestrator.search.embedded_photo import KEY_FIELD, document_key
from orchestrator.search.embedded_search import both
from orchestrator.search.embedded_store import ROW_FIELDS, hit_count
from orchestrator.search.vector_segments import Distances, Keys, nearest, scan
from orchestrator.search.vector_store import VectorStore
from orchestrator.search.vectors import Vectors

Floats: TypeAlias = tuple[float, ...]
#: A filter matching at most this many documents is answered by scanning their rows exactly.
EXACT_FILTERED = 20_000
#: Candidates first asked for, as a multiple of those wanted (rows no document names anymore,
#: and the excluded document, take some places).
OVERFETCH = 2
GROWTH = 4


@dataclass(frozen=True, eq=False)
class Near:
    """One hit: cosine, where the document is, its row."""

    score: float
    address: tantivy.DocAddress
    row: int


def nearest_documents(
    store: VectorStore,
    searcher: tantivy.Searcher,
    schema: tantivy.Schema,
    field: VectorField,
    query: Vectors,
    k: int,
    *,
    exclude_id: str | None = None,
    where: tantivy.Query | None = None,
    min_score: float | None = None,
) -> list[Near]:
    """The ``k`` documents whose ``field`` vectors are nearest ``query`` (a unit vector),
    among those ``where`` matches, best first."""
    row_field = ROW_FIELDS[field]
    q = query.astype(np.float16)
    excluded = None if exclude_id is None else document_key(exclude_id)
    wanted = k + (excluded is not None)
    segments = store.segments(field)
    rows = store.rows[field]
    if where is not None:
        matching = both(where, tantivy.Query.exists_query(row_field))
        count = hit_count(searcher.search(matching, 1, count=True))
        if count == 0:
            return []
        if count <= EXACT_FILTERED:
            found = searcher.search(matching, count).hits
            addresses = [address for _, address in found]
            candidates = np.array(searcher.fast_field_values(row_field, addresses), np.int64)
            order = np.argsort(candidates, kind="stable")
            keys, distances = scan(rows, candidates[order], q, wanted)
            return _resolve(
                searcher, schema, row_field, keys, distances, None, excluded, min_score
            )[:k]
        with_vectors = max(store.count(searcher, field), 1)
        asked = math.ceil(wanted * with_vectors / count) * OVERFETCH + 16
    else:
        asked = wanted * OVERFETCH + 16
    views = store.views[field]
    while True:
        keys, distances = nearest(views, segments, rows, q, asked)
        hits = _resolve(searcher, schema, row_field, keys, distances, where, excluded, min_score)
        exhausted = len(keys) < asked or asked >= rows.count()
        below = min_score is not None and len(distances) and 1 - distances[-1] < min_score
        if len(hits) >= k or exhausted or below:
            return hits[:k]
        asked *= GROWTH


def _resolve(
    searcher: tantivy.Searcher,
    schema: tantivy.Schema,
    row_field: str,
    keys: Keys,
    distances: Distances,
    where: tantivy.Query | None,
    excluded: int | None,
    min_score: float | None,
) -> list[Near]:
    """The candidates that are live documents (matching ``where``), in the candidates' order."""
    if not len(keys):
        return []
    named: tantivy.Query = tantivy.Query.term_set_query(schema, row_field, [int(k) for k in keys])
    if where is not None:
        named = both(named, where)
    found = searcher.search(named, len(keys)).hits
    addresses = [address for _, address in found]
    rows = searcher.fast_field_values(row_field, addresses)
    owners = searcher.fast_field_values(KEY_FIELD, addresses)
    by_row = {
        int(row): (address, owner)
        for row, address, owner in zip(rows, addresses, owners, strict=True)
        if row is not None
    }
    hits: list[Near] = []
    for key, distance in zip(keys.tolist(), distances.tolist(), strict=True):
        if key not in by_row:
            continue  # a row no live document names
        address, owner = by_row[key]
        score = 1.0 - float(distance)
        if owner is not None and owner == excluded:
            continue
        if min_score is not None and score < min_score:
            break
        hits.append(Near(score, address, key))
    return hits


def vector_at(store: VectorStore, rows: dict[str, int], field: VectorField) -> Floats | None:
    """The ``field`` vector behind ``rows``, as an ImageDocument holds it (None: it has none)."""
    if field not in rows:
        return None
    row = store.rows[field].read(np.array([rows[field]], np.int64))[0]
    return tuple(float(x) for x in row.astype(np.float32))
