"""``/index`` and ``/search`` over HTTP on a real `deeptag serve`, for both backends."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.samples import sample_dir
from tests.conftest import DeeptagServer, ServerFactory
from tests.search_support import mirrored_recrop, start_search_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["embedded", "es"])
def server(
    request: pytest.FixtureRequest,
    start_deeptag: ServerFactory,
    samples: dict[str, Path],
    elasticsearch_url: str,
) -> DeeptagServer:
    server = start_search_server(start_deeptag, request.param, elasticsearch_url, "deeptag-http")
    answer = httpx.post(
        f"{server.url}/index", json={"data": [str(p) for p in samples.values()]}, timeout=120
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["indexed"] == len(samples)
    return server


def call(server: DeeptagServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", timeout=60, **kwargs)


def test_get_search_finds_the_coffee_photo_first(
    server: DeeptagServer, samples: dict[str, Path]
) -> None:
    answer = call(server, "GET", "/search", params={"q": "espresso", "size": 3})
    assert answer.status_code == 200
    body = answer.json()
    first = body["hits"][0]
    assert first["uri"] == str(samples["coffee"])
    assert first["categories"][0] == {
        "category": "n07920052 espresso",
        "score": pytest.approx(0.957, abs=0.01),
    }
    assert first["thumbnail"] == f"/thumbnails/{first['id']}"
    assert body["total"] >= 1
    assert body["took_ms"] >= 0


def test_paging_with_from(server: DeeptagServer, samples: dict[str, Path]) -> None:
    first = call(server, "GET", "/search", params={"q": "*", "size": 3}).json()
    rest = call(server, "GET", "/search", params={"q": "*", "size": 3, "from": 3}).json()
    ids = [h["id"] for h in first["hits"] + rest["hits"]]
    assert first["total"] == len(samples)
    assert len(ids) == len(set(ids)) == len(samples)


def test_reindexing_over_http_skips_known_images(
    server: DeeptagServer, samples: dict[str, Path]
) -> None:
    answer = call(server, "POST", "/index", json={"data": [str(samples["coffee"])]})
    assert answer.json() | {"ids": None} == {
        "indexed": 0,
        "skipped": 1,
        "failed": [],
        "ids": None,
    }


def test_similar_images_by_id_and_by_an_uploaded_copy(
    server: DeeptagServer, samples: dict[str, Path], tmp_path: Path
) -> None:
    coffee_id = call(server, "GET", "/search", params={"q": "espresso"}).json()["hits"][0]["id"]
    by_id = call(server, "POST", "/search", json={"like": coffee_id, "k": 3}).json()
    assert by_id["hits"][0]["id"] == coffee_id
    assert len(by_id["hits"]) == 3

    copy = mirrored_recrop(samples["coffee"], tmp_path / "copy.jpg")
    data_uri = "data:image/jpeg;base64," + base64.b64encode(copy.read_bytes()).decode()
    by_example = call(server, "POST", "/search", json={"like": data_uri, "k": 2}).json()
    assert by_example["hits"][0]["id"] == coffee_id
    # Searching by example does not index the example.
    assert call(server, "GET", "/search", params={"q": "*"}).json()["total"] == len(samples)


def test_bad_search_requests_say_what_is_wrong(server: DeeptagServer) -> None:
    bad_query = call(server, "GET", "/search", params={"q": "categories.score:(("})
    assert bad_query.status_code == 400
    assert "categories.score:((" in bad_query.json()["status"]["dd_msg"]

    bad_size = call(server, "GET", "/search", params={"q": "x", "size": 0})
    assert bad_size.status_code == 400
    assert "size" in bad_size.json()["status"]["dd_msg"]

    unknown = call(server, "POST", "/search", json={"like": "0" * 64})
    assert unknown.status_code == 404
    assert "0" * 64 in unknown.json()["status"]["dd_msg"]

    reserved = call(
        server, "POST", "/index", json={"data": ["x"], "metadata": {"uri": "y", "album": "z"}}
    )
    assert reserved.status_code == 400
    assert "metadata: metadata key(s) uri are fields" in (reserved.json()["status"]["dd_msg"])

    outside = call(server, "POST", "/search", json={"like": "/etc/hostname"})
    assert outside.status_code == 400
    assert "/etc/hostname" in outside.json()["status"]["dd_msg"]

    assert call(server, "GET", "/health").status_code == 200  # still serving


def test_index_isolates_bad_items_and_keeps_uploads(
    server: DeeptagServer, samples: dict[str, Path], tmp_path: Path
) -> None:
    copy = mirrored_recrop(samples["chelsea"], tmp_path / "upload.jpg")
    data_uri = "data:image/jpeg;base64," + base64.b64encode(copy.read_bytes()).decode()
    answer = call(
        server,
        "POST",
        "/index",
        json={
            "data": [data_uri, str(sample_dir() / "no-such-photo.jpg")],
            "metadata": {"by": "test"},
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["indexed"] == 1
    (failure,) = body["failed"]
    assert failure["uri"] == str(sample_dir() / "no-such-photo.jpg")
    assert "no-such-photo.jpg" in failure["error"]
    hit = call(server, "POST", "/search", json={"like": body["ids"][0], "k": 1}).json()["hits"][0]
    # The upload is kept under the data directory, named by its content and format.
    assert hit["uri"].endswith(f"uploads/{body['ids'][0]}.jpg")
    assert Path(hit["uri"]).read_bytes() == copy.read_bytes()
    assert hit["metadata"] == {"by": "test"}


def test_info_reports_the_backend_and_its_size(server: DeeptagServer) -> None:
    search = call(server, "GET", "/info").json()["head"]["search"]
    assert search["backend"] in ("embedded", "es")
    assert search["documents"] >= 5
