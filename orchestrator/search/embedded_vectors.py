"""kNN in a folder written before the ANN files: an exact scan of tantivy's stored vectors.

Such a folder is read as it is until a writer upgrades it (embedded_upgrade.py); its vectors
are read once per commit into a matrix, as every folder was searched before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import tantivy

from orchestrator.search.base import VectorField
from orchestrator.search.embedded_photo import KEY_FIELD, document_key
from orchestrator.search.embedded_store import generation
from orchestrator.search.vectors import Vectors, normalise_rows, top_k


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


class LegacyVectors:
    def __init__(
        self, directory: Path, fields: frozenset[str], dims: Callable[[VectorField], int]
    ) -> None:
        self.directory = directory
        self.fields = fields
        self.dims = dims
        self._lock = threading.Lock()
        self._snapshots: dict[str, VectorSnapshot] = {}

    def forget(self) -> None:
        self._snapshots = {}

    def count(self, searcher: tantivy.Searcher, field: VectorField) -> int:
        return len(self._snapshot(searcher, field).rows) if field in self.fields else 0

    def nearest(
        self,
        searcher: tantivy.Searcher,
        field: VectorField,
        query: Vectors,
        k: int,
        exclude_id: str | None,
        where: tantivy.Query | None,
    ) -> list[tuple[float, tantivy.DocAddress]]:
        if field not in self.fields:
            return []
        snapshot = self._snapshot(searcher, field)
        if not snapshot.rows:
            return []
        scores = snapshot.matrix @ query
        if exclude_id in snapshot.rows:
            scores[snapshot.rows[exclude_id]] = -np.inf
        if where is not None:
            scores[~self._matching(snapshot, where)] = -np.inf
        return [(float(scores[i]), snapshot.addresses[i]) for i in top_k(scores, k)]

    def _matching(self, snapshot: VectorSnapshot, where: tantivy.Query) -> npt.NDArray[np.bool_]:
        """Which rows of the snapshot ``where`` matches (by the documents' keys)."""
        searcher = snapshot.searcher
        found = searcher.search(where, max(searcher.num_docs, 1)).hits
        wanted = set(searcher.fast_field_values(KEY_FIELD, [a for _, a in found]))
        keys = {document_key(doc_id): row for doc_id, row in snapshot.rows.items()}
        mask = np.zeros(len(snapshot.rows), dtype=bool)
        for key, row in keys.items():
            mask[row] = key in wanted
        return mask

    def _snapshot(self, searcher: tantivy.Searcher, field: VectorField) -> VectorSnapshot:
        """Every vector of ``field``, re-read only when a commit changed the index."""
        with self._lock:
            current = generation(self.directory)
            snapshot = self._snapshots.get(field)
            if snapshot is None or snapshot.generation != current:
                present = field in self.fields
                snapshot = read_vectors(searcher, current, field, self.dims(field), present)
                self._snapshots[field] = snapshot
            return snapshot
