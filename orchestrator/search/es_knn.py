"""The ``knn`` section of an Elasticsearch search, and its hits read back as cosines (pure).

What a kNN request may add to the nearest vectors: a word filter that the ``k`` must match, an
image left out, and the least cosine a hit may have.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from orchestrator.errors import BadRequest, InvalidQuery
from orchestrator.search.base import DEFAULT_QUERY_FIELDS, SearchHit, SearchPage, VectorField
from orchestrator.search.es_query import query_clause
from orchestrator.search.limits import MAX_KNN_K, as_filter_error, check_query, shown
from orchestrator.search.query_errors import explain

#: Candidates gathered per neighbour asked for, and the fewest gathered for any ``k``.
CANDIDATES_PER_K = 10
MIN_CANDIDATES = 100


def num_candidates(k: int) -> int:
    """How many candidates each shard's HNSW search gathers to keep the best ``k`` (pure).

    The graph search is approximate: the more candidates it gathers, the more of the true
    nearest it finds. ES's default, 1.5 * k, gives recall up for speed, and worst for the small
    ``k`` users ask for. Ten per neighbour, and never fewer than 100, keeps the answer close to
    the exact one (which the embedded index gives) at a few milliseconds; the cap is ES's own
    limit of 10,000, which bounds the work of one request, and as ``k`` is at most 10,000 too
    (limits.check_k) the candidates are never fewer than ``k``, as ES requires.
    """
    return min(max(CANDIDATES_PER_K * k, MIN_CANDIDATES), MAX_KNN_K)


def filter_words(filter: str | None) -> str | None:
    """The query string a kNN filter keeps, or None when it lets every document through."""
    words = (filter or "").strip()
    # As for a word search, "*" and nothing mean every document: no filter at all.
    return None if words in ("", "*") else words


def knn_section(
    vector: Iterable[float],
    k: int,
    field: VectorField,
    *,
    exclude_id: str | None = None,
    words: str | None = None,
    min_score: float | None = None,
) -> dict[str, Any]:
    """The ``knn`` argument of the client's ``search``; ``words`` as from :func:`filter_words`.

    Raises:
        InvalidQuery: ``words`` is too long, nests too deep or holds a bad date (quoted).
        BadRequest: ``min_score`` is not a finite number.
    """
    section: dict[str, Any] = {
        "field": field,
        "query_vector": [float(x) for x in vector],
        "k": k,
        "num_candidates": num_candidates(k),
    }
    allowed = allowed_documents(words, exclude_id)
    if allowed is not None:
        # Inside ``knn``, ES applies the filter while it walks the graph (a pre-filter): the k
        # are the nearest matching documents, never the nearest k thinned out afterwards.
        section["filter"] = allowed
    if min_score is not None:
        if not math.isfinite(min_score):
            raise BadRequest(f"min_score must be a finite number (min_score={min_score})")
        # For a cosine field, ES's similarity is the raw cosine (-1..1), not the _score it
        # reports, (1 + cos) / 2: the same scale as deeptag's scores and min_score.
        section["similarity"] = min_score
    return section


def allowed_documents(words: str | None, exclude_id: str | None) -> dict[str, Any] | None:
    """The documents a kNN request may answer with, as one ES query; None for all of them."""
    clauses: dict[str, Any] = {}
    if words is not None:
        clauses["filter"] = [filter_clause(words)]
    if exclude_id is not None:
        clauses["must_not"] = [{"ids": {"values": [exclude_id]}}]
    return {"bool": clauses} if clauses else None


def filter_clause(words: str) -> dict[str, Any]:
    """``words`` read as a word search reads its query (same checks, dates and fields).

    Raises:
        InvalidQuery: as a word search would refuse them, saying it is the filter.
    """
    try:
        check_query(words)
        return query_clause(words, DEFAULT_QUERY_FIELDS)
    except InvalidQuery as e:
        raise as_filter_error(e, words) from None


def refused_filter(words: str, reason: str) -> InvalidQuery:
    """Elasticsearch could not parse ``words``: ``reason`` is what it said."""
    return InvalidQuery(f"filter {shown(words)}: {explain(words) or reason[:200]}")


def cosine_page(page: SearchPage, min_score: float | None) -> SearchPage:
    """ES's kNN hits scored by their cosine, none under ``min_score``."""
    # ES reports cosine as (1 + cos) / 2; give users the cosine, as the embedded index does.
    hits = tuple(SearchHit(hit.document, 2 * hit.score - 1) for hit in page.hits)
    if min_score is not None:
        # ES compared its own float32 cosine with ``similarity``: read back from its _score, a
        # hit at the bound can land a hair under it, and no hit shown may be. An ES-API server
        # that ignored ``similarity`` is held to it here too.
        hits = tuple(hit for hit in hits if hit.score >= min_score)
    return SearchPage(len(hits), hits, page.took_ms)
