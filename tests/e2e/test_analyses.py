"""OCR and the safety score as a user meets them: `deeptag index --ocr --safety` and
`deeptag search` on both backends, `--ocr` on a folder already indexed, and `/predict` with
`output.ocr` and `output.safety` and `/search` on a server; all through the session's real Triton,
which serves the exported OCR and safety models."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from orchestrator.triton.launcher import LocalTriton
from tests.conftest import MODEL_REPOSITORY, ServerFactory
from tests.e2e.test_index_cli import Deeptag

pytestmark = pytest.mark.e2e

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
SIGN = "EMERGENCY EXIT"
#: Where the sign is drawn in the 1800x1200 photo: boxes must surround it, in these pixels.
SIGN_AT = (300, 500)


def needs_models() -> None:
    missing = [
        m
        for m in ("ocr_det", "ocr_rec", "open_nsfw")
        if not (MODEL_REPOSITORY / m / "1" / "model.onnx").is_file()
    ]
    if missing:
        pytest.skip(f"not exported: {', '.join(missing)} (deeptag models export)")
    if not FONT.is_file():
        pytest.skip(f"{FONT} is missing (Debian's fonts-dejavu-core)")


def sign_photo(photo: Path, target: Path) -> tuple[int, int, int, int]:
    """A sample photo enlarged to 1800x1200 with a white sign of black text; the text's box."""
    image = Image.open(photo).convert("RGB").resize((1800, 1200))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 90)
    left, top, right, bottom = draw.textbbox(SIGN_AT, SIGN, font=font)
    draw.rectangle((left - 40, top - 40, right + 40, bottom + 40), fill="white")
    draw.text(SIGN_AT, SIGN, font=font, fill="black")
    image.save(target, "JPEG", quality=92)
    return left, top, right, bottom


@pytest.fixture(scope="module")
def folder(samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    needs_models()
    folder = tmp_path_factory.mktemp("analysed")
    sign_photo(samples["coffee"], folder / "sign.jpg")
    for name in ("rocket", "astronaut"):
        shutil.copy(samples[name], folder / samples[name].name)
    return folder


def hits(deeptag: Deeptag, query: str) -> dict[str, dict[str, object]]:
    done = deeptag.run("search", query, "--json", "--mode", "words")
    assert done.returncode == 0, done.stderr
    return {Path(str(h["uri"])).name: h for h in json.loads(done.stdout)["hits"]}


@pytest.mark.parametrize("kind", ["embedded", "es"])
def test_index_with_ocr_and_safety_then_search_by_a_word_of_the_sign(
    kind: str, folder: Path, triton: LocalTriton, elasticsearch_url: str, tmp_path: Path
) -> None:
    deeptag = Deeptag(kind, triton, elasticsearch_url, tmp_path / "data")
    done = deeptag.run("index", "--ocr", "--safety", str(folder))
    assert done.returncode == 0, done.stderr
    assert "3 indexed" in done.stderr
    found = hits(deeptag, "emergency")
    assert list(found) == ["sign.jpg"]
    assert found["sign.jpg"]["text"] == SIGN
    assert hits(deeptag, 'text:"emergency exit"').keys() == {"sign.jpg"}
    everything = hits(deeptag, "*")
    # The sample photos hold no text, and none of the three is unsafe.
    assert "text" not in everything["rocket.jpg"]
    assert "text" not in everything["astronaut.png"]
    assert all(float(str(h["nsfw"])) < 0.2 for h in everything.values())
    assert hits(deeptag, "nsfw:<0.2").keys() == everything.keys()


def test_ocr_on_an_indexed_folder_adds_the_text_without_tagging_again(
    folder: Path, triton: LocalTriton, elasticsearch_url: str, tmp_path: Path
) -> None:
    deeptag = Deeptag("embedded", triton, elasticsearch_url, tmp_path / "data")
    assert deeptag.run("index", str(folder)).returncode == 0
    before = hits(deeptag, "*")
    assert hits(deeptag, "emergency") == {}
    done = deeptag.run("index", "--ocr", str(folder))
    assert done.returncode == 0, done.stderr
    assert "0 indexed, 3 skipped" in done.stderr
    assert "3 image(s) indexed before given the analyses they lacked" in done.stderr
    after = hits(deeptag, "emergency")
    assert list(after) == ["sign.jpg"]
    # Tagged once: the labels and the time of indexing are the first run's.
    assert after["sign.jpg"]["categories"] == before["sign.jpg"]["categories"]
    again = deeptag.run("index", "--ocr", str(folder))
    assert "given the analyses" not in again.stderr, "read twice"


def test_predict_returns_the_lines_with_boxes_in_the_image_and_the_score(
    folder: Path, start_deeptag: ServerFactory
) -> None:
    server = start_deeptag({})
    sign = (folder / "sign.jpg").read_bytes()
    body = {
        "service": "imageserv",
        "parameters": {"output": {"best": 1, "ocr": True, "safety": True}},
        "data": [
            base64.b64encode(sign).decode(),
            base64.b64encode((folder / "rocket.jpg").read_bytes()).decode(),
        ],
    }
    answer = httpx.post(f"{server.url}/predict", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    sign_prediction, rocket_prediction = answer.json()["body"]["predictions"]
    width, height = Image.open(io.BytesIO(sign)).size
    (line,) = sign_prediction["text_lines"]
    assert line["text"] == SIGN
    assert sign_prediction["text"] == SIGN
    xs = [x for x, _ in line["box"]]
    ys = [y for _, y in line["box"]]
    assert all(0 <= x < width for x in xs)
    assert all(0 <= y < height for y in ys)
    # Around the sign as drawn, in the original image's pixels (not the 960 px view).
    assert min(xs) <= SIGN_AT[0] + 20
    assert max(xs) >= SIGN_AT[0] + 600
    assert abs(min(ys) - SIGN_AT[1]) < 60
    assert sign_prediction["nsfw"] < 0.2
    assert "text" not in rocket_prediction
    assert rocket_prediction["nsfw"] < 0.2
    # Off unless asked: DeepDetect's shape as it was.
    plain = httpx.post(
        f"{server.url}/predict",
        json={**body, "parameters": {"output": {"best": 1}}},
        timeout=120,
    ).json()["body"]["predictions"][0]
    assert not {"text", "text_lines", "nsfw"} & set(plain)


def test_a_server_with_ocr_on_indexes_the_text_and_search_finds_it(
    folder: Path, start_deeptag: ServerFactory
) -> None:
    server = start_deeptag(
        {
            "DEEPTAG_OCR": "true",
            "DEEPTAG_SEARCH_BACKEND": "embedded",
            "DEEPTAG_IMAGE_ROOTS": str(folder),
        }
    )
    paths = [str(folder / "sign.jpg"), str(folder / "rocket.jpg")]
    answer = httpx.post(f"{server.url}/index", json={"data": paths}, timeout=120)
    assert answer.status_code == 200, answer.text
    found = httpx.get(f"{server.url}/search", params={"q": "emergency"}, timeout=60).json()
    assert [Path(hit["uri"]).name for hit in found["hits"]] == ["sign.jpg"]
    assert found["hits"][0]["text"] == SIGN
    # Only what the settings turn on: no safety score.
    assert "nsfw" not in found["hits"][0]
