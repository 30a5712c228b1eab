"""Where documents live, on the embedded index and on Elasticsearch's API: removing them,
re-placing them, finding those under a folder, and folders written before locations."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tantivy

from orchestrator.search.base import Category, ImageDocument, Location, SearchBackend
from orchestrator.search.embedded_store import LOCATIONS_FIELD, build_schema, to_tantivy
from orchestrator.settings import Settings
from tests.photo_library import NO_TRITON
from tests.search_support import index_documents, search_settings, with_backend

pytestmark = pytest.mark.integration


def _doc(doc_id: str, *places: Location, tag: str = "cat") -> ImageDocument:
    return ImageDocument(
        id=doc_id,
        uri=places[0].uri,
        categories=(Category(f"n0 {tag}", 0.9),),
        tags=(tag,),
        embedding=tuple(float(i % 7) for i in range(1280)),
        width=10,
        height=10,
        model="efficientnet_lite0/1",
        indexed_at="2026-12-01T10:00:00Z",
        locations=places,
    )


DOCS = [
    _doc("one", Location("/a/photos/x.jpg", 10, 1.5)),
    _doc("two", Location("/a/photos2/y.jpg", 20, 2.5), Location("/a/photos/sub/z.jpg", 20, 3.5)),
    _doc("three", Location("/a/photos2/q.jpg", 30, 4.5), tag="dog"),
    _doc("odd", Location("/a/b (1)/[x].jpg"), Location("https://example.org/x.jpg"), tag="dog"),
]


@pytest.fixture(params=["embedded", "es"])
def settings(request: pytest.FixtureRequest, elasticsearch_url: str, tmp_path: Path) -> Settings:
    chosen = search_settings(
        request.param, NO_TRITON, elasticsearch_url, tmp_path / "data", "deeptag-loc"
    )
    assert all(index_documents(chosen, DOCS))
    return chosen


def under(settings: Settings, prefix: str) -> dict[str, tuple[Location, ...]]:
    async def walk(backend: SearchBackend) -> dict[str, tuple[Location, ...]]:
        return {doc_id: places async for doc_id, places in backend.located_under(prefix)}

    return with_backend(settings, walk)


def test_documents_under_a_folder_come_with_all_their_locations(settings: Settings) -> None:
    assert under(settings, "/a/photos/") == {"one": DOCS[0].places, "two": DOCS[1].places}
    # A sibling whose name starts alike is another folder.
    assert set(under(settings, "/a/photos2/")) == {"two", "three"}
    assert set(under(settings, "/a/")) == {"one", "two", "three", "odd"}
    assert set(under(settings, "/a/b (1)/")) == {"odd"}
    assert under(settings, "/elsewhere/") == {}


def test_set_locations_replaces_them_and_keeps_the_rest(settings: Settings) -> None:
    moved = (Location("/b/new.jpg", 11, 9.0), Location("/a/photos/x.jpg", 10, 1.5))
    assert with_backend(settings, lambda b: b.set_locations("one", moved), writer=True)
    assert not with_backend(settings, lambda b: b.set_locations("nope", moved), writer=True)
    stored = with_backend(settings, lambda b: b.get("one"))
    assert stored is not None
    assert (stored.uri, stored.locations) == ("/b/new.jpg", moved)
    # The vector is kept (the embedded index keeps it as a unit vector: same direction).
    assert stored.embedding is not None
    assert DOCS[0].embedding is not None
    assert cosine(stored.embedding, DOCS[0].embedding) > 0.9999
    assert stored.tags == ("cat",)
    assert "one" in under(settings, "/b/")
    hits = with_backend(settings, lambda b: b.search("cat")).hits
    assert {h.document.id: h.document.uri for h in hits} == {
        "one": "/b/new.jpg",
        "two": DOCS[1].uri,
    }


def test_delete_reports_what_existed(settings: Settings) -> None:
    gone = with_backend(settings, lambda b: b.delete(["two", "nope", "two"]), writer=True)
    assert gone == {"two"}
    assert with_backend(settings, lambda b: b.get("two")) is None
    assert with_backend(settings, lambda b: b.count()) == 3
    assert set(under(settings, "/a/photos/")) == {"one"}
    assert with_backend(settings, lambda b: b.delete([]), writer=True) == set()


def test_an_embedded_folder_without_locations_is_upgraded_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = search_settings("embedded", NO_TRITON, "", tmp_path / "data", "unused")
    old = [_doc("old1", Location("/a/photos/o.jpg")), _doc("old2", Location("/c/p.jpg"))]
    # Documents as an earlier deeptag wrote them: no locations, in a folder without the field.
    old = [dataclasses.replace(d, locations=()) for d in old]
    folder = settings.embedded_index_dir
    _write_legacy_folder(folder, old, monkeypatch)
    assert LOCATIONS_FIELD not in (folder / "meta.json").read_text()
    # Read before any writer opens it: one location per document, found by folder.
    assert under(settings, "/a/photos/") == {"old1": (Location("/a/photos/o.jpg"),)}
    # A writer upgrades the folder, keeping its documents, and can then re-place them.
    places = (Location("/a/photos/o.jpg"), Location("/d/o.jpg", 5, 6.0))
    assert with_backend(settings, lambda b: b.set_locations("old1", places), writer=True)
    assert LOCATIONS_FIELD in (folder / "meta.json").read_text()
    assert under(settings, "/d/") == {"old1": places}
    assert set(under(settings, "/c/")) == {"old2"}
    assert with_backend(settings, lambda b: b.count()) == 2


def _write_legacy_folder(
    folder: Path, documents: list[ImageDocument], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index folder as the deeptag before locations wrote it: today's schema and fields,
    less ``locations.uri``."""
    real_builder, real_document = tantivy.SchemaBuilder, tantivy.Document

    class Builder:
        def __init__(self) -> None:
            self.inner = real_builder()

        def add_text_field(self, name: str, **options: Any) -> None:
            if name != LOCATIONS_FIELD:
                self.inner.add_text_field(name, **options)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    class Document:
        def __init__(self) -> None:
            self.inner = real_document()

        def add_text(self, name: str, value: str) -> None:
            if name != LOCATIONS_FIELD:
                self.inner.add_text(name, value)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(tantivy, "SchemaBuilder", Builder)
    monkeypatch.setattr(tantivy, "Document", Document)
    schema = build_schema()
    stored = [to_tantivy(d).inner for d in documents]  # type: ignore[attr-defined]
    monkeypatch.undo()
    folder.mkdir(parents=True)
    index = tantivy.Index(schema, path=str(folder))
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    for doc in stored:
        writer.add_document(doc)
    writer.commit()
    writer.wait_merging_threads()


def cosine(a: Any, b: Any) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
