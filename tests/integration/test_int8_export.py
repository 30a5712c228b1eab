"""`deeptag models export --int8`: a quantised copy beside FP32, kept only with its measures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.triton.runtime_repository import read_config
from tests.environment import clean_environment
from tests.search_support import variants

pytestmark = pytest.mark.integration


@pytest.fixture
def repository(exported_model: Path, tmp_path: Path) -> Path:
    """The image model alone, in a repository the test may write to."""
    target = tmp_path / "model_repository" / "efficientnet_lite0"
    (target / "1").mkdir(parents=True)
    for name in ("config.pbtxt", "labels.txt"):
        shutil.copyfile(exported_model / "efficientnet_lite0" / name, target / name)
    (target / "1" / "model.onnx").symlink_to(
        (exported_model / "efficientnet_lite0" / "1" / "model.onnx").resolve()
    )
    return target.parent


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "models", "export", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **clean_environment(),
            "COLUMNS": "200",
        },
        check=False,
    )


def test_int8_copy_is_written_with_its_accuracy_and_fp32_stays(
    repository: Path, samples: dict[str, Path], tmp_path: Path
) -> None:
    photos = tmp_path / "mine"
    variants(list(samples.values()), 12, photos)
    done = export(
        "--only",
        "image",
        "--int8",
        "--calibration",
        str(photos),
        "--model-repository",
        str(repository),
    )
    assert done.returncode == 0, done.stderr
    assert "top-1 agreement" in done.stdout
    assert "DEEPTAG_MODEL=efficientnet_lite0_int8" in done.stdout

    int8 = repository / "efficientnet_lite0_int8"
    assert read_config(int8 / "config.pbtxt").name == "efficientnet_lite0_int8"
    assert (int8 / "labels.txt").read_text() == (
        repository / "efficientnet_lite0" / "labels.txt"
    ).read_text()
    report = json.loads((int8 / "quantization.json").read_text())
    assert report["calibration_images"] == 9
    assert report["held_out_images"] == 3
    # The quantised model must still mostly agree with FP32 on photos it was not calibrated on.
    assert report["top5_overlap"] >= 0.6
    assert 0.9 <= report["embedding_cosine_mean"] <= 1.0
    # FP32 stays the default model and is untouched.
    assert (repository / "efficientnet_lite0" / "1" / "model.onnx").is_file()
    assert not (repository / ".staging").exists()


def test_calibration_without_int8_is_refused(repository: Path, tmp_path: Path) -> None:
    done = export(
        "--only", "image", "--calibration", str(tmp_path), "--model-repository", str(repository)
    )
    assert done.returncode != 0
    assert "--calibration and --held-out go with --int8" in done.stderr + done.stdout
