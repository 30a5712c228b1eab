"""Close pairs of documents on any backend: a kNN query per document (Elasticsearch's way;
the embedded index batches them, see embedded_pairs.py)."""

from __future__ import annotations

from orchestrator.search.base import SearchBackend


async def pairs_by_knn(
    backend: SearchBackend, min_score: float, k: int
) -> list[tuple[str, str, float]]:
    """``(id, id, cosine)``, each pair once, where one is among the other's ``k`` nearest."""
    pairs: dict[tuple[str, str], float] = {}
    ids = [doc_id async for doc_id, _ in backend.located_under("")]
    for doc_id in ids:
        document = await backend.get(doc_id)
        if document is None or document.embedding is None:
            continue
        page = await backend.knn(document.embedding, k=k, exclude_id=doc_id, min_score=min_score)
        for hit in page.hits:
            a, b = sorted((doc_id, hit.document.id))
            pairs[(a, b)] = max(pairs.get((a, b), -1.0), hit.score)
    return [(a, b, score) for (a, b), score in sorted(pairs.items())]
