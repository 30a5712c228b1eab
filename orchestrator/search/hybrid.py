"""Hybrid search: the word query and the semantic query side by side, fused by rank.

Both run on any backend (Elasticsearch, its emulator, the embedded index) and are fused here,
with reciprocal rank fusion (Cormack et al., 2009: each list adds ``1 / (60 + rank)``), so the
ranking is the same everywhere. What the words found stays; what only meaning found is added
when it is confidently relevant (:class:`SemanticCutoff`). The page is then ordered by each
hit's 0-1 relevance (:mod:`orchestrator.search.relevance`), rank fusion breaking ties.

A structured query (``field:value``, ranges, ``AND``/``OR``/``-``, groups,
wildcards) keeps its exact meaning: it runs as words only. A quoted phrase is still free text.
So does a search sorted by date or filtered by distance: those order and filter word matches.
Facets count the word matches of the query in every mode.

A ``filter`` (a word query too: ``camera.make:canon``) narrows both lists before they are
fused: the words run as ``(query) AND (filter)``, and the semantic list is the nearest
documents that match it, so a filter never empties a page its matches could fill.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from orchestrator.errors import BadRequest, InvalidQuery
from orchestrator.search.base import (
    NO_OPTIONS,
    Facet,
    SearchBackend,
    SearchHit,
    SearchOptions,
    SearchPage,
)
from orchestrator.search.limits import (
    MAX_KNN_K,
    MAX_RESULT_WINDOW,
    as_filter_error,
    check_query,
    check_window,
)
from orchestrator.search.photo_query import involves_photo, photo_notice
from orchestrator.search.relevance import query_terms, relevance, semantic_confidence

SearchMode = Literal["hybrid", "words", "semantic"]
MODES: tuple[SearchMode, ...] = ("hybrid", "words", "semantic")
#: The constant of reciprocal rank fusion; 60 is the value of the paper and of Elasticsearch.
RRF_K = 60
REINDEX = "run `deeptag index --reindex FOLDER...` on those images to add them"

#: Embeds one query text into the space of the documents' ``semantic`` vectors.
Encode = Callable[[str], Awaitable[Sequence[float]]]

# Outside phrases: `name:`, a boolean operator, a leading +/-, a group, a range or a wildcard.
_STRUCTURE = re.compile(
    r"(?:^|[\s(])[\w.]+:|\b(?:AND|OR|NOT)\b|(?:^|\s)[-+!]\S|[()\[\]{}*?~^]|&&|\|\|"
)
_PHRASE = re.compile(r'"[^"]*"')


@dataclass(frozen=True)
class SemanticCutoff:
    """When hybrid search adds a photo that only its meaning found (the word query did not):
    when it is confidently relevant (calibrated, :mod:`relevance`), or, when the words found
    nothing, when it is within ``ratio`` of the best cosine of the query."""

    confidence: float = 0.6
    ratio: float = 0.95

    def keeps(self, cosine: float, best: float, words_found: bool) -> bool:
        if semantic_confidence(cosine) >= self.confidence:
            return True
        return not words_found and cosine >= self.ratio * best


@dataclass(frozen=True)
class ModePage:
    """A page of hits, the mode that produced it, and what the user should know about it."""

    page: SearchPage
    mode: SearchMode
    notice: str | None = None


def is_structured(query: str) -> bool:
    """Whether ``query`` uses query syntax beyond words and quoted phrases (pure)."""
    return bool(_STRUCTURE.search(_PHRASE.sub(" ", query)))


def runs_as_words(query: str, mode: SearchMode) -> bool:
    """Whether ``query`` in ``mode`` is a word search only, with no text to embed (pure)."""
    query = query.strip()
    return mode == "words" or not semantic_text(query) or query == "*" or is_structured(query)


def semantic_text(query: str) -> str:
    """What is embedded for a free-text query: its words, without the quotes (pure)."""
    return " ".join(query.replace('"', " ").split())


def filtered(query: str, filter: str | None) -> str:
    """The word query that matches ``query`` and ``filter`` both (pure; both stripped)."""
    if filter is None or filter in ("", "*"):
        return query
    if query in ("", "*"):
        return filter
    # Grouped, so an OR in either stays inside it: `a OR b` AND `c` is not `a OR (b AND c)`.
    return f"({_all_but(query)}) AND ({_all_but(filter)})"


_CLAUSE = re.compile(r'"[^"]*"|\([^)]*\)|\S+')


def _all_but(query: str) -> str:
    """A purely negative query (`-cat`, `NOT cat -dog`) as "everything but" (pure): alone it
    means that on both backends, but inside a group tantivy would match nothing."""
    clauses = _CLAUSE.findall(query)
    positive = False
    negated = False
    for clause in clauses:
        if clause == "NOT":
            negated = True
            continue
        if not (negated or clause.startswith("-")) and clause not in ("AND", "OR"):
            positive = True
        negated = False
    return query if positive or not clauses else f"* {query}"


def fuse(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of ranked id lists, best first (pure).

    Ties keep the order of first appearance, earlier lists first, so with the word ranking
    given first a label word's own photo stays ahead of an equally fused one.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    order = {doc_id: i for i, doc_id in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))


def depth_for(window: int) -> int:
    """How deep each list is read so the fused top ``window`` is exact.

    A document beyond ``depth`` in both lists scores at most ``2 / (k + depth)``, never more
    than one inside the window of either list (``1 / (k + window)``).
    """
    return min(2 * window + RRF_K, MAX_RESULT_WINDOW, MAX_KNN_K)


async def search(
    backend: SearchBackend,
    query: str,
    mode: SearchMode = "hybrid",
    *,
    size: int = 10,
    offset: int = 0,
    encode: Encode | None = None,
    unavailable: str | None = None,
    min_score: float = 0.0,
    options: SearchOptions = NO_OPTIONS,
    filter: str | None = None,
    cutoff: SemanticCutoff = SemanticCutoff(),
) -> ModePage:
    """The page of ``query`` in ``mode``; ``encode`` embeds query text (None: words only,
    ``unavailable`` saying why). With a sort or a distance in ``options`` it runs as words.
    ``filter``: only documents matching this word query, in every list (see the module).

    Raises:
        InvalidQuery, BadRequest: as :meth:`SearchBackend.search` does (a bad ``filter`` is
            named as the filter), and for a sort or a distance in semantic mode, which has no
            word matches to order or filter.
    """
    query = query.strip()
    check_window(size, offset)
    check_query(query)
    filter = _only(filter)
    words_query = filtered(query, filter)
    ordered = options.sort is not None or options.near is not None
    if ordered and mode == "semantic":
        raise BadRequest(
            "sort and near order and filter the query's word matches: use them with mode "
            "hybrid or words, not semantic"
        )
    photo = await _photo_notice(backend, words_query, options)
    if ordered or runs_as_words(query, mode):
        page = await _words(backend, query, filter, size, offset, options)
        return ModePage(replace(page, hits=_judged(page.hits, query)), "words", photo)
    started = time.perf_counter()
    notice = await _coverage_notice(backend)
    if encode is None or notice == _NONE_HAVE_VECTORS:
        why = notice or f"semantic search is unavailable: {unavailable or 'no text encoder'}"
        if mode == "semantic":
            page = SearchPage(0, (), _ms(started), await _facets(backend, words_query, options))
            return ModePage(page, "semantic", _joined(why, photo))
        page = await _words(backend, query, filter, size, offset, options)
        page = replace(page, hits=_judged(page.hits, query))
        return ModePage(page, "words", _joined(why, photo))
    window = offset + size
    depth = depth_for(window)
    vector = await encode(semantic_text(query))
    # The backend keeps the nearest documents that match the filter, none under min_score.
    found = await backend.knn(vector, k=depth, field="semantic", filter=filter, min_score=min_score)
    cosines = {hit.document.id: hit.score for hit in found.hits}
    facets = await _facets(backend, words_query, options)
    if mode == "semantic":
        hits = _judged(found.hits[offset:window], query, cosines, ())
        page = SearchPage(len(found.hits), hits, _ms(started), facets)
        return ModePage(page, "semantic", _joined(notice, photo))
    words = await _words(backend, query, filter, depth)
    word_ids = {hit.document.id for hit in words.hits}
    # What the words found stays; what only meaning found must be confidently relevant.
    best = max(cosines.values(), default=0.0)
    kept = [
        hit
        for hit in found.hits
        if hit.document.id in word_ids or cutoff.keeps(hit.score, best, bool(word_ids))
    ]
    documents = {hit.document.id: hit.document for hit in (*kept, *words.hits)}
    fused = fuse([[h.document.id for h in words.hits], [h.document.id for h in kept]])
    total = words.total + sum(hit.document.id not in word_ids for hit in kept)
    judged = _judged([SearchHit(documents[i], s) for i, s in fused], query, cosines, word_ids)
    # Best first by the 0-1 score a person reads (rank fusion breaks its ties): the label a
    # photo surely has before a concept the classifier half guessed.
    by_score = sorted(judged, key=lambda hit: -(hit.relevance or 0.0))
    page = SearchPage(total, tuple(by_score[offset:window]), _ms(started), facets)
    return ModePage(page, "hybrid", _joined(notice, photo))


def _judged(
    hits: Sequence[SearchHit],
    query: str,
    cosines: Mapping[str, float] | None = None,
    word_ids: Collection[str] | None = None,
) -> tuple[SearchHit, ...]:
    """The hits with each one's 0-1 relevance and what matched (see :mod:`relevance`);
    ``word_ids`` None: every hit was found by the words."""
    terms = query_terms(query)
    judged = []
    for hit in hits:
        doc_id = hit.document.id
        found_by_words = word_ids is None or doc_id in word_ids
        judgement = relevance(hit.document, terms, (cosines or {}).get(doc_id), found_by_words)
        judged.append(replace(hit, relevance=judgement.score, matched=judgement.matched))
    return tuple(judged)


def _only(filter: str | None) -> str | None:
    """The filter's query string; None when it lets every document through, as ``*`` does."""
    words = (filter or "").strip()
    return None if words in ("", "*") else words


async def _words(
    backend: SearchBackend,
    query: str,
    filter: str | None,
    size: int,
    offset: int = 0,
    options: SearchOptions = NO_OPTIONS,
) -> SearchPage:
    """The word matches of ``query`` that also match ``filter``.

    Raises:
        InvalidQuery: the query or the filter does not parse; the message names the one at
            fault (the backend's own quotes the two joined).
    """
    try:
        return await backend.search(
            filtered(query, filter) or "*", size=size, offset=offset, options=options
        )
    except InvalidQuery:
        if filter is None:
            raise
        # Each alone, only now that the two together failed: a bad query raises its own
        # error here, a bad filter one that says it is the filter.
        await backend.search(query or "*", size=0)
        try:
            await backend.search(filter, size=0)
        except InvalidQuery as e:
            raise as_filter_error(e, filter) from None
        raise


async def _facets(backend: SearchBackend, query: str, options: SearchOptions) -> tuple[Facet, ...]:
    """The facets of the query's word matches (what meaning finds has no count to give)."""
    if not options.facets:
        return ()
    counted = await backend.search(query, size=0, options=SearchOptions(facets=options.facets))
    return counted.facets


async def _photo_notice(backend: SearchBackend, query: str, options: SearchOptions) -> str | None:
    """What to say when a search that looks at photo metadata meets documents without it."""
    if not involves_photo(query, options):
        return None
    total = await backend.count()
    if total == 0:
        return None
    return photo_notice(total - await backend.count_with_photo(), total)


def _joined(*notices: str | None) -> str | None:
    return " ".join(n for n in notices if n) or None


_NONE_HAVE_VECTORS = (
    "no indexed image has concepts or a semantic vector yet (indexed by an earlier deeptag): "
    + REINDEX
)


async def _coverage_notice(backend: SearchBackend) -> str | None:
    """What to say when some (or all) documents predate semantic vectors."""
    with_vectors = await backend.count_with("semantic")
    total = await backend.count()
    if total == 0 or with_vectors >= total:
        return None
    if with_vectors == 0:
        return _NONE_HAVE_VECTORS
    missing = total - with_vectors
    return (
        f"{missing} of {total} indexed images have no concepts or semantic vector "
        f"(indexed by an earlier deeptag) and are found by words only: {REINDEX}"
    )


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
