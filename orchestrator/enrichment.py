"""What an image's whole probability vector adds to its labels: concepts and a semantic vector.

One :class:`Enricher` is built per process (the concept table is packaged; the semantic space
is read from the text model's folder in the model repository) and applied to each batch of
probabilities the image model returns. Both steps are matrix products (pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from orchestrator.concepts import (
    DEFAULT_LIMIT,
    Concept,
    ConceptTable,
    concept_scores,
    concepts_from_scores,
    load_table,
)
from orchestrator.errors import ModelNotFound
from orchestrator.semantic import SemanticSpace, load_space, semantic_vectors
from orchestrator.types import Label


@dataclass(frozen=True)
class Enrichment:
    """One image's concepts and semantic vector (``None`` without a semantic space)."""

    concepts: tuple[Concept, ...]
    semantic: npt.NDArray[np.float32] | None


@dataclass(frozen=True, eq=False)
class Enricher:
    table: ConceptTable
    space: SemanticSpace | None = None
    concept_threshold: float = 0.2
    #: Why there is no semantic space, to tell the user (``None`` when there is one).
    missing: str | None = None

    def fits(self, probs: npt.NDArray[np.float32]) -> bool:
        """Whether ``probs`` comes from the image model the table (and space) describe."""
        return probs.ndim == 2 and probs.shape[1] == self.table.matrix.shape[0]

    def apply(
        self, probs: npt.NDArray[np.float32], labels: Sequence[Sequence[Label]]
    ) -> list[Enrichment]:
        """Per image of the batch ``probs`` ``[N, classes]``, with its top labels."""
        scores = concept_scores(probs, self.table)
        vectors = (
            None
            if self.space is None
            else semantic_vectors(
                probs, self.space, scores, concept_threshold=self.concept_threshold
            )
        )
        return [
            Enrichment(
                concepts=concepts_from_scores(
                    row,
                    [label.category for label in image_labels],
                    self.concept_threshold,
                    DEFAULT_LIMIT,
                    self.table,
                ),
                semantic=None if vectors is None else vectors[i],
            )
            for i, (row, image_labels) in enumerate(zip(scores, labels, strict=True))
        ]


def load_enricher(text_model_dir: Path, concept_threshold: float = 0.2) -> Enricher:
    """The packaged concepts, and the semantic space exported beside the text model if any.

    A repository without the text model's embeddings still gets concepts; ``missing`` then
    says what to run for semantic vectors.
    """
    table = load_table()
    try:
        space = load_space(text_model_dir, table.matrix.shape[0], len(table.wnids))
    except ModelNotFound as e:
        return Enricher(table, None, concept_threshold, missing=e.message)
    return Enricher(table, space, concept_threshold)
