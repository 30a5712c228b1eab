"""What one request may cost a running `deeptag serve`: items, body bytes, memory, time.

A slow local image server counts the fetches it sees, so each test can tell whether the server
did work it should not have (fetching for a refused request, or for a client that has left).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DeeptagServer, ServerFactory, jpeg_bytes
from tests.integration.conftest import ImageServer

pytestmark = pytest.mark.integration

CHUNK = 4
BODY_LIMIT = 100_000
SLOW_S = 0.4


@dataclass
class SlowImages:
    """Answers every GET with a JPEG after SLOW_S seconds, counting the requests."""

    url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: int = 0
    in_flight: int = 0
    peak: int = 0

    def urls(self, count: int) -> list[str]:
        return [f"{self.url}/photo{i:04d}.jpg" for i in range(count)]

    def settled_count(self, quiet_s: float = 1.5, bound_s: float = 30.0) -> int:
        """Requests received once none has arrived for ``quiet_s`` (waits at most ``bound_s``)."""
        deadline = time.monotonic() + bound_s
        last, last_change = self.received, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if self.received != last:
                last, last_change = self.received, time.monotonic()
            elif time.monotonic() - last_change >= quiet_s and self.in_flight == 0:
                break
        return self.received


@pytest.fixture
def slow_images(samples: dict[str, Path]) -> Iterator[SlowImages]:
    photo = jpeg_bytes(samples["coffee"])
    holder: list[SlowImages] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state = holder[0]
            with state.lock:
                state.received += 1
                state.in_flight += 1
                state.peak = max(state.peak, state.in_flight)
            try:
                time.sleep(SLOW_S)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(photo)))
                self.end_headers()
                self.wfile.write(photo)
            except OSError:
                pass  # the fetcher went away: that is what some tests want
            finally:
                with state.lock:
                    state.in_flight -= 1

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    holder.append(SlowImages(f"http://127.0.0.1:{server.server_address[1]}"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()


BOUNDED_ENV = {
    "DEEPTAG_FETCH_ALLOW_PRIVATE": "true",
    "DEEPTAG_PREDICT_CHUNK_SIZE": str(CHUNK),
    "DEEPTAG_MAX_BODY_BYTES": str(BODY_LIMIT),
}


@pytest.fixture(scope="module")
def server(start_deeptag: ServerFactory) -> DeeptagServer:
    return start_deeptag(BOUNDED_ENV)


@pytest.fixture(scope="module")
def hasty_server(start_deeptag: ServerFactory) -> DeeptagServer:
    return start_deeptag({**BOUNDED_ENV, "DEEPTAG_PREDICT_TIMEOUT_S": "1.5"})


def predict_body(data: list[str]) -> dict[str, Any]:
    return {"service": "imageserv", "parameters": {"output": {"best": 1}}, "data": data}


def assert_dd_error(response: httpx.Response, status: int, dd_code: int, *words: str) -> None:
    assert response.status_code == status, response.text[:300]
    error = response.json()["status"]
    assert (error["code"], error["dd_code"]) == (status, dd_code), error
    for word in words:
        assert word in error["dd_msg"], error


@pytest.mark.parametrize("route", ["/predict", "/index"])
def test_too_many_items_are_refused_before_anything_is_fetched(
    server: DeeptagServer, slow_images: SlowImages, route: str
) -> None:
    data = slow_images.urls(1001)
    body = predict_body(data) if route == "/predict" else {"data": data}
    response = httpx.post(f"{server.url}{route}", json=body, timeout=60)
    assert_dd_error(response, 413, 1006, "1001 items", "limit of 1000", "DEEPTAG_MAX_DATA_ITEMS")
    assert slow_images.settled_count(quiet_s=0.5) == 0


def test_a_body_declared_over_the_byte_limit_is_refused_unread(server: DeeptagServer) -> None:
    image = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(BODY_LIMIT)).decode()
    response = httpx.post(f"{server.url}/predict", json=predict_body([image]), timeout=60)
    assert_dd_error(response, 413, 1006, f"{BODY_LIMIT} byte limit", "DEEPTAG_MAX_BODY_BYTES")


def test_a_streamed_body_is_cut_off_at_the_byte_limit(server: DeeptagServer) -> None:
    # No Content-Length: the server can only count what arrives.
    head = b'{"service": "imageserv", "data": ["'
    pieces = [head, *(b"A" * 10_000 for _ in range(2 * BODY_LIMIT // 10_000)), b'"]}']
    response = httpx.post(f"{server.url}/predict", content=iter(pieces), timeout=60)
    assert "content-length" not in response.request.headers
    assert_dd_error(response, 413, 1006, f"more than {BODY_LIMIT} bytes arrived")


def test_a_body_under_the_limit_still_works(
    server: DeeptagServer, samples: dict[str, Path]
) -> None:
    encoded = base64.b64encode(jpeg_bytes(samples["coffee"], quality=60)).decode()
    assert len(encoded) < BODY_LIMIT
    response = httpx.post(f"{server.url}/predict", json=predict_body([encoded]), timeout=60)
    assert response.status_code == 200, response.text[:300]
    (prediction,) = response.json()["body"]["predictions"]
    assert prediction["classes"][0]["cat"] == "n07920052 espresso"


def test_a_long_request_keeps_its_order_and_its_bad_item_in_place(
    server: DeeptagServer, image_server: ImageServer
) -> None:
    names = ["coffee", "chelsea", "rocket", "astronaut", "motorcycle"]
    data = [f"{image_server.url}/{names[i % len(names)]}.jpg" for i in range(3 * CHUNK + 1)]
    bad = CHUNK + 1  # in the middle of the second chunk
    data[bad] = f"{image_server.url}/notes.txt"
    response = httpx.post(f"{server.url}/predict", json=predict_body(data), timeout=120)
    assert response.status_code == 200, response.text[:300]
    predictions = response.json()["body"]["predictions"]
    assert [p["uri"] for p in predictions] == data
    assert predictions[bad]["error"]["reason"] == "not_an_image"
    tops = {
        p["uri"].rsplit("/", 1)[1]: p["classes"][0]["cat"] for p in predictions if "error" not in p
    }
    assert tops["coffee.jpg"] == "n07920052 espresso"
    assert tops["rocket.jpg"] == "n03773504 missile"
    assert sum("error" in p for p in predictions) == 1


def test_images_are_fetched_one_chunk_at_a_time(
    server: DeeptagServer, slow_images: SlowImages
) -> None:
    # 16 parallel fetches are allowed, but a request only reads its next chunk of images
    # once the previous one is decoded: memory follows the chunk, not the request.
    response = httpx.post(
        f"{server.url}/predict", json=predict_body(slow_images.urls(3 * CHUNK)), timeout=120
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["status"].get("failed", 0) == 0
    assert slow_images.received == 3 * CHUNK
    assert slow_images.peak <= CHUNK


def test_work_stops_when_the_client_goes_away(
    server: DeeptagServer, slow_images: SlowImages, image_server: ImageServer
) -> None:
    urls = slow_images.urls(200)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/predict", json=predict_body(urls), timeout=1.0)
    # Fetching all 200 would take the server 5 s at 16 at a time; it stops within a chunk or two.
    assert slow_images.settled_count() <= 4 * CHUNK
    # And the next caller is served as usual.
    response = httpx.post(
        f"{server.url}/predict", json=predict_body([f"{image_server.url}/coffee.jpg"]), timeout=60
    )
    assert response.status_code == 200, response.text[:300]
    assert response.json()["body"]["predictions"][0]["classes"][0]["cat"] == "n07920052 espresso"


def test_a_request_past_its_deadline_gets_504_and_its_work_stops(
    hasty_server: DeeptagServer, slow_images: SlowImages
) -> None:
    urls = slow_images.urls(100)
    response = httpx.post(f"{hasty_server.url}/predict", json=predict_body(urls), timeout=60)
    assert_dd_error(response, 504, 1007, "1.5 s", "DEEPTAG_PREDICT_TIMEOUT_S")
    assert slow_images.settled_count() <= 4 * CHUNK
    assert json.loads(response.text)["status"]["msg"] == "GatewayTimeout"
