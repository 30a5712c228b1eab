"""Hybrid search: rank fusion, which queries stay words only, and the embedded index end to end.

The documents are hand-made, with ``semantic`` vectors in a tiny made-up text space, so each
test can say exactly which image the meaning of a query points at.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import tantivy

from orchestrator.errors import SearchBackendError
from orchestrator.search import hybrid
from orchestrator.search.base import (
    SEMANTIC_DIMS,
    Category,
    ConceptScore,
    ImageDocument,
)
from orchestrator.search.embedded import EmbeddedIndex
from orchestrator.search.results import mode_page_json
from tests.search_support import first_schema

T = TypeVar("T")


def direction(axis: int, lean: int | None = None, amount: float = 0.0) -> tuple[float, ...]:
    """A unit vector along ``axis`` of the text space, leaning a little towards ``lean``."""
    vector = np.zeros(SEMANTIC_DIMS)
    vector[axis] = 1.0
    if lean is not None:
        vector[lean] = amount
    return tuple(float(x) for x in vector / np.linalg.norm(vector))


# Axes of the made-up text space.
PRIMATE, CAT, COFFEE, VEHICLE = 0, 1, 2, 3


def doc(
    doc_id: str,
    label: str,
    semantic: tuple[float, ...] | None,
    concepts: Sequence[str] = (),
) -> ImageDocument:
    return ImageDocument(
        id=doc_id,
        uri=f"/photos/{doc_id}.jpg",
        categories=(Category(label, 0.9),),
        tags=(label.split(" ", 1)[1],),
        embedding=None,
        width=640,
        height=480,
        model="efficientnet_lite0/1",
        indexed_at="2026-12-01T12:00:00Z",
        concepts=tuple(ConceptScore(c, 0.9) for c in concepts),
        semantic=semantic,
    )


DOCS = [
    # The baboon photo's meaning is a little less "primate" than the macaque's: semantic
    # ranking alone would put it second.
    doc("baboon", "n02486410 baboon", direction(PRIMATE, CAT, 0.6), ["monkey", "primate"]),
    doc("macaque", "n02487347 macaque", direction(PRIMATE), ["monkey", "primate"]),
    doc("tabby", "n02123045 tabby", direction(CAT), ["cat", "feline"]),
    doc("espresso", "n07920052 espresso", direction(COFFEE), ["coffee", "beverage"]),
    doc("moped", "n03785016 moped", direction(VEHICLE), ["motor vehicle", "vehicle"]),
]

# What the text encoder would say for each query, in the same made-up space.
QUERIES = {
    "baboon": direction(PRIMATE),
    "kitten": direction(CAT, PRIMATE, 0.1),
    "drink": direction(COFFEE),
    "espresso": direction(COFFEE),
    "giraffe": direction(5),  # nothing indexed means anything like it
}


async def encode(text: str) -> list[float]:
    return list(QUERIES[text])


def run(call: Callable[[EmbeddedIndex], Awaitable[T]], folder: Path) -> T:
    async def main() -> T:
        index = await EmbeddedIndex.open(folder)
        try:
            return await call(index)
        finally:
            await index.close()

    return asyncio.run(main())


@pytest.fixture
def indexed(tmp_path: Path) -> Path:
    folder = tmp_path / "index"

    async def add(index: EmbeddedIndex) -> None:
        results = [r async for r in index.index(DOCS)]
        assert all(r.ok for r in results)

    run(add, folder)
    return folder


def ids(folder: Path, query: str, mode: hybrid.SearchMode = "hybrid", **kw: object) -> list[str]:
    page = search(folder, query, mode, **kw)
    return [hit.document.id for hit in page.page.hits]


def search(
    folder: Path, query: str, mode: hybrid.SearchMode = "hybrid", **kw: object
) -> hybrid.ModePage:
    options = {"encode": encode, "min_score": 0.5, **kw}
    return run(lambda index: hybrid.search(index, query, mode, **options), folder)  # type: ignore[arg-type]


# --- Pure parts ------------------------------------------------------------------------------


def test_fusion_adds_reciprocal_ranks_and_keeps_the_word_order_on_ties() -> None:
    fused = hybrid.fuse([["a", "b"], ["b", "c"]])
    assert [doc_id for doc_id, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    # First in words, second in meaning ties with the reverse: the word ranking wins.
    assert [d for d, _ in hybrid.fuse([["x", "y"], ["y", "x"]])] == ["x", "y"]


@pytest.mark.parametrize(
    "query",
    [
        "tags:espresso",
        "categories.score:>0.5",
        "cat AND indoor",
        "cat OR dog",
        "helmet -bicycle",
        "-bicycle",
        "(cat)",
        "year:[2000 TO 2020]",
        "hedge*",
        'album:"summer 2020"',
    ],
)
def test_query_syntax_makes_a_query_structured(query: str) -> None:
    assert hybrid.is_structured(query)


@pytest.mark.parametrize("query", ["kitten", "red sports car", '"crash helmet"', "t-shirt"])
def test_words_and_phrases_are_free_text(query: str) -> None:
    assert not hybrid.is_structured(query)
    assert hybrid.semantic_text(query) == query.replace('"', "")


@pytest.mark.parametrize(
    ("query", "filter", "words"),
    [
        ("kitten", None, "kitten"),
        ("kitten", "*", "kitten"),
        ("kitten", "camera.make:canon", "(kitten) AND (camera.make:canon)"),
        # Grouped: the filter narrows the whole query, not its last alternative.
        ("cat OR dog", "taken_at:2019", "(cat OR dog) AND (taken_at:2019)"),
        ("tags:dog", "a OR b", "(tags:dog) AND (a OR b)"),
        ("*", "camera.make:canon", "camera.make:canon"),
        ("", "camera.make:canon", "camera.make:canon"),
    ],
)
def test_a_filter_narrows_the_word_query_as_a_whole(
    query: str, filter: str | None, words: str
) -> None:
    assert hybrid.filtered(query, filter) == words


# --- On the embedded index -------------------------------------------------------------------


def test_a_word_outside_every_label_finds_its_image_by_meaning(indexed: Path) -> None:
    assert ids(indexed, "kitten", "words") == []
    assert ids(indexed, "kitten")[0] == "tabby"
    assert ids(indexed, "drink") == ["espresso"]


def test_a_label_word_keeps_its_photo_first(indexed: Path) -> None:
    # Meaning alone ranks the macaque first; the word match keeps the baboon ahead.
    assert ids(indexed, "baboon", "semantic")[:2] == ["macaque", "baboon"]
    assert ids(indexed, "baboon")[0] == "baboon"
    assert ids(indexed, "espresso")[0] == "espresso"


def test_concepts_are_searched_by_bare_words(indexed: Path) -> None:
    assert ids(indexed, "feline", "words") == ["tabby"]
    assert set(ids(indexed, "concepts.concept:monkey", "words")) == {"baboon", "macaque"}


def test_weak_semantic_hits_are_dropped(indexed: Path) -> None:
    assert ids(indexed, "giraffe") == []
    assert search(indexed, "giraffe", "semantic").page.total == 0


def test_a_structured_query_runs_as_words_with_the_same_hits(indexed: Path) -> None:
    for query in ("tags:espresso", "monkey -baboon", "concepts.concept:cat OR tags:moped"):
        page = search(indexed, query)
        assert page.mode == "words"
        assert ids(indexed, query) == ids(indexed, query, "words")


@pytest.mark.parametrize("query", ["", "*", '""'])
def test_nothing_to_mean_runs_as_words(indexed: Path, query: str) -> None:
    page = search(indexed, query)
    assert (page.mode, page.page.total) == ("words", len(DOCS) if query != '""' else 0)


def test_paging_through_fused_hits_gives_each_once(indexed: Path) -> None:
    QUERIES["primate"] = direction(PRIMATE, CAT, 0.9)
    # Every semantic hit kept, so every document is on some page.
    kept = {"min_score": 0.0, "cutoff": hybrid.SemanticCutoff(confidence=0.0)}
    first = ids(indexed, "primate", size=1, **kept)
    rest = ids(indexed, "primate", size=10, offset=1, **kept)
    everything = ids(indexed, "primate", size=10, **kept)
    assert first + rest == everything
    assert len(set(everything)) == len(everything) == len(DOCS)


def test_what_only_meaning_found_is_added_when_confidently_relevant(indexed: Path) -> None:
    QUERIES["primate"] = direction(PRIMATE, CAT, 0.9)
    # Before: with every semantic hit over min_score added, the espresso and the moped
    # (cosine 0, nothing like a primate) padded the answer.
    found = ids(indexed, "primate", min_score=0.0)
    assert found[:2] in (["baboon", "macaque"], ["macaque", "baboon"])
    assert "espresso" not in found
    assert "moped" not in found
    # The tabby leans towards the query (cosine 0.67): likely enough to be added.
    assert "tabby" in found


def test_each_hit_says_how_sure_and_why_on_one_scale(indexed: Path) -> None:
    QUERIES["feline"] = direction(CAT)
    (tabby, *_) = search(indexed, "feline").page.hits
    # The concept the classifier gave at 0.9, and its meaning: the stronger is the score.
    assert tabby.document.id == "tabby"
    assert tabby.relevance == pytest.approx(0.98, abs=0.01)  # cosine 1: sure by meaning
    assert tabby.matched == ("concepts: feline", "semantic: 0.98")
    # In words mode, on the same scale, without the meaning.
    (word_hit,) = search(indexed, "feline", "words").page.hits
    assert word_hit.relevance == pytest.approx(0.9)
    assert word_hit.matched == ("concepts: feline",)
    # A word in the file's name is a literal match: sure.
    baboon = search(indexed, "baboon").page.hits[0]
    assert baboon.relevance == 1.0
    assert "file: baboon.jpg" in baboon.matched
    assert "tags: baboon" in baboon.matched
    scores = [h.relevance for h in search(indexed, "baboon").page.hits]
    assert scores == sorted(scores, reverse=True)


def test_the_json_score_is_0_to_1_and_the_ranking_value_moves_aside(indexed: Path) -> None:
    body = mode_page_json(search(indexed, "baboon"))
    for hit in body["hits"]:
        assert 0.0 <= hit["score"] <= 1.0
        assert hit["rank_score"] < 0.05  # reciprocal rank fusion: 1/(60 + rank) per list
        assert hit["matched"]


def test_without_a_text_encoder_words_still_answer_and_say_why(indexed: Path) -> None:
    page = search(
        indexed, "espresso", encode=None, unavailable="text model 'minilm_l6' is not ready"
    )
    assert (page.mode, [h.document.id for h in page.page.hits]) == ("words", ["espresso"])
    assert page.notice is not None
    assert "minilm_l6" in page.notice


def test_images_indexed_without_vectors_are_named_with_the_way_to_add_them(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "index"
    old = [doc("old-cat", "n02123045 tabby", None), doc("old-cup", "n07920052 espresso", None)]

    async def add(index: EmbeddedIndex) -> None:
        assert all([r.ok async for r in index.index(old)])

    run(add, folder)
    page = search(folder, "espresso")
    assert page.mode == "words"
    assert [h.document.id for h in page.page.hits] == ["old-cup"]
    assert page.notice is not None
    assert "deeptag index --reindex" in page.notice
    assert mode_page_json(page)["notice"] == page.notice
    semantic = search(folder, "kitten", "semantic")
    assert (semantic.page.hits, semantic.mode) == ((), "semantic")
    assert semantic.notice is not None
    assert "--reindex" in semantic.notice

    run(lambda index: _add(index, DOCS[2:3]), folder)
    partly = search(folder, "kitten")
    assert [h.document.id for h in partly.page.hits] == ["tabby"]
    assert partly.notice is not None
    assert "2 of 3 indexed images" in partly.notice


async def _add(index: EmbeddedIndex, docs: Sequence[ImageDocument]) -> None:
    assert all([r.ok async for r in index.index(docs)])


# --- A folder written before concepts and semantic vectors ---------------------------------


def legacy_folder(folder: Path) -> None:
    """An index folder as the previous deeptag wrote it: no concepts or semantic fields."""
    folder.mkdir(parents=True)
    index = tantivy.Index(first_schema().build(), path=str(folder))
    writer = index.writer(heap_size=20_000_000, num_threads=1)
    source = {
        "uri": "/photos/cup.jpg",
        "categories": [{"category": "n07920052 espresso", "score": 0.96}],
        "tags": ["espresso"],
        "width": 600,
        "height": 400,
        "model": "efficientnet_lite0/1",
        "indexed_at": "2025-01-01T00:00:00Z",
    }
    document = tantivy.Document()
    document.add_text("id", "cup")
    document.add_text("uri", source["uri"])
    document.add_text("categories.category", "n07920052 espresso")
    document.add_float("categories.score", 0.96)
    document.add_text("tags", "espresso")
    document.add_bytes("_source", json.dumps(source).encode())
    writer.add_document(document)
    writer.commit()
    writer.wait_merging_threads()


def test_a_legacy_folder_is_searched_by_words_and_upgraded_by_a_writer(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    legacy_folder(folder)
    page = search(folder, "espresso")
    assert [h.document.id for h in page.page.hits] == ["cup"]
    assert page.notice is not None
    assert "deeptag index --reindex" in page.notice

    async def write_without_upgrading(index: EmbeddedIndex) -> None:
        await _add(index, DOCS[:1])

    with pytest.raises(SearchBackendError, match=r"deeptag index --reindex"):
        run(write_without_upgrading, folder)

    async def write_as_the_indexer_does() -> None:
        index = await EmbeddedIndex.open(folder, writer=True)
        try:
            await _add(index, DOCS[2:3])
        finally:
            await index.close()

    asyncio.run(write_as_the_indexer_does())
    # The old document survived the upgrade; the new one has its meaning.
    assert ids(folder, "espresso", "words") == ["cup"]
    assert ids(folder, "kitten") == ["tabby"]
    assert not (tmp_path / "index.upgrading").exists()
    assert not (tmp_path / "index.legacy").exists()
