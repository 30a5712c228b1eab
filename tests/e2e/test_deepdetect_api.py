"""`deeptag serve` driven by a client written from DeepDetect's API documentation alone.

The client below follows DeepDetect's docs/api.md (its curl and Python examples): the calls,
their bodies and the fields a reader of that page relies on. It knows nothing of deeptag.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from tests.conftest import DeeptagServer, ServerFactory, jpeg_bytes

pytestmark = pytest.mark.e2e

ESPRESSO = "n07920052 espresso"


@dataclass(frozen=True)
class Reply:
    code: int
    json: dict[str, Any]


class DocumentedClient:
    """DeepDetect's documented REST calls, one method per call of its Python client."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=120)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Reply:
        answer = self._http.request(method, path, **kwargs)
        return Reply(answer.status_code, answer.json())

    def info(self, status: bool | None = None) -> Reply:
        params = {} if status is None else {"status": str(status).lower()}
        return self._call("GET", "/info", params=params)

    def put_service(
        self,
        sname: str,
        model: dict[str, Any],
        description: str,
        mllib: str,
        parameters_input: dict[str, Any],
        parameters_mllib: dict[str, Any],
        parameters_output: dict[str, Any],
        mltype: str = "supervised",
    ) -> Reply:
        body = {
            "description": description,
            "mllib": mllib,
            "type": mltype,
            "parameters": {
                "input": parameters_input,
                "mllib": parameters_mllib,
                "output": parameters_output,
            },
            "model": model,
        }
        return self._call("PUT", f"/services/{sname}", json=body)

    def get_service(self, sname: str) -> Reply:
        return self._call("GET", f"/services/{sname}")

    def delete_service(self, sname: str, clear: str | None = None) -> Reply:
        return self._call("DELETE", f"/services/{sname}", params={"clear": clear} if clear else {})

    def post_predict(
        self,
        sname: str,
        data: list[str | Path | npt.NDArray[np.uint8]],
        parameters_input: dict[str, Any],
        parameters_mllib: dict[str, Any],
        parameters_output: dict[str, Any],
        use_base64: bool = False,
    ) -> Reply:
        # "data: array of data URI over which to make predictions, supports base64 for images".
        # Arrays are images: they always travel as base64 PNG, local files when asked.
        items = [
            _base64(item) if use_base64 or not isinstance(item, str | Path) else str(item)
            for item in data
        ]
        body = {
            "service": sname,
            "parameters": {
                "input": parameters_input,
                "mllib": parameters_mllib,
                "output": parameters_output,
            },
            "data": items,
        }
        return self._call("POST", "/predict", json=body)


def _base64(item: str | Path | npt.NDArray[np.uint8]) -> str:
    if isinstance(item, np.ndarray):
        out = io.BytesIO()
        Image.fromarray(item).save(out, "PNG")
        raw = out.getvalue()
    else:
        raw = Path(item).read_bytes()
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Photos:
    url: str  # a JPEG served over HTTP
    missing_url: str
    png_path: Path
    jpeg_path: Path
    array: npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def photos(samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Photos]:
    coffee_jpeg = jpeg_bytes(samples["coffee"])
    folder = tmp_path_factory.mktemp("photos")
    jpeg_path = folder / "coffee.jpg"
    jpeg_path.write_bytes(coffee_jpeg)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != "/coffee.jpg":
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(coffee_jpeg)))
            self.end_headers()
            self.wfile.write(coffee_jpeg)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield Photos(
            url=f"{base}/coffee.jpg",
            missing_url=f"{base}/gone.jpg",
            png_path=samples["coffee"],
            jpeg_path=jpeg_path,
            array=np.asarray(Image.open(samples["coffee"]).convert("RGB")),
        )
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(start_deeptag: ServerFactory, photos: Photos) -> DeeptagServer:
    return start_deeptag(
        {
            "DEEPTAG_FETCH_ALLOW_PRIVATE": "true",
            "DEEPTAG_IMAGE_ROOTS": f"{photos.png_path.parent},{photos.jpeg_path.parent}",
        }
    )


@pytest.fixture
def dd(server: DeeptagServer) -> Iterator[DocumentedClient]:
    client = DocumentedClient(server.url)
    yield client
    client.close()


def create_service(dd: DocumentedClient, sname: str) -> Reply:
    # The documentation's example, with the number of classes of an ImageNet model.
    return dd.put_service(
        sname,
        {"repository": "/home/me/models/images"},
        "example image classification service",
        "torch",
        {"connector": "image", "width": 224, "height": 224, "rgb": True, "scale": 0.0039},
        {"template": "resnet18", "nclasses": 1000},
        {},
    )


def assert_classified(reply: Reply, service: str, uris: list[str], best: int) -> None:
    assert reply.code == 200, reply.json
    assert reply.json["status"]["code"] == 200
    assert reply.json["status"]["msg"] == "OK"
    head = reply.json["head"]
    assert head["method"] == "/predict"
    assert head["service"] == service
    assert isinstance(head["time"], int | float)
    predictions = reply.json["body"]["predictions"]
    assert [p["uri"] for p in predictions] == uris
    for prediction in predictions:
        classes = prediction["classes"]
        assert len(classes) == best
        assert classes[0]["cat"] == ESPRESSO
        assert all(0.0 <= c["prob"] <= 1.0 for c in classes)
        assert classes[-1]["last"] is True


def assert_error(reply: Reply, code: int, msg: str, dd_code: int) -> None:
    assert reply.code == code, reply.json
    status = reply.json["status"]
    assert (status["code"], status["msg"], status["dd_code"]) == (code, msg, dd_code)
    assert isinstance(status["dd_msg"], str)


def test_info_answers_as_documented(dd: DocumentedClient) -> None:
    reply = dd.info()
    assert reply.code == 200
    assert reply.json["status"] == {"code": 200, "msg": "OK"}
    head = reply.json["head"]
    assert head["method"] == "/info"
    for key in ("version", "branch", "commit"):
        assert isinstance(head[key], str)
    imageserv = next(s for s in head["services"] if s["name"] == "imageserv")
    assert isinstance(imageserv["description"], str)
    assert isinstance(imageserv["mllib"], str)
    assert "predict_count" in imageserv["service_stats"]
    assert dd.info(status=True).code == 200


def test_service_lifecycle_with_service_stats(dd: DocumentedClient, photos: Photos) -> None:
    assert create_service(dd, "DDStats").json == {"status": {"code": 201, "msg": "Created"}}
    # DeepDetect's service names are case-insensitive.
    described = dd.get_service("ddstats")
    assert described.json["status"] == {"code": 200, "msg": "OK"}
    body = described.json["body"]
    assert body["name"] == "ddstats"
    assert body["mllib"] == "torch"
    assert body["description"] == "example image classification service"
    assert isinstance(body["jobs"], list)
    assert body["service_stats"]["predict_count"] == 0

    parameters_output = {"best": 3}
    calls = [[photos.url, photos.png_path], [photos.array], [photos.missing_url]]
    for data in calls:
        assert dd.post_predict("ddstats", data, {}, {"gpu": False}, parameters_output).code == 200

    stats = dd.get_service("ddstats").json["body"]["service_stats"]
    assert stats["predict_count"] == 3
    assert stats["predict_success"] == 2
    assert stats["predict_failure"] == 1  # nothing could be tagged in the last call
    assert stats["inference_count"] == 3
    assert stats["avg_batch_size"] == 1.0
    assert stats["avg_predict_duration"] > 0
    assert stats["avg_transform_duration"] > 0
    assert stats["total_transform_duration_ms"] > 0
    assert stats["avg_predict_duration_ms"] == pytest.approx(
        stats["avg_predict_duration"] * 1000, abs=0.01
    )

    assert dd.delete_service("ddstats", clear="full").json == {"status": {"code": 200, "msg": "OK"}}
    gone = dd.get_service("ddstats")
    assert_error(gone, 404, "NotFound", 1002)
    assert gone.json["status"]["dd_msg"].startswith("Service Not Found")


def test_predict_from_url_path_and_numpy_array(dd: DocumentedClient, photos: Photos) -> None:
    by_uri = dd.post_predict("imageserv", [photos.url, photos.png_path], {}, {}, {"best": 3})
    assert_classified(by_uri, "imageserv", [photos.url, str(photos.png_path)], best=3)
    # dd_client sends a numpy array as a base64 PNG; base64 items are named by their index.
    from_array = dd.post_predict("imageserv", [photos.array], {}, {}, {})
    assert_classified(from_array, "imageserv", ["0"], best=1)


def test_predict_from_base64_files(dd: DocumentedClient, photos: Photos) -> None:
    # Plain base64 of a JPEG starts with "/9j/", of a PNG with "iVBOR".
    reply = dd.post_predict(
        "imageserv", [photos.jpeg_path, photos.png_path], {}, {}, {}, use_base64=True
    )
    assert_classified(reply, "imageserv", ["0", "1"], best=1)


def test_errors_have_the_documented_shape(dd: DocumentedClient) -> None:
    assert_error(dd.post_predict("nosuchservice", ["x.jpg"], {}, {}, {}), 404, "NotFound", 1002)
    assert_error(dd.get_service("nosuchservice"), 404, "NotFound", 1002)
    assert_error(dd.delete_service("nosuchservice"), 404, "NotFound", 1002)
    assert_error(dd.post_predict("imageserv", [], {}, {}, {}), 400, "BadRequest", 1001)
    assert_error(create_service(dd, "imageserv"), 409, "Conflict", 1014)
    csv = dd.put_service(
        "covert", {"repository": "/tmp"}, "", "torch", {"connector": "csv"}, {}, {}
    )
    assert_error(csv, 404, "NotFound", 1004)
    assert "csv" in csv.json["status"]["dd_msg"]


def test_numeric_rows_are_refused_with_a_reason(server: DeeptagServer) -> None:
    # What a CSV or tensor client would send: an image service says what it takes instead.
    body = {"service": "imageserv", "data": [[0.1, 0.2, 0.3]]}
    answer = httpx.post(f"{server.url}/predict", json=body, timeout=60)
    assert answer.status_code == 400
    assert answer.json()["status"]["dd_code"] == 1006
    assert "base64" in answer.json()["status"]["dd_msg"]
