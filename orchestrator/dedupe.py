"""Finding duplicate groups in the index: the I/O around :mod:`orchestrator.duplicates`.

Exact copies come from the locations documents record; near duplicates from the backend's
batched kNN (``similar_pairs``: pairs of documents whose embeddings are close), each pair
confirmed by the two documents' perceptual hashes. Nothing here reads an image file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.duplicates import SAME_PIXELS_SLACK, Group, Member, build_groups, confirmed
from orchestrator.search.base import ImageDocument, SearchBackend

#: The least embedding cosine of two near duplicates, and the most bits their 64-bit
#: perceptual hashes may differ by (bench/duplicates_quality.py chose them).
DEFAULT_THRESHOLD = 0.90
MAX_HASH_BITS = 20
#: Neighbours asked for per document: a photo is rarely kept in more copies.
NEIGHBOURS = 10


@dataclass(frozen=True)
class Found:
    groups: tuple[Group, ...]
    #: Documents in a candidate pair that have no perceptual hash (indexed before deeptag
    #: computed one): never grouped as near duplicates, counted to tell the user.
    unhashed: int = 0


async def find_groups(
    backend: SearchBackend,
    roots: Sequence[str] = (),
    threshold: float = DEFAULT_THRESHOLD,
    max_bits: int = MAX_HASH_BITS,
) -> Found:
    """Every group with at least two members under ``roots`` (folder prefixes ending in
    ``/``; none: the whole index)."""
    documents: dict[str, ImageDocument] = {}
    prefixes = list(roots) or [""]
    copies: set[str] = set()
    for prefix in prefixes:
        async for doc_id, places in backend.located_under(prefix):
            if sum(_in(p.uri, roots) for p in places) > 1:
                copies.add(doc_id)
    pairs = await backend.similar_pairs(max(threshold - SAME_PIXELS_SLACK, 0.0), NEIGHBOURS)
    wanted = copies | {doc_id for a, b, _ in pairs for doc_id in (a, b)}
    for doc_id in sorted(wanted):
        document = await backend.get(doc_id)
        if document is not None:
            documents[doc_id] = document
    near: list[tuple[str, str]] = []
    unhashed: set[str] = set()
    for a, b, cosine in pairs:
        if a not in documents or b not in documents:
            continue
        if not any(_in(p.uri, roots) for p in (*documents[a].places, *documents[b].places)):
            continue
        if confirmed(documents[a], documents[b], cosine, threshold, max_bits):
            near.append((a, b))
        else:
            unhashed.update(d for d in (a, b) if documents[d].phash is None)
    groups = build_groups(documents, near, list(roots))
    return Found(tuple(groups), len(unhashed))


def _in(uri: str, roots: Sequence[str]) -> bool:
    return not roots or any(uri.startswith(root) for root in roots)


def member_json(member: Member, keeper: Member) -> dict[str, object]:
    return {
        "location": member.location,
        "id": member.doc_id,
        "keeper": member is keeper,
        "width": member.width,
        "height": member.height,
        "pixels": member.pixels,
        "bytes": member.bytes,
        "format": member.format,
        "taken_at": member.taken_at,
    }


def group_json(group: Group) -> dict[str, object]:
    return {
        "kind": group.kind.value,
        "keeper": group.keeper.location,
        "why": group.why,
        "members": [member_json(m, group.keeper) for m in group.members],
    }


def found_json(found: Found, offset: int = 0, size: int | None = None) -> dict[str, object]:
    """``{"groups": [...], "total": N}`` (a page of them with ``offset`` and ``size``)."""
    chosen = found.groups[offset : None if size is None else offset + size]
    return {
        "total": len(found.groups),
        "groups": [group_json(g) for g in chosen],
        "unhashed": found.unhashed,
    }
