"""``--meta`` on images already indexed: ``deeptag index --meta album=holiday FOLDER`` on a
folder indexed before adds the album to those documents without classifying them again.

The writer stage reads each document afresh and writes it back with the metadata merged in,
so places and analyses recorded meanwhile are kept; a document that already says the same is
left alone, so running the command again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from orchestrator.search.base import ImageDocument, SearchBackend


async def with_metadata(
    backend: SearchBackend, ids: Iterable[str], metadata: Mapping[str, str]
) -> list[ImageDocument]:
    """The stored documents of ``ids`` whose metadata lacks or differs from ``metadata``,
    each with it merged in (a document not stored, or removed meanwhile, is left out)."""
    documents = []
    for doc_id in dict.fromkeys(ids):
        before = await backend.get(doc_id)
        if before is not None and any(before.metadata.get(k) != v for k, v in metadata.items()):
            documents.append(replace(before, metadata={**before.metadata, **metadata}))
    return documents
