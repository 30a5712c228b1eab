"""The linear probe: fitting, held-out measures, the ONNX head and its repository layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from orchestrator.errors import BadRequest, ModelNotFound, TrainingDataError
from orchestrator.training.fit import FitOptions, fit_probe, predict_probs
from orchestrator.training.head_export import head_model
from orchestrator.training.repository import ProbeRepository, check_name, head_name
from orchestrator.training.trainer import measures_json
from orchestrator.triton.runtime_repository import read_config

DIMS = 1280


def clusters(per_class: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised vectors around one random centre per class, like image embeddings."""
    rng = np.random.default_rng(seed)
    rows, targets = [], []
    for label, count in enumerate(per_class):
        centre = rng.normal(size=DIMS)
        rows.append(centre + rng.normal(scale=0.8, size=(count, DIMS)))
        targets += [label] * count
    x = np.concatenate(rows).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.asarray(targets, dtype=np.int64)


def test_separable_classes_are_learned_and_measured_on_held_out_images() -> None:
    x, y = clusters([30, 30, 30])
    fit = fit_probe(x, y, ("astronaut", "diver", "cat"), FitOptions(test_split=0.2, seed=1))

    assert fit.evaluation is not None
    assert fit.evaluation.test_size == 18
    assert fit.evaluation.train_size == 72
    assert fit.evaluation.accuracy == 1.0
    assert [c.label for c in fit.evaluation.per_class] == ["astronaut", "diver", "cat"]
    assert [c.support for c in fit.evaluation.per_class] == [6, 6, 6]
    assert fit.evaluation.confusion == ((6, 0, 0), (0, 6, 0), (0, 0, 6))
    assert fit.weights.shape == (3, DIMS)
    assert predict_probs(fit.weights, fit.bias, x).argmax(axis=1).tolist() == y.tolist()


def test_measures_have_deepdetect_names() -> None:
    x, y = clusters([20, 20])
    fit = fit_probe(x, y, ("a", "b"), FitOptions(test_split=0.25, seed=0))

    everything = measures_json(fit)
    assert {"acc", "f1", "precision", "recall", "mcll", "cmdiag", "cmfull", "labels"} <= set(
        everything
    )
    assert everything["cmdiag"] == [1.0, 1.0]
    assert everything["cmfull"] == [{"a": [1.0, 0.0]}, {"b": [0.0, 1.0]}]
    asked = measures_json(fit, frozenset({"acc"}))
    assert set(asked) == {"acc", "iteration", "train_loss", "test_size"}


def test_imbalanced_classes_are_weighted() -> None:
    # 60 against 6: without class weights the small class is easily swallowed.
    x, y = clusters([60, 6], seed=3)
    fit = fit_probe(x, y, ("common", "rare"), FitOptions(test_split=0.0))
    probs = predict_probs(fit.weights, fit.bias, x)
    assert probs[y == 1].argmax(axis=1).tolist() == [1] * 6
    assert fit.evaluation is None


def test_binary_probe_gives_two_probabilities_summing_to_one() -> None:
    x, y = clusters([15, 15], seed=2)
    fit = fit_probe(x, y, ("diver", "none"), FitOptions(test_split=0.0))
    probs = predict_probs(fit.weights, fit.bias, x)
    assert probs.shape == (30, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs.argmax(axis=1).tolist() == y.tolist()


def test_a_split_too_small_for_every_class_is_a_clear_error() -> None:
    x, y = clusters([5, 5, 5])
    with pytest.raises(TrainingDataError, match=r"test_split 0\.1 of 15 images"):
        fit_probe(x, y, ("a", "b", "c"), FitOptions(test_split=0.1))


def test_onnx_head_computes_what_the_fit_predicts() -> None:
    x, y = clusters([10, 10, 10])
    fit = fit_probe(x, y, ("a", "b", "c"), FitOptions(test_split=0.0))
    session = ort.InferenceSession(
        head_model(fit.weights, fit.bias), providers=["CPUExecutionProvider"]
    )
    probs, passthrough = session.run(["probs", "embedding_out"], {"embedding": x})
    np.testing.assert_allclose(probs, predict_probs(fit.weights, fit.bias, x), atol=1e-5)
    np.testing.assert_array_equal(passthrough, x)


def test_names_are_triton_model_names() -> None:
    assert check_name("Astro") == "astro"
    for bad in ("", "1abc", "a/b", "astro_head", "x" * 80):
        with pytest.raises(BadRequest):
            check_name(bad)


def _version(repo: ProbeRepository, labels: tuple[str, ...], acc: float) -> int:
    weights = np.zeros((len(labels), DIMS), np.float32)
    onnx = head_model(weights, np.zeros(len(labels), np.float32))
    return repo.write_version(
        "astro", "efficientnet_lite0", onnx, labels, {"measures": {"acc": acc}}
    )


def test_retraining_adds_a_version_and_the_configs_follow_the_latest(tmp_path: Path) -> None:
    repo = ProbeRepository(tmp_path)
    assert _version(repo, ("astronaut", "diver"), 0.9) == 1
    assert _version(repo, ("astronaut", "diver", "none"), 0.95) == 2

    info = repo.get("astro")
    assert info.versions == (1, 2)
    assert info.labels == ("astronaut", "diver", "none")
    assert info.accuracy == 0.95
    assert (tmp_path / "astro" / "labels.txt").read_text() == "astronaut\ndiver\nnone\n"
    assert (tmp_path / head_name("astro") / "1" / "model.onnx").is_file()
    ensemble = read_config(tmp_path / "astro" / "config.pbtxt")
    assert ensemble.platform == "ensemble"
    assert list(ensemble.output[0].dims) == [3]
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [
        "efficientnet_lite0",
        "astro_head",
    ]
    head = read_config(tmp_path / head_name("astro") / "config.pbtxt")
    assert head.backend == "onnxruntime"
    assert list(head.output[0].dims) == [3]
    report = json.loads((tmp_path / "astro_head" / "2" / "training.json").read_text())
    assert report["version"] == 2

    now = repo.delete_version("astro", 2, "efficientnet_lite0")
    assert now is not None
    assert now.version == 1
    assert (tmp_path / "astro" / "labels.txt").read_text() == "astronaut\ndiver\n"
    assert repo.delete_version("astro", 1, "efficientnet_lite0") is None
    assert not (tmp_path / "astro").exists()
    with pytest.raises(ModelNotFound):
        repo.get("astro")


def test_a_name_taken_by_another_model_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "minilm_l6"
    other.mkdir()
    (other / "config.pbtxt").write_text('name: "minilm_l6"\nbackend: "onnxruntime"\n')
    with pytest.raises(BadRequest, match="is another model"):
        ProbeRepository(tmp_path).check_free("minilm_l6")
