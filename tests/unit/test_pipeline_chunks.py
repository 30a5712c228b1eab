"""How a request's images are split into the chunks that are fetched and classified together."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.pipeline import chunked


def test_chunks_keep_order_and_the_last_one_is_shorter() -> None:
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]


def test_exact_multiple_has_no_empty_tail() -> None:
    assert list(chunked("abcd", 2)) == [["a", "b"], ["c", "d"]]


def test_nothing_in_nothing_out() -> None:
    assert list(chunked([], 32)) == []


def test_chunks_are_produced_lazily_from_a_stream() -> None:
    # A folder walk of millions of files must not be listed whole before the first chunk.
    def endless() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    stream = chunked(endless(), 2)
    assert next(stream) == [0, 1]
    assert next(stream) == [2, 3]


def test_a_chunk_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="chunk size must be at least 1, not 0"):
        list(chunked([1, 2], 0))
