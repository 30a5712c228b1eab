"""Photo metadata in the embedded index: its tantivy fields, and a document's values in them.

The fields are named like Elasticsearch's (``camera.make``, ``place.country_code``,
``camera.model.keyword``), so the same query strings work on both backends: words are
searched case-insensitively, the ``.keyword`` twins hold whole values as fast fields for
facet counts, and numbers, the ``taken_at`` instant and the location are fast fields for
ranges, sorting and distance.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import tantivy

from orchestrator.photo import PhotoMetadata
from orchestrator.search.facets import YEAR_FIELD
from orchestrator.search.photo_fields import flatten, storable, taken_instant

TAKEN_AT = "taken_at"
LAT, LON = "location.lat", "location.lon"
#: A 64-bit number per document, from its id: a fast field, so a set of documents found by
#: reading fast fields (those near a point) can become a query without loading any of them.
KEY_FIELD = "_key"
#: Searched as words; each also has a ``.keyword`` twin with the whole value.
KEYWORD_FIELDS = (
    "format",
    "camera.make",
    "camera.model",
    "lens",
    "place.city",
    "place.region",
    "place.country",
    "place.country_code",
    "keywords",
)
#: Searched as words only: long free text, never counted as a facet.
TEXT_FIELDS = ("title", "description")
INTEGER_FIELDS = ("exposure.iso",)
FLOAT_FIELDS = (
    "exposure.f_number",
    "exposure.exposure_time",
    "exposure.focal_length",
    LAT,
    LON,
)
#: Elasticsearch's ``ignore_above`` of its ``.keyword`` subfields: longer values are not kept
#: as keywords there, nor here.
KEYWORD_MAX_CHARS = 512

#: Every field this module adds to the schema.
PHOTO_SCHEMA_FIELDS = frozenset(
    {
        TAKEN_AT,
        YEAR_FIELD,
        KEY_FIELD,
        *KEYWORD_FIELDS,
        *(f"{name}.keyword" for name in KEYWORD_FIELDS),
        *TEXT_FIELDS,
        *INTEGER_FIELDS,
        *FLOAT_FIELDS,
    }
)


def add_photo_fields(builder: tantivy.SchemaBuilder) -> None:
    # Millisecond-free instants (tantivy keeps seconds), indexed for ranges, fast for sorting.
    builder.add_date_field(TAKEN_AT, indexed=True, fast=True)
    builder.add_integer_field(YEAR_FIELD, indexed=True, fast=True)
    builder.add_integer_field(KEY_FIELD, indexed=True, fast=True)
    for name in KEYWORD_FIELDS:
        builder.add_text_field(name)
        builder.add_text_field(
            f"{name}.keyword", fast=True, tokenizer_name="raw", index_option="basic"
        )
    for name in TEXT_FIELDS:
        builder.add_text_field(name)
    for name in INTEGER_FIELDS:
        builder.add_integer_field(name, indexed=True, fast=True)
    for name in FLOAT_FIELDS:
        builder.add_float_field(name, indexed=True, fast=True)


def document_key(doc_id: str) -> int:
    """The signed 64-bit :data:`KEY_FIELD` value of a document id."""
    digest = hashlib.blake2b(doc_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def add_photo(doc: tantivy.Document, doc_id: str, source: Mapping[str, Any]) -> None:
    """Index the photo fields of a document's stored JSON ``source``.

    Read back from the source, rather than from the document, so what is indexed is exactly
    what is stored, including photo-named fields of documents written before (as on
    Elasticsearch, where such fields are mapped as the photo's).
    """
    doc.add_integer(KEY_FIELD, document_key(doc_id))
    photo = storable(PhotoMetadata.from_fields(source))
    for path, value in flatten(photo.to_fields()):
        if path == TAKEN_AT:
            instant = taken_instant(value)
            if instant is not None:
                doc.add_date(TAKEN_AT, instant)
                doc.add_integer(YEAR_FIELD, instant.year)
        elif path in KEYWORD_FIELDS:
            doc.add_text(path, value)
            if len(value) <= KEYWORD_MAX_CHARS:
                doc.add_text(f"{path}.keyword", value)
        elif path in TEXT_FIELDS:
            doc.add_text(path, value)
        elif path in INTEGER_FIELDS:
            doc.add_integer(path, int(value))
        elif path in FLOAT_FIELDS and math.isfinite(value):
            doc.add_float(path, float(value))
