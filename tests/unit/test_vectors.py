"""Exact kNN's building blocks: what a bad vector is told, and how top-k ranks."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import BadRequest
from orchestrator.search.vectors import embedding_bytes, normalise_rows, top_k, unit_vector


def test_top_k_ranks_best_first_and_drops_excluded_rows() -> None:
    scores = np.array([0.1, 0.9, -np.inf, 0.5, 0.7], dtype=np.float32)
    assert top_k(scores, 3) == [1, 4, 3]
    # Asking for more than there are gives every finite score, the excluded one left out.
    assert top_k(scores, 10) == [1, 4, 3, 0]


def test_unit_vector_scales_to_length_one_and_refuses_what_cannot_be_searched() -> None:
    assert np.linalg.norm(unit_vector([3.0, 4.0], 2)) == pytest.approx(1.0)
    with pytest.raises(BadRequest, match="3 values, the index stores 2"):
        unit_vector([1.0, 2.0, 3.0], 2)
    with pytest.raises(BadRequest, match="not all zeros"):
        unit_vector([0.0, 0.0], 2)
    with pytest.raises(BadRequest, match="finite"):
        unit_vector([np.nan, 1.0], 2)


def test_embedding_bytes_round_trip_and_refuse_wrong_shapes() -> None:
    stored = embedding_bytes([0.25, -0.5], 2)
    assert np.frombuffer(stored, dtype="<f4").tolist() == [0.25, -0.5]
    with pytest.raises(ValueError, match="1 values, the index stores 2"):
        embedding_bytes([1.0], 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        embedding_bytes([np.inf, 1.0], 2)


def test_normalise_rows_leaves_a_zero_row_zero() -> None:
    matrix = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    normalise_rows(matrix)
    assert matrix[0].tolist() == pytest.approx([0.6, 0.8])
    assert matrix[1].tolist() == [0.0, 0.0]
