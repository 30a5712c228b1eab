"""The vectors of record of the embedded index: one append-only file of float16 rows per field.

A document names the row of each of its vectors in tantivy (``_row.embedding``,
``_row.semantic``); the rows live here, in the index folder's ``vectors/``, rather than in
tantivy's stored documents, so a search maps the file instead of decoding a million documents.
Rows are unit vectors in float16: half the bytes of float32, and a cosine off by < 1e-3.

Rows are only ever appended, and each append is on disk (fsync) before the tantivy commit
that names it. A crash in between leaves rows no document names, which no search returns;
never a document naming a row that is not there. A row is never rewritten, so a reader's
mapping of the file stays valid while a writer appends.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

Rows = npt.NDArray[np.float16]
#: float16: two bytes per value.
ITEM_BYTES = 2


class RowFile:
    """One field's rows (``dims`` float16 values each), appended by the writer, mapped by all."""

    def __init__(self, path: Path, dims: int) -> None:
        self.path = path
        self.dims = dims
        self.row_bytes = dims * ITEM_BYTES
        self._mapped: Rows | None = None

    def count(self) -> int:
        """Complete rows on disk (a torn last row, from a crash mid-append, is not one)."""
        try:
            return os.stat(self.path).st_size // self.row_bytes
        except FileNotFoundError:
            return 0

    def append(self, vectors: npt.NDArray[np.float32]) -> int:
        """Write ``vectors`` (unit rows) after the last complete row and sync them to disk;
        the first one's row number."""
        rows = np.ascontiguousarray(vectors, dtype="<f2")
        if rows.ndim != 2 or rows.shape[1] != self.dims:
            raise ValueError(f"rows of {rows.shape[-1]} values, the file holds {self.dims}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        start = self.count()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            # pwrite at the end of the complete rows: a torn row left by a crash is overwritten.
            os.pwrite(fd, rows.tobytes(), start * self.row_bytes)
            os.fsync(fd)
        finally:
            os.close(fd)
        return start

    def matrix(self) -> Rows:
        """Every complete row, memory-mapped read-only (re-mapped when the file has grown)."""
        count = self.count()
        if self._mapped is None or len(self._mapped) != count:
            if count == 0:
                self._mapped = np.empty((0, self.dims), dtype="<f2")
            else:
                self._mapped = np.memmap(self.path, dtype="<f2", mode="r", shape=(count, self.dims))
        return self._mapped

    def read(self, rows: npt.NDArray[np.int64]) -> Rows:
        """The given rows (which must exist), in that order, as one array."""
        matrix = self.matrix()
        if len(rows) and int(rows.max()) >= len(matrix):
            raise ValueError(f"{self.path}: row {int(rows.max())} is past its {len(matrix)} rows")
        return np.asarray(matrix[rows])
