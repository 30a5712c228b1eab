"""The sentence encoder served by the local Triton: meaning, padding, errors, and the export."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pytest

from orchestrator.errors import BadRequest, ModelNotFound
from orchestrator.text_encoder import TOKENIZER_FILE, TextEncoder
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton

pytestmark = pytest.mark.integration

TEXT_MODEL = "minilm_l6"
T = TypeVar("T")


@pytest.fixture(scope="module")
def text_model_dir(exported_model: Path) -> Path:
    folder = exported_model / TEXT_MODEL
    if not (folder / "1" / "model.onnx").is_file():
        pytest.fail(f"{folder}/1/model.onnx is missing: run `make setup` (deeptag models export)")
    return folder


def with_encoder(url: str, text_model_dir: Path, use: Callable[[TextEncoder], Awaitable[T]]) -> T:
    async def go() -> T:
        encoder = TextEncoder(Endpoint.parse(url), TEXT_MODEL, text_model_dir / TOKENIZER_FILE)
        await encoder.connect()
        try:
            return await use(encoder)
        finally:
            await encoder.close()

    return asyncio.run(go())


def encode(triton: LocalTriton, text_model_dir: Path, texts: list[str]) -> npt.NDArray[np.float32]:
    return with_encoder(triton.http_url, text_model_dir, lambda e: e.encode(texts))


def test_kitten_is_closer_to_tabby_cat_than_to_espresso(
    triton: LocalTriton, text_model_dir: Path
) -> None:
    kitten, tabby, espresso = encode(triton, text_model_dir, ["kitten", "tabby cat", "espresso"])
    assert kitten.shape == (384,)
    assert np.linalg.norm(kitten) == pytest.approx(1.0, abs=1e-5)
    assert kitten @ tabby > kitten @ espresso + 0.2


def test_a_batch_of_different_lengths_gives_the_vectors_of_one_by_one(
    triton: LocalTriton, text_model_dir: Path
) -> None:
    texts = ["dog", "a golden retriever catching a frisbee on a sunny beach", "red sports car"]
    together = encode(triton, text_model_dir, texts)
    alone = np.stack([encode(triton, text_model_dir, [t])[0] for t in texts])
    assert np.abs(together - alone).max() < 1e-4


def test_concurrent_requests_of_different_lengths_are_not_mixed_up(
    triton: LocalTriton, text_model_dir: Path
) -> None:
    # Triton may batch these into one execution of the shim, which pads them to one length.
    texts = [f"photo number {i} of {'a very ' * (i % 7)}small cat" for i in range(24)]
    alone = np.concatenate([encode(triton, text_model_dir, [t]) for t in texts])

    async def concurrently(encoder: TextEncoder) -> list[npt.NDArray[np.float32]]:
        return list(await asyncio.gather(*(encoder.encode([t]) for t in texts)))

    together = np.concatenate(with_encoder(triton.http_url, text_model_dir, concurrently))
    assert np.abs(together - alone).max() < 1e-4


def test_grpc_gives_the_same_vectors(triton: LocalTriton, text_model_dir: Path) -> None:
    over_http = encode(triton, text_model_dir, ["lemon"])
    over_grpc = with_encoder(
        f"grpc://{triton.grpc_url}", text_model_dir, lambda e: e.encode(["lemon"])
    )
    assert np.abs(over_http - over_grpc).max() < 1e-6


def test_empty_and_huge_texts(triton: LocalTriton, text_model_dir: Path) -> None:
    with pytest.raises(BadRequest, match="empty"):
        encode(triton, text_model_dir, ["cat", "   "])
    assert encode(triton, text_model_dir, []).shape == (0, 384)
    # Truncated to the model's 256 tokens instead of failing or taking forever.
    (huge,) = encode(triton, text_model_dir, ["cat " * 200_000])
    assert np.linalg.norm(huge) == pytest.approx(1.0, abs=1e-5)


def test_the_image_model_is_not_a_text_encoder(triton: LocalTriton, text_model_dir: Path) -> None:
    async def go() -> None:
        encoder = TextEncoder(
            Endpoint.parse(triton.http_url), "efficientnet_lite0", text_model_dir / TOKENIZER_FILE
        )
        await encoder.connect()

    with pytest.raises(ModelNotFound, match="not a text encoder"):
        asyncio.run(go())


@pytest.mark.export
def test_onnx_matches_the_sentence_transformers_model(text_model_dir: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="the export extra is not installed")
    from sentence_transformers import SentenceTransformer

    from orchestrator.models.export_text import embed_with_onnx, weights_dir

    texts = ["kitten", "a cup of espresso on a saucer", "German shepherd, alsatian", "moped"]
    reference = SentenceTransformer(str(weights_dir()), device="cpu").encode(texts)
    onnx = embed_with_onnx(
        text_model_dir / "1" / "model.onnx", text_model_dir / TOKENIZER_FILE, texts
    )
    cosine = (onnx * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.999
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)


def test_label_and_concept_embeddings_ship_with_the_model(text_model_dir: Path) -> None:
    from orchestrator.concepts import load_table
    from orchestrator.semantic import load_space

    table = load_table()
    space = load_space(text_model_dir, classes=1000, concepts=len(table.names))
    assert space.dim == 384
    lines = (text_model_dir.parent / "efficientnet_lite0" / "labels.txt").read_text().splitlines()
    espresso = lines.index("n07920052 espresso")
    coffee = table.names.index("coffee")
    # The espresso label lies nearer the "coffee" concept than the average concept does.
    similarities = space.concept_embeddings @ space.label_embeddings[espresso]
    assert similarities[coffee] > np.percentile(similarities, 99)
