"""``POST /predict``: DeepDetect's prediction call, with output templates and network sinks."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from orchestrator.analysis.registry import ANALYSES
from orchestrator.errors import NoData, SinkError
from orchestrator.netguard import check_sink_url
from orchestrator.pipeline import TagOptions
from orchestrator.responses import predict_response
from orchestrator.server.cancellation import run_for_client
from orchestrator.server.openapi import BODY_ERRORS, EXAMPLE_IMAGE, TEXT, described, inline_schema
from orchestrator.server.response_models import PredictResponse
from orchestrator.server.schemas import (
    OutputOptions,
    PredictRequest,
    check_data_items,
    read_body,
)
from orchestrator.server.services import PredictObserver, ServiceSpec
from orchestrator.server.state import ServerState, State
from orchestrator.sinks.http import NetworkTarget, media_type, normalise_ndjson, same_origin, send
from orchestrator.sources import classify_all
from orchestrator.templates import compile_template, render

router = APIRouter()
FAILED_HEADER = "X-Deeptag-Failed"
FAILED_HEADER_SPEC = {
    "required": True,
    "description": "How many images of the request could not be tagged.",
    "schema": {"type": "integer"},
}


def template_context(response: dict[str, Any]) -> dict[str, Any]:
    """The response a template renders (pure).

    Tagged images are in ``body.predictions`` (so a bulk template indexes only those), failed
    ones in ``body.errors``. Every class and prediction carries an explicit ``last``: Mustache
    looks a missing key up in the enclosing scopes, so without it ``{{^last}},{{/last}}``
    inside the last prediction's classes would see that prediction's ``last: true``.
    """
    body = response["body"]["predictions"]
    predictions = [
        {**p, "classes": _mark_last(p["classes"]), "last": False} for p in body if "error" not in p
    ]
    errors = [p for p in body if "error" in p]
    return {**response, "body": {"predictions": _mark_last(predictions), "errors": errors}}


def _mark_last(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**item, "last": i == len(items) - 1} for i, item in enumerate(items)]


def _network_target(output: OutputOptions, state: ServerState) -> NetworkTarget | None:
    if output.network is None:
        return None
    check_sink_url(output.network.url, state.settings.sink_allowed_hosts)
    settings = state.settings
    # DeepDetect's tutorial pushes straight into Elasticsearch: a secured cluster gets the
    # configured login, and only the configured cluster does.
    to_es = settings.es_url is not None and same_origin(output.network.url, settings.es_url)
    return NetworkTarget(
        url=output.network.url,
        method=output.network.http_method,
        content_type=media_type(output.network.content_type, output.network.url),
        authorization=settings.es_authorization if to_es else None,
    )


def _failures(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"uri": p["uri"], "error": p["error"]}
        for p in response["body"]["predictions"]
        if "error" in p
    ]


@router.post(
    "/predict",
    **described(
        body=PredictRequest,
        example={
            "service": "imageserv",
            "parameters": {"output": {"best": 3}},
            "data": [EXAMPLE_IMAGE],
        },
        ok_description="The predictions; with output.template, the rendered template: as "
        "JSON when it parses as JSON, else as text/plain.",
        content={
            "application/json": {
                "schema": {
                    "anyOf": [
                        inline_schema(PredictResponse),
                        {"description": "A rendered output.template"},
                    ]
                }
            },
            "text/plain": TEXT,
        },
        headers={FAILED_HEADER: FAILED_HEADER_SPEC},
        more={
            "2XX": {
                "description": "With output.network: the sink's answer and status.",
                "content": {"application/json": {"schema": {}}, "text/plain": TEXT},
            }
        },
        errors=(*BODY_ERRORS, 403, 404, 499, 500, 502, 503, 504),
    ),
)
async def predict(http_request: Request, state: State) -> Response:
    request = await read_body(http_request, PredictRequest)
    spec, stats = state.services.get(request.service)
    # From here on the call counts in the service's statistics, whether it succeeds or not.
    with stats.observe() as call:
        return await _predict(http_request, state, request, spec, call)


async def _predict(
    http_request: Request,
    state: ServerState,
    request: PredictRequest,
    spec: ServiceSpec,
    call: PredictObserver,
) -> Response:
    if not request.data:
        raise NoData("data is empty: give at least one image URL, path or base64 string")
    check_data_items(request.data, state.settings.max_data_items)
    output = request.parameters.output
    # Problems with the request itself are found before any image is fetched.
    template = (
        compile_template(output.template, output.template_escape) if output.template else None
    )
    target = _network_target(output, state)

    analyses = frozenset(a.name for a in ANALYSES if getattr(output, a.name))
    tagger, _ = await state.tagger_for(spec.model, analyses)
    started = time.perf_counter()
    outcomes = await run_for_client(
        http_request,
        tagger.tag(
            classify_all(request.data, state.reader.policy.path_roots),
            TagOptions(
                best=output.best,
                confidence_threshold=output.confidence_threshold,
                with_probs=output.concepts,
                analyses=analyses,
            ),
        ),
        state.settings.predict_timeout_s,
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    response = predict_response(outcomes, spec.name, elapsed_ms, metadata=output.metadata)
    failed = response["status"].get("failed", 0)
    call.tagged(outcomes)
    headers = {FAILED_HEADER: str(failed)}

    if template is None and target is None:
        return JSONResponse(response, headers=headers)
    context = template_context(response)
    with state.metrics.timed("render"):
        rendered = render(template, context) if template else json.dumps(context)
    if target is None:
        try:
            return JSONResponse(json.loads(rendered), headers=headers)
        except json.JSONDecodeError:
            return PlainTextResponse(rendered, headers=headers)
    if not context["body"]["predictions"]:
        # Nothing was tagged, so there is nothing to send; say why for every image.
        return JSONResponse(response, headers=headers)
    if target.is_bulk or "ndjson" in target.content_type:
        rendered = normalise_ndjson(rendered)
    try:
        with state.metrics.timed("sink"):
            answer = await send(state.sink_http, target, rendered)
    except SinkError:
        state.metrics.sink_failures.labels(sink="http").inc()
        raise
    if not answer.is_json:
        return PlainTextResponse(str(answer.body), status_code=answer.status, headers=headers)
    body = answer.body
    if isinstance(body, dict):
        body = {**body, "deeptag": {"status": response["status"], "failed": _failures(response)}}
    return JSONResponse(body, status_code=answer.status, headers=headers)
