"""The OCR stage without models: pre-processing sizes, boxes, reading order, decoding, fields."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("cv2", reason="OCR needs OpenCV: pip install 'deeptag[ocr]'")
pytest.importorskip("rapidocr_onnxruntime", reason="OCR needs rapidocr: pip install 'deeptag[ocr]'")

from orchestrator.analysis.ocr import (
    DET_OUTPUT,
    REC_OUTPUT,
    OcrAnalysis,
    OcrResult,
    RapidOps,
    TextLine,
    read_characters,
)
from orchestrator.analysis.ocr_geometry import (
    REC_MAX_RATIO,
    REC_MIN_RATIO,
    keep_boxes,
    rec_batches,
    to_original,
)
from orchestrator.errors import ExportDependencyMissing, InferenceFailed, ModelNotFound
from orchestrator.models import export_ocr
from orchestrator.models.export_ocr import export_ocr_models
from orchestrator.types import ImageSource, PreparedImage, SourceKind

CHARACTERS = list("0123456789abcdefghijklmnopqrstuvwxyzEMRGNCYXIT")
# The model's classes: the CTC blank, the characters, then a space.
CLASSES = ["", *CHARACTERS, " "]


@pytest.fixture(scope="module")
def ops() -> RapidOps:
    return RapidOps(CHARACTERS)


def probabilities(text: str, steps: int, confidence: float = 0.9) -> npt.NDArray[np.float32]:
    """One row of recognition output spelling ``text``: each character held two steps, then
    a blank, the rest blank; the winning class has ``confidence``."""
    rows = np.full((steps, len(CLASSES)), (1 - confidence) / (len(CLASSES) - 1), np.float32)
    labels = [CLASSES.index(c) for ch in text for c in (ch, ch, "")]
    labels += [0] * (steps - len(labels))
    rows[np.arange(steps), labels] = confidence
    return rows


def test_detection_input_has_sides_multiple_of_32_and_at_most_960(ops: RapidOps) -> None:
    for (height, width), expected in {
        (640, 960): (640, 960),
        (500, 700): (512, 704),
        (1000, 2000): (480, 960),  # a larger image is scaled to 960 on its long side
        (37, 250): (32, 256),
    }.items():
        tensor = ops.det_input(np.zeros((height, width, 3), np.uint8))
        assert tensor is not None
        assert tensor.dtype == np.float32
        assert tensor.shape == (1, 3, *expected)


def test_an_image_too_small_to_detect_gives_no_input(ops: RapidOps) -> None:
    assert ops.det_input(np.zeros((10, 12, 3), np.uint8)) is None


def test_detection_input_is_normalised_to_minus_one_one(ops: RapidOps) -> None:
    bgr = np.zeros((64, 64, 3), np.uint8)
    bgr[..., 0] = 255
    tensor = ops.det_input(bgr)
    assert tensor is not None
    assert tensor[0, 0].min() == pytest.approx(1.0)
    assert tensor[0, 1].max() == pytest.approx(-1.0)


def test_reading_order_is_rows_top_to_bottom_then_left_to_right(ops: RapidOps) -> None:
    def box(x: int, y: int) -> npt.NDArray[np.float32]:
        return np.array([[x, y], [x + 50, y], [x + 50, y + 20], [x, y + 20]], np.float32)

    right, left, below = box(300, 102), box(10, 100), box(10, 200)
    ordered = ops.reading_order([below, right, left])
    assert [(int(b[0][0]), int(b[0][1])) for b in ordered] == [(10, 100), (300, 102), (10, 200)]


def test_boxes_scale_from_the_view_to_the_original_and_stay_inside_it() -> None:
    # A 2400x1600 photo seen through its 960x640 view: 2.5 times smaller.
    box = np.array([[100, 40], [959.9, 40], [962, 660], [-3, 639]], np.float32)
    points = to_original(box, (960, 640), (2400, 1600))
    assert points == ((250, 100), (2399, 100), (2399, 1599), (0, 1598))
    assert all(isinstance(v, int) for point in points for v in point)


def test_tiny_boxes_are_skipped_and_only_the_largest_kept_in_order() -> None:
    def box(x: int, w: int, h: int) -> npt.NDArray[np.float32]:
        return np.array([[x, 0], [x + w, 0], [x + w, h], [x, h]], np.float32)

    boxes = [box(0, 100, 20), box(200, 40, 3), box(300, 400, 30), box(800, 50, 10)]
    kept = keep_boxes(boxes, min_side=6, limit=2)
    assert [int(b[0][0]) for b in kept] == [0, 300]


def test_recognition_batches_group_similar_widths_within_bounds() -> None:
    ratios = [30.0, 2.0, 100.0, 8.0, 3.0, 7.5, 39.0]
    batches = rec_batches(ratios, size=2, spread=1.25)
    # Sorted by width; a batch ends when full or when the next crop is 1.25 times wider.
    assert [b.indices for b in batches] == [(1, 4), (5, 3), (0,), (6, 2)]
    assert batches[0].ratio == REC_MIN_RATIO  # short crops are padded to 320 px
    assert batches[0].width == 320
    assert batches[1].ratio == 8.0
    assert batches[3].ratio == REC_MAX_RATIO  # a very long line is squeezed


def test_ctc_decoding_collapses_repeats_and_blanks(ops: RapidOps) -> None:
    probs = np.stack([probabilities("exit 2024", 40), probabilities("moon", 40, 0.6)])
    (exit_text, exit_score), (moon_text, moon_score) = ops.decode(probs, width=320)
    assert (exit_text, moon_text) == ("exit 2024", "moon")
    assert exit_score == pytest.approx(0.9)
    assert moon_score == pytest.approx(0.6)


def test_ctc_decoding_ignores_steps_beyond_the_input_width(ops: RapidOps) -> None:
    # A CPU Triton padded this batch to 480 px: 60 steps where 320 px give 40.
    probs = probabilities("exit", 60)[np.newaxis]
    probs[0, 45] = probabilities("z", 1)[0]
    assert ops.decode(probs, width=320)[0][0] == "exit"


def test_a_likely_space_between_words_is_read_as_one(ops: RapidOps) -> None:
    # "exitdoor" where the gap's step is blank with a space second (0.2): the model's habit
    # with English; a like step before the first character is no space.
    probs = probabilities("exitdoor", 40)
    gap = 4 * 3 - 1  # the blank after the last "t"
    probs[gap, CLASSES.index(" ")] = 0.2
    probs[0, 0], probs[0, CLASSES.index(" ")] = 0.7, 0.2
    (text, score), *_ = ops.decode(probs[np.newaxis], width=320)
    assert text == "exit door"
    assert score > 0.85
    (text, _), *_ = RapidOps(CHARACTERS, space_min=1.0).decode(probs[np.newaxis], width=320)
    assert text == "exitdoor"


def test_a_recognition_output_of_another_character_set_is_an_error(ops: RapidOps) -> None:
    with pytest.raises(InferenceFailed, match="export"):
        ops.decode(np.zeros((1, 40, 6625), np.float32), width=320)


def test_fields_list_the_lines_in_order_and_an_empty_result_has_none() -> None:
    box = ((1, 2), (30, 2), (30, 12), (1, 12))
    result = OcrResult((TextLine("EXIT", 0.987654, box), TextLine("2024", 0.9, box)))
    assert result.to_fields() == {
        "text": "EXIT\n2024",
        "text_lines": [
            {"text": "EXIT", "score": 0.9877, "box": [[1, 2], [30, 2], [30, 12], [1, 12]]},
            {"text": "2024", "score": 0.9, "box": [[1, 2], [30, 2], [30, 12], [1, 12]]},
        ],
    }
    assert OcrResult().to_fields() == {}


def test_a_missing_character_set_says_how_to_export(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="models export --only ocr"):
        read_characters(tmp_path / "characters.txt")


class FakeTriton:
    """Answers like the two models: detection finds ``regions`` (in det-input pixels), padded
    the way a CPU Triton pads a ragged batch; recognition reads ``texts`` in turn."""

    def __init__(self, regions: list[tuple[int, int, int, int]], texts: list[str]) -> None:
        self.regions = regions
        self.texts = list(texts)
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    async def infer(
        self, model: str, inputs: Mapping[str, npt.NDArray[Any]], outputs: Sequence[str]
    ) -> dict[str, npt.NDArray[Any]]:
        x = inputs["x"]
        self.calls.append((model, x.shape))
        if model == "ocr_det":
            prob_map = np.zeros((1, 1, x.shape[2] + 64, x.shape[3] + 32), np.float32)
            prob_map[0, 0, -40:, -20:] = 1.0  # only in the padding: must be ignored
            for x0, y0, x1, y1 in self.regions:
                prob_map[0, 0, y0:y1, x0:x1] = 0.95
            return {DET_OUTPUT: prob_map}
        steps = x.shape[3] // 8
        rows = [probabilities(self.texts.pop(0), steps + 10) for _ in range(x.shape[0])]
        return {REC_OUTPUT: np.stack(rows)}

    async def check_models(self, models: Sequence[str], advice: str) -> None:
        return None


def prepared(view: npt.NDArray[np.uint8] | None, width: int, height: int) -> PreparedImage:
    source = ImageSource("sign.jpg", SourceKind.PATH, "sign.jpg")
    pixels = np.zeros((224, 224, 3), np.uint8)
    return PreparedImage(source, pixels, width, height, "0" * 64, view=view)


def test_lines_come_back_in_original_pixels_and_reading_order(ops: RapidOps) -> None:
    # Two text areas in a 960x640 view of a 2400x1600 image; the lower one is found first.
    triton = FakeTriton([(100, 400, 500, 440), (100, 100, 700, 160)], ["emergency", "exit"])
    image = prepared(np.full((640, 960, 3), 200, np.uint8), 2400, 1600)
    (result,) = asyncio.run(OcrAnalysis(ops, min_score=0.5).run([image], triton))
    fields = result.to_fields()
    assert fields["text"] == "emergency\nexit"
    top, bottom = (line["box"] for line in fields["text_lines"])
    # Each area scaled by 2.5, grown by the detector's unclip (< 50 view px a side).
    for box, (x0, y0, x1, y1) in ((top, (250, 250, 1750, 400)), (bottom, (250, 1000, 1250, 1100))):
        assert x0 - 125 <= box[0][0] <= x0
        assert y0 - 125 <= box[0][1] <= y0
        assert x1 <= box[2][0] <= x1 + 125
        assert y1 <= box[2][1] <= y1 + 125
    assert all(0 <= x < 2400 and 0 <= y < 1600 for box in (top, bottom) for x, y in box)
    assert [model for model, _ in triton.calls] == ["ocr_det", "ocr_rec"]


def test_unsure_lines_are_dropped_and_images_without_view_or_text_get_nothing(
    ops: RapidOps,
) -> None:
    triton = FakeTriton([(100, 100, 700, 160)], ["moon"])
    images = [
        prepared(np.full((640, 960, 3), 200, np.uint8), 960, 640),
        prepared(None, 960, 640),
    ]
    results = asyncio.run(OcrAnalysis(ops, min_score=0.95).run(images, triton))
    assert [r.to_fields() for r in results] == [{}, {}]


def test_boxes_that_cannot_be_cropped_are_skipped(ops: RapidOps) -> None:
    image = np.zeros((50, 50, 3), np.uint8)
    for box in (
        [[5, 5], [5, 5], [5, 5], [5, 5]],  # a point: OpenCV would return the whole image
        [[5, 5], [5, 5], [5, 30], [5, 30]],
        [[np.nan, 0], [3, 0], [3, 3], [0, 3]],
    ):
        assert ops.crop(image, np.array(box, np.float32)) is None
    crop = ops.crop(image, np.array([[5, 5], [20, 5], [20, 15], [5, 15]], np.float32))
    assert crop is not None
    assert crop.shape == (10, 15, 3)


def test_views_that_are_not_rgb_pixels_get_nothing_and_noise_does_not_fail(
    ops: RapidOps,
) -> None:
    class Noise(FakeTriton):
        async def infer(
            self, model: str, inputs: Mapping[str, npt.NDArray[Any]], outputs: Sequence[str]
        ) -> dict[str, npt.NDArray[Any]]:
            if model == "ocr_det":
                shape = (1, 1, *inputs["x"].shape[2:])
                return {DET_OUTPUT: np.random.default_rng(0).random(shape, np.float32)}
            return await super().infer(model, inputs, outputs)

    triton = Noise([], ["x"] * 1000)
    images = [
        prepared(np.zeros((64, 64), np.uint8), 64, 64),  # grey, no channel axis
        prepared(np.zeros((64, 64, 4), np.uint8), 64, 64),  # RGBA
        prepared(np.zeros((64, 64, 3), np.uint16), 64, 64),  # not uint8
        prepared(np.full((8, 8, 3), 255, np.uint8), 8, 8),  # too small to detect
        prepared(np.full((300, 400, 3), 128, np.uint8), 4000, 3000),  # a noisy map
    ]
    results = asyncio.run(OcrAnalysis(ops, min_score=0.5).run(images, triton))
    assert [r.to_fields() for r in results[:4]] == [{}, {}, {}, {}]
    assert len(results) == len(images)
    for line in results[4].to_fields().get("text_lines", []):
        assert all(0 <= x < 4000 and 0 <= y < 3000 for x, y in line["box"])


def test_export_lays_out_both_models_and_a_character_set_matching_the_output(
    tmp_path: Path,
) -> None:
    written = export_ocr_models(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "ocr_det/1/model.onnx",
        "ocr_rec/1/model.onnx",
        "ocr_rec/characters.txt",
    ]
    characters = read_characters(tmp_path / "ocr_rec" / "characters.txt")
    # With the CTC blank and the space: the 6,625 classes of the model's output.
    assert len(RapidOps(characters).decoder.character) == 6625
    assert "A" in characters
    assert "中" in characters
    assert not list(tmp_path.rglob("*.tmp"))


def test_export_without_the_package_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_ocr, "PACKAGE", "rapidocr_not_installed_here")
    with pytest.raises(ExportDependencyMissing, match=r"pip install 'deeptag\[ocr\]'"):
        export_ocr.export_ocr_models(tmp_path)
