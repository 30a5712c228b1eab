"""The body of an Elasticsearch search: query string, place, order and facet counts (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.search.base import GeoFilter, SearchOptions, SortOrder
from orchestrator.search.facets import es_aggregations
from orchestrator.search.photo_query import rewrite_dates


def search_body(query: str, fields: Sequence[str], options: SearchOptions) -> dict[str, Any]:
    """``query`` (already checked and stripped) with ``options``, as keyword arguments of
    the client's ``search``.

    Raises:
        InvalidQuery: a ``taken_at`` clause holds something that is not a date.
    """
    clause = query_clause(query, fields)
    if options.near is not None:
        clause = {"bool": {"must": clause, "filter": near_filter(options.near)}}
    body: dict[str, Any] = {"query": clause}
    if options.sort is not None:
        body["sort"] = sort_clause(options.sort)
    if options.facets:
        body["aggs"] = es_aggregations(options.facets)
    return body


def query_clause(query: str, fields: Sequence[str]) -> dict[str, Any]:
    """``query`` (already checked and stripped) as the Elasticsearch query it means: a word
    search's, and a kNN filter's, so both read a query string alike.

    Raises:
        InvalidQuery: a ``taken_at`` clause holds something that is not a date.
    """
    if query in ("", "*"):
        return {"match_all": {}}
    # q= semantics, with bare words looking where the embedded index looks; lenient: a word
    # compared with a numeric or date field is no match rather than an error.
    return {
        "query_string": {
            "query": rewrite_dates(query),
            "fields": list(fields),
            "lenient": True,
        }
    }


def near_filter(near: GeoFilter) -> dict[str, Any]:
    return {
        "geo_distance": {
            "distance": f"{near.meters:.3f}m",
            "location": {"lat": near.lat, "lon": near.lon},
            # An index made before photo metadata may lack the field: no match, not an error.
            "ignore_unmapped": True,
        }
    }


def sort_clause(sort: SortOrder) -> list[dict[str, Any]]:
    return [
        {
            sort.field: {
                "order": "desc" if sort.descending else "asc",
                "missing": "_last",
                # Sorting an index that predates the field: every document lacks it.
                "unmapped_type": "date",
            }
        }
    ]
