"""A small photo library for the search tests: documents as the indexer builds them from each
photo's metadata (no Triton needed), and the calls a test makes on a backend holding them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.photo import Camera, Exposure, GeoPoint, PhotoMetadata, Place
from orchestrator.search import hybrid
from orchestrator.search.base import Category, ImageDocument, SearchBackend, SearchPage
from orchestrator.search.hybrid import ModePage
from orchestrator.search.options import search_options
from orchestrator.settings import Settings
from tests.search_support import NO_TRITON, index_documents, search_settings, with_backend

PARIS = "48.8566,2.3522"  # the centre: the Louvre is 1157 m away, the Eiffel Tower 4226 m


def photo(
    taken_at: str | None = None,
    camera: tuple[str, str] | None = None,
    place: tuple[str, str, str, str] | None = None,
    location: tuple[float, float] | None = None,
    keywords: tuple[str, ...] = (),
    **more: Any,
) -> PhotoMetadata:
    return PhotoMetadata(
        format=more.pop("format", "JPEG"),
        taken_at=taken_at,
        camera=Camera(*camera) if camera else None,
        place=Place(*place) if place else None,
        location=GeoPoint(*location) if location else None,
        keywords=keywords,
        **more,
    )


def document(doc_id: str, tag: str, metadata: PhotoMetadata | None) -> ImageDocument:
    return ImageDocument(
        id=doc_id,
        uri=f"/photos/{doc_id}.jpg",
        categories=(Category(f"n0000000 {tag}", 0.9),),
        tags=(tag,),
        embedding=None,
        width=640,
        height=480,
        model="efficientnet_lite0/1",
        indexed_at="2025-01-01T00:00:00Z",
        photo=metadata,
    )


ILE_DE_FRANCE = "Île-de-France"
LIBRARY = {
    "eiffel": document(
        "eiffel",
        "dog",
        photo(
            "2019-07-14T10:30:00+02:00",
            ("Canon", "EOS 5D Mark IV"),
            ("Paris", ILE_DE_FRANCE, "France", "FR"),
            (48.8584, 2.2945),
            ("holiday", "tower"),
            lens="EF 24-70mm f/2.8L II USM",
            exposure=Exposure(200, 8.0, 0.004, 35.0),
            title="Summer in Paris",
        ),
    ),
    # 23:30 in Paris is 21:30 UTC: still the 31st of August.
    "louvre": document(
        "louvre",
        "cat",
        photo(
            "2019-08-31T23:30:00+02:00",
            ("Canon", "EOS R5"),
            ("Paris", ILE_DE_FRANCE, "France", "FR"),
            (48.8606, 2.3376),
            ("museum",),
        ),
    ),
    "versailles": document(
        "versailles",
        "dog",
        photo(
            "2019-06-01T08:00:00Z",
            ("Apple", "iPhone 12"),
            ("Versailles", ILE_DE_FRANCE, "France", "FR"),
            (48.8049, 2.1204),
            ("holiday",),
        ),
    ),
    "tokyo": document(
        "tokyo",
        "dog",
        photo(
            "2021-03-01T09:00:00+09:00",
            ("Apple", "iPhone 12"),
            ("Tokyo", "Tokyo", "Japan", "JP"),
            (35.6764, 139.65),
            description="Cherry blossom by the river",
        ),
    ),
    # Just west of the antimeridian.
    "fiji": document(
        "fiji",
        "cat",
        photo(
            "2020-02-02T12:00:00+12:00",
            ("Sony", "ILCE-7M3"),
            ("Somosomo", "Northern", "Fiji", "FJ"),
            (-16.8, 179.95),
        ),
    ),
    # No offset recorded: read as UTC, as Elasticsearch reads it.
    "sony2018": document("sony2018", "cat", photo("2018-05-20T12:00:00", ("Sony", "ILCE-7M3"))),
    "screenshot": document("screenshot", "cat", photo(format="PNG")),
    # Indexed before deeptag read photo metadata.
    "legacy": document("legacy", "dog", None),
}
DATED_OLDEST_FIRST = ["sony2018", "versailles", "eiffel", "louvre", "fiji", "tokyo"]
UNDATED = {"screenshot", "legacy"}


@dataclass(frozen=True)
class Library:
    kind: str
    settings: Settings

    def page(self, query: str, size: int = 20, offset: int = 0, **options: Any) -> SearchPage:
        chosen = search_options(**options)
        return with_backend(
            self.settings, lambda backend: backend.search(query, size, offset, chosen)
        )

    def ids(self, query: str, **options: Any) -> list[str]:
        return [hit.document.id for hit in self.page(query, **options).hits]

    def found(self, query: str, **options: Any) -> set[str]:
        page = self.page(query, **options)
        assert page.total == len(page.hits)
        return {hit.document.id for hit in page.hits}

    def facets(self, query: str, **options: Any) -> dict[str, list[tuple[str, int]]]:
        page = self.page(query, size=0, **options)
        return {f.name: [(v.value, v.count) for v in f.values] for f in page.facets}

    def hybrid(self, query: str, **options: Any) -> ModePage:
        chosen = search_options(**options)

        async def run(backend: SearchBackend) -> ModePage:
            return await hybrid.search(backend, query, "hybrid", options=chosen)

        return with_backend(self.settings, run)


def indexed_library(kind: str, elasticsearch_url: str, folder: Path, prefix: str) -> Library:
    """:data:`LIBRARY` in a fresh index of ``kind``, in two batches: the embedded index then
    has two segments, as a library indexed in runs has."""
    settings = search_settings(kind, NO_TRITON, elasticsearch_url, folder, prefix)
    documents = list(LIBRARY.values())
    assert index_documents(settings, documents[:4]) == [True] * 4
    assert index_documents(settings, documents[4:]) == [True] * (len(documents) - 4)
    return Library(kind, settings)
