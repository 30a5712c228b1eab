"""The Elasticsearch index's field types, and those added to indexes made before them."""

from __future__ import annotations

from typing import Any

from orchestrator.search.base import EMBEDDING_DIMS, SEMANTIC_DIMS

#: Full-text words, with a ``.keyword`` subfield for exact matches and facet counts.
WORDS = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}}
_TEXT = {"type": "text"}
_FLOAT = {"type": "float"}


def _dense_vector(dims: int) -> dict[str, Any]:
    return {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}


def photo_fields() -> dict[str, Any]:
    """What a photo says about itself (``orchestrator.photo``), typed for search."""
    return {
        # The string keeps its offset for display; ES indexes the instant. A date written by
        # another tool that ES cannot parse is left unindexed rather than failing its document.
        "taken_at": {"type": "date", "ignore_malformed": True},
        "camera": {"properties": {"make": WORDS, "model": WORDS}},
        "lens": WORDS,
        "exposure": {
            "properties": {
                "iso": {"type": "integer"},
                "f_number": _FLOAT,
                "exposure_time": _FLOAT,
                "focal_length": _FLOAT,
            }
        },
        "location": {"type": "geo_point", "ignore_malformed": True},
        "place": {
            "properties": {
                "city": WORDS,
                "region": WORDS,
                "country": WORDS,
                "country_code": WORDS,
            }
        },
        "keywords": WORDS,
        "title": _TEXT,
        "description": _TEXT,
        "format": WORDS,
    }


def added_fields() -> dict[str, Any]:
    """The fields concepts, semantic search, trained models, photo metadata, locations and
    the perceptual hash added: put on indexes created before them."""
    return {
        "concepts": {"properties": {"concept": WORDS, "score": _FLOAT}},
        "semantic": _dense_vector(SEMANTIC_DIMS),
        # An object array, not nested: `custom.model:astro AND astronaut` may pair a model
        # with another model's category, which a filter by model does not mind.
        "custom": {
            "properties": {
                "model": {"type": "keyword"},
                "category": WORDS,
                "score": _FLOAT,
            }
        },
        **photo_fields(),
        # Whole uris (keyword), so the documents under a folder are a prefix query.
        "locations": {
            "properties": {
                "uri": {"type": "keyword"},
                "size": {"type": "long"},
                "mtime": {"type": "double"},
            }
        },
        # Looked up whole (hex digits), never searched by words: dynamic mapping would make
        # it text with a keyword subfield.
        "phash": {"type": "keyword"},
        **analysis_fields(),
    }


def analysis_fields() -> dict[str, Any]:
    """What the analyses beside classification write (orchestrator.analysis.registry)."""
    return {
        # The text read in the image: words, as bare queries and `text:"exit"` search them.
        "text": _TEXT,
        # Lines with their boxes and scores: kept for display, never searched.
        "text_lines": {"type": "object", "enabled": False},
        "nsfw": _FLOAT,
        "analyses": {"type": "keyword"},
    }


def index_mapping(dims: int = EMBEDDING_DIMS) -> dict[str, Any]:
    """Field types for the document shape; user metadata is mapped dynamically."""
    return {
        "properties": {
            "uri": WORDS,
            "categories": {
                "properties": {"category": WORDS, "score": _FLOAT},
            },
            "tags": WORDS,
            "embedding": _dense_vector(dims),
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "model": {"type": "keyword"},
            "indexed_at": {"type": "date"},
            **added_fields(),
        }
    }
