"""Elasticsearch ``q=`` semantics on tantivy's query parser, which shares most of its syntax.

User metadata is indexed in one JSON field that the parser falls back to for unknown field
names, so ``album:paris`` works as it does on an Elasticsearch index with dynamic mapping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import tantivy

from orchestrator.errors import InvalidQuery
from orchestrator.search.base import DEFAULT_QUERY_FIELDS
from orchestrator.search.embedded_store import CURRENT_FIELDS, METADATA_FIELD
from orchestrator.search.limits import shown
from orchestrator.search.query_errors import explain


def query_fields(present: frozenset[str] = CURRENT_FIELDS) -> list[str]:
    """Where bare words look, among the fields a folder has; tantivy resolves unknown names
    inside the JSON field among them."""
    fields = [f for f in DEFAULT_QUERY_FIELDS if f in present]
    return [*fields, METADATA_FIELD]


def parse(
    index: tantivy.Index, query: str, fields: list[str], as_typed: str | None = None
) -> tantivy.Query:
    """The parsed query; ``""`` and ``"*"`` match every document.

    ``as_typed`` is the user's query when ``query`` is a rewrite of it, for error messages.

    Raises:
        InvalidQuery: the query does not parse; the message quotes it and says why.
    """
    if query in ("", "*"):
        return tantivy.Query.all_query()
    try:
        return index.parse_query(query, fields)
    except ValueError as e:
        strict_error = str(e)
    # The lenient parser says what is wrong more precisely, and turns a purely negative
    # query (`-bicycle`), which the strict one refuses, into "all but", as ES does.
    lenient, errors = index.parse_query_lenient(query, fields)
    unknown = [error for error in errors if _names_unknown_field(error)]
    reasons = [str(e) for e in errors if not _is_all_but_error(e) and e not in unknown]
    if not reasons:
        rewritten = _in_metadata(query, sorted({str(getattr(e, "field", "")) for e in unknown}))
        if rewritten != query:
            # Terms on metadata resolve by themselves; ranges (`year:>2000`) need the path.
            return parse(index, rewritten, fields, as_typed=as_typed or query)
        reasons = [str(error) for error in unknown]
    if errors and not reasons:
        return lenient
    why = explain(as_typed or query) or "; ".join(reasons) or strict_error
    raise InvalidQuery(f"query {shown(as_typed or query)}: {why[:120]}")


def _is_all_but_error(error: object) -> bool:
    # tantivy.query_parser_error is missing from tantivy's type stubs; match by name.
    return type(error).__name__ == "AllButQueryForbiddenError"


def _names_unknown_field(error: object) -> bool:
    return type(error).__name__ == "FieldDoesNotExistError"


def _in_metadata(query: str, names: Sequence[str]) -> str:
    """The query with each ``name:`` (not already a path) addressed inside the metadata field."""
    for name in names:
        if name and not name.startswith(METADATA_FIELD):
            query = re.sub(rf"(?<![\w.]){re.escape(name)}:", f"{METADATA_FIELD}.{name}:", query)
    return query
