"""The document every backend stores, and the protocol both backends implement."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

BackendKind = Literal["es", "embedded"]

#: Length of the model's ``embedding`` output (EfficientNet-Lite0 pooled features).
EMBEDDING_DIMS = 1280

#: Where bare words of a query string look, in both backends.
DEFAULT_QUERY_FIELDS = ("tags", "categories.category", "uri")


@dataclass(frozen=True)
class Category:
    category: str  # "n07920052 espresso"
    score: float


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


@dataclass(frozen=True)
class SearchHit:
    document: ImageDocument
    score: float


@dataclass(frozen=True)
class SearchPage:
    total: int
    hits: tuple[SearchHit, ...]
    took_ms: float


@dataclass(frozen=True)
class IndexResult:
    """What happened to one document of a bulk call."""

    id: str
    uri: str
    ok: bool
    error: str | None = None


class SearchBackend(Protocol):
    kind: BackendKind

    async def ensure_index(self) -> None:
        """Create the index (with its mapping) when it does not exist yet."""

    async def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` already indexed (for resumable indexing)."""

    def index(self, documents: Sequence[ImageDocument]) -> AsyncIterator[IndexResult]:
        """Index documents; yield one result per document, failures included."""

    async def search(self, query: str, size: int = 10, offset: int = 0) -> SearchPage:
        """An ES ``q=`` style query string."""

    async def knn(
        self, vector: Sequence[float], k: int = 10, exclude_id: str | None = None
    ) -> SearchPage:
        """Nearest documents by cosine similarity of ``embedding``."""

    async def get(self, doc_id: str) -> ImageDocument | None: ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...
