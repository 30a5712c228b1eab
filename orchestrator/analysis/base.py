"""What every analysis stage is: a model (or a chain of models) beside the classifier.

An analysis reads the pixels the decoder already prepared for each image (the classifier's
224x224 crop, and, for those that ask for it, a larger upright ``view``), calls its models on
the same Triton through the same client, pool and retries as classification (a
:class:`ModelCaller`), and returns one :class:`AnalysisResult` per image: the fields it adds to
the image's search document and to its ``/predict`` prediction. The stages are listed once, in
:mod:`orchestrator.analysis.registry`; the CLI, ``/predict``, the indexer and the Ray engine
take them from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from orchestrator.types import PreparedImage

Tensor = npt.NDArray[Any]


class ModelCaller(Protocol):
    """Any model on the Triton(s) the classifier uses, with the classifier's failover and
    retries (:meth:`orchestrator.triton.pool.TritonPool.infer`)."""

    async def infer(
        self, model: str, inputs: Mapping[str, Tensor], outputs: Sequence[str]
    ) -> dict[str, Tensor]:
        """One inference of ``model``: ``inputs`` by name (the batch dimension first), the
        ``outputs`` asked for, by name."""
        ...

    async def check_models(self, models: Sequence[str], advice: str) -> None:
        """Raise :class:`orchestrator.errors.ModelNotFound` naming the first of ``models``
        that is not ready, followed by ``advice`` (what to run to get it)."""
        ...


class AnalysisResult(Protocol):
    """What one analysis found in one image."""

    def to_fields(self) -> dict[str, Any]:
        """The JSON fields it adds to the image's document and prediction; ``{}`` when it
        found nothing (an image without text has no ``text``)."""
        ...


class Analysis(Protocol):
    """One stage; built once per process by its registry entry."""

    #: The option that turns it on: ``--ocr``, ``output.ocr``, ``DEEPTAG_OCR``.
    name: str

    async def run(
        self, images: Sequence[PreparedImage], triton: ModelCaller
    ) -> list[AnalysisResult]:
        """One result per image, in order. An image the stage cannot read (a crop too small,
        say) gets an empty result, never an exception; Triton's errors propagate."""
        ...


def uint8_rgb(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``pixels`` as a contiguous HxWx3 uint8 array (what the decoder gives; pure)."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected HxWx3 uint8 RGB pixels, got {pixels.dtype} {pixels.shape}")
    return np.ascontiguousarray(pixels)
