"""The safety analysis through a real Triton: the sample photos score safe, each image gets its
own score in order, and Triton answers what the exported model computes on the same crop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.analysis.base import Analysis
from orchestrator.analysis.safety import MODEL, SafetyAnalysis, SafetyResult, build
from orchestrator.preprocess import prepare
from orchestrator.settings import Settings
from orchestrator.sources import classify
from orchestrator.triton.client import TritonClient, open_client
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from orchestrator.triton.runtime_repository import ShimOptions
from orchestrator.types import ImageBytes, PreparedImage
from tests.conftest import MODEL_REPOSITORY

pytestmark = pytest.mark.integration

ONNX = MODEL_REPOSITORY / MODEL / "1" / "model.onnx"


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    if not ONNX.is_file():
        pytest.skip(f"{ONNX} is missing: run `deeptag models export --only safety`")
    ports = TritonPorts(free_port(), free_port(), free_port())
    work = tmp_path_factory.mktemp("triton-safety")
    only = frozenset({MODEL})
    with LocalTriton(MODEL_REPOSITORY, work, ports, shim=ShimOptions(), only=only) as server:
        yield server


@pytest.fixture(scope="module")
def images(samples: dict[str, Path]) -> list[PreparedImage]:
    return [
        prepare(ImageBytes(classify(str(p), 0), p.read_bytes()), 10**8) for p in samples.values()
    ]


class OneTriton:
    """The ModelCaller the pipeline's pool would be, on one Triton: a pool's connect() checks
    the image model's I/O, and this server serves open_nsfw alone."""

    def __init__(self, client: TritonClient) -> None:
        self.client = client

    async def infer(
        self, model: str, inputs: Mapping[str, Any], outputs: Sequence[str]
    ) -> dict[str, Any]:
        return await self.client.infer(model, inputs, outputs)

    async def check_models(self, models: Sequence[str], advice: str) -> None:
        for model in models:
            assert await self.client.model_ready(model), advice


def analyse(
    triton: LocalTriton, images: Sequence[PreparedImage], analysis: Analysis | None = None
) -> list[float]:
    """The analysis' scores, through Triton."""

    async def go() -> list[float]:
        endpoint = Endpoint.parse(triton.http_url)
        client = TritonClient(endpoint, MODEL)
        client._client = open_client(endpoint, 60)
        caller = OneTriton(client)
        try:
            await caller.check_models([MODEL], "export the safety model")
            results = await (analysis or build(Settings())).run(images, caller)
        finally:
            await client.close()
        return [r.nsfw for r in results if isinstance(r, SafetyResult)]

    return asyncio.run(go())


def test_sample_photos_score_safe_as_the_exported_model_does(
    triton: LocalTriton, images: list[PreparedImage]
) -> None:
    import onnxruntime as ort

    scores = analyse(triton, images)

    assert len(scores) == len(images)  # one SafetyResult per image
    # Coffee, a cat, a rocket, an astronaut, a motorcycle: none is anywhere near unsafe
    # (measured: at most 0.016, the astronaut's portrait).
    assert max(scores) < 0.05
    session = ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"])
    (local,) = session.run(["nsfw"], {"image": np.stack([im.pixels for im in images])})
    np.testing.assert_allclose(scores, local[:, 0], atol=1e-4)
    assert SafetyResult(scores[0]).to_fields() == {"nsfw": round(scores[0], 4)}


def test_batches_keep_each_image_its_own_score(
    triton: LocalTriton, images: list[PreparedImage]
) -> None:
    reordered = [*images[::-1], *images]  # 10 images in batches of 3: 3 calls and a rest
    whole = analyse(triton, images)
    split = analyse(triton, reordered, SafetyAnalysis(batch_size=3))
    np.testing.assert_allclose(split, [*whole[::-1], *whole], atol=1e-5)
    assert analyse(triton, []) == []
