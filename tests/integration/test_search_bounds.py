"""No number or query string in a search request can take `deeptag serve` down.

tantivy aborts its whole process on an allocation it cannot make, and its parser overflows
the stack on deeply nested parentheses: these requests used to kill the server (and a local
Triton with it). They run against a real `deeptag serve` subprocess, which must answer each
with a 400 in DeepDetect's error shape and keep serving.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT, DeeptagServer, ServerFactory
from tests.environment import clean_environment
from tests.search_support import start_search_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["embedded", "es"])
def server(
    request: pytest.FixtureRequest,
    start_deeptag: ServerFactory,
    samples: dict[str, Path],
    elasticsearch_url: str,
) -> DeeptagServer:
    server = start_search_server(start_deeptag, request.param, elasticsearch_url, "deeptag-bounds")
    for name, metadata in (("coffee", {"year": 2019}), ("rocket", {})):
        answer = httpx.post(
            f"{server.url}/index",
            json={"data": [str(samples[name])], "metadata": metadata},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
    return server


def call(server: DeeptagServer, method: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}/search", timeout=60, **kwargs)


def assert_refused(answer: httpx.Response, message: str) -> None:
    assert answer.status_code == 400, answer.text
    status = answer.json()["status"]
    assert (status["code"], status["dd_code"]) == (400, 1006)
    assert message in status["dd_msg"]


def assert_still_serving(server: DeeptagServer) -> None:
    assert server.process.poll() is None, server.log_path.read_text()[-2000:]
    answer = call(server, "GET", params={"q": "espresso"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] >= 1


def test_a_huge_from_is_refused_and_the_server_survives(server: DeeptagServer) -> None:
    answer = call(server, "GET", params={"q": "*", "from": 10_000_000_000, "size": 10})
    assert_refused(answer, "from + size must be at most 10000 (from=10000000000, size=10)")
    assert_still_serving(server)

    answer = call(server, "POST", json={"from": 28428914557750344})
    assert_refused(answer, "from + size must be at most 10000 (from=28428914557750344, size=20)")
    assert_still_serving(server)


def test_the_result_window_ends_at_ten_thousand_as_on_elasticsearch(
    server: DeeptagServer,
) -> None:
    last_page = call(server, "GET", params={"q": "*", "from": 9990, "size": 10})
    assert last_page.status_code == 200, last_page.text
    assert last_page.json()["hits"] == []

    past = call(server, "POST", json={"q": "*", "from": 9991, "size": 10})
    assert_refused(past, "from + size must be at most 10000 (from=9991, size=10)")


def test_a_number_too_long_to_print_is_refused_briefly(server: DeeptagServer) -> None:
    answer = call(server, "POST", content=b'{"from": 1' + b"0" * 60 + b"}")
    assert_refused(answer, "from + size must be at most 10000 (from=~10^60, size=20)")
    assert len(answer.json()["status"]["dd_msg"]) < 200
    assert_still_serving(server)


def test_deeply_nested_parentheses_are_refused_and_the_server_survives(
    server: DeeptagServer,
) -> None:
    unbalanced = "(" * 5000 + "espresso"
    answer = call(server, "POST", json={"q": unbalanced})
    assert_refused(answer, "parentheses nested 5000 deep, over the limit of 100")
    # The query is named, not echoed whole.
    assert len(answer.json()["status"]["dd_msg"]) < 300
    assert_still_serving(server)

    balanced = "(" * 3000 + "espresso" + ")" * 3000
    assert_refused(call(server, "POST", json={"q": balanced}), "nested 3000 deep")
    assert_still_serving(server)


def test_a_metadata_range_with_bounds_of_two_number_kinds_is_a_clear_error(
    server: DeeptagServer,
) -> None:
    answer = call(server, "GET", params={"q": "year:[2000 TO 2020.5]"})
    backend = httpx.get(f"{server.url}/info", timeout=60).json()["head"]["search"]["backend"]
    if backend == "embedded":
        # tantivy cannot evaluate it (it used to answer 503, as if the index were broken).
        assert_refused(answer, "query 'year:[2000 TO 2020.5]': tantivy cannot evaluate it")
        assert "year:>=2000 AND year:<=2020.5" in answer.json()["status"]["dd_msg"]
    else:
        assert answer.json()["total"] == 1, answer.text
    assert_still_serving(server)


def test_the_cli_refuses_the_same_page_in_the_same_words(tmp_path: Path) -> None:
    environment = {
        **clean_environment(),
        "DEEPTAG_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [
            *(sys.executable, "-m", "orchestrator", "search", "espresso"),
            *("--sink", "embedded", "--from", "10000000000"),
        ],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "from + size must be at most 10000 (from=10000000000, size=10)" in done.stderr
    assert "Traceback" not in done.stderr
