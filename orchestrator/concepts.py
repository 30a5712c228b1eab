"""Concepts: the WordNet hypernyms above an image's labels, scored over all its probabilities.

A concept's score is the sum of the probabilities of every class below it, so ``dog`` is
confident for a photo the network cannot place among forty breeds. The table of concepts is
``orchestrator/data/imagenet_concepts.json`` (derived from WordNet 3.0 by
``python -m orchestrator.models.wordnet_table``); scoring is one product with a 0/1
class-by-concept matrix, for one image or a whole batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.semantic import label_text

DEFAULT_LIMIT = 12


@dataclass(frozen=True)
class Concept:
    """One concept of one image: its name (the synset's first lemma) and score."""

    concept: str
    score: float
    wnid: str


@dataclass(frozen=True, eq=False)
class ConceptTable:
    """The concept vocabulary and which classes lie below each concept."""

    wnids: tuple[str, ...]  # per concept
    names: tuple[str, ...]  # per concept: its first lemma
    lemmas: tuple[tuple[str, ...], ...]  # per concept, as WordNet writes them
    keys: tuple[frozenset[str], ...]  # per concept: its lemmas normalised (:func:`normalise`)
    depths: npt.NDArray[np.int32]  # per concept: distance from WordNet's root
    class_wnids: tuple[str, ...]  # per class, in the image model's class order
    matrix: npt.NDArray[np.float32]  # [classes, concepts]: 1 where the class is below
    descendants: npt.NDArray[np.int32]  # per concept: how many classes lie below it

    @property
    def texts(self) -> list[str]:
        """What the text encoder embeds for each concept: its lemmas, comma-separated."""
        return [", ".join(lemmas) for lemmas in self.lemmas]


def normalise(name: str) -> str:
    """Lower case, with ``_`` and ``-`` as spaces: the form lemmas are compared in."""
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def label_names(label: str) -> set[str]:
    """The normalised names of a label, ``"n02123045 tabby, tabby cat"`` or ``"tabby"``."""
    return {normalise(part) for part in label_text(label).split(",") if part.strip()}


def table_from_json(data: dict[str, Any]) -> ConceptTable:
    """Build the matrices from the table's JSON form (pure)."""
    concepts: list[dict[str, Any]] = data["concepts"]
    classes: list[dict[str, Any]] = data["classes"]
    matrix = np.zeros((len(classes), len(concepts)), dtype=np.float32)
    for row, entry in enumerate(classes):
        for path in entry["paths"]:
            matrix[row, path] = 1.0
    raw = tuple(tuple(c["lemmas"]) for c in concepts)
    return ConceptTable(
        wnids=tuple(c["wnid"] for c in concepts),
        names=tuple(lemmas[0] for lemmas in raw),
        lemmas=raw,
        keys=tuple(frozenset(normalise(lemma) for lemma in lemmas) for lemmas in raw),
        depths=np.array([c["depth"] for c in concepts], dtype=np.int32),
        class_wnids=tuple(c["wnid"] for c in classes),
        matrix=matrix,
        descendants=matrix.sum(axis=0).astype(np.int32),
    )


@lru_cache(maxsize=1)
def load_table() -> ConceptTable:
    """The packaged ImageNet-1k concept table, read once per process."""
    source = resources.files("orchestrator").joinpath("data/imagenet_concepts.json")
    return table_from_json(json.loads(source.read_text(encoding="utf-8")))


def concept_scores(
    probs: npt.ArrayLike, table: ConceptTable | None = None
) -> npt.NDArray[np.float32]:
    """Each concept's score: the summed probability of its classes (``[C]`` or ``[N, C]``)."""
    table = table or load_table()
    array = np.asarray(probs, dtype=np.float32)
    classes = table.matrix.shape[0]
    if array.ndim not in (1, 2) or array.shape[-1] != classes:
        raise ValueError(
            f"probs must have {classes} class probabilities per image, got shape {array.shape}"
        )
    scores: npt.NDArray[np.float32] = array @ table.matrix
    return scores


def top_concepts(
    probs: npt.ArrayLike,
    labels: Sequence[str] = (),
    threshold: float = 0.2,
    limit: int = DEFAULT_LIMIT,
    table: ConceptTable | None = None,
) -> tuple[Concept, ...]:
    """An image's concepts scoring at least ``threshold``, most specific first.

    Specific means fewer classes below the concept (``dog`` before ``animal``), then deeper in
    WordNet. A concept sharing a name with one of ``labels`` (the image's top labels, as
    ``"n04037443 racer, race car"`` or plain names) is left out, as is a second concept with
    the name of one already kept: they would say the same word twice. When more than ``limit``
    remain, the highest-scoring are kept (the more specific on a tie).
    """
    table = table or load_table()
    scores = concept_scores(probs, table)
    if scores.ndim != 1:
        raise ValueError(f"top_concepts takes one image's probs, got shape {scores.shape}")
    return concepts_from_scores(scores, labels, threshold, limit, table)


def concepts_from_scores(
    scores: npt.NDArray[np.float32],
    labels: Sequence[str],
    threshold: float,
    limit: int,
    table: ConceptTable,
) -> tuple[Concept, ...]:
    """:func:`top_concepts` of one image whose :func:`concept_scores` ``[C]`` are known."""

    def specificity(i: int) -> tuple[int, int]:
        return int(table.descendants[i]), -int(table.depths[i])

    taken: set[str] = set()
    for label in labels:
        taken |= label_names(label)
    kept: list[int] = []
    for i in sorted(np.flatnonzero(scores >= threshold).tolist(), key=specificity):
        if not table.keys[i] & taken:
            kept.append(i)
            taken.add(normalise(table.names[i]))
    if len(kept) > limit:
        strongest = sorted(kept, key=lambda i: -float(scores[i]))[:limit]  # stable: ties stay
        kept = sorted(strongest, key=specificity)
    return tuple(Concept(table.names[i], float(scores[i]), table.wnids[i]) for i in kept)
