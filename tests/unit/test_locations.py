"""Every place an image's content lives, as documents store and read it back."""

from __future__ import annotations

import json

from orchestrator.search.base import Category, ImageDocument, Location, SearchHit
from orchestrator.search.documents import (
    document_from_source,
    document_to_source,
    with_locations,
)
from orchestrator.search.embedded_locations import regex_literal
from orchestrator.search.results import hit_json


def _document(**changes: object) -> ImageDocument:
    fields: dict[str, object] = {
        "id": "a" * 64,
        "uri": "/photos/2019/cat.jpg",
        "categories": (Category("n02123045 tabby, tabby cat", 0.9),),
        "tags": ("tabby, tabby cat",),
        "embedding": None,
        "width": 640,
        "height": 480,
        "model": "efficientnet_lite0/1",
        "indexed_at": "2026-12-01T10:00:00Z",
    }
    fields.update(changes)
    return ImageDocument(**fields)  # type: ignore[arg-type]


def test_locations_survive_the_json_round_trip_with_size_and_mtime() -> None:
    places = (
        Location("/photos/2019/cat.jpg", 123_456, 1_700_000_000.5),
        Location("https://example.org/cat.jpg"),
    )
    document = _document(locations=places)
    stored = json.loads(json.dumps(document_to_source(document)))
    assert stored["locations"][0] == {
        "uri": "/photos/2019/cat.jpg",
        "size": 123_456,
        "mtime": 1_700_000_000.5,
    }
    assert document_from_source(document.id, stored).locations == places


def test_a_document_written_before_locations_reads_as_its_one_uri() -> None:
    stored = document_to_source(_document())
    assert "locations" not in stored
    document = document_from_source("a" * 64, stored)
    assert document.locations == ()
    assert document.places == (Location("/photos/2019/cat.jpg"),)
    # Given a second place, it keeps both, its uri first.
    copied = with_locations(document, (*document.places, Location("/b/cat.jpg", 10, 1.0)))
    assert document_to_source(copied)["locations"] == [
        {"uri": "/photos/2019/cat.jpg", "size": None, "mtime": None},
        {"uri": "/b/cat.jpg", "size": 10, "mtime": 1.0},
    ]


def test_replacing_locations_makes_the_first_the_uri() -> None:
    moved = with_locations(_document(), [Location("/b/cat.jpg", 1, 2.0), Location("/c/cat.jpg")])
    assert moved.uri == "/b/cat.jpg"
    assert [p.uri for p in moved.places] == ["/b/cat.jpg", "/c/cat.jpg"]


def test_a_hit_lists_every_location_as_strings() -> None:
    document = _document(locations=(Location("/a/cat.jpg", 1, 1.0), Location("/b/cat.jpg")))
    body = hit_json(SearchHit(document, 1.0))
    assert body["locations"] == ["/a/cat.jpg", "/b/cat.jpg"]
    assert hit_json(SearchHit(_document(), 1.0))["locations"] == ["/photos/2019/cat.jpg"]


def test_a_folder_name_with_regex_characters_stands_for_itself() -> None:
    assert regex_literal("/a/b (1)/c.d+[x]/") == r"/a/b \(1\)/c\.d\+\[x\]/"
