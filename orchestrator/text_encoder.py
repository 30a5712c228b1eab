"""Sentence embeddings from the text model on Triton (``minilm_l6``), for semantic search.

Tokenisation happens here, with the ``tokenizers`` library and the model's own
``tokenizer.json`` (copied beside the model by ``deeptag models export``); Triton receives
``input_ids`` and ``attention_mask`` (INT64 ``[batch, tokens]``, padded to the batch's longest
text) and returns ``embedding`` (FP32 ``[batch, 384]``), mean-pooled and L2-normalised inside
the graph. Queries go through Triton like images do, so a production GPU serves both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from orchestrator.errors import (
    BadRequest,
    InferenceFailed,
    ModelNotFound,
    TritonUnavailable,
    quote_input,
)
from orchestrator.settings import Settings
from orchestrator.triton.calls import call_triton
from orchestrator.triton.client import open_client, protocol_module
from orchestrator.triton.endpoint import Endpoint

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
EMBEDDING = "embedding"
TOKENIZER_FILE = "tokenizer.json"
#: The sequence length the sentence encoder was used with (sentence-transformers' default).
MAX_TOKENS = 256
#: Characters kept before tokenising: 256 tokens never need more, and it bounds the work.
MAX_CHARS = 4096

Tokens = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


@dataclass(frozen=True)
class TextModelInfo:
    name: str
    version: str
    max_batch_size: int
    dim: int


def load_tokenizer(path: Path, max_tokens: int = MAX_TOKENS) -> Any:
    """The model's tokenizer, truncating to ``max_tokens`` and padding to the longest text."""
    from tokenizers import Tokenizer

    if not path.is_file():
        raise ModelNotFound(f"no tokenizer at {path}: run `deeptag models export`")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_tokens)
    # Pad id 0 with mask 0: the graph ignores those positions when pooling.
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def check_texts(texts: Sequence[str]) -> list[str]:
    """Texts fit to encode, cut to :data:`MAX_CHARS`; a blank or non-text one is a BadRequest."""
    checked = []
    for text in texts:
        if not isinstance(text, str):
            raise BadRequest(f"text to encode must be a string, not {type(text).__name__}")
        if not text.strip():
            raise BadRequest(f"text to encode is empty: '{quote_input(text)}'")
        checked.append(text[:MAX_CHARS])
    return checked


def tokenize(tokenizer: Any, texts: Sequence[str]) -> Tokens:
    """``(input_ids, attention_mask)`` for a batch, INT64 ``[len(texts), longest]`` (pure)."""
    encodings = tokenizer.encode_batch(check_texts(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


class TextEncoder:
    """Encodes texts with the sentence encoder on Triton (HTTP or gRPC)."""

    def __init__(
        self, endpoint: Endpoint, model: str, tokenizer_path: Path, timeout_s: float = 60.0
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self.timeout_s = timeout_s
        self.tokenizer = load_tokenizer(tokenizer_path)
        self._client: Any = None
        self.info: TextModelInfo | None = None

    @classmethod
    def for_settings(cls, settings: Settings, endpoint: Endpoint) -> TextEncoder:
        """The configured text model, with the tokenizer the export put in its folder."""
        return cls(
            endpoint,
            settings.text_model,
            settings.model_repository / settings.text_model / TOKENIZER_FILE,
            settings.triton_timeout_s,
        )

    async def connect(self) -> TextModelInfo:
        """Connect, then check once that the model is ready and takes tokens."""
        self._client = open_client(self.endpoint, self.timeout_s)
        try:
            if not await self._call(self._client.is_model_ready(self.model)):
                raise ModelNotFound(
                    f"text model '{self.model}' is not ready on Triton at {self.endpoint}: "
                    "run `deeptag models export` and restart Triton, or check its log"
                )
            grpc = self.endpoint.protocol == "grpc"
            metadata = dict(
                await self._call(self._client.get_model_metadata(self.model, **_json(grpc)))
            )
            config = dict(
                await self._call(self._client.get_model_config(self.model, **_json(grpc)))
            )
        except BaseException:
            await self.close()
            raise
        self.info = self._model_info(metadata, config.get("config", config))
        return self.info

    def _model_info(self, metadata: dict[str, Any], config: dict[str, Any]) -> TextModelInfo:
        inputs = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        outputs = {o["name"]: o for o in metadata["outputs"]}
        if (
            inputs.get(INPUT_IDS) != "INT64"
            or inputs.get(ATTENTION_MASK) != "INT64"
            or (EMBEDDING not in outputs)
        ):
            raise ModelNotFound(
                f"model '{self.model}' on {self.endpoint} is not a text encoder: it needs INT64 "
                f"inputs '{INPUT_IDS}' and '{ATTENTION_MASK}' and an output '{EMBEDDING}'"
            )
        versions = metadata.get("versions") or ["1"]
        return TextModelInfo(
            name=self.model,
            version=str(versions[-1]),
            max_batch_size=int(config.get("max_batch_size", 0)) or 1,
            dim=int(outputs[EMBEDDING]["shape"][-1]),
        )

    async def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """L2-normalised embeddings ``[len(texts), dim]``, in chunks of the max batch size."""
        if self.info is None:
            raise TritonUnavailable("TextEncoder.encode() called before connect()")
        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        check_texts(texts)
        step = self.info.max_batch_size
        chunks = [texts[i : i + step] for i in range(0, len(texts), step)]
        results = await asyncio.gather(*(self._encode_batch(chunk) for chunk in chunks))
        return np.concatenate(results)

    async def encode_one(self, text: str) -> list[float]:
        """One text's embedding as floats: the :data:`~orchestrator.search.hybrid.Encode` of
        semantic search."""
        return [float(x) for x in (await self.encode([text]))[0]]

    async def _encode_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        ids, mask = tokenize(self.tokenizer, texts)
        module = protocol_module(self.endpoint)
        inputs = []
        for name, array in ((INPUT_IDS, ids), (ATTENTION_MASK, mask)):
            tensor = module.InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        outputs = [module.InferRequestedOutput(EMBEDDING)]
        result = await self._call(self._client.infer(self.model, inputs, outputs=outputs))
        embedding = result.as_numpy(EMBEDDING)
        if embedding is None or embedding.shape[0] != len(texts):
            raise InferenceFailed(f"Triton at {self.endpoint} returned no '{EMBEDDING}' output")
        vectors = embedding.astype(np.float32, copy=False)
        # Normalised in the graph already; again here so any serving of the model is safe.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalised: npt.NDArray[np.float32] = vectors / np.maximum(norms, 1e-12)
        return normalised

    async def _call(self, awaitable: Any) -> Any:
        return await call_triton(
            awaitable, self.endpoint, f"text model '{self.model}'", self.timeout_s
        )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


def _json(grpc: bool) -> dict[str, bool]:
    # The gRPC client answers protobufs unless asked for JSON; the HTTP one always has JSON.
    return {"as_json": True} if grpc else {}
