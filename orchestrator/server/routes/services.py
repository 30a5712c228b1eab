"""``/info`` and ``/services/{name}``: DeepDetect's service management."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from orchestrator import __version__
from orchestrator.errors import BadRequest, ModelNotFound
from orchestrator.server.schemas import ServiceCreate, read_body
from orchestrator.server.services import ServiceSpec
from orchestrator.server.state import ServerState, State
from orchestrator.triton.launcher import is_ready

router = APIRouter()


def _ok(method: str, **head: Any) -> dict[str, Any]:
    return {"status": {"code": 200, "msg": "OK"}, "head": {"method": method, **head}}


async def _search_summary(state: ServerState) -> dict[str, Any]:
    kind = state.settings.resolved_search_backend
    try:
        backend = await state.get_backend()
        return {"backend": backend.kind, "documents": await backend.count()}
    except Exception as e:  # the status panel reports a broken backend, it does not fail
        return {"backend": kind, "documents": None, "error": str(e)}


@router.get("/info")
async def info(state: State) -> dict[str, Any]:
    endpoint = state.triton.endpoint
    ready = True
    try:
        _, model = await state.tagger_for(state.settings.model)
        model_json = {"name": model.name, "version": model.version}
    except ModelNotFound as e:
        ready, model_json = False, {"name": state.settings.model, "error": str(e)}
    except Exception as e:  # Triton down: /info must still answer
        ready, model_json = False, {"name": state.settings.model, "error": str(e)}
    if state.triton.local is not None:
        ready = ready and is_ready(state.triton.local.ports.http, timeout=1.0)
    return _ok(
        "/info",
        version=__version__,
        services=[spec.summary() for spec in state.services.specs()],
        triton={"url": str(endpoint), "ready": ready, "metrics_url": state.triton.metrics_url},
        model=model_json,
        search=await _search_summary(state),
    )


@router.api_route("/services/{name}", methods=["PUT", "POST"], status_code=201)
async def create_service(name: str, request: Request, state: State) -> dict[str, Any]:
    body = await read_body(request, ServiceCreate)
    connector = body.parameters.input.connector
    if connector not in (None, "image"):
        raise BadRequest(f"parameters.input.connector '{connector}': only 'image' is supported")
    model_name = body.model.name or state.settings.model
    try:
        _, model = await state.tagger_for(model_name)
    except ModelNotFound as e:
        raise BadRequest(f"model.name '{model_name}': {e}") from e
    nclasses = body.parameters.mllib.nclasses
    if nclasses is not None and nclasses != model.num_classes:
        raise BadRequest(
            f"parameters.mllib.nclasses is {nclasses} but model '{model_name}' has "
            f"{model.num_classes} classes"
        )
    height, width = model.input_shape[:2]
    state.services.add(
        ServiceSpec(
            name=name,
            model=model_name,
            description=body.description,
            mllib=body.mllib,
            type=body.type,
            width=width,
            height=height,
            nclasses=model.num_classes,
        )
    )
    return {"status": {"code": 201, "msg": "Created"}}


@router.get("/services/{name}")
async def get_service(name: str, state: State) -> dict[str, Any]:
    spec, stats = state.services.get(name)
    body = {
        **spec.summary(),
        "jobs": [],
        "parameters": {
            "input": {"connector": "image", "width": spec.width, "height": spec.height},
            "mllib": {"nclasses": spec.nclasses},
        },
        "stats": stats.as_json(),
    }
    return {**_ok("/services", service=name), "body": body}


@router.delete("/services/{name}")
async def delete_service(name: str, state: State) -> dict[str, Any]:
    state.services.remove(name)
    return {"status": {"code": 200, "msg": "OK"}}
