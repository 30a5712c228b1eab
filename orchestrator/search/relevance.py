"""How sure deeptag is that a hit is what was asked for, on a 0-1 scale, and why it matched.

The ranking values of the backends (BM25, reciprocal rank fusion, cosine) mean nothing to a
person and differ between queries and modes. A hit's ``score`` here is the strongest of its
pieces of evidence, each an estimate of the chance that the photo shows what was asked:

- a word of the query among the photo's labels: the classifier's probability for that label
  (``tags: tabby`` at 0.62); among its concepts: the concept's score (the summed probability of
  the labels below it); a trained model's category: its probability;
- a word in what the photo says about itself or was given (the text read in it, its keywords,
  title, description, place, file name, metadata): 1, a literal match;
- its meaning: the cosine between the query and the photo's semantic vector, calibrated into a
  probability by logistic regression on ``bench/semantic_eval.py``'s judged pairs
  (``--fit``; :data:`SLOPE`, :data:`INTERCEPT`).

A word hit that none of these explains (a field not looked at here) counts as a literal match,
and a query of conditions only (``width:>1000``), which every hit meets exactly, scores 1.
Pure functions: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.search.base import ImageDocument
from orchestrator.search.query_errors import COMPARISON, RANGE
from orchestrator.semantic import label_text

#: P(relevant | cosine) = sigmoid(SLOPE * cosine + INTERCEPT), fitted on 448 judged
#: (query, photo) pairs of bench/semantic_eval.py (36 relevant); 0.5 at a cosine of 0.62.
SLOPE = 10.62
INTERCEPT = -6.62

#: Word matches listed in ``matched`` (the strongest), besides the meaning.
MAX_SHOWN = 3
_OPERATORS = frozenset({"AND", "OR", "NOT", "TO"})
_TOKEN = re.compile(r"[^\W_]+")
# `-word`, `NOT word`: words the photo must not have are no reason it matched.
_NEGATED = re.compile(r"(?:^|[\s(])(?:-|NOT\s+)(?:[\w.]+:)?(\"[^\"]*\"|[^\s()]+)")


@dataclass(frozen=True)
class Relevance:
    score: float  # 0..1
    matched: tuple[str, ...]  # "tags: tabby", "concepts: cat", "semantic: 0.62"


def semantic_confidence(cosine: float) -> float:
    """The chance that a photo at ``cosine`` from the query is relevant (calibrated)."""
    return 1.0 / (1.0 + math.exp(-(SLOPE * cosine + INTERCEPT)))


def query_terms(query: str) -> frozenset[str]:
    """The words a hit can have matched: lower case, without operators, field names,
    conditions and negated words."""
    # `field:>5`, `field:[1 TO 5]`: conditions, not words.
    text = RANGE.sub(" ", COMPARISON.sub(" ", _NEGATED.sub(" ", query)))
    text = re.sub(r"[\w.]+:", " ", text)
    return frozenset(
        token.lower() for token in _TOKEN.findall(text) if token not in _OPERATORS and token != "*"
    )


def _words(text: str) -> frozenset[str]:
    return frozenset(token.lower() for token in _TOKEN.findall(text))


def word_matches(document: ImageDocument, terms: frozenset[str]) -> list[tuple[str, float]]:
    """Where ``terms`` occur in the document, as ("field: value", confidence), best first."""
    found: list[tuple[str, float]] = []
    for category in document.categories:
        names = label_text(category.category).split(", ")
        name = next((n for n in names if _words(n) & terms), None)
        if name is not None:
            found.append((f"tags: {name}", category.score))
    found += [
        (f"concepts: {c.concept}", c.score) for c in document.concepts if _words(c.concept) & terms
    ]
    found += [
        (f"custom: {c.category}", c.score) for c in document.custom if _words(c.category) & terms
    ]
    found += [
        (f"{field}: {value}", 1.0)
        for field, value in _literal_fields(document)
        if _words(value) & terms
    ]
    return sorted(found, key=lambda match: -match[1])


def _literal_fields(document: ImageDocument) -> Iterable[tuple[str, str]]:
    """(field, text) of what a photo says about itself or was given, matched literally."""
    text = document.analyses.get("ocr", {}).get("text")
    if isinstance(text, str) and text:
        yield "text", _line_with(text)
    photo = document.photo
    if photo is not None:
        yield from (("keywords", k) for k in photo.keywords)
        yield from (("title", t) for t in (photo.title,) if t)
        yield from (("description", d) for d in (photo.description,) if d)
        if photo.place is not None:
            place = photo.place
            yield from (("place", p) for p in (place.city, place.region, place.country) if p)
    yield "file", document.uri.rsplit("/", 1)[-1]
    yield from ((key, str(value)) for key, value in document.metadata.items())


def _line_with(text: str, limit: int = 60) -> str:
    first = text.strip().split("\n", 1)[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


def relevance(
    document: ImageDocument, terms: frozenset[str], cosine: float | None, word_hit: bool
) -> Relevance:
    """The hit's 0-1 score and what matched: ``terms`` of the query (see
    :func:`query_terms`), its ``cosine`` to the query's meaning (None: not embedded), and
    whether the word query found it."""
    matches = word_matches(document, terms)
    evidence = [confidence for _, confidence in matches]
    if word_hit and not matches:
        evidence.append(1.0)  # found by words in a field not looked at here, or conditions only
    # The strongest few: a cat photo matches `cat` by five labels and concepts.
    matched = [label for label, _ in matches[:MAX_SHOWN]]
    if cosine is not None:
        meaning = semantic_confidence(cosine)
        evidence.append(meaning)
        if not word_hit or meaning >= 0.5:  # a word hit far in meaning did not match by it
            matched.append(f"semantic: {meaning:.2f}")
    score = max(evidence, default=0.0)
    return Relevance(round(min(1.0, max(0.0, score)), 4), tuple(matched))
