"""The mistakes people make in a query, said in their terms."""

from __future__ import annotations

import pytest

from orchestrator.search.query_errors import explain


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("cat AND", "the query ends with the operator AND: add what it joins, or remove it"),
        ("cat OR ", "the query ends with the operator OR: add what it joins, or remove it"),
        ("OR cat", "the query starts with the operator OR: add what it joins, or remove it"),
        ("AND", "the query is only the operator AND: add the words it joins"),
        ("width:>wide", "width: 'wide' is not a number (or a date) to compare with"),
        ("width:[1000 TO big]", "width: 'big' is not a number (or a date) to compare with"),
        ('tags:"crash', 'a quote (") is not closed'),
        ("(cat OR dog", "the parentheses do not pair up"),
    ],
)
def test_a_mistake_is_named(query: str, said: str) -> None:
    assert explain(query) == said


@pytest.mark.parametrize(
    "query",
    ["cat AND dog", "width:[1000 TO *]", "taken_at:>=2020-01-01", "score:>0.5", "Oregon"],
)
def test_what_is_not_one_of_those_mistakes_is_left_to_the_parser(query: str) -> None:
    assert explain(query) is None
