"""What is wrong with a query that does not parse, in the user's terms (pure).

The parsers say ``Syntax Error: cat AND`` or ``Expected a float value: 'ParseFloatError { kind:
Invalid }'``; a person wants to hear that the query ends with an operator, or which field's
value is not a number. These look at the query itself, so both backends say the same.
"""

from __future__ import annotations

import re

_OPERATORS = ("AND", "OR", "NOT", "&&", "||")
_TRAILING = re.compile(r"(?:^|\s)(AND|OR|NOT|&&|\|\|)\s*$")
_LEADING = re.compile(r"^\s*(AND|OR|&&|\|\|)(?:\s|$)")
# `field:>x`, `field:>=x`, `field:[x TO y]`, `field:{x TO y}`: conditions, and the values they
# compare (orchestrator.search.relevance leaves them out of a query's words).
COMPARISON = re.compile(r"([\w.]+):\s*[<>]=?\s*([^\s()]+)")
RANGE = re.compile(r"([\w.]+):\s*[\[{]\s*(\S+?)\s+TO\s+(\S+?)\s*[\]}]")
#: Range ends that are not numbers but mean something: dates and open ends.
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2}([T ][\d:.]+Z?)?)?)?$")


def explain(query: str) -> str | None:
    """Why ``query`` does not parse, when it is one of the mistakes people make; else None."""
    if query.strip() in _OPERATORS:
        return f"the query is only the operator {query.strip()}: add the words it joins"
    trailing = _TRAILING.search(query)
    if trailing:
        return (
            f"the query ends with the operator {trailing.group(1)}: add what it joins, or remove it"
        )
    leading = _LEADING.match(query)
    if leading:
        return (
            f"the query starts with the operator {leading.group(1)}: add what it joins, "
            "or remove it"
        )
    for field, value in _values(query):
        if not _number_or_date(value):
            return f"{field}: {value!r} is not a number (or a date) to compare with"
    if query.count('"') % 2:
        return 'a quote (") is not closed'
    if query.count("(") != query.count(")"):
        return "the parentheses do not pair up"
    return None


def _values(query: str) -> list[tuple[str, str]]:
    found = [(m.group(1), m.group(2)) for m in COMPARISON.finditer(query)]
    for match in RANGE.finditer(query):
        found += [(match.group(1), match.group(2)), (match.group(1), match.group(3))]
    return found


def _number_or_date(value: str) -> bool:
    if value == "*" or _DATE.match(value):
        return True
    try:
        float(value)
    except ValueError:
        return False
    return True
