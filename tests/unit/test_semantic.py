"""ConSE vectors from probabilities and small, hand-made embedding matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import ModelNotFound
from orchestrator.semantic import SemanticSpace, label_text, load_space, semantic_vectors

# Four labels and two concepts in a 3-d "text space": cat-ish labels point along x,
# the coffee label along y, the car label along z.
LABELS = np.array(
    [[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32
)
CONCEPTS = np.array([[0.6, 0.0, 0.8], [0.0, 0.0, 1.0]], dtype=np.float32)
SPACE = SemanticSpace(LABELS, CONCEPTS)


def test_one_confident_label_gives_its_own_embedding() -> None:
    vector = semantic_vectors([0.0, 0.0, 1.0, 0.0], SPACE)
    assert vector.tolist() == pytest.approx([0.0, 1.0, 0.0])


def test_probability_weighted_mean_of_the_top_labels_normalised() -> None:
    vector = semantic_vectors([0.5, 0.3, 0.1, 0.1], SPACE, top_k=2)
    expected = 0.5 * LABELS[0] + 0.3 * LABELS[1]
    assert vector.tolist() == pytest.approx((expected / np.linalg.norm(expected)).tolist())
    assert np.linalg.norm(vector) == pytest.approx(1.0)


def test_concepts_above_the_threshold_pull_the_vector_by_their_weight() -> None:
    probs = [0.0, 0.0, 0.0, 1.0]
    scores = [0.9, 0.1]  # only the first concept is confident
    vector = semantic_vectors(probs, SPACE, concept_scores=scores, concept_threshold=0.5)
    expected = LABELS[3] + 0.5 * 0.9 * CONCEPTS[0]
    assert vector.tolist() == pytest.approx((expected / np.linalg.norm(expected)).tolist())
    without = semantic_vectors(probs, SPACE, concept_scores=scores, concept_weight=0.0)
    assert without.tolist() == pytest.approx([0.0, 0.0, 1.0])


def test_a_hesitant_image_is_not_taken_over_by_its_one_concept() -> None:
    probs = [0.2, 0.2, 0.0, 0.0]  # unsure, but cat-ish
    vector = semantic_vectors(probs, SPACE, concept_scores=[0.0, 0.3])
    expected = 0.2 * LABELS[0] + 0.2 * LABELS[1] + 0.5 * 0.3 * CONCEPTS[1]
    assert vector.tolist() == pytest.approx((expected / np.linalg.norm(expected)).tolist())
    assert vector @ LABELS[0] > vector @ CONCEPTS[1]


def test_batches_match_single_images_and_nothing_confident_is_zero() -> None:
    batch = np.array([[0.7, 0.2, 0.1, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    scores = np.array([[0.0, 0.9], [0.0, 0.0]], dtype=np.float32)
    vectors = semantic_vectors(batch, SPACE, concept_scores=scores)
    assert vectors.shape == (2, 3)
    single = semantic_vectors(batch[0], SPACE, concept_scores=scores[0])
    assert vectors[0].tolist() == pytest.approx(single.tolist())
    assert vectors[1].tolist() == [0.0, 0.0, 0.0]


def test_bad_shapes_name_what_is_expected() -> None:
    with pytest.raises(ValueError, match="4 values per image"):
        semantic_vectors([0.5, 0.5], SPACE)
    with pytest.raises(ValueError, match="concept_scores"):
        semantic_vectors([1.0, 0.0, 0.0, 0.0], SPACE, concept_scores=[1.0, 0.0, 0.0])


def test_label_text_drops_the_wordnet_id() -> None:
    assert label_text("n02123045 tabby, tabby cat") == "tabby, tabby cat"
    assert label_text("espresso") == "espresso"


def test_stale_or_missing_embeddings_say_to_export(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="deeptag models export"):
        load_space(tmp_path, classes=4, concepts=2)
    np.save(tmp_path / "label_embeddings.npy", LABELS)
    np.save(tmp_path / "concept_embeddings.npy", CONCEPTS)
    assert load_space(tmp_path, classes=4, concepts=2).dim == 3
    with pytest.raises(ModelNotFound, match="--force"):
        load_space(tmp_path, classes=1000, concepts=2)
