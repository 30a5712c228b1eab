"""A hit's 0-1 score and what matched, from the query and the document alone."""

from __future__ import annotations

import pytest

from orchestrator.photo import PhotoMetadata, Place
from orchestrator.search.base import Category, ConceptScore, ImageDocument
from orchestrator.search.relevance import (
    query_terms,
    relevance,
    semantic_confidence,
)


def photo(**fields: object) -> ImageDocument:
    base: dict[str, object] = {
        "id": "a" * 64,
        "uri": "/photos/IMG_0001.jpg",
        "categories": (
            Category("n02123045 tabby, tabby cat", 0.62),
            Category("n02124075 Egyptian cat", 0.2),
        ),
        "tags": ("tabby", "Egyptian cat"),
        "embedding": None,
        "width": 640,
        "height": 480,
        "model": "efficientnet_lite0/1",
        "indexed_at": "2026-12-01T12:00:00Z",
        "concepts": (ConceptScore("cat", 0.82), ConceptScore("feline", 0.82)),
    }
    return ImageDocument(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("tabby cat", {"tabby", "cat"}),
        ("tags:tabby AND width:>1000", {"tabby"}),
        ("cat -dog NOT bird", {"cat"}),
        ('"crash helmet" OR moped', {"crash", "helmet", "moped"}),
        ("width:[1000 TO 3000]", set()),
        ("*", set()),
    ],
)
def test_the_words_a_hit_can_have_matched(query: str, terms: set[str]) -> None:
    assert query_terms(query) == terms


def test_a_label_counts_with_the_classifiers_probability() -> None:
    judged = relevance(photo(), query_terms("tabby"), None, word_hit=True)
    assert (judged.score, judged.matched) == (0.62, ("tags: tabby",))
    # The strongest evidence wins; at most three word matches are listed.
    judged = relevance(photo(), query_terms("cat"), None, word_hit=True)
    assert judged.score == 0.82
    assert judged.matched == ("concepts: cat", "tags: tabby cat", "tags: Egyptian cat")


def test_what_the_photo_says_itself_is_a_literal_match() -> None:
    own = photo(
        photo=PhotoMetadata(keywords=("holiday",), place=Place(city="Paris", country="France")),
        metadata={"album": "summer trip"},
        analyses={"ocr": {"text": "EMERGENCY EXIT\n2024"}},
    )
    for query, said in (
        ("holiday", "keywords: holiday"),
        ("paris", "place: Paris"),
        ("trip", "album: summer trip"),
        ("exit", "text: EMERGENCY EXIT"),
    ):
        judged = relevance(own, query_terms(query), None, word_hit=True)
        assert (judged.score, judged.matched) == (1.0, (said,))


def test_meaning_is_calibrated_and_conditions_alone_are_met_exactly() -> None:
    # 0.5 at the cosine where a judged pair was as likely relevant as not (0.62).
    assert semantic_confidence(0.623) == pytest.approx(0.5, abs=0.01)
    assert semantic_confidence(0.9) > 0.9 > 0.1 > semantic_confidence(0.4)
    by_meaning = relevance(photo(), query_terms("kitten"), 0.9, word_hit=False)
    assert by_meaning.matched == (f"semantic: {semantic_confidence(0.9):.2f}",)
    assert by_meaning.score == pytest.approx(semantic_confidence(0.9), abs=1e-4)
    exact = relevance(photo(), query_terms("width:>100"), None, word_hit=True)
    assert (exact.score, exact.matched) == (1.0, ())
