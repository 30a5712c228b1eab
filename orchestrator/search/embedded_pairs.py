"""Every pair of documents of the embedded index whose vectors are close: kNN for each document,
batched (one graph search answers a thousand queries on every core), never all pairs.

Candidates come from the HNSW graphs (and an exact scan of the rows no graph covers), a few
per document; only pairs the graphs put near the threshold get their exact cosine, from the
rows. Used by ``deeptag duplicates``: 100,000 documents take about a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import tantivy
from usearch.compiled import MetricKind
from usearch.index import search as exact_search

from orchestrator.search.base import VectorField
from orchestrator.search.embedded_photo import KEY_FIELD
from orchestrator.search.embedded_store import ROW_FIELDS, hit_count
from orchestrator.search.vector_rows import Rows
from orchestrator.search.vector_segments import Keys, Views
from orchestrator.search.vector_store import VectorStore

#: Queries sent to a graph at once.
BATCH = 1024
#: How far under the threshold a graph's (int8) cosine may be and the pair still be checked.
MARGIN = 0.05
#: The graphs' candidate list for this job: a near duplicate is among a photo's very nearest,
#: which a shorter list finds 3x faster (97 % of rows find themselves at 64, asked for 11;
#: a pair is missed only when both of its photos miss the other).
EXPANSION = 64


def live(searcher: tantivy.Searcher, row_field: str) -> tuple[Keys, Keys]:
    """The rows live documents name, sorted, and each one's document key."""
    query = tantivy.Query.exists_query(row_field)
    count = hit_count(searcher.search(query, 1, count=True))
    if count == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    addresses = [address for _, address in searcher.search(query, count).hits]
    rows = np.array(searcher.fast_field_values(row_field, addresses), np.int64)
    keys = np.array(searcher.fast_field_values(KEY_FIELD, addresses), np.int64)
    order = np.argsort(rows)
    return rows[order], keys[order]


def close_pairs(
    store: VectorStore,
    searcher: tantivy.Searcher,
    field: VectorField,
    k: int,
    min_score: float,
) -> Iterator[tuple[int, int, float]]:
    """``(key, key, cosine)`` for each pair of documents, once, where one is among the other's
    ``k`` nearest and their cosine is at least ``min_score``."""
    rows, keys = live(searcher, ROW_FIELDS[field])
    if len(rows) < 2:
        return
    file = store.rows[field]
    matrix = file.matrix()
    segments = store.segments(field)
    views = Views(store.folder, EXPANSION)  # its own: searches keep their longer list
    graphs = [(s, views.get(s)) for s in segments]
    covered = [(s.start, s.stop) for s, graph in graphs if graph is not None]
    # Rows no usable graph covers are scanned exactly, as one search would.
    exact = rows[~_inside(rows, covered)]
    seen: set[tuple[int, int]] = set()
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        queries = np.asarray(matrix[chunk], np.float32)
        found_keys: list[Keys] = []
        found_distances: list[npt.NDArray[np.float32]] = []
        for segment, graph in graphs:
            if graph is not None and segment.count:
                found = graph.search(queries, min(k + 1, segment.count), threads=0)
                found_keys.append(found.keys.astype(np.int64).reshape(len(chunk), -1))
                found_distances.append(found.distances.reshape(len(chunk), -1))
        if len(exact):
            found = exact_search(
                np.asarray(matrix[exact]),
                queries.astype(np.float16),
                min(k + 1, len(exact)),
                MetricKind.Cos,
                exact=True,
                threads=0,
            )
            found_keys.append(exact[found.keys.astype(np.int64).reshape(len(chunk), -1)])
            found_distances.append(found.distances.reshape(len(chunk), -1))
        candidates = np.concatenate(found_keys, axis=1)
        # The graphs' cosines are int8 approximations: only pairs near the threshold are
        # scored exactly, from the rows.
        near = (1.0 - np.concatenate(found_distances, axis=1)) >= min_score - MARGIN
        for i, row in enumerate(chunk.tolist()):
            wanted = candidates[i][near[i]]
            if len(wanted):
                yield from _pairs(row, wanted, rows, keys, matrix, queries[i], min_score, seen)


def _pairs(
    row: int,
    candidates: Keys,
    rows: Keys,
    keys: Keys,
    matrix: Rows,
    query: npt.NDArray[np.float32],
    min_score: float,
    seen: set[tuple[int, int]],
) -> Iterator[tuple[int, int, float]]:
    others = np.unique(candidates[candidates != row])
    others = others[_named(others, rows)]
    if not len(others):
        return
    scores = np.asarray(matrix[others], np.float32) @ query
    key = int(keys[np.searchsorted(rows, row)])
    for other, score in zip(others.tolist(), scores.tolist(), strict=True):
        if score < min_score:
            continue
        other_key = int(keys[np.searchsorted(rows, other)])
        pair = (min(key, other_key), max(key, other_key))
        if pair[0] != pair[1] and pair not in seen:
            seen.add(pair)
            yield pair[0], pair[1], float(score)


def _named(candidates: Keys, rows: Keys) -> npt.NDArray[np.bool_]:
    """Which candidates a live document names (``rows`` is sorted)."""
    at = np.searchsorted(rows, candidates)
    at[at == len(rows)] = 0
    named: npt.NDArray[np.bool_] = rows[at] == candidates
    return named


def _inside(rows: Keys, ranges: list[tuple[int, int]]) -> npt.NDArray[np.bool_]:
    inside = np.zeros(len(rows), dtype=bool)
    for start, stop in ranges:
        inside |= (rows >= start) & (rows < stop)
    return inside


def document_pairs(
    store: VectorStore,
    searcher: tantivy.Searcher,
    schema: tantivy.Schema,
    k: int,
    min_score: float,
) -> list[tuple[str, str, float]]:
    """:func:`close_pairs` of the ``embedding`` field, by document id."""
    found = list(close_pairs(store, searcher, "embedding", k, min_score))
    wanted = sorted({key for a, b, _ in found for key in (a, b)})
    ids: dict[int, str] = {}
    if wanted:
        query = tantivy.Query.term_set_query(schema, KEY_FIELD, wanted)
        addresses = [address for _, address in searcher.search(query, len(wanted)).hits]
        owners = searcher.fast_field_values(KEY_FIELD, addresses)
        for address, key in zip(addresses, owners, strict=True):
            if key is not None:
                ids[int(key)] = str(searcher.doc(address).get_first("id"))
    return [(ids[a], ids[b], score) for a, b, score in found if a in ids and b in ids]
