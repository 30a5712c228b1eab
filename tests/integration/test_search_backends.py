"""One behavioural suite, run against the embedded index and against Elasticsearch's API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.errors import BadRequest, InvalidQuery, ResultWindowTooLarge
from orchestrator.indexing import IndexOptions
from orchestrator.search.base import ImageDocument, SearchPage
from orchestrator.settings import Settings
from orchestrator.triton.launcher import LocalTriton
from tests.search_support import (
    embed,
    index_paths,
    mirrored_recrop,
    search_settings,
    with_backend,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Indexed:
    settings: Settings
    documents: dict[str, ImageDocument]  # by sample name

    def search(self, query: str, size: int = 10) -> SearchPage:
        return with_backend(self.settings, lambda backend: backend.search(query, size=size))

    def name_of(self, doc_id: str) -> str:
        return next(name for name, doc in self.documents.items() if doc.id == doc_id)

    def names(self, page: SearchPage) -> list[str]:
        return [self.name_of(hit.document.id) for hit in page.hits]


@pytest.fixture(scope="module", params=["embedded", "es"])
def indexed(
    request: pytest.FixtureRequest,
    triton: LocalTriton,
    samples: dict[str, Path],
    elasticsearch_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Indexed:
    kind = request.param
    settings = search_settings(
        kind,
        triton.http_url,
        elasticsearch_url,
        tmp_path_factory.mktemp(f"search-{kind}"),
        "deeptag-test",
    )
    stats, failures = index_paths(settings, list(samples.values()))
    assert (stats.indexed, failures) == (len(samples), [])

    async def fetch_all(backend):  # type: ignore[no-untyped-def]
        page = await backend.search("*", size=100)
        return {hit.document.uri: hit.document for hit in page.hits}

    by_uri = with_backend(settings, fetch_all)
    documents = {name: by_uri[str(path)] for name, path in samples.items()}
    return Indexed(settings, documents)


def test_a_word_finds_the_photo_it_describes_first(indexed: Indexed) -> None:
    page = indexed.search("espresso")
    assert indexed.names(page)[0] == "coffee"
    assert page.total >= 1


def test_everything_is_found_by_star_with_total(indexed: Indexed) -> None:
    page = indexed.search("*", size=2)
    assert page.total == len(indexed.documents)
    assert len(page.hits) == 2


def test_paging_walks_through_all_hits_once(indexed: Indexed) -> None:
    def page(offset: int) -> list[str]:
        found = with_backend(
            indexed.settings, lambda backend: backend.search("*", size=2, offset=offset)
        )
        return [hit.document.id for hit in found.hits]

    seen = page(0) + page(2) + page(4)
    assert sorted(seen) == sorted(doc.id for doc in indexed.documents.values())


def test_score_range_filters_on_any_category(indexed: Indexed) -> None:
    expected = {
        name
        for name, doc in indexed.documents.items()
        if any(c.score > 0.5 for c in doc.categories)
    }
    # The photos must give the filter something to keep and something to drop.
    assert expected
    assert expected != set(indexed.documents)
    page = indexed.search("categories.score:>0.5", size=20)
    assert set(indexed.names(page)) == expected


def test_phrase_query_matches_the_two_words_together(indexed: Indexed) -> None:
    assert indexed.names(indexed.search('"tiger cat"'))[0] == "chelsea"


def test_field_query_combined_with_a_score_range(indexed: Indexed) -> None:
    page = indexed.search("categories.category:espresso AND categories.score:>0.9")
    assert indexed.names(page) == ["coffee"]
    assert indexed.search("categories.category:espresso AND categories.score:>0.99").total == 0


def test_a_minus_excludes_images(indexed: Indexed) -> None:
    everything_but_coffee = indexed.search("* -espresso", size=20)
    names = indexed.names(everything_but_coffee)
    assert "coffee" not in names
    assert len(names) == len(indexed.documents) - 1


def test_tags_hold_the_label_words(indexed: Indexed) -> None:
    coffee = indexed.documents["coffee"]
    assert coffee.tags[0] == "espresso"
    assert coffee.categories[0].category == "n07920052 espresso"
    assert coffee.model == "efficientnet_lite0/1"
    assert (coffee.width, coffee.height) == (600, 400)
    assert indexed.names(indexed.search("tags:espresso")) == ["coffee"]


def test_a_malformed_query_is_a_clear_error(indexed: Indexed) -> None:
    with pytest.raises(InvalidQuery, match=r"categories\.score:\(\("):
        indexed.search("categories.score:((")


@pytest.mark.parametrize(
    ("size", "offset", "message"),
    [
        (10, 10_000_000_000, "from + size must be at most 10000 (from=10000000000, size=10)"),
        (20, 28428914557750344, "from + size must be at most 10000 (from=28428914557750344"),
        (10_001, 0, "from + size must be at most 10000 (from=0, size=10001)"),
    ],
)
def test_both_backends_refuse_a_page_past_the_result_window_alike(
    indexed: Indexed, size: int, offset: int, message: str
) -> None:
    with pytest.raises(ResultWindowTooLarge) as caught:
        with_backend(
            indexed.settings, lambda backend: backend.search("*", size=size, offset=offset)
        )
    assert message in caught.value.message
    # The last page inside the window is an ordinary, empty one.
    last = with_backend(indexed.settings, lambda backend: backend.search("*", size=10, offset=9990))
    assert (last.total, last.hits) == (len(indexed.documents), ())


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("cat AND", "the query ends with the operator AND: add what it joins, or remove it"),
        ("width:[abc TO 3000]", "width: 'abc' is not a number (or a date) to compare with"),
    ],
)
def test_both_backends_say_what_is_wrong_with_a_query_alike(
    indexed: Indexed, query: str, reason: str
) -> None:
    with pytest.raises(InvalidQuery) as caught:
        indexed.search(query)
    assert caught.value.message == f"query {query!r}: {reason}"


def test_both_backends_refuse_a_query_nested_too_deep_alike(indexed: Indexed) -> None:
    with pytest.raises(InvalidQuery, match="parentheses nested 5000 deep, over the limit of 100"):
        indexed.search("(" * 5000 + "espresso")


def test_both_backends_bound_knn_k_and_refuse_nan_vectors_alike(indexed: Indexed) -> None:
    vector = list(stored_embedding(indexed, "coffee"))
    with pytest.raises(BadRequest, match=r"k must be between 0 and 10000 \(k=10001\)"):
        with_backend(indexed.settings, lambda backend: backend.knn(vector, k=10_001))
    assert with_backend(indexed.settings, lambda backend: backend.knn(vector, k=0)).hits == ()
    # The most Elasticsearch allows: num_candidates stays within its 10,000 too.
    page = with_backend(indexed.settings, lambda backend: backend.knn(vector, k=10_000))
    assert indexed.names(page)[0] == "coffee"
    broken = [float("nan"), *vector[1:]]
    with pytest.raises(BadRequest, match="finite"):
        with_backend(indexed.settings, lambda backend: backend.knn(broken, k=3))


def stored_embedding(indexed: Indexed, name: str) -> tuple[float, ...]:
    # Search hits leave embeddings out; fetching the document brings its own.
    document = with_backend(
        indexed.settings, lambda backend: backend.get(indexed.documents[name].id)
    )
    assert document is not None
    assert document.embedding is not None
    return document.embedding


def test_knn_with_a_mirrored_recropped_copy_finds_the_original_first(
    indexed: Indexed, samples: dict[str, Path], tmp_path: Path
) -> None:
    copy = mirrored_recrop(samples["coffee"], tmp_path / "coffee-mirrored.jpg")
    vector = embed(indexed.settings, copy)
    page = with_backend(indexed.settings, lambda backend: backend.knn(vector, k=3))
    assert indexed.names(page)[0] == "coffee"
    assert page.hits[0].score > page.hits[1].score
    assert 0.5 < page.hits[0].score <= 1.0001


def test_knn_by_an_indexed_image_can_leave_it_out(indexed: Indexed) -> None:
    # Search hits leave the 1280 floats out; fetching one document brings them.
    coffee = with_backend(
        indexed.settings, lambda backend: backend.get(indexed.documents["coffee"].id)
    )
    assert coffee is not None
    assert coffee.embedding is not None
    assert len(coffee.embedding) == 1280
    vector = list(coffee.embedding)
    page = with_backend(indexed.settings, lambda backend: backend.knn(vector, k=2))
    assert indexed.names(page)[0] == "coffee"
    others = with_backend(
        indexed.settings, lambda backend: backend.knn(vector, k=10, exclude_id=coffee.id)
    )
    assert "coffee" not in indexed.names(others)
    assert len(others.hits) == len(indexed.documents) - 1


def test_reindexing_the_same_bytes_never_duplicates(
    indexed: Indexed, samples: dict[str, Path]
) -> None:
    count_before = with_backend(indexed.settings, lambda backend: backend.count())
    stats, _ = index_paths(indexed.settings, [samples["coffee"]])
    assert (stats.indexed, stats.skipped) == (0, 1)
    stats, _ = index_paths(indexed.settings, [samples["coffee"]], IndexOptions(reindex=True))
    assert (stats.indexed, stats.skipped) == (1, 0)
    assert indexed.search("*").total == count_before
    assert with_backend(indexed.settings, lambda backend: backend.count()) == count_before


def test_user_metadata_passes_through_unchanged(
    indexed: Indexed, samples: dict[str, Path], tmp_path: Path
) -> None:
    copy = mirrored_recrop(samples["rocket"], tmp_path / "rocket-copy.jpg")
    metadata = {"album": "launches", "year": 1969}
    stats, _ = index_paths(indexed.settings, [copy], IndexOptions(metadata=metadata))
    assert stats.indexed == 1
    page = indexed.search(f'uri:"{copy.name}"')
    found = [hit.document for hit in page.hits if hit.document.uri == str(copy)]
    assert found
    assert found[0].metadata == metadata
    # Metadata is searchable by its keys, words and numeric ranges alike.
    for query in ("album:launches", "year:[1960 TO 1970] AND tags:missile"):
        assert [hit.document.uri for hit in indexed.search(query).hits] == [str(copy)], query
