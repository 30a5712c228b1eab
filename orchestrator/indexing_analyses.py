"""Analyses added to images already indexed: ``deeptag index --ocr`` on an indexed folder
reads the text of each image without classifying it again.

A document lists the analyses that ran on it (``analyses``), so one whose OCR found no text is
not read again, and one indexed before OCR was turned on gets it. The found fields are merged
into the stored document by the writer stage, which reads the document afresh, so places
recorded meanwhile are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from orchestrator.pipeline import Tagger
from orchestrator.search.base import ImageDocument, SearchBackend
from orchestrator.types import PreparedImage

#: What one image's analyses found, by analysis name (orchestrator.pipeline.Tagger.analyse).
Found = Mapping[str, Mapping[str, Any]]


async def lacking(
    backend: SearchBackend, ids: Sequence[str], names: frozenset[str]
) -> dict[str, frozenset[str]]:
    """For each indexed document of ``ids``, the analyses among ``names`` it has not had."""
    missing: dict[str, frozenset[str]] = {}
    if not names:
        return missing
    for doc_id in ids:
        document = await backend.get(doc_id)
        if document is not None and (lacks := names - set(document.analyses)):
            missing[doc_id] = frozenset(lacks)
    return missing


async def lacking_images(
    backend: SearchBackend,
    images: Sequence[PreparedImage],
    already: set[str],
    names: frozenset[str],
) -> list[tuple[PreparedImage, frozenset[str]]]:
    """The images of a chunk indexed before (``already``) that lack some of ``names``, once
    each, with the analyses each lacks."""
    if not names or not already:
        return []
    unique = {image.sha256: image for image in images if image.sha256 in already}
    missing = await lacking(backend, list(unique), names)
    return [(unique[doc_id], lacks) for doc_id, lacks in missing.items()]


async def analyse_lacking(
    tagger: Tagger, images: Sequence[tuple[PreparedImage, frozenset[str]]]
) -> dict[str, Found]:
    """Run on each image only the analyses it lacks (no classification), grouped by what
    they lack; what was found, by document id."""
    groups: dict[frozenset[str], list[PreparedImage]] = {}
    for image, lacks in images:
        groups.setdefault(lacks, []).append(image)
    found: dict[str, Found] = {}
    for names, group in groups.items():
        for image, fields in zip(group, await tagger.analyse(group, names), strict=True):
            found[image.sha256] = fields
    return found


async def with_analyses(backend: SearchBackend, found: Mapping[str, Found]) -> list[ImageDocument]:
    """The stored documents of ``found``'s ids, each with what its new analyses found added
    (a document removed meanwhile is left out)."""
    documents = []
    for doc_id, analyses in found.items():
        before = await backend.get(doc_id)
        if before is not None:
            documents.append(replace(before, analyses={**before.analyses, **analyses}))
    return documents
