"""Where documents live, in the embedded index: removing them, re-placing them, and finding
those under a folder.

Every location's uri is indexed whole (``locations.uri``, raw tokenizer, multi-valued), so
"under this folder" is a regex query anchored on the folder's literal prefix: a term
dictionary walk, with no stored document read except the hits'.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import tantivy

from orchestrator.search.base import ImageDocument, Location
from orchestrator.search.documents import locations_from_source, with_locations
from orchestrator.search.embedded_photo import KEY_FIELD
from orchestrator.search.embedded_store import (
    LOCATIONS_FIELD,
    SOURCE_FIELD,
    from_stored,
    hit_count,
    rows_of,
)

#: Hits read per call of a paged walk: bounds memory however large the index is.
PAGE_SIZE = 1000
#: What Rust's regex syntax treats as special; each is escaped to stand for itself.
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$#&-~")


def regex_literal(text: str) -> str:
    """``text`` as a regex (tantivy's syntax) matching exactly itself."""
    return "".join(f"\\{c}" if c in _REGEX_SPECIAL else c for c in text)


def existing(searcher: tantivy.Searcher, schema: tantivy.Schema, ids: Sequence[str]) -> set[str]:
    """The subset of ``ids`` indexed, one term lookup each."""
    return {
        doc_id
        for doc_id in dict.fromkeys(ids)
        if hit_count(searcher.search(tantivy.Query.term_query(schema, "id", doc_id), 1))
    }


def delete_and_commit(writer: tantivy.IndexWriter, ids: set[str]) -> None:
    try:
        for doc_id in ids:
            writer.delete_documents_by_term("id", doc_id)
        writer.commit()
    except BaseException:
        writer.rollback()
        raise


def relocated(
    searcher: tantivy.Searcher, schema: tantivy.Schema, doc_id: str, places: Sequence[Location]
) -> tuple[ImageDocument, dict[str, int]] | None:
    """The stored document placed at ``places``, and the rows of its vectors (which do not
    move); None when not indexed."""
    hits = searcher.search(tantivy.Query.term_query(schema, "id", doc_id), 1).hits
    if not hits:
        return None
    stored = searcher.doc(hits[0][1])
    return with_locations(from_stored(stored), places), rows_of(stored)


@dataclass(frozen=True, eq=False)
class UnderPrefix:
    """A walk over the documents located under a prefix, page by page, on one searcher (so a
    commit during the walk neither skips nor repeats a document)."""

    searcher: tantivy.Searcher
    query: tantivy.Query
    prefix: str
    #: Ordering by the unique per-document key makes offsets stable between pages.
    ordered: bool
    #: A folder written before locations were indexed: every document is read and checked.
    scan: bool

    @classmethod
    def start(
        cls, searcher: tantivy.Searcher, schema: tantivy.Schema, fields: frozenset[str], prefix: str
    ) -> UnderPrefix:
        if LOCATIONS_FIELD in fields:
            pattern = regex_literal(prefix) + ".*"
            query = tantivy.Query.regex_query(schema, LOCATIONS_FIELD, pattern)
            return cls(searcher, query, prefix, KEY_FIELD in fields, scan=False)
        return cls(searcher, tantivy.Query.all_query(), prefix, KEY_FIELD in fields, scan=True)

    def page(self, offset: int) -> tuple[list[tuple[str, tuple[Location, ...]]], int]:
        """The found documents of one page from ``offset``, and how many hits it covered
        (0 once the walk is over)."""
        if self.ordered:
            result = self.searcher.search(
                self.query, PAGE_SIZE, count=False, order_by_field=KEY_FIELD, offset=offset
            )
        else:
            result = self.searcher.search(self.query, PAGE_SIZE, count=False, offset=offset)
        found = []
        for _, address in result.hits:
            stored = self.searcher.doc(address)
            # Only the JSON is decoded: the vectors (most of a stored document) stay bytes.
            source = json.loads(bytes(stored.get_first(SOURCE_FIELD) or b"{}"))
            places = locations_from_source(source.get("locations")) or (
                Location(str(source.get("uri", ""))),
            )
            if self.scan and not any(p.uri.startswith(self.prefix) for p in places):
                continue
            found.append((str(stored.get_first("id")), places))
        return found, len(result.hits)
