"""Searching by what photos say about themselves, on the embedded index and on Elasticsearch's
API: dates, cameras, places, the user's words, sorting by date, distance and facets.

The documents are built directly (as the indexer builds them from a photo's metadata), so no
Triton is needed; `/search` and `deeptag search` are in test_photo_search_http.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tantivy

from orchestrator.errors import BadRequest, InvalidQuery
from orchestrator.search import hybrid
from orchestrator.search.base import SearchBackend
from orchestrator.search.es_mapping import index_mapping, photo_fields
from orchestrator.search.hybrid import ModePage
from orchestrator.search.options import search_options
from tests.photo_library import (
    DATED_OLDEST_FIRST,
    LIBRARY,
    NO_TRITON,
    PARIS,
    UNDATED,
    Library,
    indexed_library,
)
from tests.search_support import index_documents, search_settings, with_backend

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["embedded", "es"])
def library(
    request: pytest.FixtureRequest,
    elasticsearch_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Library:
    folder = tmp_path_factory.mktemp(f"photos-{request.param}")
    return indexed_library(request.param, elasticsearch_url, folder, "deeptag-photos")


# --- Query syntax ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("taken_at:[2019-06-01 TO 2019-08-31]", {"eiffel", "louvre", "versailles"}),
        ("taken_at:>=2019", {"eiffel", "louvre", "versailles", "tokyo", "fiji"}),
        ("taken_at:2018", {"sony2018"}),
        ("taken_at:<2019-07", {"sony2018", "versailles"}),
        ("taken_at:2019-07-14", {"eiffel"}),
        ("taken_at:{2019-06-01 TO 2020]", {"eiffel", "louvre", "fiji"}),
        ("taken_at:2019-07-14T10:30:00+02:00", {"eiffel"}),
        ("taken_at:>=now-200y", set(DATED_OLDEST_FIRST)),
        ("taken_at:<1500", set()),
        ("-taken_at:*", UNDATED),
        ("dog AND taken_at:2019", {"eiffel", "versailles"}),
        ("camera.make:canon", {"eiffel", "louvre"}),
        ('camera.model:"iphone 12"', {"versailles", "tokyo"}),
        ('camera.model.keyword:"EOS R5"', {"louvre"}),
        ("place.country_code:FR", {"eiffel", "louvre", "versailles"}),
        ("place.country_code:fr", {"eiffel", "louvre", "versailles"}),
        ("keywords:holiday", {"eiffel", "versailles"}),
        ("dog AND place.city:paris", {"eiffel"}),
        ("exposure.iso:>=100 AND exposure.f_number:8", {"eiffel"}),
        ("location.lat:<0", {"fiji"}),
        ("format:png", {"screenshot"}),
    ],
)
def test_photo_fields_are_searched_by_the_same_query_on_both_backends(
    library: Library, query: str, expected: set[str]
) -> None:
    assert library.found(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("paris", {"eiffel", "louvre"}),
        ("tokyo", {"tokyo"}),
        ("holiday", {"eiffel", "versailles"}),
        ("blossom", {"tokyo"}),
        ("summer", {"eiffel"}),
        ("japan OR fiji", {"tokyo", "fiji"}),
    ],
)
def test_bare_words_find_place_names_and_the_users_own_words(
    library: Library, query: str, expected: set[str]
) -> None:
    assert library.found(query) == expected


def test_star_matches_every_document(library: Library) -> None:
    assert library.found("*") == set(LIBRARY)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("taken_at:2019-13", "2019-13"),
        ("taken_at:yesterday", "'yesterday' is not a date"),
        ("dog AND taken_at:>", "needs a date"),
        ("taken_at:[2019 TO 2020", "no closing"),
    ],
)
def test_an_unparseable_date_is_a_bad_query_naming_it(
    library: Library, query: str, says: str
) -> None:
    with pytest.raises(InvalidQuery, match=says) as refused:
        library.page(query)
    assert repr(query) in str(refused.value)


# --- Sorting -------------------------------------------------------------------------------


def test_sorting_by_date_puts_oldest_or_newest_first_and_undated_last(library: Library) -> None:
    oldest = library.ids("*", sort="taken_at")
    assert oldest[:6] == DATED_OLDEST_FIRST
    assert set(oldest[6:]) == UNDATED
    newest = library.ids("*", sort="-taken_at")
    assert newest[:6] == DATED_OLDEST_FIRST[::-1]
    assert set(newest[6:]) == UNDATED
    assert library.ids("dog", sort="-taken_at") == ["tokyo", "eiffel", "versailles", "legacy"]


def test_pages_of_a_sorted_search_follow_each_other(library: Library) -> None:
    pages = [library.page("*", size=3, offset=start, sort="taken_at") for start in (0, 3, 6)]
    assert [page.total for page in pages] == [len(LIBRARY)] * 3
    ids = [hit.document.id for page in pages for hit in page.hits]
    assert ids[:6] == DATED_OLDEST_FIRST
    assert set(ids[6:]) == UNDATED


# --- Near a point ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("within", "expected"),
    [
        ("1100m", set()),
        ("1200m", {"louvre"}),
        ("5km", {"louvre", "eiffel"}),
        ("20km", {"louvre", "eiffel", "versailles"}),
    ],
)
def test_near_keeps_the_photos_within_the_distance(
    library: Library, within: str, expected: set[str]
) -> None:
    assert library.found("*", near=PARIS, within=within) == expected


def test_near_combines_with_words_and_sorting(library: Library) -> None:
    assert library.found("dog", near=PARIS, within="20km") == {"eiffel", "versailles"}
    assert library.ids("*", near=PARIS, within="20km", sort="-taken_at") == [
        "louvre",
        "eiffel",
        "versailles",
    ]


def test_near_across_the_antimeridian_and_far_away(library: Library) -> None:
    assert library.found("*", near="-16.8,-179.95", within="20km") == {"fiji"}
    assert library.found("*", near="35.68,139.69", within="10km") == {"tokyo"}


# --- Facets --------------------------------------------------------------------------------


def test_facets_count_every_hit_per_value(library: Library) -> None:
    facets = library.facets("*", facets="year,camera.model,place.country,keywords")
    assert facets == {
        "year": [("2021", 1), ("2020", 1), ("2019", 3), ("2018", 1)],
        "camera.model": [
            ("ILCE-7M3", 2),
            ("iPhone 12", 2),
            ("EOS 5D Mark IV", 1),
            ("EOS R5", 1),
        ],
        "place.country": [("France", 3), ("Fiji", 1), ("Japan", 1)],
        "keywords": [("holiday", 2), ("museum", 1), ("tower", 1)],
    }


def test_facets_follow_the_query_and_the_distance(library: Library) -> None:
    assert library.facets("place.country_code:FR", facets="year,camera.make") == {
        "year": [("2019", 3)],
        "camera.make": [("Canon", 2), ("Apple", 1)],
    }
    assert library.facets("*", near=PARIS, within="5km", facets="place.city,lens") == {
        "place.city": [("Paris", 2)],
        "lens": [("EF 24-70mm f/2.8L II USM", 1)],
    }
    assert library.facets("nothing-matches-this", facets="year") == {"year": []}


# --- Hits, notices ------------------------------------------------------------------------


def test_hits_carry_the_photo_metadata(library: Library) -> None:
    (hit,) = library.page("keywords:tower").hits
    assert hit.document.photo == LIBRARY["eiffel"].photo
    assert hit.document.metadata == {}
    (legacy,) = library.page("tags:dog AND -taken_at:*").hits
    assert legacy.document.photo is None


def test_a_search_using_photo_metadata_says_how_many_images_lack_it(library: Library) -> None:
    notice = library.hybrid("paris").notice
    assert notice is not None
    assert "1 of 8 indexed images have no photo metadata yet" in notice
    assert "deeptag index --refresh-metadata FOLDER" in notice
    assert "no photo metadata" in (library.hybrid("*", sort="taken_at").notice or "")
    # Browsing everything, or a search by the model's labels only, does not depend on it.
    assert library.hybrid("*").notice is None
    assert library.hybrid("tags:dog").notice is None


def test_semantic_mode_cannot_be_sorted(library: Library) -> None:
    async def run(backend: SearchBackend) -> ModePage:
        options = search_options(sort="taken_at")
        return await hybrid.search(backend, "dog", "semantic", options=options)

    with pytest.raises(BadRequest, match="not semantic"):
        with_backend(library.settings, run)


# --- Indexes made before photo metadata -----------------------------------------------------


def pre_photo_folder(folder: Path) -> None:
    """An index folder as the previous deeptag wrote it: concepts and vectors, no photo
    fields; one document whose user metadata has a key now reserved for photos."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("uri", stored=True)
    builder.add_text_field("categories.category")
    builder.add_float_field("categories.score", indexed=True, fast=True)
    builder.add_text_field("tags")
    builder.add_text_field("concepts.concept")
    builder.add_float_field("concepts.score", indexed=True, fast=True)
    builder.add_text_field("custom.model", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("custom.category")
    builder.add_float_field("custom.score", indexed=True, fast=True)
    builder.add_integer_field("width", indexed=True, fast=True)
    builder.add_integer_field("height", indexed=True, fast=True)
    builder.add_text_field("model", tokenizer_name="raw", index_option="basic")
    builder.add_text_field("indexed_at", tokenizer_name="raw", index_option="basic")
    builder.add_json_field("_metadata", fast=True)
    builder.add_bytes_field("_source", stored=True)
    builder.add_bytes_field("embedding", stored=True)
    builder.add_bytes_field("semantic", stored=True)
    folder.mkdir(parents=True)
    index = tantivy.Index(builder.build(), path=str(folder))
    writer = index.writer(heap_size=20_000_000, num_threads=1)
    source = {
        "uri": "/photos/cup.jpg",
        "categories": [{"category": "n07920052 espresso", "score": 0.96}],
        "tags": ["espresso"],
        "width": 600,
        "height": 400,
        "model": "efficientnet_lite0/1",
        "indexed_at": "2025-01-01T00:00:00Z",
        "album": "cafe",
    }
    doc = tantivy.Document()
    doc.add_text("id", "cup")
    doc.add_text("uri", "/photos/cup.jpg")
    doc.add_text("tags", "espresso")
    doc.add_json("_metadata", {"album": "cafe"})
    doc.add_bytes("_source", json.dumps(source).encode())
    writer.add_document(doc)
    writer.commit()
    writer.wait_merging_threads()


def test_an_embedded_index_from_before_is_searched_then_upgraded_in_place(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data" / "index"
    pre_photo_folder(folder)
    settings = search_settings("embedded", NO_TRITON, "", tmp_path / "data", "unused")
    old = Library("embedded", settings)
    # Read as it is: every search works, none finds photo metadata, and the notice says why.
    assert old.found("espresso") == {"cup"}
    assert old.found("album:cafe") == {"cup"}
    assert old.found("taken_at:2019") == set()
    assert old.ids("*", sort="-taken_at") == ["cup"]
    assert old.found("*", near=PARIS, within="20km") == set()
    assert old.facets("*", facets="year,camera.make") == {"year": [], "camera.make": []}
    assert "1 of 1 indexed images have no photo metadata" in (old.hybrid("espresso").notice or "")
    # The indexer opens it as the writer: upgraded in place, the old document kept.
    assert index_documents(settings, [LIBRARY["eiffel"]], writer=True) == [True]
    assert old.found("taken_at:2019") == {"eiffel"}
    assert old.found("espresso") == {"cup"}
    assert old.ids("*", sort="taken_at") == ["eiffel", "cup"]
    assert old.found("*", near=PARIS, within="5km") == {"eiffel"}
    assert not (tmp_path / "data" / "index.upgrading").exists()


def test_an_elasticsearch_index_from_before_gains_the_photo_fields(
    elasticsearch_url: str, tmp_path: Path
) -> None:
    from elasticsearch import Elasticsearch

    settings = search_settings("es", NO_TRITON, elasticsearch_url, tmp_path, "deeptag-prephoto")
    mapping = index_mapping()
    for name in photo_fields():
        del mapping["properties"][name]
    client = Elasticsearch(elasticsearch_url)
    try:
        client.indices.create(index=settings.es_index, mappings=mapping)
    finally:
        client.close()
    assert index_documents(settings, [LIBRARY["eiffel"], LIBRARY["tokyo"]]) == [True, True]
    client = Elasticsearch(elasticsearch_url)
    try:
        properties = client.indices.get_mapping(index=settings.es_index)[settings.es_index][
            "mappings"
        ]["properties"]
    finally:
        client.close()
    # Mapped before the first document came: a date and a point, not a string and two floats.
    assert properties["taken_at"]["type"] == "date"
    assert properties["location"]["type"] == "geo_point"
    new = Library("es", settings)
    assert new.ids("*", sort="taken_at") == ["eiffel", "tokyo"]
    assert new.found("*", near=PARIS, within="5km") == {"eiffel"}
