"""Every vector of one field of the embedded index, read once per commit for exact kNN."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tantivy

from orchestrator.search.vectors import Vectors, normalise_rows


@dataclass(frozen=True)
class VectorSnapshot:
    """Every vector of one field and index generation, with the searcher their addresses
    belong to."""

    generation: str
    searcher: tantivy.Searcher
    addresses: list[tantivy.DocAddress]
    rows: dict[str, int]  # document id -> its row in matrix (and addresses)
    matrix: Vectors  # (len(rows), dims), rows L2-normalised


def read_vectors(
    searcher: tantivy.Searcher, current: str, field: str, dims: int, present: bool
) -> VectorSnapshot:
    """The ``field`` vectors (``dims`` long) of every document; none when the folder lacks
    the field (``present`` False)."""
    everything = searcher.search(tantivy.Query.all_query(), max(searcher.num_docs, 1))
    # Filled in place: no list of rows next to the matrix, so the peak stays one matrix.
    matrix = np.empty((len(everything.hits), dims), dtype=np.float32)
    addresses: list[tantivy.DocAddress] = []
    rows: dict[str, int] = {}
    for _, address in everything.hits:
        stored = searcher.doc(address)
        vector = None if not present else stored.get_first(field)
        if vector is None or len(vector) != 4 * dims:
            continue  # indexed without this vector: not a candidate
        matrix[len(rows)] = np.frombuffer(bytes(vector), dtype="<f4")
        rows[str(stored.get_first("id"))] = len(rows)
        addresses.append(address)
    matrix = matrix[: len(rows)]
    normalise_rows(matrix)
    return VectorSnapshot(current, searcher, addresses, rows, matrix)
