"""A phone-and-camera photo library as a user indexes and searches it, on both backends.

One folder holds the tagged photo (EXIF, XMP, IPTC; taken at the Eiffel Tower in July 2019)
as JPEG, HEIC, AVIF and DNG, the hostile copies of it (impossible dates, latitude 200, a 10 MB
XMP packet, an XML bomb, truncated EXIF, wrong types), a coffee photographed in Tokyo in 2021
with an iPhone, and a rocket with no metadata at all. Everything goes through the real
pipeline: ``deeptag index`` on a local Triton, then ``deeptag search``, ``deeptag serve`` and
``/predict``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from orchestrator.triton.launcher import LocalTriton
from tests.conftest import DeeptagServer, ServerFactory
from tests.photos import encoded, exif, scene, tagged_jpeg, write_photos

pytestmark = pytest.mark.e2e

DEEPTAG = [sys.executable, "-m", "orchestrator"]
SUMMARY = re.compile(r"(\d+) indexed, (\d+) skipped \(already indexed\), (\d+) failed")
SHIBUYA = (35.6595, 139.7005)
#: The photos of the Eiffel Tower set whose metadata is sound (HEIC only with pillow-heif).
PARIS_FORMATS = {"photo.jpg": "JPEG", "photo.avif": "AVIF", "photo.dng": "RAW"}


@dataclass
class Library:
    folder: Path
    names: list[str]  # every file, by name

    def env(self, data_dir: Path, triton: LocalTriton, kind: str, es_url: str) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("DEEPTAG_")},
            "COLUMNS": "200",
            "DEEPTAG_TRITON_URL": triton.http_url,
            "DEEPTAG_DATA_DIR": str(data_dir),
            "DEEPTAG_SEARCH_BACKEND": kind,
            "DEEPTAG_ES_URL": es_url,
            "DEEPTAG_ES_INDEX": f"photos-{uuid.uuid4().hex[:8]}",
        }


def deeptag(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEEPTAG, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(env["DEEPTAG_DATA_DIR"]).parent,
        env=env,
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    folder = tmp_path_factory.mktemp("photos") / "Pictures"
    written = write_photos(folder / "paris")
    coffee = encoded(
        scene("coffee"),
        "JPEG",
        quality=90,
        exif=exif(
            make="Apple",
            model="iPhone 12",
            taken="2021:03:02 08:00:00",
            offset="+09:00",
            gps=SHIBUYA,
            lens=None,
        ),
    )
    (folder / "tokyo").mkdir()
    (folder / "tokyo" / "coffee.jpg").write_bytes(coffee)
    (folder / "plain").mkdir()
    scene("rocket").save(folder / "plain" / "rocket.png")
    return Library(folder, [*written, "coffee.jpg", "rocket.png"])


@dataclass
class Indexed:
    env: dict[str, str]
    index_stderr: str

    def search(self, *args: str) -> dict[str, Any]:
        result = deeptag(self.env, "search", *args, "--json", "--size", "50")
        assert result.returncode == 0, result.stderr
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    def names(self, *args: str) -> list[str]:
        return [Path(hit["uri"]).name for hit in self.search(*args)["hits"]]

    def by_name(self) -> dict[str, dict[str, Any]]:
        return {Path(hit["uri"]).name: hit for hit in self.search("*")["hits"]}


@pytest.fixture(scope="module", params=["embedded", "es"])
def indexed(
    request: pytest.FixtureRequest,
    library: Library,
    triton: LocalTriton,
    elasticsearch_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Indexed:
    data_dir = tmp_path_factory.mktemp(f"library-{request.param}") / "data"
    env = library.env(data_dir, triton, request.param, elasticsearch_url)
    result = deeptag(env, "index", str(library.folder))
    assert result.returncode == 0, result.stderr
    return Indexed(env, result.stderr)


def test_every_format_and_every_hostile_photo_is_indexed(
    indexed: Indexed, library: Library
) -> None:
    match = SUMMARY.search(indexed.index_stderr)
    assert match, indexed.index_stderr
    assert (int(match[1]), int(match[3])) == (len(library.names), 0)
    # The broken fields were left out and counted, not the photos.
    assert re.search(r"\d+ unreadable photo metadata field\(s\) left out", indexed.index_stderr)
    hits = indexed.by_name()
    assert set(hits) == set(library.names)
    for name, fmt in PARIS_FORMATS.items():
        assert hits[name]["format"] == fmt
        assert hits[name]["taken_at"] == "2019-07-14T10:30:00+02:00"
        assert hits[name]["place"]["city"] == "Paris"
        assert hits[name]["place"]["country_code"] == "FR"
    assert hits["photo.jpg"]["camera"] == {"make": "Canon", "model": "EOS 5D Mark IV"}
    # The model still sees the cat in every format.
    for name in PARIS_FORMATS:
        assert "cat" in [c["concept"] for c in hits[name]["concepts"]], hits[name]


def test_hostile_photos_lose_only_the_bad_field(indexed: Indexed) -> None:
    hits = indexed.by_name()
    assert "taken_at" not in hits["zero_date.jpg"]
    assert "taken_at" not in hits["month_13.jpg"]
    assert hits["zero_date.jpg"]["place"]["city"] == "Paris"  # the rest is still read
    assert "location" not in hits["latitude_200.jpg"]
    assert hits["latitude_200.jpg"]["taken_at"] == "2019-07-14T10:30:00+02:00"
    assert "description" not in hits["huge_xmp.webp"]
    assert "f_number" not in hits["wrong_types.jpg"].get("exposure", {})
    assert hits["wrong_types.jpg"]["camera"]["make"] == "Canon"
    assert "rocket.png" in hits
    assert "taken_at" not in hits["rocket.png"]


def test_place_and_keyword_words_and_fields_find_exactly_their_photos(indexed: Indexed) -> None:
    assert indexed.names("place.city:tokyo") == ["coffee.jpg"]
    assert indexed.names("tokyo") == ["coffee.jpg"]
    assert indexed.names("camera.make:apple") == ["coffee.jpg"]
    assert set(indexed.names("taken_at:[2021-01-01 TO 2021-12-31]")) == {"coffee.jpg"}
    paris = set(indexed.names("paris"))
    assert set(PARIS_FORMATS) <= paris
    assert not paris & {"coffee.jpg", "rocket.png"}
    holiday = set(indexed.names("keywords:holiday"))  # an IPTC keyword (JPEG only)
    assert "photo.jpg" in holiday
    assert "photo.avif" not in holiday
    assert set(indexed.names("place.country_code:FR AND taken_at:2019")) >= set(PARIS_FORMATS)


def test_sort_by_date_puts_undated_photos_last(indexed: Indexed) -> None:
    hits = indexed.by_name()
    undated = {name for name, hit in hits.items() if "taken_at" not in hit}
    assert {"rocket.png", "zero_date.jpg"} <= undated
    instant = {
        name: datetime.fromisoformat(hit["taken_at"]).timestamp()
        for name, hit in hits.items()
        if name not in undated
    }
    for order, newest_first in (("-taken_at", True), ("taken_at", False)):
        names = indexed.names("*", "--sort", order)
        dated = names[: len(instant)]
        assert set(names[len(instant) :]) == undated
        times = [instant[name] for name in dated]
        assert times == sorted(times, reverse=newest_first)
    assert indexed.names("*", "--sort", "-taken_at")[0] == "coffee.jpg"


def test_near_a_point_and_facets(indexed: Indexed) -> None:
    near = set(indexed.names("*", "--near", "48.8584,2.2945", "--within", "2km"))
    assert set(PARIS_FORMATS) <= near
    assert not near & {"coffee.jpg", "rocket.png", "latitude_200.jpg"}
    assert indexed.names("*", "--near", "35.66,139.70", "--within", "500m") == ["coffee.jpg"]
    facets = indexed.search("*", "--facets", "year,place.country")["facets"]
    years = {f["value"]: f["count"] for f in facets["year"]}
    assert years["2021"] == 1
    countries = {f["value"] for f in facets["place.country"]}
    assert {"France", "Japan"} <= countries


def test_a_bad_date_or_distance_is_a_clear_error(indexed: Indexed) -> None:
    result = deeptag(indexed.env, "search", "*", "--near", "200,0", "--within", "5km")
    assert result.returncode == 1
    assert "latitude 200" in result.stderr
    assert "Traceback" not in result.stderr
    result = deeptag(indexed.env, "search", "taken_at:2019-13")
    assert result.returncode == 1
    assert "2019-13" in result.stderr
    assert "Traceback" not in result.stderr


def test_refresh_metadata_fills_documents_without_a_model(
    library: Library, triton: LocalTriton, tmp_path: Path
) -> None:
    """Indexed without locations (DEEPTAG_INDEX_LOCATION=false), then refreshed with no
    Triton reachable at all: the places appear, the tags stay."""
    env = library.env(tmp_path / "data", triton, "embedded", "http://127.0.0.1:9")
    private = deeptag({**env, "DEEPTAG_INDEX_LOCATION": "false"}, "index", str(library.folder))
    assert private.returncode == 0, private.stderr
    indexed = Indexed(env, private.stderr)
    assert indexed.names("place.city:paris") == []
    assert "location" not in indexed.by_name()["photo.jpg"]

    no_triton = {**env, "DEEPTAG_TRITON_URL": "http://127.0.0.1:9"}
    refreshed = deeptag(no_triton, "index", "--refresh-metadata", str(library.folder))
    assert refreshed.returncode == 0, refreshed.stderr
    assert re.search(r"metadata of \d+ indexed images updated", refreshed.stderr)
    hits = indexed.by_name()
    assert hits["photo.jpg"]["place"]["city"] == "Paris"
    assert hits["photo.jpg"]["location"]["lat"] == pytest.approx(48.8584, abs=1e-3)
    assert hits["photo.jpg"]["categories"]  # the model's labels are kept
    assert "coffee.jpg" in indexed.names("tokyo")


@pytest.fixture(scope="module")
def served(
    library: Library,
    triton: LocalTriton,
    elasticsearch_url: str,
    start_deeptag: ServerFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> DeeptagServer:
    """``deeptag serve`` over the library indexed with ``deeptag index`` (embedded)."""
    data_dir = tmp_path_factory.mktemp("served") / "data"
    env = library.env(data_dir, triton, "embedded", elasticsearch_url)
    assert deeptag(env, "index", str(library.folder)).returncode == 0
    return start_deeptag({"DEEPTAG_DATA_DIR": str(data_dir)})


def test_the_server_shows_heic_and_raw_and_predict_adds_metadata_on_request(
    served: DeeptagServer,
) -> None:
    server = served
    hits = httpx.get(f"{server.url}/search", params={"q": "*", "size": 50}, timeout=60).json()
    ids = {Path(h["uri"]).name: h["id"] for h in hits["hits"]}
    for name in ("photo.dng", "photo.heic"):
        if name not in ids:
            continue  # HEIC needs the heif extra
        for route in ("images", "thumbnails"):
            answer = httpx.get(f"{server.url}/{route}/{ids[name]}", timeout=60)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "image/jpeg"
            with Image.open(io.BytesIO(answer.content)) as shown:
                assert shown.format == "JPEG"
                assert min(shown.size) > 0

    photo = base64.b64encode(tagged_jpeg()).decode()
    template = "{{#body}}{{#predictions}}{{taken_at}} {{camera.make}} {{place.city}}"
    template += "{{/predictions}}{{/body}}"
    body = {"service": "imageserv", "parameters": {"output": {}}, "data": [photo]}
    plain = httpx.post(f"{server.url}/predict", json=body, timeout=60).json()
    assert "taken_at" not in plain["body"]["predictions"][0]  # DeepDetect's shape unchanged
    body["parameters"]["output"] = {"metadata": True}
    rich = httpx.post(f"{server.url}/predict", json=body, timeout=60).json()
    prediction = rich["body"]["predictions"][0]
    assert prediction["taken_at"] == "2019-07-14T10:30:00+02:00"
    assert prediction["place"]["city"] == "Paris"
    assert prediction["classes"]
    body["parameters"]["output"] = {"metadata": True, "template": template}
    rendered = httpx.post(f"{server.url}/predict", json=body, timeout=60)
    assert rendered.text.strip() == "2019-07-14T10:30:00+02:00 Canon Paris"


def test_facet_chips_narrow_and_the_sort_control_reorders_in_the_page(
    page: Page, library: Library, served: DeeptagServer
) -> None:
    cards = page.locator("#results > li.card")
    page.goto(served.url)
    expect(cards).to_have_count(len(library.names))

    # Newest first: the coffee of 2021, with its date and place on the card.
    page.get_by_label("Sort").select_option("-taken_at")
    first = cards.first
    expect(first.locator(".name")).to_have_text("coffee.jpg")
    expect(first.locator(".photo-line")).to_contain_text("Tokyo")
    expect(first.locator(".photo-line")).to_contain_text("2021")
    page.get_by_label("Sort").select_option("taken_at")
    expect(cards.first.locator(".name")).not_to_have_text("coffee.jpg")

    # A year chip narrows the grid to that year's photos; pressing it again widens it back.
    chip = page.locator('.facet-chip[data-facet="year"][data-value="2021"]')
    expect(chip).to_contain_text("1")
    chip.click()
    expect(cards).to_have_count(1)
    expect(cards.first.locator(".name")).to_have_text("coffee.jpg")
    expect(chip).to_have_attribute("aria-pressed", "true")
    chip.click()
    expect(cards).to_have_count(len(library.names))
    country = page.locator('.facet-chip[data-facet="place.country"][data-value="France"]')
    country.click()
    expect(cards.locator(".name", has_text="coffee.jpg")).to_have_count(0)
    expect(page.locator(".attribution")).to_contain_text("GeoNames")
