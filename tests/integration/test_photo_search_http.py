"""Photo search as users reach it: `/search` over HTTP (on a real `deeptag serve`) and
`deeptag search` (a subprocess), on the embedded index and on Elasticsearch's API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DeeptagServer, ServerFactory
from tests.photo_library import (
    ILE_DE_FRANCE,
    LIBRARY,
    NO_TRITON,
    PARIS,
    Library,
    indexed_library,
)
from tests.search_support import deeptag_search as deeptag
from tests.search_support import index_documents, search_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["embedded", "es"])
def library(
    request: pytest.FixtureRequest,
    elasticsearch_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Library:
    folder = tmp_path_factory.mktemp(f"photos-cli-{request.param}")
    return indexed_library(request.param, elasticsearch_url, folder, "deeptag-photos-cli")


@pytest.fixture(scope="module", params=["embedded", "es"])
def server(
    request: pytest.FixtureRequest,
    start_deeptag: ServerFactory,
    elasticsearch_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> DeeptagServer:
    kind = request.param
    data_dir = tmp_path_factory.mktemp(f"photo-serve-{kind}")
    settings = search_settings(kind, NO_TRITON, elasticsearch_url, data_dir, "deeptag-photo-http")
    assert all(index_documents(settings, list(LIBRARY.values())))
    env = {
        "DEEPTAG_SEARCH_BACKEND": kind,
        "DEEPTAG_ES_URL": elasticsearch_url,
        "DEEPTAG_ES_INDEX": settings.es_index,
        "DEEPTAG_DATA_DIR": str(data_dir),
    }
    return start_deeptag(env)


def get(server: DeeptagServer, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}/search", params=params, timeout=60)


def test_search_over_http_sorts_filters_and_counts(
    server: DeeptagServer,
) -> None:
    answer = get(
        server,
        q="*",
        sort="-taken_at",
        near=PARIS,
        within="20km",
        facets="year,place.city",
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [hit["id"] for hit in body["hits"]] == ["louvre", "eiffel", "versailles"]
    assert body["facets"] == {
        "year": [{"value": "2019", "count": 3}],
        "place.city": [{"value": "Paris", "count": 2}, {"value": "Versailles", "count": 1}],
    }
    eiffel = body["hits"][1]
    assert eiffel["taken_at"] == "2019-07-14T10:30:00+02:00"
    assert eiffel["camera"] == {"make": "Canon", "model": "EOS 5D Mark IV"}
    assert eiffel["location"] == {"lat": 48.8584, "lon": 2.2945}
    assert eiffel["place"] == {
        "city": "Paris",
        "region": ILE_DE_FRANCE,
        "country": "France",
        "country_code": "FR",
    }
    assert eiffel["keywords"] == ["holiday", "tower"]
    assert eiffel["exposure"] == {
        "iso": 200,
        "f_number": 8.0,
        "exposure_time": 0.004,
        "focal_length": 35.0,
    }
    posted = httpx.post(
        f"{server.url}/search",
        json={"q": "holiday", "sort": "taken_at", "facets": ["keywords"]},
        timeout=60,
    ).json()
    assert [hit["id"] for hit in posted["hits"]] == ["versailles", "eiffel"]
    assert posted["facets"]["keywords"][0] == {"value": "holiday", "count": 2}


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"q": "taken_at:2019-13"}, "taken_at: '2019-13' is not a date"),
        ({"q": "*", "near": "200,0", "within": "5km"}, "near '200,0': latitude 200"),
        ({"q": "*", "near": PARIS, "within": "5 parsecs"}, "within '5 parsecs': expected"),
        ({"q": "*", "near": PARIS}, "needs within"),
        ({"q": "*", "facets": "year,colour"}, "facets 'colour': unknown facet"),
        ({"q": "*", "sort": "date"}, "sort 'date': unknown sort field"),
        ({"q": "dog", "mode": "semantic", "sort": "taken_at"}, "not semantic"),
    ],
)
def test_bad_search_input_is_a_400_naming_it(
    server: DeeptagServer, params: dict[str, str], says: str
) -> None:
    answer = get(server, **params)
    assert answer.status_code == 400, answer.text
    status = answer.json()["status"]
    assert status["code"] == 400
    assert says in status["dd_msg"]


def test_the_cli_sorts_filters_and_shows_when_and_where(library: Library) -> None:
    listed = deeptag(library.settings, "*", "--sort", "-taken_at", "--json", "--size", "3")
    assert listed.returncode == 0, listed.stderr
    hits = json.loads(listed.stdout)["hits"]
    assert [hit["id"] for hit in hits] == ["tokyo", "fiji", "louvre"]
    assert hits[0]["place"]["city"] == "Tokyo"
    table = deeptag(
        library.settings, "*", "--near", PARIS, "--within", "5km", "--facets", "place.city"
    )
    assert table.returncode == 0, table.stderr
    assert "2019-07-14 10:30" in table.stdout  # the time the camera's clock showed
    assert "Paris, FR" in table.stdout
    assert "place.city: Paris (2)" in table.stdout
    southern = deeptag(library.settings, "*", "--near", "-16.8,-179.95", "--within", "20km")
    assert southern.returncode == 0, southern.stderr
    assert "/photos/fiji.jpg" in southern.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("taken_at:2019-02-30",), "is not a date"),
        (("*", "--near", "200,0", "--within", "5km"), "latitude 200 is outside -90..90"),
        (("*", "--near", PARIS, "--within", "5 parsecs"), "expected a distance in m or km"),
        (("*", "--facets", "colour"), "unknown facet"),
        (("*", "--sort", "date"), "unknown sort field"),
    ],
)
def test_bad_cli_input_is_one_error_line_and_exit_1(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    settings = search_settings("embedded", NO_TRITON, "", tmp_path, "unused")
    refused = deeptag(settings, *args)
    assert refused.returncode == 1
    assert says in refused.stderr
    assert "Traceback" not in refused.stderr
