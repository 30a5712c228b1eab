"""The kNN request Elasticsearch receives: its candidates, its filter, its least cosine.

noida-db (the test server, tests/integration/test_knn_filter.py) answers these requests; these
tests pin what a real cluster is sent, which no answer from noida can show.
"""

from __future__ import annotations

import pytest

from orchestrator.errors import BadRequest, InvalidQuery
from orchestrator.search.base import (
    DEFAULT_QUERY_FIELDS,
    NO_OPTIONS,
    Category,
    ImageDocument,
    SearchHit,
    SearchPage,
)
from orchestrator.search.es_knn import cosine_page, filter_words, knn_section, num_candidates
from orchestrator.search.es_query import search_body
from orchestrator.search.limits import MAX_KNN_K

VECTOR = (1.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("k", "candidates"),
    [(1, 100), (10, 100), (11, 110), (50, 500), (999, 9990), (1000, 10_000), (10_000, 10_000)],
)
def test_candidates_are_ten_per_neighbour_at_least_100_at_most_es_limit(
    k: int, candidates: int
) -> None:
    assert num_candidates(k) == candidates


def test_candidates_are_never_fewer_than_k_nor_over_es_limit() -> None:
    # ES refuses a request whose num_candidates is under k or over 10,000.
    assert all(k <= num_candidates(k) <= MAX_KNN_K for k in range(1, MAX_KNN_K + 1))


def test_the_filter_is_the_knn_requests_own_filter_read_as_a_word_search_reads_q() -> None:
    words = "dog AND taken_at:2019"
    section = knn_section(VECTOR, 5, "semantic", words=words)
    (clause,) = section["filter"]["bool"]["filter"]
    # The same query a word search sends for q=, dates rewritten into instants.
    assert clause == search_body(words, DEFAULT_QUERY_FIELDS, NO_OPTIONS)["query"]
    assert clause["query_string"]["query"] == (
        "dog AND taken_at:[2019-01-01T00:00:00Z TO 2020-01-01T00:00:00Z}"
    )
    assert (section["k"], section["num_candidates"], section["field"]) == (5, 100, "semantic")


def test_the_filter_and_the_image_left_out_are_both_applied() -> None:
    section = knn_section(VECTOR, 3, "embedding", words="tags:dog", exclude_id="a" * 64)
    allowed = section["filter"]["bool"]
    assert allowed["must_not"] == [{"ids": {"values": ["a" * 64]}}]
    assert allowed["filter"][0]["query_string"]["query"] == "tags:dog"
    alone = knn_section(VECTOR, 3, "embedding", exclude_id="a" * 64)
    assert alone["filter"] == {"bool": {"must_not": [{"ids": {"values": ["a" * 64]}}]}}


@pytest.mark.parametrize("given", [None, "", "   ", "*", " * "])
def test_a_filter_that_lets_everything_through_sends_none(given: str | None) -> None:
    assert filter_words(given) is None
    assert "filter" not in knn_section(VECTOR, 3, "embedding", words=filter_words(given))


def test_min_score_is_es_similarity_on_the_raw_cosine_scale() -> None:
    # Not (1 + 0.45) / 2: for cosine, similarity compares the cosine itself.
    assert knn_section(VECTOR, 3, "semantic", min_score=0.45)["similarity"] == 0.45
    assert knn_section(VECTOR, 3, "semantic", min_score=-0.2)["similarity"] == -0.2
    assert "similarity" not in knn_section(VECTOR, 3, "semantic")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_min_score_that_is_not_a_number_is_refused(bad: float) -> None:
    with pytest.raises(BadRequest, match="min_score must be a finite number"):
        knn_section(VECTOR, 3, "semantic", min_score=bad)


@pytest.mark.parametrize(
    ("words", "says"),
    [
        ("taken_at:2019-13", "filter 'taken_at:2019-13': taken_at: '2019-13' is not a date"),
        ("(" * 101 + "dog", "parentheses nested 101 deep, over the limit of 100"),
        ("dog " * 2_600, "characters, over the limit of 10000"),
    ],
)
def test_a_filter_refused_before_es_sees_it_says_it_is_the_filter(words: str, says: str) -> None:
    with pytest.raises(InvalidQuery, match=r"^filter '") as refused:
        knn_section(VECTOR, 3, "embedding", words=words)
    assert says in refused.value.message


def document(name: str) -> ImageDocument:
    return ImageDocument(
        id=name,
        uri=f"/photos/{name}.jpg",
        categories=(Category("n0 dog", 0.9),),
        tags=("dog",),
        embedding=None,
        width=1,
        height=1,
        model="m",
        indexed_at="2025-01-01T00:00:00Z",
    )


def test_hits_are_scored_by_cosine_and_none_is_under_min_score() -> None:
    # ES's _score is (1 + cos) / 2; the last one is a float32 hair under the bound.
    es_scores = {"near": 0.95, "bound": (1 + 0.5) / 2, "hair": (1 + 0.5) / 2 - 1e-7, "far": 0.6}
    page = SearchPage(4, tuple(SearchHit(document(n), s) for n, s in es_scores.items()), 1.0)
    kept = cosine_page(page, 0.5)
    assert [(h.document.id, round(h.score, 6)) for h in kept.hits] == [
        ("near", 0.9),
        ("bound", 0.5),
    ]
    assert kept.total == 2
    unbounded = cosine_page(page, None)
    assert [round(h.score, 6) for h in unbounded.hits] == [0.9, 0.5, 0.5, 0.2]
