"""Bounds on what one search request may ask of a backend: the same on both backends.

tantivy aborts the whole process when a number it is handed makes it allocate more than it
can (``from=10000000000`` asks it for 160 GB), and its query parser recurses once per
parenthesis, so deep enough nesting overflows the thread's stack and kills the process too.
Every number and query string is checked here before a backend sees it, against
Elasticsearch's own limits, so that both backends refuse the same requests in the same words.
"""

from __future__ import annotations

from orchestrator.errors import BadRequest, InvalidQuery, ResultWindowTooLarge

#: Elasticsearch's default ``index.max_result_window``: ``from + size`` may not exceed it.
MAX_RESULT_WINDOW = 10_000
#: Elasticsearch refuses a kNN ``k`` (and ``num_candidates``) over 10,000.
MAX_KNN_K = 10_000
#: Far more than a typed query needs; it bounds the work one request can cause.
MAX_QUERY_CHARS = 10_000
#: tantivy's parser overflowed its stack at a few thousand nested parentheses on this
#: machine's default thread stack; nobody nests a hand-written query a hundred deep.
MAX_QUERY_DEPTH = 100
#: How much of a rejected input an error message repeats.
SHOWN_CHARS = 80


def shown(text: str) -> str:
    """``text`` quoted for an error message, cut to about :data:`SHOWN_CHARS` characters."""
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return repr(text[: SHOWN_CHARS - 3] + "...")


def _number(value: int) -> str:
    # str() of an int past 4300 digits raises, and a long one is unreadable anyway.
    if abs(value) < 10**20:
        return str(value)
    return f"{'-' if value < 0 else ''}~10^{int(abs(value).bit_length() * 0.30103)}"


def check_window(size: int, offset: int) -> None:
    """Refuse a page that starts or ends past the result window.

    Raises:
        BadRequest: ``size`` or ``offset`` is negative.
        ResultWindowTooLarge: ``offset + size`` is over :data:`MAX_RESULT_WINDOW`.
    """
    if size < 0:
        raise BadRequest(f"size must not be negative (size={_number(size)})")
    if offset < 0:
        raise BadRequest(f"from must not be negative (from={_number(offset)})")
    if offset + size > MAX_RESULT_WINDOW:
        raise ResultWindowTooLarge(
            f"from + size must be at most {MAX_RESULT_WINDOW} "
            f"(from={_number(offset)}, size={_number(size)})"
        )


def check_k(k: int) -> None:
    """Refuse a kNN ``k`` outside ``0..MAX_KNN_K`` (0 asks for no hits).

    Raises:
        BadRequest: ``k`` is negative or over :data:`MAX_KNN_K`.
    """
    if not 0 <= k <= MAX_KNN_K:
        raise BadRequest(f"k must be between 0 and {MAX_KNN_K} (k={_number(k)})")


def check_query(query: str) -> None:
    """Refuse a query string too long, or nested too deep, to parse safely.

    Raises:
        InvalidQuery: the query is over :data:`MAX_QUERY_CHARS` characters or nests
            parentheses more than :data:`MAX_QUERY_DEPTH` deep.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQuery(
            f"query {shown(query)}: {len(query)} characters, over the limit of {MAX_QUERY_CHARS}"
        )
    depth = _nesting(query)
    if depth > MAX_QUERY_DEPTH:
        raise InvalidQuery(
            f"query {shown(query)}: parentheses nested {depth} deep, "
            f"over the limit of {MAX_QUERY_DEPTH}"
        )


def _nesting(query: str) -> int:
    """The deepest parenthesis nesting outside phrases, counting unclosed ones as open."""
    depth = deepest = 0
    in_phrase = escaped = False
    for char in query:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_phrase = not in_phrase
        elif in_phrase:
            continue
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth = max(depth - 1, 0)
    return deepest


def as_filter_error(error: InvalidQuery, words: str) -> InvalidQuery:
    """``error``, raised checking ``words`` as a query, worded as being about the filter
    (``--filter``, ``filter=``) rather than the query."""
    return InvalidQuery(error.message.replace(f"query {shown(words)}", f"filter {shown(words)}", 1))
