"""The API key of a real ``deeptag serve``: it never shows in a URL or a log line, the page's
images load with the cookie ``POST /session`` sets, and every 401 names the Bearer scheme.

The server runs at uvicorn's default log level, as a user starts it, so its access log is on.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from orchestrator.server.auth import SessionSigner
from orchestrator.triton.launcher import LocalTriton, free_port
from tests.conftest import REPO_ROOT, jpeg_bytes
from tests.environment import clean_environment

pytestmark = pytest.mark.integration

KEY = "auth-test-key-5d1c9e0b"
AUTH = {"Authorization": f"Bearer {KEY}"}
TTL_S = 3600
SIGNER = SessionSigner.for_key(KEY)


@dataclass
class Keyed:
    url: str
    log_path: Path
    doc_id: str  # an indexed image


@pytest.fixture(scope="module")
def keyed(
    triton: LocalTriton, samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Keyed]:
    data_dir = tmp_path_factory.mktemp("auth")
    log_path = data_dir / "serve.log"
    port = free_port()
    environment = {
        **clean_environment(),
        "DEEPTAG_TRITON_URL": triton.http_url,
        "DEEPTAG_DATA_DIR": str(data_dir),
        "DEEPTAG_API_KEY": KEY,
        "DEEPTAG_SESSION_TTL_S": str(TTL_S),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        photo = jpeg_bytes(samples["coffee"])
        data = ["data:image/jpeg;base64," + base64.b64encode(photo).decode()]
        answer = httpx.post(f"{url}/index", json={"data": data}, headers=AUTH, timeout=120)
        assert answer.status_code == 200, answer.text
        assert answer.json()["indexed"] == 1, answer.text
        yield Keyed(url, log_path, hashlib.sha256(photo).hexdigest())
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def assert_unauthorized(response: httpx.Response) -> str:
    """A 401 in DeepDetect's error shape that names the scheme; its message, key-free."""
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"].startswith("application/json")
    status = response.json()["status"]
    assert (status["code"], status["msg"], status["dd_code"]) == (401, "Unauthorized", 1006)
    message = str(status["dd_msg"])
    assert message.startswith("Unauthorized: ")
    assert KEY not in response.text
    return message


def open_session(client: httpx.Client) -> httpx.Response:
    answer = client.post("/session", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer


def test_a_401_names_the_bearer_scheme_and_keeps_the_error_shape(keyed: Keyed) -> None:
    with httpx.Client(base_url=keyed.url, timeout=30) as anonymous:
        for response in (
            anonymous.get("/search", params={"q": "*"}),
            anonymous.get("/info", headers={"Authorization": "Bearer not-the-key"}),
            anonymous.post("/predict", json={"data": ["x"]}, headers={"Authorization": "Basic x"}),
            anonymous.get(f"/thumbnails/{keyed.doc_id}"),
            anonymous.post("/session", headers={"Authorization": "Bearer not-the-key"}),
        ):
            assert_unauthorized(response)
        # /health stays open to load balancers.
        assert anonymous.get("/health").status_code == 200


def test_the_page_flow_shows_images_with_a_cookie_and_no_key_in_any_url(keyed: Keyed) -> None:
    with httpx.Client(base_url=keyed.url, timeout=60) as browser:
        answer = open_session(browser)
        assert answer.json()["body"] == {"session": True, "expires_in_s": TTL_S}
        cookie = answer.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "samesite", "path", "max-age"} <= attributes
        assert "samesite=strict" in cookie.lower()
        assert f"max-age={TTL_S}" in cookie.lower()
        assert "path=/" in cookie.lower()
        assert KEY not in cookie
        assert SIGNER.cookie_name in browser.cookies

        # From here on the client sends the cookie only, as <img> and <a> do.
        thumbnail = browser.get(f"/thumbnails/{keyed.doc_id}")
        assert thumbnail.status_code == 200, thumbnail.text
        assert thumbnail.headers["content-type"] == "image/jpeg"
        original = browser.get(f"/images/{keyed.doc_id}")
        assert original.status_code == 200, original.text
        assert original.headers["content-type"].startswith("image/")
        # The cookie opens images only: the API, and anything that changes state, needs the
        # header, so a page on another site can never act with the user's cookie.
        assert_unauthorized(browser.get("/search", params={"q": "*"}))
        assert_unauthorized(browser.post("/index", json={"data": ["x"]}))

        closed = browser.delete("/session")
        assert closed.status_code == 200
        assert SIGNER.cookie_name not in browser.cookies
        assert_unauthorized(browser.get(f"/thumbnails/{keyed.doc_id}"))


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(SIGNER.issue(int(time.time()) - 5), id="expired"),
        pytest.param("v1.9999999999.c2lnbmVkLWJ5LW5vYm9keQ", id="forged"),
        pytest.param(SessionSigner.for_key("another key").issue(2**32), id="other-key"),
        pytest.param(SIGNER.issue(2**32)[:-2] + "AA", id="tampered"),
        pytest.param(KEY, id="the-key-itself"),
        pytest.param("v1." + "9" * 5000, id="huge"),
        # str.isdigit() accepts superscripts that int() refuses: a 401, not a 500.
        pytest.param("v1.\u00b2.c2lnbmVk", id="superscript-digit"),
    ],
)
def test_a_forged_or_expired_cookie_is_refused(keyed: Keyed, token: str) -> None:
    # Sent as raw latin-1 bytes: a browser may send any of them, httpx's cookie jar would not.
    cookie = f"{SIGNER.cookie_name}={token}".encode("latin-1")
    with httpx.Client(base_url=keyed.url, timeout=30) as browser:
        for route in ("thumbnails", "images"):
            answer = browser.get(f"/{route}/{keyed.doc_id}", headers={"Cookie": cookie})
            message = assert_unauthorized(answer)
            assert "invalid or expired" in message
            assert "POST /session" in message


def test_the_key_in_the_query_string_is_no_longer_accepted(keyed: Keyed) -> None:
    with httpx.Client(base_url=keyed.url, timeout=30) as anonymous:
        message = assert_unauthorized(
            anonymous.get(f"/thumbnails/{keyed.doc_id}", params={"key": KEY})
        )
        assert "'?key=' is no longer accepted" in message


def test_the_access_log_never_shows_the_key(keyed: Keyed) -> None:
    with httpx.Client(base_url=keyed.url, timeout=60) as browser:
        # What a page does: the key once as a header, then images with the cookie...
        open_session(browser)
        assert browser.get(f"/thumbnails/{keyed.doc_id}").status_code == 200
        assert browser.get("/search", params={"q": "*"}, headers=AUTH).status_code == 200
        # ...and what an old bookmark or script still sends.
        browser.cookies.clear()
        browser.get(f"/images/{keyed.doc_id}", params={"key": KEY, "size": "1"})
        browser.get(f"/thumbnails/{keyed.doc_id}?api_key={KEY}")
    log = keyed.log_path.read_text()
    # The access log is on, so the absence of the key below means something.
    assert f"GET /thumbnails/{keyed.doc_id} HTTP/1.1" in log, log[-2000:]
    assert f"GET /images/{keyed.doc_id}?key=[redacted]&size=1 HTTP/1.1" in log, log[-2000:]
    assert KEY not in log
