"""``sort``, ``near``/``within`` and ``facets`` as users type them, checked into
:class:`~orchestrator.search.base.SearchOptions` (pure; the CLI and ``/search`` share it)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import BadRequest
from orchestrator.search.base import SearchOptions, SortOrder
from orchestrator.search.facets import FACETS
from orchestrator.search.geo import geo_filter
from orchestrator.search.limits import shown

#: What ``sort`` accepts: a field, ``-`` first for descending.
SORTS = ("taken_at", "-taken_at")
SORT_HELP = "taken_at (oldest first) or -taken_at (newest first); photos without a date come last"


def parse_sort(text: str | None) -> SortOrder | None:
    """``taken_at`` or ``-taken_at``; None (or ``""``, ``relevance``) keeps relevance order.

    Raises:
        BadRequest: any other field or spelling.
    """
    value = (text or "").strip()
    if value in ("", "relevance", "_score"):
        return None
    if value not in SORTS:
        raise BadRequest(f"sort {shown(value)}: unknown sort field; sort by {SORT_HELP}")
    return SortOrder("taken_at", descending=value.startswith("-"))


def parse_facets(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"year,camera.model"`` (or a list of names) as known facet names, each once.

    Raises:
        BadRequest: a name that is not a facet, listing those that are.
    """
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(part.strip() for part in parts if part.strip()))
    unknown = [name for name in names if name not in FACETS]
    if unknown:
        raise BadRequest(
            f"facets {shown(', '.join(unknown))}: unknown facet"
            f"{'s' if len(unknown) > 1 else ''}; known: {', '.join(FACETS)}"
        )
    return names


def search_options(
    sort: str | None = None,
    near: str | None = None,
    within: str | None = None,
    facets: str | Sequence[str] | None = None,
) -> SearchOptions:
    """The options of one search, every input checked before a backend sees it.

    Raises:
        BadRequest: the first malformed input, named with what was wrong.
    """
    return SearchOptions(
        sort=parse_sort(sort), near=geo_filter(near, within), facets=parse_facets(facets)
    )
