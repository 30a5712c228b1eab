"""Search results as the JSON that ``/search``, ``deeptag search --json`` and the page share."""

from __future__ import annotations

from typing import Any

from orchestrator.search.base import ImageDocument, SearchHit, SearchPage


def thumbnail_url(document: ImageDocument) -> str:
    """Remote images are shown from where they live; local ones through /thumbnails."""
    if document.uri.startswith(("http://", "https://")):
        return document.uri
    return f"/thumbnails/{document.id}"


def hit_json(hit: SearchHit) -> dict[str, Any]:
    document = hit.document
    return {
        "id": document.id,
        "uri": document.uri,
        "score": round(hit.score, 6),
        "categories": [{"category": c.category, "score": c.score} for c in document.categories],
        "width": document.width,
        "height": document.height,
        "metadata": dict(document.metadata),
        "thumbnail": thumbnail_url(document),
    }


def page_json(page: SearchPage) -> dict[str, Any]:
    return {
        "total": page.total,
        "took_ms": round(page.took_ms, 3),
        "hits": [hit_json(hit) for hit in page.hits],
    }
