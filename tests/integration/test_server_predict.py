"""`deeptag serve` as DeepDetect users drive it: /predict, templates, sinks, errors, services."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.triton.launcher import free_port
from tests.conftest import DeeptagServer, ServerFactory
from tests.integration.conftest import ImageServer

pytestmark = pytest.mark.integration

# DeepDetect's "Categorizing images into Elasticsearch" templates, verbatim except that
# Elasticsearch 8 has no mapping types ("_type":"img" removed, /images/img -> /images/_doc).
TUTORIAL_SINGLE_TEMPLATE = (
    '{ {{#body}}{{#predictions}} "uri":"{{uri}}","categories": [ {{#classes}} '
    '{ "category":"{{cat}}","score":{{prob}} } {{^last}},{{/last}}{{/classes}} ] '
    "{{/predictions}}{{/body}} }"
)
TUTORIAL_BULK_TEMPLATE = (
    '{{#body}} {{#predictions}} { "index": {"_index": "images" } }\n '
    '{"doc": { "uri":"{{uri}}","categories": [ {{#classes}} { "category":"{{cat}}",'
    '"score":{{prob}} } {{^last}},{{/last}}{{/classes}} ] } }\n {{/predictions}} {{/body}} }'
)


@pytest.fixture(scope="module")
def server(start_deeptag: ServerFactory) -> DeeptagServer:
    return start_deeptag(
        {"DEEPTAG_FETCH_ALLOW_PRIVATE": "true", "DEEPTAG_MAX_IMAGE_BYTES": str(2 * 1024 * 1024)}
    )


def predict(server: DeeptagServer, body: dict[str, Any] | str, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    # DeepDetect's examples use `curl -d`, which sends a form content type.
    headers = {"Content-Type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})}
    return httpx.post(
        f"{server.url}/predict", content=content, headers=headers, timeout=60, **kwargs
    )


def tutorial_request(template: str, sink_url: str, data: list[str]) -> dict[str, Any]:
    return {
        "service": "imageserv",
        "parameters": {
            "mllib": {"gpu": True},
            "input": {"width": 224, "height": 224},
            "output": {
                "best": 3,
                "template": template,
                "network": {"url": sink_url, "http_method": "POST"},
            },
        },
        "data": data,
    }


def es_search(es_url: str, index: str, query: str) -> list[dict[str, Any]]:
    httpx.post(f"{es_url}/{index}/_refresh", timeout=10)
    hits = httpx.get(f"{es_url}/{index}/_search", params={"q": query}, timeout=10).json()
    return [hit["_source"] for hit in hits["hits"]["hits"]]


def test_tutorial_single_document_lands_in_elasticsearch(
    server: DeeptagServer, image_server: ImageServer, elasticsearch_url: str
) -> None:
    coffee = f"{image_server.url}/coffee.jpg"
    response = predict(
        server,
        tutorial_request(TUTORIAL_SINGLE_TEMPLATE, f"{elasticsearch_url}/tutorial1/_doc", [coffee]),
    )
    # The answer is Elasticsearch's own, status included.
    assert response.status_code == 201, response.text
    assert response.json()["result"] == "created"
    (document,) = es_search(elasticsearch_url, "tutorial1", "espresso")
    assert document["uri"] == coffee
    assert document["categories"][0]["category"] == "n07920052 espresso"
    assert len(document["categories"]) == 3


def test_tutorial_bulk_request_indexes_every_image(
    server: DeeptagServer, image_server: ImageServer, elasticsearch_url: str
) -> None:
    coffee, chelsea = f"{image_server.url}/coffee.jpg", f"{image_server.url}/chelsea.jpg"
    response = predict(
        server,
        tutorial_request(
            TUTORIAL_BULK_TEMPLATE, f"{elasticsearch_url}/images/_bulk", [coffee, chelsea]
        ),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["errors"] is False
    assert len(answer["items"]) == 2
    assert [d["doc"]["uri"] for d in es_search(elasticsearch_url, "images", "espresso")] == [coffee]
    cats = es_search(elasticsearch_url, "images", "cat")
    assert [d["doc"]["uri"] for d in cats] == [chelsea]
    assert all(c["score"] > 0 for c in cats[0]["doc"]["categories"])


def test_mixed_batch_indexes_exactly_the_good_images(
    server: DeeptagServer, image_server: ImageServer, elasticsearch_url: str
) -> None:
    good = [f"{image_server.url}/rocket.jpg", f"{image_server.url}/motorcycle.jpg"]
    bad = [f"{image_server.url}/notes.txt", f"{image_server.url}/gone.jpg"]
    response = predict(
        server,
        tutorial_request(
            TUTORIAL_BULK_TEMPLATE.replace('"images"', '"mixed"'),
            f"{elasticsearch_url}/mixed/_bulk",
            [bad[0], good[0], bad[1], good[1]],
        ),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["items"]) == 2
    assert answer["deeptag"]["status"]["failed"] == 2
    assert [f["uri"] for f in answer["deeptag"]["failed"]] == bad
    assert response.headers["X-Deeptag-Failed"] == "2"
    httpx.post(f"{elasticsearch_url}/mixed/_refresh")
    everything = httpx.get(f"{elasticsearch_url}/mixed/_search", params={"size": 50}).json()
    assert sorted(h["_source"]["doc"]["uri"] for h in everything["hits"]["hits"]) == sorted(good)


def test_every_bad_image_is_named_and_the_rest_classified(
    server: DeeptagServer, image_server: ImageServer, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/photo.jpg"
    cases = {
        closed: "fetch",
        f"{image_server.url}/gone.jpg": "not_found",
        f"{image_server.url}/notes.txt": "not_an_image",
        f"{image_server.url}/truncated.jpg": "corrupt",
        f"{image_server.url}/bomb.png": "too_large",
        f"{image_server.url}/huge.jpg": "too_large",
        "http://169.254.169.254/latest/meta-data/": "refused",
    }
    coffee = f"{image_server.url}/redirect/coffee.jpg"
    response = predict(
        server,
        {"service": "imageserv", "parameters": {"output": {"best": 2}}, "data": [*cases, coffee]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"]["failed"] == len(cases)
    *failures, good = body["body"]["predictions"]
    for uri, prediction in zip(cases, failures, strict=True):
        assert prediction["uri"] == uri
        assert prediction["error"]["reason"] == cases[uri], prediction
        assert uri in prediction["error"]["msg"]
    assert good["uri"] == coffee
    assert good["classes"][0]["cat"] == "n07920052 espresso"
    assert good["last"] is True


def test_base64_and_data_uri_inputs_are_named_by_index(
    server: DeeptagServer, samples: dict[str, Path]
) -> None:
    encoded = base64.b64encode(samples["coffee"].read_bytes()).decode()
    response = predict(
        server, {"service": "imageserv", "data": [encoded, f"data:image/png;base64,{encoded}"]}
    )
    first, second = response.json()["body"]["predictions"]
    assert (first["uri"], second["uri"]) == ("0", "1")
    assert first["classes"] == second["classes"]
    assert first["classes"][0]["cat"] == "n07920052 espresso"  # best defaults to 1
    assert len(first["classes"]) == 1


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ("{not json", 400, "not valid JSON"),
        (
            {"service": "imageserv", "data": "http://x/a.jpg"},
            400,
            "data: Input should be a valid array",
        ),
        ({"service": "imageserv", "data": []}, 400, "data is empty"),
        (
            {"service": "imageserv", "parameters": {"output": {"best": "three"}}, "data": ["a"]},
            400,
            "parameters.output.best",
        ),
        (
            {
                "service": "imageserv",
                "parameters": {"output": {"tempalte": "{{uri}}"}},
                "data": ["a"],
            },
            400,
            "parameters.output.tempalte: Extra inputs are not permitted",
        ),
        (
            {
                "service": "imageserv",
                "parameters": {"output": {"template": "{{#body}}oops"}},
                "data": ["a"],
            },
            400,
            "not valid Mustache",
        ),
        ({"service": "nope", "data": ["a"]}, 404, "service 'nope' does not exist"),
        (
            {
                "service": "imageserv",
                "parameters": {"output": {"network": {"url": "http://attacker.example/x"}}},
                "data": ["a"],
            },
            403,
            "attacker.example",
        ),
    ],
)
def test_whole_request_problems_are_deepdetect_errors(
    server: DeeptagServer, body: dict[str, Any] | str, status: int, words: str
) -> None:
    response = predict(server, body)
    assert response.status_code == status
    error = response.json()["status"]
    assert error["code"] == status
    assert words in error["dd_msg"]
    assert isinstance(error["dd_code"], int)
    # The server keeps serving.
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_template_values_are_json_escaped_by_default(
    server: DeeptagServer, image_server: ImageServer
) -> None:
    tricky = f'{image_server.url}/coffee.jpg?a=1&b="q"&c=\\é'
    template = (
        '{"items":[{{#body}}{{#predictions}}{"uri":"{{uri}}"}'
        "{{^last}},{{/last}}{{/predictions}}{{/body}}]}"
    )
    response = predict(
        server,
        {
            "service": "imageserv",
            "parameters": {"output": {"template": template}},
            "data": [tricky, tricky],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [{"uri": tricky}, {"uri": tricky}]}
    html = predict(
        server,
        {
            "service": "imageserv",
            "parameters": {
                "output": {
                    "template": "{{#body}}{{#predictions}}{{uri}}{{/predictions}}{{/body}}",
                    "template_escape": "html",
                }
            },
            "data": [f"{image_server.url}/coffee.jpg?a=1&b=2"],
        },
    )
    assert html.text.endswith("a=1&amp;b=2")


def test_rendered_bulk_body_is_ndjson_with_final_newline(
    server: DeeptagServer, image_server: ImageServer
) -> None:
    image_server.received.clear()
    response = predict(
        server,
        {
            "service": "imageserv",
            "parameters": {
                "output": {
                    "template": TUTORIAL_BULK_TEMPLATE,
                    "network": {
                        "url": f"{image_server.url}/sink/_bulk",
                        "content_type": "Content-Type: application/x-ndjson",
                    },
                }
            },
            "data": [f"{image_server.url}/coffee.jpg", f"{image_server.url}/rocket.jpg"],
        },
    )
    assert response.json()["accepted"] is True
    ((method, path, body),) = image_server.received
    assert (method, path) == ("POST", "/sink/_bulk")
    text = body.decode()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 4
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_pushes_to_the_configured_elasticsearch_carry_its_login_and_only_there(
    start_deeptag: ServerFactory, image_server: ImageServer
) -> None:
    # The image server plays a secured Elasticsearch at DEEPTAG_ES_URL.
    secured = start_deeptag(
        {
            "DEEPTAG_FETCH_ALLOW_PRIVATE": "true",
            "DEEPTAG_ES_URL": image_server.url,
            "DEEPTAG_ES_USERNAME": "deeptag",
            "DEEPTAG_ES_PASSWORD": "s3cret",
        }
    )
    port = image_server.url.rsplit(":", 1)[1]
    for sink in (f"{image_server.url}/images/_doc", f"http://localhost:{port}/elsewhere"):
        answer = predict(
            secured,
            {
                "service": "imageserv",
                "parameters": {
                    "output": {"template": TUTORIAL_SINGLE_TEMPLATE, "network": {"url": sink}}
                },
                "data": [f"{image_server.url}/coffee.jpg"],
            },
        )
        assert answer.status_code == 200, answer.text
        assert "s3cret" not in answer.text
    # base64 of "deeptag:s3cret"; the other host (same port, other name) gets nothing.
    assert image_server.authorizations[-2:] == ["Basic ZGVlcHRhZzpzM2NyZXQ=", None]


def test_sink_failures_quote_the_sink(server: DeeptagServer, image_server: ImageServer) -> None:
    def send_to(url: str) -> httpx.Response:
        return predict(
            server,
            {
                "service": "imageserv",
                "parameters": {"output": {"network": {"url": url, "http_method": "PUT"}}},
                "data": [f"{image_server.url}/coffee.jpg"],
            },
        )

    broken = send_to(f"{image_server.url}/fail/here")
    assert broken.status_code == 502
    assert "answered 500" in broken.json()["status"]["dd_msg"]
    assert "sink is broken today" in broken.json()["status"]["dd_msg"]
    unreachable = send_to(f"http://127.0.0.1:{free_port()}/x")
    # An outage of the sink, not a refusal: 503, as for an unreachable Triton.
    assert unreachable.status_code == 503
    assert "unreachable" in unreachable.json()["status"]["dd_msg"]
    # And the API's own description (the source of docs/reference/http-api.md) says so.
    spec = httpx.get(f"{server.url}/openapi.json").json()
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert "a sink cannot be reached" in responses["503"]["description"]
    assert "sink answered with an error" in responses["502"]["description"]


def test_services_lifecycle_and_stats(server: DeeptagServer, image_server: ImageServer) -> None:
    created = httpx.put(
        f"{server.url}/services/tagger",
        json={
            "mllib": "caffe",
            "description": "image classification service",
            "type": "supervised",
            "parameters": {
                "input": {"connector": "image", "width": 224, "height": 224},
                "mllib": {"nclasses": 1000},
            },
            "model": {"repository": "/opt/models/ggnet/", "name": "efficientnet_lite0"},
        },
    )
    assert created.status_code == 201, created.text
    predict(
        server,
        {
            "service": "tagger",
            "data": [f"{image_server.url}/coffee.jpg", f"{image_server.url}/gone.jpg"],
        },
    )
    service = httpx.get(f"{server.url}/services/tagger").json()
    assert service["body"]["stats"]["predict_calls"] == 1
    assert service["body"]["stats"]["failed"] == 1
    names = [s["name"] for s in httpx.get(f"{server.url}/info").json()["head"]["services"]]
    assert names == ["imageserv", "tagger"]
    assert httpx.delete(f"{server.url}/services/tagger").status_code == 200
    assert httpx.get(f"{server.url}/services/tagger").status_code == 404
    # Without model.name, nclasses 2 asks for a trainable service (tests/integration/test_train.py).
    wrong = httpx.put(
        f"{server.url}/services/bad",
        json={"parameters": {"mllib": {"nclasses": 2}}, "model": {"name": "efficientnet_lite0"}},
    )
    assert wrong.status_code == 400
    assert "nclasses is 2" in wrong.json()["status"]["dd_msg"]
    missing = httpx.put(f"{server.url}/services/bad", json={"model": {"name": "resnet_9000"}})
    assert missing.status_code == 400
    assert "resnet_9000" in missing.json()["status"]["dd_msg"]


def test_dd_client_tutorial_snippet(server: DeeptagServer, image_server: ImageServer) -> None:
    from orchestrator.client import DD

    host, port = server.url.removeprefix("http://").split(":")
    dd = DD(host, int(port))
    dd.set_return_format(dd.RETURN_PYTHON)
    data = [f"{image_server.url}/coffee.jpg", f"{image_server.url}/chelsea.jpg"]
    parameters_input: dict[str, Any] = {}
    parameters_mllib: dict[str, Any] = {}
    parameters_output = {"best": 3}
    classif = dd.post_predict(
        "imageserv", data, parameters_input, parameters_mllib, parameters_output
    )
    assert classif["status"]["code"] == 200
    assert [p["uri"] for p in classif["body"]["predictions"]] == data
    assert classif["body"]["predictions"][0]["classes"][0]["cat"] == "n07920052 espresso"
    assert dd.info()["head"]["services"][0]["name"] == "imageserv"
    dd.close()


def test_metrics_move(server: DeeptagServer, image_server: ImageServer) -> None:
    def value(text: str, line_start: str) -> float:
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = httpx.get(f"{server.url}/metrics").text
    predict(
        server,
        {
            "service": "imageserv",
            "data": [f"{image_server.url}/coffee.jpg", f"{image_server.url}/notes.txt"],
        },
    )
    after = httpx.get(f"{server.url}/metrics").text
    tagged = 'deeptag_images_processed_total{outcome="tagged"}'
    not_image = 'deeptag_item_errors_total{reason="not_an_image"}'
    infer_count = 'deeptag_stage_seconds_count{stage="infer"}'
    assert value(after, tagged) == value(before, tagged) + 1
    assert value(after, not_image) == value(before, not_image) + 1
    assert value(after, infer_count) > value(before, infer_count)
    assert 'deeptag_stage_seconds_bucket{le="0.5",stage="fetch"}' in after


def test_security_defaults(
    start_deeptag: ServerFactory, image_server: ImageServer, samples: dict[str, Path]
) -> None:
    secure = start_deeptag(
        {"DEEPTAG_API_KEY": "s3cret", "DEEPTAG_IMAGE_ROOTS": str(samples["coffee"].parent)}
    )
    body = {
        "service": "imageserv",
        "data": [f"{image_server.url}/coffee.jpg", str(samples["coffee"]), "/etc/hostname"],
    }
    assert httpx.get(f"{secure.url}/health").status_code == 200
    refused = predict(secure, body)
    assert refused.status_code == 401
    assert "Bearer" in refused.json()["status"]["dd_msg"]
    assert predict(secure, body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = predict(secure, body, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    loopback, in_root, outside = ok.json()["body"]["predictions"]
    # Private and loopback image URLs are refused unless DEEPTAG_FETCH_ALLOW_PRIVATE is set.
    assert loopback["error"]["reason"] == "refused"
    assert "DEEPTAG_FETCH_ALLOW_PRIVATE" in loopback["error"]["msg"]
    assert in_root["classes"][0]["cat"] == "n07920052 espresso"
    assert outside["error"]["reason"] == "refused"
    assert httpx.get(f"{secure.url}/metrics").status_code == 401


def test_unknown_routes_answer_in_the_deepdetect_shape(server: DeeptagServer) -> None:
    answer = httpx.get(f"{server.url}/no/such/route", timeout=10)
    assert answer.status_code == 404
    assert answer.json()["status"] == {
        "code": 404,
        "msg": "Not Found",
        "dd_code": 1006,
        "dd_msg": "Not Found: GET /no/such/route",
    }
