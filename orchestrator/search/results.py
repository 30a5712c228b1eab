"""Search results as the JSON that ``/search``, ``deeptag search --json`` and the page share."""

from __future__ import annotations

from typing import Any

from orchestrator.search.base import ImageDocument, SearchHit, SearchPage
from orchestrator.search.hybrid import ModePage


def thumbnail_url(document: ImageDocument) -> str:
    """Every image, local or remote, through /thumbnails: the server fetches and caches it."""
    return f"/thumbnails/{document.id}"


def score_of(hit: SearchHit) -> float:
    """A hit's 0-1 score: its relevance to the query, or (found by example) its cosine."""
    if hit.relevance is not None:
        return hit.relevance
    return min(1.0, max(0.0, hit.score))


def hit_json(hit: SearchHit) -> dict[str, Any]:
    """A hit as JSON: the photo's own fields (``taken_at``, ``camera``, ``place``...) sit at
    the top level, as they are stored, and only those the photo has."""
    document = hit.document
    photo = document.photo.to_fields() if document.photo is not None else {}
    return {
        "id": document.id,
        "uri": document.uri,
        # Every path or URL of the same content, ``uri`` first.
        "locations": [place.uri for place in document.places],
        # 0-1, the same scale in every mode (orchestrator.search.relevance); an image found by
        # example (--like, "More like this") has its similarity to the example.
        "score": round(score_of(hit), 4),
        # The backend's own ranking value (BM25, rank fusion, cosine), for those who want it.
        "rank_score": round(hit.score, 6),
        "matched": list(hit.matched),
        "categories": [{"category": c.category, "score": c.score} for c in document.categories],
        "concepts": [{"concept": c.concept, "score": c.score} for c in document.concepts],
        "custom": [
            {"model": c.model, "category": c.category, "score": c.score} for c in document.custom
        ],
        "width": document.width,
        "height": document.height,
        "metadata": dict(document.metadata),
        "thumbnail": thumbnail_url(document),
        **photo,
        # What the analyses found (`text`, `text_lines`, `nsfw`), when they ran.
        **{k: v for fields in document.analyses.values() for k, v in fields.items()},
    }


def page_json(page: SearchPage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total": page.total,
        "took_ms": round(page.took_ms, 3),
        "hits": [hit_json(hit) for hit in page.hits],
    }
    if page.facets:
        body["facets"] = {
            facet.name: [{"value": v.value, "count": v.count} for v in facet.values]
            for facet in page.facets
        }
    return body


def mode_page_json(result: ModePage) -> dict[str, Any]:
    """A page with the mode that ran (``hybrid``, ``words`` or ``semantic``) and any notice."""
    body = page_json(result.page)
    body["mode"] = result.mode
    if result.notice:
        body["notice"] = result.notice
    return body
