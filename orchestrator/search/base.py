"""The document every backend stores, and the protocol both backends implement."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from orchestrator.photo import PhotoMetadata

BackendKind = Literal["es", "embedded"]

#: Length of the model's ``embedding`` output (EfficientNet-Lite0 pooled features).
EMBEDDING_DIMS = 1280
#: Length of a ``semantic`` vector: a point in the text encoder's space (all-MiniLM-L6-v2).
SEMANTIC_DIMS = 384

#: The two dense vectors of a document: image similarity, and meaning in the text space.
VectorField = Literal["embedding", "semantic"]
VECTOR_DIMS: dict[str, int] = {"embedding": EMBEDDING_DIMS, "semantic": SEMANTIC_DIMS}

#: Where bare words of a query string look, in both backends: what the model saw, and what
#: the photo says about itself (its place names and the user's own words).
DEFAULT_QUERY_FIELDS = (
    "tags",
    "concepts.concept",
    "categories.category",
    "custom.category",
    "uri",
    "keywords",
    "title",
    "description",
    "place.city",
    "place.region",
    "place.country",
    # The text read in the image (`deeptag index --ocr`).
    "text",
)


@dataclass(frozen=True)
class Category:
    category: str  # "n07920052 espresso"
    score: float


@dataclass(frozen=True)
class ConceptScore:
    concept: str  # "cat": a WordNet concept above the image's labels
    score: float


@dataclass(frozen=True)
class CustomCategory:
    """A category of a model trained with ``deeptag train``, kept apart from ImageNet's."""

    model: str  # "astro": the trained model's name, a filter (`custom.model:astro`)
    category: str  # "astronaut": one of that model's categories, searchable as a word
    score: float


#: A document id: the SHA-256 of the image's bytes, in lower-case hex.
_DOCUMENT_ID = re.compile(r"^[0-9a-f]{64}$")


def is_document_id(text: str) -> bool:
    """Whether ``text`` has the shape of a document id (pure)."""
    return _DOCUMENT_ID.match(text) is not None


@dataclass(frozen=True)
class Location:
    """One place an image's content lives: a local path or a URL.

    For a local file, the size and modification time seen when it was read: a file whose
    path, size and mtime still match is taken as unchanged without reading it (as rsync does).
    """

    uri: str
    size: int | None = None
    mtime: float | None = None  # st_mtime, seconds since the epoch


@dataclass(frozen=True)
class ImageDocument:
    """One indexed image. ``id`` is the SHA-256 of the image bytes, so re-indexing is idempotent."""

    id: str
    uri: str
    categories: tuple[Category, ...]
    tags: tuple[str, ...]  # the label words, full-text searchable: ("espresso",)
    embedding: tuple[float, ...] | None = field(repr=False)
    width: int
    height: int
    model: str  # "efficientnet_lite0/1"
    indexed_at: str  # ISO 8601, UTC
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Empty, and ``semantic`` None, for documents indexed before deeptag computed them.
    concepts: tuple[ConceptScore, ...] = ()
    semantic: tuple[float, ...] | None = field(default=None, repr=False)
    #: Categories of trained models (``deeptag index --model NAME``), best first per model.
    custom: tuple[CustomCategory, ...] = ()
    #: When, where and with what the photo was taken; None for documents indexed before
    #: deeptag read photo metadata.
    photo: PhotoMetadata | None = None
    #: Every known place of this content, the first being ``uri``. Empty for documents
    #: written before deeptag kept them: read as ``(Location(uri),)``.
    locations: tuple[Location, ...] = ()
    #: The 64-bit perceptual hash of the picture, 16 hex digits (``orchestrator.phash``): it
    #: confirms near-duplicates that the embedding finds. None for documents indexed before.
    phash: str | None = None
    #: What each analysis that ran found, by its name (orchestrator.analysis.registry):
    #: ``{"ocr": {"text": ..., "text_lines": [...]}, "safety": {"nsfw": 0.01}}``; an analysis
    #: that ran and found nothing has ``{}``.
    analyses: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def places(self) -> tuple[Location, ...]:
        """``locations``, or the one ``uri`` of a document written before them."""
        return self.locations or (Location(self.uri),)


@dataclass(frozen=True)
class GeoFilter:
    """Documents whose ``location`` lies within ``meters`` of a point (great-circle)."""

    lat: float  # -90..90
    lon: float  # -180..180
    meters: float  # > 0, bounded by geo.MAX_WITHIN_M


@dataclass(frozen=True)
class SortOrder:
    """Hits by ``taken_at`` instead of relevance; documents without a date come last."""

    field: Literal["taken_at"] = "taken_at"
    descending: bool = False  # newest first


@dataclass(frozen=True)
class SearchOptions:
    """What a word search may add to its query string: an order, a place, value counts."""

    sort: SortOrder | None = None
    near: GeoFilter | None = None
    #: Names from facets.FACETS, each counted over every hit of the query.
    facets: tuple[str, ...] = ()


NO_OPTIONS = SearchOptions()


@dataclass(frozen=True)
class FacetValue:
    value: str  # "2019", "EOS 5D Mark IV"
    count: int  # documents among the hits with this value


@dataclass(frozen=True)
class Facet:
    name: str  # "year", "camera.model"
    values: tuple[FacetValue, ...]


@dataclass(frozen=True)
class SearchHit:
    document: ImageDocument
    #: The backend's ranking value (BM25, reciprocal rank fusion, cosine): it orders hits.
    score: float
    #: How sure deeptag is that the hit is what was asked (0-1, orchestrator.search.relevance);
    #: None where no query judged it (a page of everything, sorted by date...).
    relevance: float | None = None
    #: Why it matched: "tags: tabby", "concepts: cat", "semantic: 0.62".
    matched: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchPage:
    total: int
    hits: tuple[SearchHit, ...]
    took_ms: float
    #: One per requested facet, in the order asked for.
    facets: tuple[Facet, ...] = ()


@dataclass(frozen=True)
class IndexResult:
    """What happened to one document of a bulk call."""

    id: str
    uri: str
    ok: bool
    error: str | None = None
    #: The backend could not take it now (unreachable, overloaded): trying again may work.
    retryable: bool = False


class SearchBackend(Protocol):
    kind: BackendKind

    async def ensure_index(self) -> None:
        """Create the index (with its mapping) when it does not exist yet."""

    async def existing_ids(self, ids: Sequence[str], model: str | None = None) -> set[str]:
        """The subset of ``ids`` already indexed (for resumable indexing); with ``model``,
        only those that also carry that trained model's categories."""

    def index(self, documents: Sequence[ImageDocument]) -> AsyncIterator[IndexResult]:
        """Index documents; yield one result per document, failures included."""

    async def search(
        self, query: str, size: int = 10, offset: int = 0, options: SearchOptions = NO_OPTIONS
    ) -> SearchPage:
        """An ES ``q=`` style query string, ordered, filtered and counted as ``options`` say."""

    async def knn(
        self,
        vector: Sequence[float],
        k: int = 10,
        exclude_id: str | None = None,
        field: VectorField = "embedding",
        *,
        filter: str | None = None,
        min_score: float | None = None,
    ) -> SearchPage:
        """Nearest documents by cosine similarity of ``field`` (``embedding`` or ``semantic``).

        ``filter``: a ``q=`` style word query; the answer is the nearest documents *that match
        it* (filtered before the ``k`` are chosen, never after). ``min_score``: no hit below
        this cosine. Both backends give the same answer for both.

        Raises:
            InvalidQuery: ``filter`` does not parse (the message quotes it).
        """

    async def similar_pairs(self, min_score: float, k: int = 10) -> list[tuple[str, str, float]]:
        """``(id, id, cosine)`` of the documents whose embeddings are close: each pair once,
        one being among the other's ``k`` nearest with a cosine of at least ``min_score``.
        kNN for every document (batched where the backend can), never all pairs."""

    async def count_with(self, field: VectorField) -> int:
        """How many documents have a ``field`` vector (older ones may lack ``semantic``)."""

    async def count_with_photo(self) -> int:
        """How many documents carry photo metadata (those indexed before it have none)."""

    async def delete(self, ids: Sequence[str]) -> set[str]:
        """Remove documents; the subset of ``ids`` that existed (and are now gone)."""

    async def set_locations(self, doc_id: str, locations: Sequence[Location]) -> bool:
        """Replace a document's locations without touching the rest of it (``uri`` becomes
        the first); False when ``doc_id`` is not indexed. ``locations`` is never empty: a
        document with no place left is deleted instead."""

    def located_under(self, prefix: str) -> AsyncIterator[tuple[str, tuple[Location, ...]]]:
        """``(id, locations)`` of every document with a location whose ``uri`` starts with
        ``prefix`` (a folder path ending in ``/``), streamed; all its locations, not only
        those under the prefix. Memory stays bounded by the page size, not the index size."""

    async def get(self, doc_id: str) -> ImageDocument | None: ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...
