"""Read the text in images: PP-OCRv4 detection and recognition on Triton.

Each image's upright view is sent to ``ocr_det`` alone (images differ in size); the text
boxes found are cropped and deskewed, and the crops of all images of the call are sent to
``ocr_rec`` together, in batches of similar width. No angle classifier: upside-down text is
not read (rare in photos, and a third model per line).

The pre- and post-processing is rapidocr-onnxruntime's own (what its ``RapidOCR`` does around
its onnxruntime sessions), called here on Triton's outputs: ``DetPreProcess``,
``DBPostProcess``, ``TextDetector.filter_tag_det_res``, ``RapidOCR.sorted_boxes``,
``RapidOCR.get_crop_img_list``, ``TextRecognizer.resize_norm_img`` and ``CTCLabelDecode``.
The classes whose methods are used without their models are made without ``__init__`` (which
would open ONNX sessions); those methods read no state but what is set here. One step is ours:
the recognition model drops most spaces between English words, and a blank step where it gave
a space some probability is read as one before decoding (``ocr_geometry.with_spaces``).

This module imports OpenCV and rapidocr; the registry imports it only when OCR is on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from rapidocr_onnxruntime.ch_ppocr_det.text_detect import TextDetector
from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess, DetPreProcess
from rapidocr_onnxruntime.ch_ppocr_rec.text_recognize import TextRecognizer
from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode
from rapidocr_onnxruntime.main import RapidOCR

from orchestrator.analysis.base import AnalysisResult, ModelCaller
from orchestrator.analysis.ocr_geometry import (
    REC_HEIGHT,
    Points,
    box_sides,
    keep_boxes,
    rec_batches,
    timesteps,
    to_original,
    with_spaces,
)
from orchestrator.analysis.registry import OCR
from orchestrator.errors import InferenceFailed, ModelNotFound
from orchestrator.settings import Settings
from orchestrator.types import PreparedImage

DET_MODEL, REC_MODEL = OCR.models
DET_INPUT, DET_OUTPUT = "x", "sigmoid_0.tmp_0"
REC_INPUT, REC_OUTPUT = "x", "softmax_11.tmp_0"
CHARACTERS_FILE = "characters.txt"

#: PaddleOCR's det_limit_side_len / det_limit_type: the longest side at most 960 px.
DET_LIMIT_SIDE = 960
#: rapidocr's defaults (config.yaml, RapidOCR.__call__): pixel threshold, box score, growth.
DET_THRESH = 0.3
BOX_THRESH = 0.5
UNCLIP_RATIO = 1.6
#: Boxes read per image at most, the largest first (bounds a page of small print).
MAX_BOXES = 100
#: Boxes thinner than this (view pixels) are skipped: no legible text is that small.
MIN_BOX_SIDE = 6.0
#: A gap between characters is a space when the model gives a space at least this probability
#: (``ocr_geometry.with_spaces``); 1.0: argmax only, as rapidocr. On the bench's signs, 0.05
#: finds 79 % of words where argmax finds 59 %; 0.02 split "x86_64" in a screenshot.
SPACE_MIN = 0.05
#: Crops per recognition request (of all images in the call, sorted by aspect ratio).
REC_BATCH = 16
#: Requests one call of the stage has in flight at once: two keep a Triton instance busy while
#: the client prepares the next; more only queue there, each detection request holding ~15 MB
#: of tensors (bench/ocr_quality.py measures 1 to 4).
CALLS_IN_FLIGHT = 2


@dataclass(frozen=True)
class TextLine:
    text: str
    score: float
    #: Clockwise from the top-left corner, in the original image's pixels.
    box: Points


@dataclass(frozen=True)
class OcrResult:
    """The lines read in one image, in reading order."""

    lines: tuple[TextLine, ...] = ()

    def to_fields(self) -> dict[str, Any]:
        if not self.lines:
            return {}
        return {
            "text": "\n".join(line.text for line in self.lines),
            "text_lines": [
                {
                    "text": line.text,
                    "score": round(line.score, 4),
                    "box": [[x, y] for x, y in line.box],
                }
                for line in self.lines
            ],
        }


@dataclass(frozen=True, eq=False)
class _Found:
    """One image's detected boxes (view pixels, reading order) and their crops."""

    boxes: tuple[npt.NDArray[Any], ...]
    crops: tuple[npt.NDArray[np.uint8], ...]


_NOTHING = _Found((), ())


class RapidOps:
    """rapidocr's processing steps, without its onnxruntime sessions (see the module doc)."""

    def __init__(self, characters: list[str], space_min: float = SPACE_MIN) -> None:
        self.det_pre = DetPreProcess(DET_LIMIT_SIDE, "max", [0.5] * 3, [0.5] * 3)
        self.db_post = DBPostProcess(
            thresh=DET_THRESH,
            box_thresh=BOX_THRESH,
            max_candidates=1000,
            unclip_ratio=UNCLIP_RATIO,
            score_mode="fast",
            use_dilation=True,
        )
        self.detector = TextDetector.__new__(TextDetector)
        self.pipeline = RapidOCR.__new__(RapidOCR)
        self.recognizer = TextRecognizer.__new__(TextRecognizer)
        self.recognizer.rec_image_shape = [3, REC_HEIGHT, 320]
        # CTCLabelDecode adds the CTC blank first and a space last, as the model outputs.
        self.decoder = CTCLabelDecode(character=list(characters))
        self.space_min = space_min

    def det_input(self, bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32] | None:
        """[1, 3, H, W] with H and W multiples of 32; None for an image too small."""
        tensor: npt.NDArray[np.float32] | None = self.det_pre(bgr)
        return tensor

    def boxes(self, prob_map: npt.NDArray[np.float32], shape: tuple[int, int]) -> list[Any]:
        """Text boxes (4x2, clockwise from top-left) in pixels of an image of ``shape``; none
        when the post-processing fails on a degenerate region (the image is left unread
        rather than the batch failed)."""
        try:
            found, _scores = self.db_post(prob_map, shape)
            if len(found) == 0:
                return []
            return list(self.detector.filter_tag_det_res(found.astype(np.float32), shape))
        except (cv2.error, ValueError, IndexError, ZeroDivisionError):
            return []

    def reading_order(self, boxes: list[Any]) -> list[Any]:
        """Top to bottom, then left to right within a row (rows ~10 px apart)."""
        if not boxes:
            return []
        return list(RapidOCR.sorted_boxes(np.asarray(boxes)))

    def crop(self, bgr: npt.NDArray[np.uint8], box: Any) -> npt.NDArray[np.uint8] | None:
        """The box's pixels warped upright (a tall one turned); None if it cannot be."""
        points = np.asarray(box, dtype=np.float32)
        # OpenCV takes a 0-pixel output size for "as large as the input": never ask for one.
        if not np.isfinite(points).all() or min(box_sides(points)) < 1:
            return None
        try:
            (crop,) = self.pipeline.get_crop_img_list(bgr, [points])
        except (cv2.error, ValueError):
            return None
        if crop.size == 0:
            return None
        return np.ascontiguousarray(crop)

    def rec_input(
        self, crops: Sequence[npt.NDArray[np.uint8]], ratio: float
    ) -> npt.NDArray[np.float32]:
        """[N, 3, 48, W]: each crop 48 px high, left-aligned, zero-padded to ``ratio``."""
        rows: list[npt.NDArray[np.float32]] = [
            self.recognizer.resize_norm_img(c, ratio) for c in crops
        ]
        return np.stack(rows).astype(np.float32)

    def decode(self, probs: npt.NDArray[np.float32], width: int) -> list[tuple[str, float]]:
        """(text, mean character confidence) per row of the recognition output: rapidocr's
        CTC decoding (repeats and blanks dropped), given the spaces found in the gaps."""
        if probs.ndim != 3 or probs.shape[2] != len(self.decoder.character):
            raise InferenceFailed(
                f"model '{REC_MODEL}' returned {probs.shape}, not [N, T, "
                f"{len(self.decoder.character)}]: re-run `deeptag models export --only ocr`"
            )
        probs = probs[:, : timesteps(width)]
        best = probs.argmax(axis=2)
        confidence = probs.max(axis=2)
        if self.space_min < 1.0:
            space = len(self.decoder.character) - 1  # CTCLabelDecode puts the space last
            best, confidence = with_spaces(probs, best, confidence, space, self.space_min)
        decoded = self.decoder.decode(best, confidence, is_remove_duplicate=True)
        return [(" ".join(str(text).split()), float(score)) for text, score in decoded]


def read_characters(path: Path) -> list[str]:
    """The recognition model's characters, one a line (``export_ocr`` writes the file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ModelNotFound(f"{path} cannot be read ({e.strerror}): {OCR.advice}") from e
    return [c for c in text.split("\n") if c]


class OcrAnalysis:
    name = OCR.name

    def __init__(
        self,
        ops: RapidOps,
        min_score: float,
        *,
        rec_batch: int = REC_BATCH,
        calls_in_flight: int = CALLS_IN_FLIGHT,
    ) -> None:
        self.ops = ops
        self.min_score = min_score
        self.rec_batch = rec_batch
        self.calls_in_flight = calls_in_flight

    async def run(
        self, images: Sequence[PreparedImage], triton: ModelCaller
    ) -> list[AnalysisResult]:
        gate = asyncio.Semaphore(self.calls_in_flight)
        found = await asyncio.gather(*(self._detect(image, triton, gate) for image in images))
        crops = [crop for image in found for crop in image.crops]
        texts = await self._recognise(crops, triton, gate)
        results: list[AnalysisResult] = []
        start = 0
        for image, image_found in zip(images, found, strict=True):
            read = texts[start : start + len(image_found.crops)]
            start += len(image_found.crops)
            results.append(self._lines(image, image_found, read))
        return results

    async def _detect(
        self, image: PreparedImage, triton: ModelCaller, gate: asyncio.Semaphore
    ) -> _Found:
        view = image.view
        if view is None or view.dtype != np.uint8 or view.ndim != 3 or view.shape[2] != 3:
            return _NOTHING
        # PaddleOCR's models were trained on OpenCV's BGR decodes.
        bgr = np.ascontiguousarray(view[:, :, ::-1])
        async with gate:
            tensor = await asyncio.to_thread(self.ops.det_input, bgr)
            if tensor is None:
                return _NOTHING
            out = await triton.infer(DET_MODEL, {DET_INPUT: tensor}, [DET_OUTPUT])
        return await asyncio.to_thread(self._boxes_and_crops, bgr, tensor.shape, out[DET_OUTPUT])

    def _boxes_and_crops(
        self, bgr: npt.NDArray[np.uint8], sent: tuple[int, ...], prob_map: npt.NDArray[Any]
    ) -> _Found:
        # A CPU Triton may batch this image with larger ones and pad; keep its own area.
        prob_map = np.asarray(prob_map, dtype=np.float32)[:1, :1, : sent[2], : sent[3]]
        shape = (bgr.shape[0], bgr.shape[1])
        boxes = keep_boxes(self.ops.boxes(prob_map, shape), MIN_BOX_SIDE, MAX_BOXES)
        kept_boxes, crops = [], []
        for box in self.ops.reading_order(boxes):
            crop = self.ops.crop(bgr, box)
            if crop is not None:
                kept_boxes.append(box)
                crops.append(crop)
        return _Found(tuple(kept_boxes), tuple(crops))

    async def _recognise(
        self, crops: Sequence[npt.NDArray[np.uint8]], triton: ModelCaller, gate: asyncio.Semaphore
    ) -> list[tuple[str, float]]:
        ratios = [c.shape[1] / c.shape[0] for c in crops]
        batches = rec_batches(ratios, self.rec_batch)

        async def one(indices: tuple[int, ...], ratio: float) -> list[tuple[str, float]]:
            async with gate:
                tensor = await asyncio.to_thread(
                    self.ops.rec_input, [crops[i] for i in indices], ratio
                )
                out = await triton.infer(REC_MODEL, {REC_INPUT: tensor}, [REC_OUTPUT])
            return await asyncio.to_thread(self.ops.decode, out[REC_OUTPUT], tensor.shape[3])

        read = await asyncio.gather(*(one(b.indices, b.ratio) for b in batches))
        texts: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for batch, batch_read in zip(batches, read, strict=True):
            for index, text in zip(batch.indices, batch_read, strict=True):
                texts[index] = text
        return texts

    def _lines(
        self, image: PreparedImage, found: _Found, read: Sequence[tuple[str, float]]
    ) -> OcrResult:
        if image.view is None:
            return OcrResult()
        view_size = (image.view.shape[1], image.view.shape[0])
        lines = [
            TextLine(text.strip(), score, to_original(box, view_size, (image.width, image.height)))
            for box, (text, score) in zip(found.boxes, read, strict=True)
            if score >= self.min_score and text.strip()
        ]
        return OcrResult(tuple(lines))


def build(settings: Settings) -> OcrAnalysis:
    """The OCR stage, its character set read from the model repository."""
    characters = read_characters(settings.model_repository / REC_MODEL / CHARACTERS_FILE)
    return OcrAnalysis(RapidOps(characters), settings.ocr_min_score)
