"""``/openapi.json``: every route described as it behaves, from the models that validate it.

Routes read their bodies with :func:`~orchestrator.server.schemas.read_body` (DeepDetect's
error shape, a streamed size limit), so FastAPI sees no body parameter and would document
none. :func:`described` gives a route's decorator the body's schema, from the same pydantic
model ``read_body`` validates with, and the responses the route really sends: its success
schema and content types, and DeepDetect's error shape for each error status.
:func:`install_openapi` finishes the document: the bearer scheme and a 401 on the routes that
need the key (when one is set), and none of FastAPI's 422s (invalid parameters answer 400).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from orchestrator.server.auth import require_api_key, require_key_or_session
from orchestrator.server.response_models import ErrorResponse

#: What each error status means here; the body is always :class:`ErrorResponse`.
ERROR_MEANINGS: Mapping[int, str] = {
    400: "The request is invalid: a parameter or body field named in `dd_msg`.",
    401: "The API key is missing or wrong (DEEPTAG_API_KEY is set).",
    403: "Refused: a sink or source outside what the server is allowed to reach.",
    404: "Not found: the service, job, image or input connector named in `dd_msg`.",
    409: "Conflict: the name is taken, a job is running, or the index is locked.",
    413: "Too large: the body (DEEPTAG_MAX_BODY_BYTES), the item count, or the image.",
    415: "The indexed file is not an image a browser can show.",
    422: "The indexed image is corrupt or truncated.",
    499: "The client closed the connection before the answer was ready (nobody reads it).",
    500: "Inference failed inside Triton.",
    502: "A sink answered with an error, or the source of an indexed image failed.",
    503: "Unavailable: Triton, the model, the search backend or a sink cannot be reached "
    "(an outage: try again later).",
    504: "The request ran past DEEPTAG_PREDICT_TIMEOUT_S, or a sink did not answer in time.",
}

#: Errors any route that reads a JSON body can answer.
BODY_ERRORS = (400, 413)
BEARER = "bearer"
#: An 8x8 PNG for request examples, so "try it out" in /docs works offline.
EXAMPLE_IMAGE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFUlEQVR42mM8UaHBgA0wMeAAg1MCAB4nAXgllso1"
    "AAAAAElFTkSuQmCC"
)
TEXT = {"schema": {"type": "string"}}


@dataclass(frozen=True)
class QueryParam:
    """A query parameter a route reads from ``request.query_params`` itself."""

    name: str
    schema: Mapping[str, Any]
    description: str
    required: bool = False

    def as_openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "description": self.description,
            "schema": dict(self.schema),
        }


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` written in place (pure).

    A request body lives in an operation, where ``#/$defs/...`` would point at the document's
    root; none of the bodies is recursive, so writing each definition in place is exact.
    """
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(definitions[ref.removeprefix("#/$defs/")]), **resolve(rest)}
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def described(
    *,
    body: type[BaseModel] | None = None,
    example: Mapping[str, Any] | None = None,
    ok: type[BaseModel] | None = None,
    ok_status: int = 200,
    ok_description: str = "Success",
    content: Mapping[str, Mapping[str, Any]] | None = None,
    headers: Mapping[str, Mapping[str, Any]] | None = None,
    errors: Iterable[int] = (),
    query: Iterable[QueryParam] = (),
    more: Mapping[int | str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """``responses`` and ``openapi_extra`` for a route decorator.

    Args:
        body: The model the route validates its JSON body with (``read_body``).
        example: An example body, shown by ``/docs`` and tried first by API fuzzers.
        ok: The success body's model, documented as ``application/json``.
        ok_status: The success status.
        content: Other (or, without ``ok``, the only) media types of the success response.
        headers: Headers the success response always carries.
        errors: The error statuses the route sends (401 is added by :func:`install_openapi`).
        query: Query parameters the route reads from the request itself.
        more: Other responses, as OpenAPI response objects (a 304, a relayed sink answer).
    """
    success: dict[str, Any] = {"description": ok_description}
    if ok is not None:
        success["model"] = ok
    if content:
        success["content"] = {kind: dict(media) for kind, media in content.items()}
    if headers:
        success["headers"] = {name: dict(header) for name, header in headers.items()}
    responses: dict[int | str, dict[str, Any]] = {ok_status: success}
    responses.update({status: dict(response) for status, response in (more or {}).items()})
    for status in sorted(set(errors)):
        responses[status] = {"model": ErrorResponse, "description": ERROR_MEANINGS[status]}
    extra: dict[str, Any] = {}
    if body is not None:
        media: dict[str, Any] = {"schema": inline_schema(body)}
        if example is not None:
            media["example"] = dict(example)
        extra["requestBody"] = {"required": True, "content": {"application/json": media}}
    parameters = [param.as_openapi() for param in query]
    if parameters:
        extra["parameters"] = parameters
    return {"responses": responses, "openapi_extra": extra}


def described_files(description: str, content_types: Iterable[str]) -> dict[str, Any]:
    """:func:`described` for a route that serves one of a fixed set of files, by name.

    ``content_types`` are the files' Content-Types (parameters such as ``charset`` are
    dropped); any other name answers a 404.
    """
    return described(
        ok_description=description,
        content={kind.split(";")[0]: TEXT for kind in content_types},
        more={404: {"description": "No such file.", "model": ErrorResponse}},
    )


def _calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _finish(document: dict[str, Any], app: FastAPI, key_required: bool) -> None:
    """Security and 401s where the key is checked; FastAPI's unused 422 schema removed."""
    for context in routing.iter_route_contexts(app.routes):
        if not isinstance(context.original_route, routing.APIRoute):
            continue
        calls = set(_calls(context.dependant))
        guarded = require_api_key in calls or require_key_or_session in calls
        path = document["paths"].get(context.path_format, {})
        for method in context.methods or ():
            operation = path.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            # FastAPI adds a 422 for declared parameters; a bad parameter answers 400 here.
            fastapi_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
            if fastapi_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            if guarded and key_required:
                operation["security"] = [{BEARER: []}]
                responses["401"] = _unauthorized()
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    if key_required:
        document.setdefault("components", {})["securitySchemes"] = {
            BEARER: {
                "type": "http",
                "scheme": "bearer",
                "description": "The server's API key (DEEPTAG_API_KEY). GET /thumbnails/{id} "
                "and GET /images/{id} also accept the cookie POST /session sets.",
            }
        }


def _unauthorized() -> dict[str, Any]:
    return {
        "description": ERROR_MEANINGS[401],
        "headers": {
            "WWW-Authenticate": {
                "required": True,
                "description": "The scheme that would be accepted.",
                "schema": {"type": "string"},
            }
        },
        "content": {"application/json": {"schema": inline_schema(ErrorResponse)}},
    }


def install_openapi(app: FastAPI, *, key_required: bool) -> None:
    """Serve the finished document at ``app.openapi_url``; ``key_required``: an API key is set."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description="DeepDetect's HTTP API (/info, /services, /predict, /train) with "
                "deeptag's search (/search, /index) and search page. Every route is described "
                "as it behaves; errors use DeepDetect's shape, `{status: {code, msg, dd_code, "
                "dd_msg}}`.",
                routes=app.routes,
            )
            _finish(document, app, key_required)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
