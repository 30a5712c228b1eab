"""An output sink that does not answer in time is a gateway timeout, in DeepDetect's shape."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory, jpeg_bytes

pytestmark = pytest.mark.integration


@pytest.fixture
def slow_sink() -> Iterator[str]:
    """An HTTP sink that accepts the connection and the body, then keeps the answer back."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            release.wait(timeout=30)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_sink_that_does_not_answer_in_time_is_a_504(
    start_deeptag: ServerFactory, slow_sink: str, samples: dict[str, Path]
) -> None:
    server = start_deeptag({"DEEPTAG_SINK_TIMEOUT_S": "1"})
    # Uploaded as DeepDetect clients do: plain base64, which for a JPEG starts with "/9j/".
    image = base64.b64encode(jpeg_bytes(samples["coffee"])).decode()
    response = httpx.post(
        f"{server.url}/predict",
        json={
            "service": "imageserv",
            "parameters": {"output": {"network": {"url": f"{slow_sink}/images/_doc"}}},
            "data": [image],
        },
        timeout=60,
    )
    assert response.status_code == 504, response.text
    status = response.json()["status"]
    assert (status["code"], status["msg"], status["dd_code"]) == (504, "GatewayTimeout", 1009)
    assert status["dd_msg"].startswith("Output Connector Network Error: sink ")
    assert f"{slow_sink}/images/_doc did not answer within 1s" in status["dd_msg"]
