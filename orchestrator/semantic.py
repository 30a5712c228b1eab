"""An image's ``semantic`` vector: a point in the text encoder's space, made from its probs.

This is the ConSE construction (Norouzi et al., "Zero-Shot Learning by Convex Combination of
Semantic Embeddings", 2014): the probability-weighted sum of the text embeddings of the
image's top labels, plus ``concept_weight`` times the mean of its confident concepts'
embeddings each scaled by its score, L2-normalised. Neither part is rescaled to sum to one, so
a hesitant image (top labels summing to 0.4, one concept at 0.3) keeps its hesitation in the
mix instead of being pulled entirely towards its only concept. A text query embedded by the
same encoder then finds images by cosine similarity, for words no label contains ("kitten").

The label and concept embeddings are computed once by ``deeptag models export``
(:mod:`orchestrator.models.export_text`); per image it is one matrix product.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from orchestrator.errors import ModelNotFound

DEFAULT_TOP_K = 5
DEFAULT_CONCEPT_WEIGHT = 0.5
LABEL_EMBEDDINGS = "label_embeddings.npy"
CONCEPT_EMBEDDINGS = "concept_embeddings.npy"
_WNID = re.compile(r"^n\d{8}\s+")

Matrix = npt.NDArray[np.float32]


def label_text(label: str) -> str:
    """What is embedded for a label line: its names, ``"tabby, tabby cat"`` (pure)."""
    return _WNID.sub("", label).strip()


@dataclass(frozen=True, eq=False)
class SemanticSpace:
    """The embeddings an image's vector is made of: one row per label, one per concept."""

    label_embeddings: Matrix  # [classes, dim]
    concept_embeddings: Matrix  # [concepts, dim]

    @property
    def dim(self) -> int:
        return int(self.label_embeddings.shape[1])


def load_space(text_model_dir: Path, classes: int, concepts: int) -> SemanticSpace:
    """Read the matrices the export wrote, checking they fit the image model and concepts."""
    matrices = []
    for name, rows in ((LABEL_EMBEDDINGS, classes), (CONCEPT_EMBEDDINGS, concepts)):
        path = text_model_dir / name
        if not path.is_file():
            raise ModelNotFound(f"{path} is missing: run `deeptag models export`")
        matrix = np.load(path, allow_pickle=False).astype(np.float32, copy=False)
        if matrix.ndim != 2 or matrix.shape[0] != rows:
            raise ModelNotFound(
                f"{path} has shape {matrix.shape}, not {rows} rows: it was exported for other "
                "labels or concepts; run `deeptag models export --force`"
            )
        matrices.append(matrix)
    if matrices[0].shape[1] != matrices[1].shape[1]:
        raise ModelNotFound(f"the embeddings in {text_model_dir} differ in width: re-export")
    return SemanticSpace(*matrices)


def semantic_vectors(
    probs: npt.ArrayLike,
    space: SemanticSpace,
    concept_scores: npt.ArrayLike | None = None,
    top_k: int = DEFAULT_TOP_K,
    concept_threshold: float = 0.2,
    concept_weight: float = DEFAULT_CONCEPT_WEIGHT,
) -> Matrix:
    """ConSE vectors ``[N, dim]`` (or ``[dim]`` for one image), each of unit length (pure).

    Only the ``top_k`` most probable labels and the concepts scoring at least
    ``concept_threshold`` take part; an image with neither gets the zero vector.
    """
    array = np.asarray(probs, dtype=np.float32)
    single = array.ndim == 1
    batch = np.atleast_2d(array)
    classes = space.label_embeddings.shape[0]
    if batch.ndim != 2 or batch.shape[1] != classes:
        raise ValueError(f"probs must have {classes} values per image, got shape {array.shape}")
    k = max(1, min(top_k, classes))
    top = np.argpartition(-batch, k - 1, axis=1)[:, :k]
    label_weights = np.zeros_like(batch)
    np.put_along_axis(label_weights, top, np.take_along_axis(batch, top, axis=1), axis=1)
    vectors = label_weights @ space.label_embeddings
    if concept_scores is not None and concept_weight > 0:
        scores = np.atleast_2d(np.asarray(concept_scores, dtype=np.float32))
        if scores.shape != (batch.shape[0], space.concept_embeddings.shape[0]):
            raise ValueError(
                f"concept_scores must be [{batch.shape[0]}, {space.concept_embeddings.shape[0]}],"
                f" got {scores.shape}"
            )
        kept = np.where(scores >= concept_threshold, scores, 0.0).astype(np.float32)
        counts = np.maximum((kept > 0).sum(axis=1, keepdims=True), 1)
        vectors = vectors + concept_weight * (kept @ space.concept_embeddings) / counts
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: Matrix = (vectors / np.where(norms > 1e-12, norms, 1.0)).astype(np.float32)
    return unit[0] if single else unit
