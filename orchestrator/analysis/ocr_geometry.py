"""Pure helpers of the OCR stage: which boxes to read, how to batch their crops, where the
boxes lie in the original image, and the spaces the recognition model under-reads. numpy only
(no OpenCV), so they are cheap to test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: The recognition model's input height; widths follow each crop's aspect ratio.
REC_HEIGHT = 48
#: PaddleOCR's narrowest recognition input (320 x 48): shorter crops are padded to it.
REC_MIN_RATIO = 320 / REC_HEIGHT
#: The widest recognition input (1920 x 48, 240 time steps): a longer line is squeezed to it,
#: which bounds the cost of one crop (the model's time grows with the width) at ~6 short lines.
REC_MAX_RATIO = 1920 / REC_HEIGHT
#: The widest crop of a recognition batch is at most this many times wider than its narrowest.
REC_SPREAD = 1.25
#: One recognition output time step per this many input pixels of width.
REC_STRIDE = 8

Points = tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class RecBatch:
    """Crops recognised together: their indices, and the aspect ratio all are padded to."""

    indices: tuple[int, ...]
    ratio: float

    @property
    def width(self) -> int:
        """The input width of the batch (what rapidocr's ``resize_norm_img`` makes)."""
        return int(REC_HEIGHT * self.ratio)


def box_sides(box: npt.NDArray[Any]) -> tuple[float, float]:
    """(width, height) of a box given clockwise from its top-left corner (pure)."""
    points = np.asarray(box, dtype=np.float64)
    width = max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[2] - points[3]))
    height = max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2]))
    return float(width), float(height)


def keep_boxes(
    boxes: Sequence[npt.NDArray[Any]], min_side: float, limit: int
) -> list[npt.NDArray[Any]]:
    """The boxes whose short side is at least ``min_side``, the ``limit`` largest by area, in
    their given order (pure). A page of small print yields hundreds of boxes: reading them
    all would take seconds, and the large ones are the headings people search for."""
    sized = [(box, *box_sides(box)) for box in boxes]
    readable = [(i, w * h) for i, (_, w, h) in enumerate(sized) if min(w, h) >= min_side]
    largest = sorted(readable, key=lambda item: -item[1])[:limit]
    return [sized[i][0] for i in sorted(i for i, _ in largest)]


def rec_batches(ratios: Sequence[float], size: int, spread: float = REC_SPREAD) -> list[RecBatch]:
    """Crops grouped in batches of at most ``size`` whose aspect ratios (width / height) differ
    by at most ``spread`` times, each padded to its widest crop's ratio, bounded by
    :data:`REC_MIN_RATIO` and :data:`REC_MAX_RATIO` (pure). Padding is wasted work: on a CPU,
    16 crops padded to the widest of them took twice as long as one by one."""
    order = sorted(range(len(ratios)), key=lambda i: ratios[i])
    bounded = [min(max(r, REC_MIN_RATIO), REC_MAX_RATIO) for r in ratios]
    batches: list[RecBatch] = []
    chunk: list[int] = []
    for i in order:
        if chunk and (len(chunk) == size or bounded[i] > bounded[chunk[0]] * spread):
            batches.append(RecBatch(tuple(chunk), bounded[chunk[-1]]))
            chunk = []
        chunk.append(i)
    if chunk:
        batches.append(RecBatch(tuple(chunk), bounded[chunk[-1]]))
    return batches


def timesteps(width: int) -> int:
    """The recognition output's time steps for an input ``width`` (pure); a longer output
    came from a batch padded wider on the server and its extra steps read padding."""
    return width // REC_STRIDE


def with_spaces(
    probs: npt.NDArray[Any],
    best: npt.NDArray[Any],
    confidence: npt.NDArray[Any],
    space: int,
    space_min: float,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``best`` (class per step, blank 0) and its ``confidence``, with spaces read into the gaps
    (pure). The model, trained mostly on Chinese, under-reads the spaces between English
    words: a gap's step goes to the blank with the space second. A blank step between two
    characters whose space probability reaches ``space_min`` is read as a space; its
    confidence is that it is no character (blank + space)."""
    is_char = (best != 0) & (best != space)
    steps = np.arange(best.shape[1])
    first = np.where(is_char.any(axis=1), is_char.argmax(axis=1), best.shape[1])
    last = best.shape[1] - 1 - is_char[:, ::-1].argmax(axis=1)
    inside = (steps > first[:, None]) & (steps < last[:, None])
    gaps = inside & (best == 0) & (probs[:, :, space] >= space_min)
    return (
        np.where(gaps, space, best),
        np.where(gaps, probs[:, :, 0] + probs[:, :, space], confidence),
    )


def to_original(
    box: npt.NDArray[Any], view_size: tuple[int, int], original_size: tuple[int, int]
) -> Points:
    """A box in view pixels as integer points in the original image's pixels, clipped inside
    it (pure); sizes are (width, height)."""
    view_w, view_h = view_size
    width, height = original_size
    sx, sy = width / max(view_w, 1), height / max(view_h, 1)
    points = []
    for x, y in np.asarray(box, dtype=np.float64).reshape(4, 2):
        px = min(max(math.floor(x * sx + 0.5), 0), width - 1)
        py = min(max(math.floor(y * sy + 0.5), 0), height - 1)
        points.append((int(px), int(py)))
    return (points[0], points[1], points[2], points[3])
