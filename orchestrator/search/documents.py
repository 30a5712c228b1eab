"""Predictions become search documents, and documents travel as JSON (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from orchestrator.analysis.registry import ANALYSES, ANALYSES_FIELD, ANALYSIS_FIELDS
from orchestrator.photo import PHOTO_FIELDS, PhotoMetadata
from orchestrator.search.base import (
    Category,
    ConceptScore,
    CustomCategory,
    ImageDocument,
    Location,
)
from orchestrator.search.photo_fields import storable
from orchestrator.triton.model_info import ModelInfo
from orchestrator.types import Prediction

#: Fields deeptag owns; user metadata may not overwrite them. The photo's own fields are
#: among them: they are read from the image, and searched and sorted by their names.
RESERVED_FIELDS = (
    frozenset(
        {
            "uri",
            "categories",
            "tags",
            "concepts",
            "custom",
            "embedding",
            "semantic",
            "width",
            "height",
            "model",
            "indexed_at",
            "locations",
            "phash",
        }
    )
    | PHOTO_FIELDS
    | ANALYSIS_FIELDS
)


def check_metadata_keys(keys: Iterable[str]) -> None:
    """Refuse metadata that would shadow a field deeptag sets, naming the keys.

    Raises:
        ValueError: some keys are empty or reserved.
    """
    keys = list(keys)
    if "" in keys:
        raise ValueError("metadata keys must not be empty")
    taken = sorted(RESERVED_FIELDS.intersection(keys))
    if taken:
        raise ValueError(
            f"metadata key(s) {', '.join(taken)} are fields deeptag sets itself "
            f"(reserved: {', '.join(sorted(RESERVED_FIELDS))})"
        )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def document_from_prediction(
    prediction: Prediction,
    model: ModelInfo,
    metadata: Mapping[str, Any] | None = None,
    indexed_at: str | None = None,
    custom: Sequence[CustomCategory] = (),
) -> ImageDocument:
    tags: list[str] = []
    for label in prediction.labels:
        if label.words not in tags:
            tags.append(label.words)
    embedding = None
    if prediction.embedding is not None:
        embedding = tuple(float(x) for x in prediction.embedding)
    return ImageDocument(
        id=prediction.sha256,
        uri=prediction.source.uri,
        categories=tuple(Category(label.category, label.score) for label in prediction.labels),
        tags=tuple(tags),
        embedding=embedding,
        width=prediction.width,
        height=prediction.height,
        model=f"{model.name}/{model.version}",
        indexed_at=indexed_at or now_iso(),
        metadata={k: v for k, v in (metadata or {}).items() if k not in RESERVED_FIELDS},
        concepts=tuple(
            ConceptScore(c.concept, round(c.score, 6)) for c in prediction.concepts or ()
        ),
        semantic=_floats(prediction.semantic),
        custom=tuple(custom),
        # Read from the image's own bytes; predictions made before then carry none.
        photo=prediction.photo,
        # Size and mtime as the reader saw them: this module never looks at the file itself.
        locations=(Location(prediction.source.uri, prediction.size, prediction.mtime),),
        phash=prediction.phash,
        analyses=prediction.analyses,
    )


def _floats(vector: Any) -> tuple[float, ...] | None:
    # A zero vector (an image with nothing confident) has no direction to rank by.
    if vector is None or not np.any(vector):
        return None
    return tuple(float(x) for x in vector)


def document_to_source(document: ImageDocument) -> dict[str, Any]:
    """The JSON body stored for a document (its ``_source`` in Elasticsearch)."""
    source: dict[str, Any] = dict(document.metadata)
    source.update(
        uri=document.uri,
        categories=[{"category": c.category, "score": c.score} for c in document.categories],
        tags=list(document.tags),
        concepts=[{"concept": c.concept, "score": c.score} for c in document.concepts],
        custom=[
            {"model": c.model, "category": c.category, "score": c.score} for c in document.custom
        ],
        width=document.width,
        height=document.height,
        model=document.model,
        indexed_at=document.indexed_at,
    )
    if document.locations:
        # None kept for a document built without them: it reads back as it was (its uri).
        source["locations"] = locations_to_source(document.locations)
    if document.photo is not None:
        source.update(storable(document.photo).to_fields())
    if document.embedding is not None:
        source["embedding"] = list(document.embedding)
    if document.semantic is not None:
        source["semantic"] = list(document.semantic)
    if document.phash is not None:
        source["phash"] = document.phash
    if document.analyses:
        for fields in document.analyses.values():
            source.update(fields)
        source[ANALYSES_FIELD] = sorted(document.analyses)
    return source


def analyses_from_source(source: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The analyses a stored document lists as run, each with the fields it wrote."""
    ran = source.get(ANALYSES_FIELD) or ()
    ran = [ran] if isinstance(ran, str) else ran
    return {
        spec.name: {name: source[name] for name in spec.fields if name in source}
        for spec in ANALYSES
        if spec.name in ran
    }


def photo_from_source(source: Mapping[str, Any]) -> PhotoMetadata | None:
    """The photo metadata of a stored document; None when it has none of the photo fields
    (indexed before deeptag read them)."""
    if not PHOTO_FIELDS.intersection(source):
        return None
    return PhotoMetadata.from_fields(source)


def document_from_source(doc_id: str, source: Mapping[str, Any]) -> ImageDocument:
    """The inverse of :func:`document_to_source`; tolerant of documents written by others."""
    categories = tuple(
        Category(str(c.get("category", "")), float(c.get("score", 0.0)))
        for c in source.get("categories") or ()
    )
    tags = source.get("tags") or ()
    embedding = source.get("embedding")
    semantic = source.get("semantic")
    concepts = tuple(
        ConceptScore(str(c.get("concept", "")), float(c.get("score", 0.0)))
        for c in source.get("concepts") or ()
        if isinstance(c, Mapping)
    )
    custom = tuple(
        CustomCategory(
            str(c.get("model", "")), str(c.get("category", "")), float(c.get("score", 0.0))
        )
        for c in source.get("custom") or ()
        if isinstance(c, Mapping)
    )
    return ImageDocument(
        id=doc_id,
        uri=str(source.get("uri", "")),
        categories=categories,
        tags=tuple([tags] if isinstance(tags, str) else tags),
        embedding=tuple(float(x) for x in embedding) if embedding else None,
        width=int(source.get("width") or 0),
        height=int(source.get("height") or 0),
        model=str(source.get("model", "")),
        indexed_at=str(source.get("indexed_at", "")),
        metadata={k: v for k, v in source.items() if k not in RESERVED_FIELDS},
        concepts=concepts,
        semantic=tuple(float(x) for x in semantic) if semantic else None,
        custom=custom,
        photo=photo_from_source(source),
        locations=locations_from_source(source.get("locations")),
        # Absent from documents written before deeptag computed it.
        phash=_phash_from_source(source.get("phash")),
        analyses=analyses_from_source(source),
    )


def _phash_from_source(stored: Any) -> str | None:
    return stored if isinstance(stored, str) and stored else None


def locations_to_source(locations: Iterable[Location]) -> list[dict[str, Any]]:
    """Locations as stored: objects, so Elasticsearch maps ``locations.uri`` as a keyword."""
    return [{"uri": loc.uri, "size": loc.size, "mtime": loc.mtime} for loc in locations]


def locations_from_source(stored: Any) -> tuple[Location, ...]:
    """The inverse of :func:`locations_to_source`; ``()`` for a document written before
    deeptag kept locations (its ``places`` is then its ``uri``). Bare strings are accepted."""
    if not isinstance(stored, list):
        return ()
    found: list[Location] = []
    for entry in stored:
        if isinstance(entry, str):
            found.append(Location(entry))
        elif isinstance(entry, Mapping) and entry.get("uri"):
            size, mtime = entry.get("size"), entry.get("mtime")
            found.append(
                Location(
                    str(entry["uri"]),
                    None if size is None else int(size),
                    None if mtime is None else float(mtime),
                )
            )
    return tuple(found)


def with_locations(document: ImageDocument, locations: Sequence[Location]) -> ImageDocument:
    """``document`` placed at ``locations`` instead, the first becoming its ``uri``."""
    if not locations:
        raise ValueError("a document needs at least one location")
    return replace(document, uri=locations[0].uri, locations=tuple(locations))
