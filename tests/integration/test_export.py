"""The exported ONNX graph computes what the pretrained PyTorch network computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.preprocess import prepare
from orchestrator.sources import classify
from orchestrator.types import ImageBytes

pytestmark = pytest.mark.export

torch = pytest.importorskip("torch", reason="the export extra (torch) is not installed")
ort = pytest.importorskip("onnxruntime")


def test_onnx_matches_torch_on_the_sample_photos(
    exported_model: Path, samples: dict[str, Path]
) -> None:
    from orchestrator.models.export import build_torch_model

    batch = np.stack(
        [
            prepare(ImageBytes(classify(str(p), 0), p.read_bytes()), 10**8).pixels
            for p in samples.values()
        ]
    )
    with torch.no_grad():
        torch_probs, torch_embedding = (
            t.numpy() for t in build_torch_model()(torch.from_numpy(batch))
        )
    session = ort.InferenceSession(
        str(exported_model / "efficientnet_lite0" / "1" / "model.onnx"),
        providers=["CPUExecutionProvider"],
    )
    onnx_probs, onnx_embedding = session.run(["probs", "embedding"], {"image": batch})

    assert np.abs(onnx_probs - torch_probs).max() <= 1e-4
    assert np.abs(onnx_embedding - torch_embedding).max() <= 1e-4
    top5 = lambda p: np.argsort(-p, axis=1)[:, :5]  # noqa: E731
    assert (top5(onnx_probs) == top5(torch_probs)).all()
    # The graph does softmax and L2 normalisation itself.
    assert np.allclose(onnx_probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(onnx_embedding, axis=1), 1.0, atol=1e-5)


def test_labels_are_wordnet_ids_in_class_order(exported_model: Path) -> None:
    lines = (exported_model / "efficientnet_lite0" / "labels.txt").read_text().splitlines()
    assert len(lines) == 1000
    assert lines[0] == "n01440764 tench, Tinca tinca"
    assert lines[967] == "n07920052 espresso"
    assert lines == sorted(lines)  # sorted-WordNet-id order is the class order
