"""``/openapi.json`` tells the truth: schemathesis fuzzes every operation of a real `deeptag serve`.

The run fails on any 5xx, on a status code or content type the document does not list, and on
a response that does not match its schema. It is bounded (a fixed number of examples per
operation, a fixed seed, derandomized), so every run sends the same requests, well within
three minutes on two busy cores.

No fuzzed request leaves this machine: the server keeps its default fetch policy, which refuses
loopback and private addresses and local paths (no image roots); the document's examples are
base64 images and a folder path, not URLs, and random strings do not make a public URL that
resolves. ``DELETE /services/{name}`` is fuzzed too: it only meets names the fuzzer made up,
and the last test checks that the default service outlived the run.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orchestrator.server.app import create_app
from orchestrator.settings import Settings
from tests.conftest import DeeptagServer, ServerFactory

pytestmark = pytest.mark.integration

API_KEY = "openapi-fuzz-key"
#: Examples per operation and phase (about half a minute for all of them here).
MAX_EXAMPLES = 40
SEED = 20_261_211
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def server(start_deeptag: ServerFactory) -> DeeptagServer:
    return start_deeptag({"DEEPTAG_API_KEY": API_KEY, "DEEPTAG_SEARCH_BACKEND": "embedded"})


@pytest.fixture(scope="module")
def document(server: DeeptagServer) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/openapi.json", timeout=30)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


@pytest.mark.parametrize(
    "name",
    [
        "POST /predict",
        "POST /search",
        "POST /index",
        "PUT /services/{name}",
        "POST /services/{name}",
        "PUT /train",
        "POST /train",
    ],
)
def test_routes_that_read_a_body_declare_it(document: dict[str, Any], name: str) -> None:
    body = operations(document)[name]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] is True
    assert schema["type"] == "object"
    assert schema["properties"]


def test_the_request_bodies_are_the_models_that_validate_them(document: dict[str, Any]) -> None:
    predict = operations(document)["POST /predict"]["requestBody"]["content"]["application/json"]
    assert predict["schema"]["required"] == ["service", "data"]
    # Unknown fields are refused, as the document says.
    assert predict["schema"]["additionalProperties"] is False
    best = predict["schema"]["properties"]["parameters"]["properties"]["output"]["properties"]
    assert best["best"]["maximum"] == 1000
    search = operations(document)["POST /search"]["requestBody"]["content"]["application/json"]
    assert "from" in search["schema"]["properties"]


def test_no_operation_lists_fastapi_422(document: dict[str, Any]) -> None:
    # A bad parameter or body answers 400 here; 422 is only a corrupt indexed image.
    with_422 = [name for name, op in operations(document).items() if "422" in op["responses"]]
    assert with_422 == ["GET /thumbnails/{doc_id}"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for op in operations(document).values()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("name", "status", "kinds"),
    [
        ("POST /predict", "200", {"application/json", "text/plain"}),
        ("GET /metrics", "200", {"text/plain"}),
        ("GET /thumbnails/{doc_id}", "200", {"image/jpeg"}),
        ("GET /", "200", {"text/html"}),
        ("GET /docs", "200", {"text/html"}),
    ],
)
def test_responses_name_their_content_types(
    document: dict[str, Any], name: str, status: str, kinds: set[str]
) -> None:
    assert set(operations(document)[name]["responses"][status]["content"]) == kinds


def test_errors_are_documented_in_deepdetect_shape(document: dict[str, Any]) -> None:
    responses = operations(document)["POST /predict"]["responses"]
    assert {"400", "401", "403", "404", "413", "502", "503", "504"} <= set(responses)
    error = responses["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorResponse"}
    status = document["components"]["schemas"]["ErrorStatus"]
    assert set(status["required"]) == {"code", "msg", "dd_code", "dd_msg"}
    assert "409" in operations(document)["PUT /services/{name}"]["responses"]


def test_routes_behind_the_key_say_so(document: dict[str, Any]) -> None:
    ops = operations(document)
    assert ops["POST /predict"]["security"] == [{"bearer": []}]
    assert "401" in ops["POST /predict"]["responses"]
    assert "security" not in ops["GET /health"]
    assert "401" not in ops["GET /health"]["responses"]


def test_the_fuzzed_document_is_the_served_one(document: dict[str, Any]) -> None:
    assert document == DOCUMENT


def _fuzzed_schema() -> schemathesis.BaseSchema:
    """The document of a server with an API key, built in-process so operations are collected
    as tests of their own (the fixture-based loader does not run on this pytest)."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "request-timeout": 60,
            "auth": {"openapi": {"bearer": {"bearer": API_KEY}}},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            # Stateful runs chain calls through links, which this document does not declare.
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_dict(DOCUMENT, config=config)


DOCUMENT = create_app(Settings(api_key=SecretStr(API_KEY))).openapi()
fuzzed = _fuzzed_schema()


@fuzzed.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_behaves_as_documented(
    case: schemathesis.Case, server: DeeptagServer
) -> None:
    case.call_and_validate(base_url=server.url, checks=CHECKS)


def test_the_default_service_outlives_the_run(server: DeeptagServer) -> None:
    # Runs after the fuzzer (file order): the service the examples use is still there.
    answer = httpx.get(
        f"{server.url}/services/imageserv",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert answer.status_code == 200
