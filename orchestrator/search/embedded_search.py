"""One search of the embedded index with its options: near a point, by date, with facets.

Everything here reads fast fields, never stored documents: the distance filter reads the
candidates' coordinates (found through a bounding box on indexed ranges), sorting is
tantivy's own order by the ``taken_at`` fast field, and facets are tantivy aggregations.
Only the page of hits returned is loaded, by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tantivy

from orchestrator.search.base import Facet, GeoFilter, SearchOptions
from orchestrator.search.embedded_photo import KEY_FIELD, LAT, LON, TAKEN_AT
from orchestrator.search.embedded_store import hit_count
from orchestrator.search.facets import facets_from, tantivy_aggregations
from orchestrator.search.geo import bounding_box, distances_m


@dataclass(frozen=True, eq=False)
class Found:
    total: int
    hits: tuple[tuple[float, tantivy.DocAddress], ...]  # (score, address), best first
    facets: tuple[Facet, ...] = ()


def find(
    searcher: tantivy.Searcher,
    schema: tantivy.Schema,
    query: tantivy.Query,
    present: frozenset[str],
    size: int,
    offset: int,
    options: SearchOptions,
) -> Found:
    """The page of ``query`` (``size`` and ``offset`` already bounded) with ``options``.

    A folder written before photo metadata has none of its fields: nothing is near any
    point, every document lacks a date (so relevance order stands) and facets are empty.
    """
    if options.near is not None:
        if LAT in present:
            query = both(query, _within(searcher, schema, query, options.near))
        else:
            query = tantivy.Query.empty_query()
    facets: tuple[Facet, ...] = ()
    if options.facets:
        request = tantivy_aggregations(options.facets, present)
        answer = searcher.aggregate(query, request) if request else {}
        facets = facets_from(options.facets, answer)
    # tantivy panics on a limit of 0; ES answers size=0 with the total only.
    limit = max(size, 1)
    if options.sort is not None and TAKEN_AT in present:
        order = tantivy.Order.Desc if options.sort.descending else tantivy.Order.Asc
        # Documents without the field come after all others, in either order.
        result = searcher.search(
            query, limit, count=True, order_by_field=TAKEN_AT, order=order, offset=offset
        )
        # The "score" of an ordered hit is its field value: no relevance was computed.
        hits = tuple((0.0, address) for _, address in result.hits[:size])
    else:
        result = searcher.search(query, limit, count=True, offset=offset)
        hits = tuple((float(score), address) for score, address in result.hits[:size])
    return Found(hit_count(result), hits, facets)


def both(first: tantivy.Query, second: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, first), (tantivy.Occur.Must, second)])


def _within(
    searcher: tantivy.Searcher, schema: tantivy.Schema, query: tantivy.Query, near: GeoFilter
) -> tantivy.Query:
    """A query matching exactly the documents of ``query`` within the distance."""
    box = bounding_box(near)
    clauses = [_range(schema, LAT, box.min_lat, box.max_lat)]
    if box.lon_ranges:
        sides = [(tantivy.Occur.Should, _range(schema, LON, w, e)) for w, e in box.lon_ranges]
        clauses.append(tantivy.Query.boolean_query(sides))
    candidates = searcher.search(
        both(query, tantivy.Query.boolean_query([(tantivy.Occur.Must, c) for c in clauses])),
        max(searcher.num_docs, 1),
        count=False,
    )
    addresses = [address for _, address in candidates.hits]
    if not addresses:
        return tantivy.Query.empty_query()
    lats = np.array(searcher.fast_field_values(LAT, addresses), dtype=np.float64)
    lons = np.array(searcher.fast_field_values(LON, addresses), dtype=np.float64)
    keys = searcher.fast_field_values(KEY_FIELD, addresses)
    close = distances_m(near.lat, near.lon, lats, lons) <= near.meters
    chosen = [int(key) for key, ok in zip(keys, close, strict=True) if ok and key is not None]
    if not chosen:
        return tantivy.Query.empty_query()
    return tantivy.Query.term_set_query(schema, KEY_FIELD, chosen)


def _range(schema: tantivy.Schema, field: str, low: float, high: float) -> tantivy.Query:
    return tantivy.Query.range_query(schema, field, tantivy.FieldType.Float, low, high)
