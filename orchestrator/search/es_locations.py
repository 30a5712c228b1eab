"""Where documents live, on Elasticsearch: the bodies and answers of removing documents,
re-placing them, and walking those under a folder (a point in time and ``search_after``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.search.base import Location
from orchestrator.search.documents import locations_from_source, locations_to_source

#: Hits per request of a walk: bounds memory however large the index is.
PAGE_SIZE = 1000
#: How long the point in time of a walk lives between two pages.
KEEP_ALIVE = "2m"


def delete_operations(index: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    return [{"delete": {"_index": index, "_id": doc_id}} for doc_id in dict.fromkeys(ids)]


def deleted_ids(response: Mapping[str, Any]) -> set[str]:
    """The ids a bulk of deletions removed (those not found are not among them)."""
    gone = set()
    for item in response.get("items") or ():
        result = item.get("delete") or {}
        if result.get("result") == "deleted":
            gone.add(str(result.get("_id")))
    return gone


def locations_update(locations: Sequence[Location]) -> dict[str, Any]:
    """The partial document that re-places one: arrays are replaced whole by an update."""
    return {"uri": locations[0].uri, "locations": locations_to_source(locations)}


def under_query(prefix: str) -> dict[str, Any]:
    """Documents with a location under ``prefix``; those written before locations were kept
    are found by their ``uri`` (its keyword twin holds it whole)."""
    return {
        "bool": {
            "should": [
                {"prefix": {"locations.uri": prefix}},
                {"prefix": {"uri.keyword": prefix}},
            ],
            "minimum_should_match": 1,
        }
    }


def places_of(source: Mapping[str, Any]) -> tuple[Location, ...]:
    return locations_from_source(source.get("locations")) or (Location(str(source.get("uri", ""))),)


def page_body(pit_id: str, prefix: str, after: list[Any] | None) -> dict[str, Any]:
    return pit_page(pit_id, under_query(prefix), ["uri", "locations"], after, PAGE_SIZE)


def pit_page(
    pit_id: str, query: dict[str, Any], source: list[str], after: list[Any] | None, size: int
) -> dict[str, Any]:
    """One page of a walk over ``query``'s documents in a point in time, after ``after``."""
    body: dict[str, Any] = {
        "pit": {"id": pit_id, "keep_alive": KEEP_ALIVE},
        "query": query,
        # The cheapest total order there is, and the one a point in time is made for.
        "sort": [{"_shard_doc": "asc"}],
        "size": size,
        "source_includes": source,
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = after
    return body
