"""Embedding vectors for exact kNN: validation, storage bytes, cosine top-k (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from orchestrator.errors import BadRequest

Vectors = npt.NDArray[np.float32]


def embedding_bytes(embedding: Sequence[float], dims: int) -> bytes:
    vector = np.asarray(embedding, dtype="<f4")
    if vector.shape != (dims,):
        raise ValueError(f"embedding has {vector.size} values, the index stores {dims}")
    if not np.isfinite(vector).all():
        raise ValueError("embedding contains NaN or infinite values")
    return vector.tobytes()


def unit_vector(vector: Sequence[float], dims: int) -> Vectors:
    query = np.asarray(vector, dtype=np.float32)
    if query.shape != (dims,):
        raise BadRequest(f"query vector has {query.size} values, the index stores {dims}")
    norm = float(np.linalg.norm(query))
    if not np.isfinite(norm) or norm == 0.0:
        raise BadRequest("query vector must be finite and not all zeros")
    return query / norm


def normalise_rows(matrix: Vectors) -> None:
    # Embeddings arrive L2-normalised; dividing again is cheap insurance. A zero row stays zero.
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)


def top_k(scores: Vectors, k: int) -> list[int]:
    """Indices of the ``k`` highest finite scores, best first."""
    k = min(k, scores.size)
    candidates = np.argpartition(-scores, k - 1)[:k]
    best = candidates[np.argsort(-scores[candidates], kind="stable")]
    return [int(i) for i in best if np.isfinite(scores[i])]
