"""Close pairs of documents on Elasticsearch: every embedding read page by page (a point in
time and ``search_after``), and each page's nearest neighbours asked in one ``_msearch`` of kNN
searches: kNN per document, batched, never all pairs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.search.es_knn import knn_section
from orchestrator.search.es_locations import KEEP_ALIVE, pit_page

#: Documents per page, and so kNN searches per ``_msearch``.
PAGE_SIZE = 200
WITH_EMBEDDING = {"exists": {"field": "embedding"}}

Call = Callable[[Awaitable[Any]], Awaitable[Any]]
ClosePit = Callable[[str], Awaitable[None]]


def searches(index: str, hits: list[dict[str, Any]], k: int, min_score: float) -> list[Any]:
    """The ``_msearch`` body: one kNN search per hit, the hit itself left out."""
    body: list[Any] = []
    for hit in hits:
        vector = hit["_source"]["embedding"]
        knn = knn_section(vector, k, "embedding", exclude_id=hit["_id"], min_score=min_score)
        body += [{"index": index}, {"knn": knn, "size": k, "_source": False}]
    return body


def add_pairs(
    pairs: dict[tuple[str, str], float],
    hits: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    min_score: float,
) -> None:
    for hit, answer in zip(hits, answers, strict=True):
        for near in (answer.get("hits") or {}).get("hits") or ():
            # ES reports cosine as (1 + cos) / 2.
            cosine = 2 * float(near["_score"] or 0.0) - 1
            if cosine >= min_score and near["_id"] != hit["_id"]:
                a, b = sorted((str(hit["_id"]), str(near["_id"])))
                pairs[(a, b)] = max(pairs.get((a, b), -1.0), cosine)


async def close_pairs(
    client: Any, index: str, call: Call, close_pit: ClosePit, min_score: float, k: int
) -> list[tuple[str, str, float]]:
    pit = await call(client.open_point_in_time(index=index, keep_alive=KEEP_ALIVE))
    pit_id, after = str(pit["id"]), None
    pairs: dict[tuple[str, str], float] = {}
    try:
        while True:
            body = pit_page(
                pit_id, {"exists": {"field": "embedding"}}, ["embedding"], after, PAGE_SIZE
            )
            response = await call(client.search(**body))
            pit_id = str(response.get("pit_id") or pit_id)
            hits = response["hits"]["hits"]
            if hits:
                answers = await call(client.msearch(searches=searches(index, hits, k, min_score)))
                add_pairs(pairs, hits, answers["responses"], min_score)
            if len(hits) < PAGE_SIZE:
                break
            after = hits[-1]["sort"]
    finally:
        await close_pit(pit_id)
    return [(a, b, score) for (a, b), score in sorted(pairs.items())]
