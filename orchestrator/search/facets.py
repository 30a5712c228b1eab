"""Facets: how many of a query's hits have each value of a field (pure).

Both backends count in the index without reading documents: Elasticsearch with aggregations
(a ``date_histogram`` by year, ``terms`` on the ``.keyword`` subfields), the embedded index
with tantivy's aggregations over fast fields of the same names. Values come back in the same
order on both: years newest first, other values most frequent first (ties by value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.search.base import Facet, FacetValue

#: Facet name -> the field counted. ``year`` is the UTC year of ``taken_at``.
FACETS: dict[str, str] = {
    "year": "taken_at",
    "camera.make": "camera.make.keyword",
    "camera.model": "camera.model.keyword",
    "lens": "lens.keyword",
    "place.city": "place.city.keyword",
    "place.region": "place.region.keyword",
    "place.country": "place.country.keyword",
    "place.country_code": "place.country_code.keyword",
    "keywords": "keywords.keyword",
    "format": "format.keyword",
}
#: Values returned per facet (years: all of them).
FACET_SIZE = 20
#: Every year a stored ``taken_at`` can have (photo_fields.TAKEN_AT_MIN..MAX).
YEAR_BUCKETS = 400
#: The embedded index's integer field with the year of ``taken_at``: tantivy's date
#: histogram has fixed intervals only, and years are not fixed.
YEAR_FIELD = "_year"


def _key(index: int) -> str:
    # Aggregation names of our own: facet names hold dots, which some servers treat as paths.
    return f"facet_{index}"


def es_aggregations(names: Sequence[str]) -> dict[str, Any]:
    """The ``aggs`` of an Elasticsearch search counting ``names``."""
    aggregations: dict[str, Any] = {}
    for i, name in enumerate(names):
        if name == "year":
            aggregations[_key(i)] = {
                "date_histogram": {
                    "field": FACETS[name],
                    "calendar_interval": "year",
                    "format": "yyyy",
                    "min_doc_count": 1,
                }
            }
        else:
            aggregations[_key(i)] = {"terms": {"field": FACETS[name], "size": FACET_SIZE}}
    return aggregations


def tantivy_aggregations(names: Sequence[str], present: frozenset[str]) -> dict[str, Any]:
    """tantivy's aggregation request for ``names``; facets on fields an index lacks (written
    before photo metadata) are left out and come back empty."""
    aggregations: dict[str, Any] = {}
    for i, name in enumerate(names):
        field = YEAR_FIELD if name == "year" else FACETS[name]
        if field in present:
            size = YEAR_BUCKETS if name == "year" else FACET_SIZE
            aggregations[_key(i)] = {"terms": {"field": field, "size": size}}
    return aggregations


def facets_from(names: Sequence[str], aggregations: Mapping[str, Any] | None) -> tuple[Facet, ...]:
    """The facets of either backend's aggregation answer, one per name, in order."""
    facets = []
    for i, name in enumerate(names):
        answer = (aggregations or {}).get(_key(i)) or {}
        values = [
            FacetValue(_value(name, bucket), int(bucket.get("doc_count", 0)))
            for bucket in answer.get("buckets") or ()
            if isinstance(bucket, Mapping) and int(bucket.get("doc_count", 0)) > 0
        ]
        facets.append(Facet(name, tuple(ordered(name, values))))
    return tuple(facets)


def _value(name: str, bucket: Mapping[str, Any]) -> str:
    if name != "year":
        return str(bucket.get("key", ""))
    if "key_as_string" in bucket:
        return str(bucket["key_as_string"])
    return str(int(bucket.get("key", 0)))  # tantivy's integer field, sometimes as a float


def ordered(name: str, values: Sequence[FacetValue]) -> list[FacetValue]:
    if name == "year":
        return sorted(values, key=lambda v: -int(v.value) if v.value.isdigit() else 0)
    return sorted(values, key=lambda v: (-v.count, v.value))
